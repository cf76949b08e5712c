"""Benchmark of the trust statistics (issue 15's targets), on real Binance candles.

* bootstrap: 1,000 stationary-block resamples x 25 bands (1 %..25 %, fee 0.1 %) on the
  daily G1 panel (BTC ETH BNB XRP LTC, 2018-05-04..2022-10-10; target < 10 s) and on the
  hourly G2 panel (10 symbols, 2019-07-05..2022-10-11; target < 60 s), with 1 worker and
  with all cores; peak RSS (target < 1 GB);
* PBO: CSCV with 16 splits over a 100-row sweep (25 bands x fees 0, 0.05, 0.1, 0.25 %)
  on G2 (target < 30 s), equity curves from the engine included.

``--semantics full`` (default, what ``advise`` runs): the compiled full-semantics engine
(:class:`CompiledRunner`, the bot's planner, min_trade 10 USDT, Binance-like steps);
``reference``: the compiled reference kernel (:class:`KernelRunner`). ``--kinds``: more
trigger kinds than abs multiply the rows (25 bands per kind).

Targets: equal weights over the assets and the USDT cash leg, as bench/README.md's grids.

    PYTHONPATH=src .venv/bin/python bench/bench_trust.py [--reps 1000] [--skip-hourly]
        [--semantics full|reference] [--kinds abs,rel,hybrid,vol,cost]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from bench_sweep import G1_ASSETS, G2_ASSETS, load_closes

from rebalancer.backtest.trust.bootstrap import bootstrap_rows
from rebalancer.backtest.trust.full_runner import CompiledRunner
from rebalancer.backtest.trust.overfit import pbo_cscv
from rebalancer.backtest.trust.runner import KernelRunner, Rule
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold

BANDS = [round(0.01 * i, 2) for i in range(1, 26)]
FEES = [0.0, 0.0005, 0.001, 0.0025]


def _targets(n: int) -> list[float]:
    return [1 / (n + 1)] * n


def _strategy(assets: list[str]) -> Strategy:
    w = (Decimal(1) / Decimal(len(assets) + 1)).quantize(Decimal("1e-12"))
    targets = {a: w for a in assets} | {"USDT": Decimal(1) - w * len(assets)}
    return Strategy("USDT", targets, Threshold(Decimal("0.05")), PlanPolicy())


def _runner(closes: pd.DataFrame, rules: list[Rule], bar: timedelta, semantics: str) -> Any:
    if semantics == "reference":
        return KernelRunner(
            _targets(closes.shape[1]), rules, bar_seconds=bar.total_seconds()
        )
    return CompiledRunner(closes, _strategy(list(closes.columns)), rules, bar=bar)


def bench_bootstrap(
    name: str, closes: pd.DataFrame, bar: timedelta, reps: int, semantics: str, kinds: list[str]
) -> None:
    prices = np.ascontiguousarray(closes.to_numpy(np.float64))
    rules = [Rule(k, b, 0.001) for k in kinds for b in BANDS]
    runner = _runner(closes, rules, bar, semantics)
    runner.stats(prices)  # compile / load the kernel outside the timing
    for workers in (1, os.cpu_count() or 1):
        t0 = time.perf_counter()
        res = bootstrap_rows(runner, prices, reps=reps, seed=0, workers=workers)
        secs = time.perf_counter() - t0
        best = max(res.rows, key=lambda r: r.premium.low)
        print(
            f"{name} ({semantics}): {reps} resamples x {len(rules)} rows, {workers} worker(s): "
            f"{secs:.1f} s (block {res.block} bars; best lower bound {best.premium.low:+.1%})",
            flush=True,
        )


def bench_pbo(closes: pd.DataFrame, semantics: str) -> None:
    prices = np.ascontiguousarray(closes.to_numpy(np.float64))
    rules = [Rule("abs", b, f) for f in FEES for b in BANDS]
    t0 = time.perf_counter()
    paths = _runner(closes, rules, timedelta(hours=1), semantics).paths(prices)
    returns = np.diff(np.log(paths.equity), axis=1).T
    t1 = time.perf_counter()
    res = pbo_cscv(returns, 16)
    t2 = time.perf_counter()
    print(
        f"G2 PBO ({semantics}): {len(rules)} rows x {returns.shape[0]} bars, 16 splits "
        f"({res.combinations} combinations): {t2 - t0:.1f} s (equity {t1 - t0:.1f} s, "
        f"CSCV {t2 - t1:.1f} s); PBO {res.pbo:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--skip-hourly", action="store_true")
    parser.add_argument("--semantics", default="full", choices=("full", "reference"))
    parser.add_argument("--kinds", default="abs")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    daily = load_closes(G1_ASSETS, "1d", "2018-05-04", "2022-10-10")
    bench_bootstrap("G1 daily", daily, timedelta(days=1), args.reps, args.semantics, kinds)
    if not args.skip_hourly:
        hourly = load_closes(G2_ASSETS, "1h", "2019-07-05", "2022-10-11 23:00")
        bench_pbo(hourly, args.semantics)
        bench_bootstrap("G2 hourly", hourly, timedelta(hours=1), args.reps, args.semantics, kinds)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS: this process {rss / 1024:.0f} MiB, largest worker {kids / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
