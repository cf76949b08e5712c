"""The compiled full-semantics engine against the reference kernel and the replay.

Per grid (G2 hourly ten assets, G3 5-minute eight assets, see ``bench/common.py``) and per
trigger kind and style: 100 combinations (25 bands x 4 fee rates, fee in the asset received,
Binance-like step and minimum notional from each asset's first price, ``min_trade`` 10
USDT) through :func:`rebalancer.backtest.compiled.engine.run_many`; the reference kernel
(:func:`rebalancer.backtest.sweep.sweep`, reference semantics, absolute band) on the same
100 combinations; one compiled run with its trade log; and (``--replay``) one combination
of the replay (``rebalancer.backtest.engine.run_backtest(..., engine="replay")``),
extrapolated x 100. Times are the best of ``--repeat`` runs after a warm-up; peak RSS is
the process's (data included), measured in a fresh process per grid.

    PYTHONPATH=src .venv/bin/python bench/bench_full.py --grids G2,G3 [--replay]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BANDS, CAPITAL, FEES, GRIDS, load, peak_rss_mb

KINDS = (
    ("abs", "target"),
    ("abs", "band_edge"),
    ("rel", "target"),
    ("hybrid", "band_edge"),
    ("calendar", "target"),
    ("vol", "target"),
    ("cost", "target"),
)


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _strategy(kind: str, style: str, assets: tuple[str, ...]) -> Any:
    from rebalancer.core.cron import Cron
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Calendar, Threshold, Trigger, hybrid
    from rebalancer.core.vol_bands import VolScaledThreshold

    n = len(assets)
    w = (Decimal(1) / Decimal(n + 1)).quantize(Decimal("1e-12"))
    targets = {a: w for a in assets} | {"USDT": Decimal(1) - w * n}
    trigger: Trigger = Threshold(Decimal("0.05"))
    if kind == "rel":
        trigger = Threshold(None, Decimal("0.5"))
    elif kind == "hybrid":
        trigger = hybrid(Calendar(cron=Cron.parse("0 */4 * * *")), Threshold(Decimal("0.05")))
    elif kind == "calendar":
        trigger = Calendar(timedelta(days=1))
    elif kind == "vol":
        trigger = VolScaledThreshold(half_life=24, base_band=Decimal("0.05"), reference_vol=0.01)
    policy = PlanPolicy(style=style, cost_aware=kind == "cost")  # type: ignore[arg-type]
    return Strategy("USDT", targets, trigger, policy)


def _rules(closes: Any) -> dict[str, Any]:
    from rebalancer.core.model import MarketRules

    out = {}
    for a in closes.columns:
        exp = (Decimal(1) / Decimal(repr(float(closes[a].iloc[0])))).adjusted()
        step = Decimal(1).scaleb(exp)
        out[str(a)] = MarketRules(
            f"{a}/USDT", str(a), "USDT", step, step, Decimal(5), None, Decimal("0.001")
        )
    return out


def measure(grid_name: str, repeat: int, replay: bool) -> dict[str, Any]:
    from rebalancer.backtest.compiled import kernel as K
    from rebalancer.backtest.compiled.engine import run, run_many
    from rebalancer.backtest.compiled.program import build_inputs, params_row
    from rebalancer.backtest.engine import run_backtest
    from rebalancer.backtest.replay import decimal_rows, holdings_from_weights
    from rebalancer.backtest.sweep import sweep

    grid = GRIDS[grid_name]
    panel = load(grid)
    closes = panel.closes
    bar = timedelta(seconds=panel.step_seconds)
    rules = _rules(closes)
    bands = np.repeat(np.array(BANDS), len(FEES))
    fees = np.tile(np.array(FEES), len(BANDS))
    sweep(panel.prices[:3], panel.targets, [0.05], [0.0])  # compile / load the cache
    ref_s, _ = _best(
        lambda: sweep(panel.prices, panel.targets, bands, fees, capital=CAPITAL), repeat
    )
    rows: list[dict[str, Any]] = []
    for kind, style in KINDS:
        strategy = _strategy(kind, style, grid.assets)
        first = decimal_rows(closes.iloc[:1])[0]
        initial = holdings_from_weights(strategy.targets, first, Decimal(int(CAPITAL)), "USDT")
        t0 = time.perf_counter()
        inputs, program = build_inputs(closes, strategy, initial, rules, bar)
        prep_s = time.perf_counter() - t0
        base = params_row(strategy, program)
        params = np.tile(base, (len(bands), 1))
        column = {"rel": K.P_BAND_REL, "vol": K.P_VOL_BASE}.get(kind, K.P_BAND_ABS)
        params[:, column] = bands * (10 if kind == "rel" else 1)
        params[:, K.P_FEE_SCALE] = fees / 0.001
        run_many(inputs, params[:2])  # compile / load the cache
        full_s, stats = _best(lambda: run_many(inputs, params), repeat)  # noqa: B023
        one_s, res = _best(
            lambda: run(closes, strategy, initial, rules=rules, bar=bar),  # noqa: B023
            repeat,
        )
        row = {
            "kind": kind,
            "style": style,
            "combos": len(bands),
            "prepare_s": prep_s,
            "full_100_s": full_s,
            "reference_100_s": ref_s,
            "ratio_vs_reference": full_s / ref_s,
            "one_with_log_s": one_s,
            "one_orders": len(res.orders),
            "one_final_value": res.final_value,
            "median_rebalances": float(np.median(stats[:, K.N_FIRED])),
        }
        if replay:
            t0 = time.perf_counter()
            run_backtest(
                closes, strategy, initial=initial, taker_fee=Decimal("0.001"), bar=bar,
                rules=rules, benchmarks=False, engine="replay",
            )
            row["replay_one_s"] = time.perf_counter() - t0
            row["replay_100_s_extrapolated"] = 100 * row["replay_one_s"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {
        "grid": grid_name,
        "bars": int(panel.prices.shape[0]),
        "assets": int(panel.prices.shape[1]),
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", default="G2,G3")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replay", action="store_true", help="also time one replay per row")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "full.json"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(measure(a.worker, a.repeat, a.replay)))
        return
    results = []
    for g in a.grids.split(","):
        cmd = [sys.executable, __file__, "--worker", g, "--repeat", str(a.repeat)]
        if a.replay:
            cmd.append("--replay")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    Path(a.out).write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{r['grid']}: {r['bars']} bars x {r['assets']} assets, peak RSS "
              f"{r['peak_rss_mb']:.0f} MB")
        for row in r["rows"]:
            rep = row.get("replay_100_s_extrapolated")
            print(
                f"  {row['kind']:8} {row['style']:9} full 100: {row['full_100_s'] * 1e3:8.1f} ms"
                f"  reference 100: {row['reference_100_s'] * 1e3:6.1f} ms"
                f"  ratio {row['ratio_vs_reference']:5.2f}  one+log {row['one_with_log_s']:.3f} s"
                f"  prep {row['prepare_s']:.2f} s"
                + (f"  replay x100 ~{rep:.0f} s" if rep else "")
            )


if __name__ == "__main__":
    main()
