"""Benchmark of the trust statistics (issue 15's targets), on real Binance candles.

* bootstrap: 1,000 stationary-block resamples x 25 bands (1 %..25 %, fee 0.1 %) on the
  daily G1 panel (BTC ETH BNB XRP LTC, 2018-05-04..2022-10-10; target < 10 s) and on the
  hourly G2 panel (10 symbols, 2019-07-05..2022-10-11; target < 60 s), with 1 worker and
  with all cores; peak RSS (target < 1 GB);
* PBO: CSCV with 16 splits over a 100-row sweep (25 bands x fees 0, 0.05, 0.1, 0.25 %)
  on G2 (target < 30 s), equity curves from the kernel included.

Targets: equal weights over the assets and the USDT cash leg, as bench/README.md's grids.

    PYTHONPATH=src .venv/bin/python bench/bench_trust.py [--reps 1000] [--skip-hourly]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from bench_sweep import G1_ASSETS, G2_ASSETS, load_closes

from rebalancer.backtest.trust.bootstrap import bootstrap_rows
from rebalancer.backtest.trust.overfit import pbo_cscv
from rebalancer.backtest.trust.runner import KernelRunner, Rule

BANDS = [round(0.01 * i, 2) for i in range(1, 26)]
FEES = [0.0, 0.0005, 0.001, 0.0025]


def _targets(n: int) -> list[float]:
    return [1 / (n + 1)] * n


def bench_bootstrap(name: str, prices: np.ndarray, bar_seconds: float, reps: int) -> None:
    runner = KernelRunner(
        _targets(prices.shape[1]),
        [Rule("abs", b, 0.001) for b in BANDS],
        bar_seconds=bar_seconds,
    )
    runner.stats(prices)  # compile / load the kernel outside the timing
    for workers in (1, os.cpu_count() or 1):
        t0 = time.perf_counter()
        res = bootstrap_rows(runner, prices, reps=reps, seed=0, workers=workers)
        secs = time.perf_counter() - t0
        best = max(res.rows, key=lambda r: r.premium.low)
        print(
            f"{name}: {reps} resamples x {len(BANDS)} bands, {workers} worker(s): {secs:.1f} s "
            f"(block {res.block} bars; best lower bound {best.premium.low:+.1%})",
            flush=True,
        )


def bench_pbo(prices: np.ndarray) -> None:
    rules = [Rule("abs", b, f) for f in FEES for b in BANDS]
    t0 = time.perf_counter()
    paths = KernelRunner(_targets(prices.shape[1]), rules, bar_seconds=3600).paths(prices)
    returns = np.diff(np.log(paths.equity), axis=1).T
    t1 = time.perf_counter()
    res = pbo_cscv(returns, 16)
    t2 = time.perf_counter()
    print(
        f"G2 PBO: {len(rules)} rows x {returns.shape[0]} bars, 16 splits "
        f"({res.combinations} combinations): {t2 - t0:.1f} s (equity {t1 - t0:.1f} s, "
        f"CSCV {t2 - t1:.1f} s); PBO {res.pbo:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--skip-hourly", action="store_true")
    args = parser.parse_args()
    daily = load_closes(G1_ASSETS, "1d", "2018-05-04", "2022-10-10").to_numpy(np.float64)
    bench_bootstrap("G1 daily", np.ascontiguousarray(daily), 86_400, args.reps)
    if not args.skip_hourly:
        hourly = load_closes(G2_ASSETS, "1h", "2019-07-05", "2022-10-11 23:00")
        prices = np.ascontiguousarray(hourly.to_numpy(np.float64))
        bench_pbo(prices)
        bench_bootstrap("G2 hourly", prices, 3600, args.reps)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS: this process {rss / 1024:.0f} MiB, largest worker {kids / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
