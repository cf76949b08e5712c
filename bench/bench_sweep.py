"""Benchmark of the compiled sweep kernel on real Binance candles (not part of the tests).

G1 daily: 25 absolute bands 1 %..25 % x fee rates 0, 0.05 %, 0.1 %, 0.25 % on BTC ETH BNB XRP
LTC, equal weights, 2018-05-04..2022-10-10 (1621 bars, gap-free). Cash (USDT) target 0 by
default: no cash leg (``--cash 0.05`` gives a 5 % cash leg, the assets share the rest).
G2 hourly: the same grid on the 10 symbols of binance_spot_2017_2022 with 1h candles from
2019-07-05: BTC ETH BNB ADA XRP DOGE LTC TRX LINK MATIC, 2019-07-05..2022-10-11, aligned on
the hours every symbol has (inner join: the exchange's outage hours are skipped, not filled).

    .venv/bin/python bench/bench_sweep.py [--cash 0.05] [--check 4]
    NUMBA_CACHE_DIR=$(mktemp -d) .venv/bin/python bench/bench_sweep.py   # cold compile

Prints load, compile and sweep times, the pure reference's time per combination, the peak
Python-heap memory of the sweep (tracemalloc) and the process's peak RSS (getrusage).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from rebalancer.backtest.reference import simulate
from rebalancer.backtest.sweep import sweep_grid

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
BANDS = np.arange(1, 26) / 100
FEES = np.array([0.0, 0.0005, 0.001, 0.0025])
G1_ASSETS = ["BTC", "ETH", "BNB", "XRP", "LTC"]
REPEAT = 5
G2_ASSETS = ["BTC", "ETH", "BNB", "ADA", "XRP", "DOGE", "LTC", "TRX", "LINK", "MATIC"]


def load_closes(assets: list[str], timeframe: str, start: str, end: str) -> pd.DataFrame:
    """Closes of ``assets`` on their common candles (inner join) between start and end."""
    series = {}
    for asset in assets:
        path = next(DATA.glob(f"{asset}_USDT-{timeframe}.csv*"))
        df = pd.read_csv(path)
        df.index = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
        series[asset] = df["close"]
    closes = pd.concat(series, axis=1, join="inner").sort_index()
    return closes.loc[start:end]


def bench(name: str, closes: pd.DataFrame, period: timedelta, cash: float, check: int) -> None:
    # C order up front: the sweep would otherwise copy the (column-major) frame's values
    prices = np.ascontiguousarray(closes.to_numpy(dtype=np.float64))
    n = prices.shape[1]
    targets = np.full(n, (1 - cash) / n)
    expected = int((closes.index[-1] - closes.index[0]) / period) + 1
    print(
        f"\n== {name}: {n} assets {list(closes.columns)}, cash target {cash:.0%}\n"
        f"   {len(closes)} bars {closes.index[0]} .. {closes.index[-1]} "
        f"({expected - len(closes)} bars missing in some asset, skipped)\n"
        f"   grid {BANDS.size} bands x {FEES.size} fee rates = {BANDS.size * FEES.size} combos"
    )
    t0 = time.perf_counter()
    sweep_grid(prices[:3], targets, BANDS[:1], FEES[:1])  # compile or load the cache
    print(
        f"   first call (compile or cache load, numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads): {time.perf_counter() - t0:.3f} s"
    )
    tracemalloc.start()
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        result = sweep_grid(prices, targets, BANDS, FEES, capital=10_000.0)
        times.append(time.perf_counter() - t0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best_t, median_t = min(times), float(np.median(times))
    cells = prices.shape[0] * n * BANDS.size * FEES.size
    print(
        f"   sweep ({REPEAT} runs): best {best_t * 1000:.1f} ms, median {median_t * 1000:.1f} ms"
        f" ({best_t / result.stats.shape[0] * 1e6:.0f} us/combo,"
        f" {cells / best_t / 1e6:.0f} M asset-bars/s); peak traced heap {peak / 2**20:.2f} MiB"
        f" (price panel {prices.nbytes / 2**20:.2f} MiB)"
    )
    table = result.to_frame(period)
    best = table.sort_values("sharpe", ascending=False).head(3)
    cols = ["band_abs", "fee_rate", "final_value", "cagr", "sharpe", "max_drawdown"]
    print("   best Sharpe:\n" + best[[*cols, "n_rebalances"]].to_string(index=False))
    if check:
        picks = np.linspace(0, result.stats.shape[0] - 1, check).astype(int)
        t0 = time.perf_counter()
        worst = 0.0
        for k in picks:
            run = simulate(
                prices,
                targets,
                capital=10_000.0,
                fee_rate=result.fee_rate[k],
                band_abs=result.band_abs[k],
            )
            assert run.n_rebalances == result.n_rebalances[k]
            worst = max(worst, abs(run.final_value / result.final_value[k] - 1))
        per = (time.perf_counter() - t0) / len(picks)
        print(
            f"   pure reference: {per * 1000:.1f} ms/combo on {len(picks)} combos; "
            f"kernel == pure (rebalance counts equal, max rel diff of final value {worst:.1e})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cash", type=float, default=0.0, help="cash (USDT) target weight")
    parser.add_argument("--check", type=int, default=4, help="combos re-run by the pure oracle")
    args = parser.parse_args()
    t0 = time.perf_counter()
    daily = load_closes(G1_ASSETS, "1d", "2018-05-04", "2022-10-10")
    hourly = load_closes(G2_ASSETS, "1h", "2019-07-05", "2022-10-11 23:00")
    print(f"load CSVs: {time.perf_counter() - t0:.2f} s")
    bench("G1 daily", daily, timedelta(days=1), args.cash, args.check)
    bench("G2 hourly", hourly, timedelta(hours=1), args.cash, args.check)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nprocess peak RSS (everything: python, pandas, numba, data): {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
