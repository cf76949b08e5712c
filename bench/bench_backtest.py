"""One full-fidelity ``backtest`` on a grid's panel, with its trade log, after data load.

``rebalancer.backtest.engine.run_backtest`` on the compiled engine (the default of
``rebalancer backtest``): the live cycle's model (trigger, planner with Binance-like step and
5-USDT minimum notional made up from each asset's first close, ``min_trade`` 10 USDT, fee
0.1 % in the asset received, sells first, re-planned buys), the trade log as Decimals with
each firing bar's reason, per-bar equity and weights, metrics, tax lots; then
``trades_frame()`` (the ``trades.csv`` table). Equal target weights over the assets and USDT,
10,000 USDT from cash. Rows: the strategy alone, and with its two benchmarks (buy-and-hold,
monthly calendar: what the command runs). Times are the best of ``--repeat`` after a
warm-up (the numba cache loaded); ``--replay`` adds one replay of the strategy alone
(``engine="replay"``, bar by bar; not for the vol band, whose Decimal history of
``window + 1`` closes per asset per bar would take hours on G3).

    PYTHONPATH=src .venv/bin/python bench/bench_backtest.py --grid G3 [--replay]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAPITAL, GRIDS, load, peak_rss_mb


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _triggers() -> list[tuple[str, Any, str]]:
    from rebalancer.core.cron import Cron
    from rebalancer.core.triggers import Calendar, Threshold, hybrid
    from rebalancer.core.vol_bands import VolScaledThreshold

    d = Decimal
    return [
        ("abs 5%", Threshold(d("0.05")), "target"),
        ("abs 1%", Threshold(d("0.01")), "target"),
        ("abs 2% band_edge", Threshold(d("0.02")), "band_edge"),
        ("hybrid daily cron, 2%", hybrid(Calendar(cron=Cron.parse("0 0 * * *")),
                                         Threshold(d("0.02"))), "target"),
        ("vol band 3%", VolScaledThreshold(half_life=288, base_band=d("0.03"), floor=d("0.01"),
                                           cap=d("0.1"), reference_vol=0.002), "target"),
    ]


def measure(grid_name: str, repeat: int, replay: bool) -> dict[str, Any]:
    from rebalancer.backtest.engine import run_backtest
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy

    grid = GRIDS[grid_name]
    t0 = time.perf_counter()
    panel = load(grid)
    load_s = time.perf_counter() - t0
    closes = panel.closes
    bar = timedelta(seconds=panel.step_seconds)
    n = closes.shape[1]
    w = (Decimal(1) / Decimal(n + 1)).quantize(Decimal("1e-12"))
    targets = {str(a): w for a in closes.columns} | {"USDT": Decimal(1) - w * n}
    rows = []
    for name, trigger, style in _triggers():
        strategy = Strategy("USDT", targets, trigger, PlanPolicy(style=style))  # type: ignore[arg-type]

        def one(benchmarks: bool, engine: str = "compiled", strategy: Any = strategy) -> Any:
            res = run_backtest(
                closes, strategy, capital=Decimal(int(CAPITAL)), taker_fee=Decimal("0.001"),
                bar=bar, benchmarks=benchmarks, engine=engine,
            )
            return res, res.trades_frame()

        one(False)  # warm-up: the numba cache
        alone_s, (res, frame) = _best(lambda: one(False), repeat)
        with_bm_s, _ = _best(lambda: one(True), repeat)
        row = {
            "rule": name,
            "bars": len(closes),
            "assets": n,
            "strategy_with_log_s": alone_s,
            "with_benchmarks_s": with_bm_s,
            "fired": len(res.run.fired_bars),
            "rebalances": len(res.run.rebalance_bars),
            "orders": len(frame),
            "final_value": float(res.run.final_value),
        }
        if replay and "vol" not in name:
            t0 = time.perf_counter()
            slow, _ = one(False, "replay")
            row["replay_s"] = time.perf_counter() - t0
            row["replay_same_final"] = abs(
                float(slow.run.final_value) / float(res.run.final_value) - 1
            )
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"grid": grid_name, "load_s": load_s, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", default="G3")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replay", action="store_true", help="also time one replay per rule")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "backtest.json"))
    a = ap.parse_args()
    result = measure(a.grid, a.repeat, a.replay)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(f"{result['grid']}: data load {result['load_s']:.2f} s, peak RSS "
          f"{result['peak_rss_mb']:.0f} MB")
    for r in result["rows"]:
        rep = f"  replay {r['replay_s']:.1f} s" if "replay_s" in r else ""
        print(
            f"  {r['rule']:22} {r['bars']} bars x {r['assets']}: strategy + log "
            f"{r['strategy_with_log_s']:.3f} s, with benchmarks {r['with_benchmarks_s']:.3f} s; "
            f"{r['rebalances']} rebalances, {r['orders']} orders{rep}"
        )


if __name__ == "__main__":
    main()
