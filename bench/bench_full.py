"""The sweep's compiled full-semantics rows against the reference kernel and the replay.

Per grid (G2 hourly ten assets, G3 5-minute eight assets, see ``bench/common.py``) and per
trigger kind and style of ``rebalancer sweep`` (abs, rel, hybrid, vol, cost x target,
band_edge; vol has no band_edge) plus a daily calendar: 100 combinations (25 bands x 4 fee
rates) through :func:`rebalancer.backtest.compiled.grid_rows.compiled_rows` -- the rows
``sweep`` prints, with the full semantics: Binance's shipped market list (made-up labelled
rules for assets it does not list), fee in the asset received, ``min_trade`` 10 USDT --
against the reference kernel (:func:`rebalancer.backtest.sweep.sweep`, reference semantics,
absolute band, the only rule it has) on the same 100 combinations and cores; one compiled
run with its trade log; and (``--replay``) the Decimal replay
(:func:`rebalancer.backtest.grid.replay_one`) of the 5 % band at fee 0.1 %, extrapolated
x 100 (labelled: a lower bound, small bands trade more often). Times are the best of
``--repeat`` runs after a warm-up; peak RSS is the process's (data included), measured in a
fresh process per grid, before the replays and after them. ``--cli`` also times the issue's
command line on G2 (wall, CPU, peak RSS, the load average around it).

    PYTHONPATH=src .venv/bin/python bench/bench_full.py --grids G2,G3 [--replay] [--cli]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BANDS, CAPITAL, DATA, FEES, GRIDS, load, peak_rss_mb

#: the sweep's kinds and styles, then a calendar rule (daily) as a reference point
ROWS = (
    ("abs", "target"),
    ("abs", "band_edge"),
    ("rel", "target"),
    ("rel", "band_edge"),
    ("hybrid", "target"),
    ("hybrid", "band_edge"),
    ("vol", "target"),
    ("cost", "target"),
    ("cost", "band_edge"),
    ("calendar", "target"),
)
ROOT = Path(__file__).resolve().parents[1]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _strategy(assets: tuple[str, ...]) -> Any:
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold

    n = len(assets)
    w = (Decimal(1) / Decimal(n + 1)).quantize(Decimal("1e-12"))
    targets = {a: w for a in assets} | {"USDT": Decimal(1) - w * n}
    return Strategy("USDT", targets, Threshold(Decimal("0.05")), PlanPolicy(min_trade=Decimal(10)))


def _calendar_rows(closes: Any, strategy: Any, bar: timedelta, market: Any) -> Any:
    """100 daily-calendar combinations (the fee rates x 25 copies) through run_many."""
    from rebalancer.backtest.compiled import kernel as K
    from rebalancer.backtest.compiled.engine import run_many
    from rebalancer.backtest.compiled.program import build_inputs, params_row
    from rebalancer.core.triggers import Calendar

    s = strategy.__class__(
        strategy.quote, strategy.targets, Calendar(timedelta(days=1)), strategy.policy
    )
    inputs, program = build_inputs(
        closes, s, {"USDT": Decimal(int(CAPITAL))}, market.rules, bar, market.fee_currency
    )
    params = np.tile(params_row(s, program), (len(BANDS) * len(FEES), 1))
    params[:, K.P_FEE_SCALE] = np.tile(np.array(FEES), len(BANDS))
    return lambda: run_many(inputs, params)


def measure(grid_name: str, repeat: int, replay: bool) -> dict[str, Any]:
    from rebalancer.backtest.compiled.engine import run
    from rebalancer.backtest.compiled.grid_rows import compiled_rows
    from rebalancer.backtest.grid import Combo, combo_strategy, market_rules, replay_one
    from rebalancer.backtest.sweep import sweep
    from rebalancer.core.venue import BINANCE

    grid = GRIDS[grid_name]
    panel = load(grid)
    closes = panel.closes
    bar = timedelta(seconds=panel.step_seconds)
    strategy = _strategy(grid.assets)
    market = market_rules(closes, strategy, BINANCE)
    capital = Decimal(int(CAPITAL))
    bands = np.repeat(np.array(BANDS), len(FEES))
    fees = np.tile(np.array(FEES), len(BANDS))
    sweep(panel.prices[:3], panel.targets, [0.05], [0.0])  # compile / load the cache
    ref_s, _ = _best(
        lambda: sweep(panel.prices, panel.targets, bands, fees, capital=CAPITAL), repeat
    )
    rows: list[dict[str, Any]] = []
    for kind, style in ROWS:
        if kind == "calendar":
            fn = _calendar_rows(closes, strategy, bar, market)
            one_combo = None
        else:
            pairs = zip(bands, fees, strict=True)
            todo = [Combo(kind, style, float(b), float(f)) for b, f in pairs]
            fn = lambda todo=todo: compiled_rows(  # noqa: E731
                todo, closes, strategy, capital, bar, market, lambda _n: None
            )
            one_combo = Combo(kind, style, 0.05, 0.001)
        fn()  # compile / load the cache
        full_s, _ = _best(fn, repeat)
        row: dict[str, Any] = {
            "kind": kind,
            "style": style,
            "combos": len(bands),
            "full_100_s": full_s,
            "reference_100_s": ref_s,
            "ratio_vs_reference": full_s / ref_s,
        }
        if one_combo is not None:
            one = combo_strategy(one_combo, strategy)
            one_s, res = _best(
                lambda one=one: run(
                    closes, one, {"USDT": capital}, rules=market.at_fee(Decimal("0.001")),
                    bar=bar, fee_currency=market.fee_currency,
                ),
                repeat,
            )
            row |= {"one_with_log_s": one_s, "one_orders": len(res.orders)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    compiled_rss = peak_rss_mb()  # before any replay (the replay keeps every cycle)
    for row in rows if replay else []:
        if row["kind"] == "calendar":
            continue
        t0 = time.perf_counter()
        one_combo = Combo(row["kind"], row["style"], 0.05, 0.001)
        replay_one(one_combo, closes, strategy, capital, bar, market)
        row["replay_one_s"] = time.perf_counter() - t0
        row["replay_100_s_extrapolated"] = 100 * row["replay_one_s"]
    return {
        "peak_rss_mb_compiled": compiled_rss,
        "grid": grid_name,
        "bars": int(panel.prices.shape[0]),
        "assets": int(panel.prices.shape[1]),
        "market_rules": market.source,
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
    }


G2_CONFIG = """exchange = "binance"
quote = "USDT"
[targets]
BTC = 0.09
ETH = 0.09
BNB = 0.09
ADA = 0.09
XRP = 0.09
DOGE = 0.09
LTC = 0.09
TRX = 0.09
LINK = 0.09
MATIC = 0.09
USDT = 0.10
"""


def cli_g2() -> dict[str, Any]:
    """``rebalancer sweep --kinds abs,rel,hybrid,vol,cost --styles target,band_edge`` with
    ten bands on G2 from the command line: wall time, CPU time and peak RSS of the process."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "g2.toml"
        config.write_text(G2_CONFIG)
        cmd = [
            sys.executable, "-m", "rebalancer.cli.app", "sweep", "-c", str(config),
            "--data-dir", str(DATA / "binance_spot_2017_2022"), "--timeframe", "1h",
            "--start", "2019-07-05", "--end", "2022-10-11 23:00",
            "--kinds", "abs,rel,hybrid,vol,cost", "--styles", "target,band_edge",
            "--bands", "0.01:0.10:0.01", "--out", str(Path(tmp) / "out"), "--json",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        load_before = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        data = json.loads(proc.stdout)
    return {
        "command": "rebalancer sweep --kinds abs,rel,hybrid,vol,cost --styles "
        "target,band_edge --bands 0.01:0.10:0.01 (G2)",
        "rows": data["combinations"],
        "engines": data["engines"],
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "grid_s": data["seconds"],
        "peak_rss_mb": after.ru_maxrss / 1024,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", default="G2,G3")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replay", action="store_true", help="also time one replay per row")
    ap.add_argument("--cli", action="store_true", help="also time the sweep CLI on G2")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "full.json"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(measure(a.worker, a.repeat, a.replay)))
        return
    results: dict[str, Any] = {"load_average_start": os.getloadavg()[0], "grids": []}
    if a.cli:  # first: the children's peak RSS is then the CLI's
        results["cli"] = cli_g2()
    for g in a.grids.split(","):
        cmd = [sys.executable, __file__, "--worker", g, "--repeat", str(a.repeat)]
        if a.replay:
            cmd.append("--replay")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results["grids"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results["load_average_end"] = os.getloadavg()[0]
    Path(a.out).write_text(json.dumps(results, indent=1))
    print(f"load average {results['load_average_start']:.1f} -> {results['load_average_end']:.1f}")
    for r in results["grids"]:
        print(f"{r['grid']}: {r['bars']} bars x {r['assets']} assets, peak RSS "
              f"{r['peak_rss_mb_compiled']:.0f} MB compiled, {r['peak_rss_mb']:.0f} MB with "
              f"the replays; {r['market_rules']}")
        for row in r["rows"]:
            rep = row.get("replay_100_s_extrapolated")
            one = row.get("one_with_log_s")
            print(
                f"  {row['kind']:8} {row['style']:9} full 100: {row['full_100_s'] * 1e3:8.1f} ms"
                f"  reference 100: {row['reference_100_s'] * 1e3:6.1f} ms"
                f"  ratio {row['ratio_vs_reference']:5.2f}"
                + (f"  one+log {one:.3f} s" if one is not None else "")
                + (f"  replay x100 ~{rep:.0f} s (extrapolated)" if rep else "")
            )
    if "cli" in results:
        c = results["cli"]
        print(f"CLI: {c['command']}: {c['rows']} rows, wall {c['wall_s']:.1f} s, CPU "
              f"{c['cpu_s']:.1f} s, grid {c['grid_s']:.1f} s, peak RSS {c['peak_rss_mb']:.0f} "
              f"MB, load {c['load_average_before']:.1f} -> {c['load_average_after']:.1f}")


if __name__ == "__main__":
    main()
