"""Stationary block bootstrap of a price panel: how much of a rule's premium is luck.

The panel's per-bar log returns (all assets of a bar together, so their correlation is kept)
are resampled with ``arch``'s :class:`~arch.bootstrap.StationaryBootstrap` (Politis and
Romano, 1994: blocks of random length, geometric with mean ``block``), chained back into a
price panel from the first bar's prices, and every rule of a :class:`~.runner.RowRunner` is
run on each resample. Per row this gives percentile intervals of the final-value premium over
buy-and-hold, of the Sharpe ratio and of the maximum drawdown, and the share of resamples in
which the rule ends strictly above buy-and-hold (a band that never trades ties it exactly and
does not count as beating it).

**Block length** (:func:`block_length`): unless given, the Politis and White (2004) optimal
mean block length for the stationary bootstrap (``arch``'s :func:`optimal_block_length`,
with the Patton, Politis and White 2009 correction), computed per asset on the log returns
*and* on their squares -- rebalancing feeds on volatility, and squared returns carry the
volatility clustering that plain crypto returns barely show -- and the largest of these
taken, rounded up, at least 2 bars. A panel needs at least :data:`MIN_BLOCKS` blocks.

**Speed**: resamples run one per process and core (``workers``), each on one kernel thread,
or on a Dask cluster (``client``), in chunks of :data:`CHUNK`.

**Determinism**: the resample indices come from one generator seeded with ``seed`` in the
calling process, in order, and are cut into fixed chunks; workers only run them, so a seed
gives the same figures for any number of workers.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from rebalancer.backtest.reference import FloatArray
from rebalancer.backtest.trust.runner import RowRunner
from rebalancer.core.errors import ConfigError

IntArray = np.ndarray[Any, np.dtype[np.int64]]

#: a panel must hold at least this many mean block lengths of returns
MIN_BLOCKS = 10
#: resamples per task sent to a worker process
CHUNK = 25


@dataclass(frozen=True)
class Interval:
    """A two-sided percentile interval at ``level``, the resamples' median, and the point
    estimate on the real panel (which may lie outside the interval: the bootstrap keeps
    dependence only up to about a block length, so a premium earned from slower mean
    reversion shows up as a point above the resamples)."""

    point: float
    low: float
    high: float
    median: float

    @property
    def straddles_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


@dataclass(frozen=True)
class RowBootstrap:
    """One row's intervals and its share of resamples beating buy-and-hold."""

    premium: Interval
    sharpe: Interval
    max_drawdown: Interval
    p_beat: float


@dataclass(frozen=True)
class BootstrapResult:
    """Per row (the runner's order), plus the raw ``(reps, rows)`` draws for further use."""

    rows: tuple[RowBootstrap, ...]
    reps: int
    block: int
    level: float
    seed: int
    premiums: FloatArray
    sharpes: FloatArray
    drawdowns: FloatArray


def _arch_bootstrap() -> Any:
    """``arch.bootstrap``, or a clear message naming the extra to install."""
    try:
        import arch.bootstrap
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the bootstrap needs the 'arch' package: pip install 'rebalancer[trust]'"
        ) from None
    return arch.bootstrap


def log_returns(prices: FloatArray) -> FloatArray:
    """Per-bar log returns ``(bars - 1, assets)`` of a positive price panel."""
    out: FloatArray = np.diff(np.log(np.asarray(prices, dtype=np.float64)), axis=0)
    return out


def block_length(prices: FloatArray) -> int:
    """The mean block length in bars (see the module docstring): at least 2, rounded up."""
    r = log_returns(prices)
    if r.shape[0] < 2 * MIN_BLOCKS:
        raise ConfigError(
            f"the panel has {r.shape[0] + 1} bars; the bootstrap needs at least "
            f"{2 * MIN_BLOCKS + 1}: widen --start/--end or use a shorter --timeframe"
        )
    table = _arch_bootstrap().optimal_block_length(np.hstack([r, r * r]))
    best = float(np.nanmax(table["stationary"].to_numpy()))
    return max(2, math.ceil(best)) if math.isfinite(best) else 2


def check_panel(n_bars: int, block: int) -> None:
    """Refuse a panel shorter than :data:`MIN_BLOCKS` mean blocks, naming the fix."""
    need = math.ceil(MIN_BLOCKS * block) + 1
    if n_bars < need:
        raise ConfigError(
            f"the panel has {n_bars} bars but a bootstrap with mean block length {block:g} "
            f"bars needs at least {need} ({MIN_BLOCKS} blocks): widen --start/--end, use a "
            "shorter --timeframe or give a smaller --block-length"
        )


def resample_prices(prices: FloatArray, returns: FloatArray, index: IntArray) -> FloatArray:
    """The panel whose log returns are ``returns[index]``, starting at ``prices[0]``."""
    path = np.vstack([np.zeros((1, returns.shape[1])), np.cumsum(returns[index], axis=0)])
    out: FloatArray = prices[0] * np.exp(path)
    return out


def index_chunks(
    returns: FloatArray, block: int, reps: int, seed: int, chunk: int = CHUNK
) -> Iterator[list[IntArray]]:
    """The resample indices, in order, ``chunk`` at a time (arch's stationary bootstrap)."""
    bs = _arch_bootstrap().StationaryBootstrap(block, returns, seed=seed)
    part: list[IntArray] = []
    for _ in bs.bootstrap(reps):
        part.append(np.asarray(bs.index, dtype=np.int64).copy())
        if len(part) == chunk:
            yield part
            part = []
    if part:
        yield part


_WORKER: dict[str, Any] = {}


def _init(runner: RowRunner, prices: FloatArray, returns: FloatArray) -> None:
    """Each worker runs one resample at a time on one thread: a small panel costs ~1 ms in
    the kernel, far less than waking a thread pool per call on a busy machine (measured
    8x faster), so the parallelism is across resamples, one process per core."""
    import numba

    numba.set_num_threads(1)
    _WORKER.update(runner=runner, prices=prices, returns=returns)


def _run_chunk(indices: list[IntArray]) -> FloatArray:
    """``(len(indices), 3, rows)``: premium, Sharpe and max drawdown of every row."""
    runner: RowRunner = _WORKER["runner"]
    out = []
    for index in indices:
        s = runner.stats(resample_prices(_WORKER["prices"], _WORKER["returns"], index))
        out.append(np.vstack([s.premium, s.sharpe, s.max_drawdown]))
    return np.asarray(out, dtype=np.float64)


def run_chunk_on(
    runner: RowRunner, prices: FloatArray, returns: FloatArray, indices: list[IntArray]
) -> FloatArray:
    """One task on a Dask worker: :func:`_run_chunk` with its inputs passed in (the
    kernel's one-thread setting and a lock: Dask worker threads share one process)."""
    with _DASK_LOCK:
        _init(runner, prices, returns)
        return _run_chunk(indices)


_DASK_LOCK = threading.Lock()


def _dask_draws(
    client: Any,
    runner: RowRunner,
    prices: FloatArray,
    returns: FloatArray,
    chunks: Iterator[list[IntArray]],
) -> FloatArray:
    """The chunks on a Dask cluster (``client``: a ``distributed.Client``); the inputs are
    scattered to every worker once, the results gathered in submission order."""
    shared = [client.scatter(x, broadcast=True, hash=False) for x in (runner, prices, returns)]
    futures = [client.submit(run_chunk_on, *shared, c, pure=False) for c in chunks]
    return np.concatenate(client.gather(futures))


def _draws(
    runner: RowRunner,
    prices: FloatArray,
    returns: FloatArray,
    chunks: Iterator[list[IntArray]],
    workers: int,
) -> FloatArray:
    if workers <= 1:
        import numba

        threads = numba.get_num_threads()
        try:
            _init(runner, prices, returns)
            return np.concatenate([_run_chunk(c) for c in chunks])
        finally:
            numba.set_num_threads(threads)
    ctx = get_context("spawn")  # never fork a process running numba's thread pool
    results: list[FloatArray] = []
    with ProcessPoolExecutor(workers, ctx, _init, (runner, prices, returns)) as pool:
        pending: list[Future[FloatArray]] = []
        for c in chunks:  # at most 2 tasks per worker in flight: bounded memory
            pending.append(pool.submit(_run_chunk, c))
            if len(pending) >= 2 * workers:
                results.append(pending.pop(0).result())
        results.extend(f.result() for f in pending)
    return np.concatenate(results)


def _interval(point: float, draws: FloatArray, level: float) -> Interval:
    ok = draws[np.isfinite(draws)]
    if ok.size == 0:
        return Interval(point, math.nan, math.nan, math.nan)
    alpha = (1.0 - level) / 2
    lo, mid, hi = np.percentile(ok, [100 * alpha, 50.0, 100 * (1 - alpha)])
    return Interval(point, float(lo), float(hi), float(mid))


def bootstrap_rows(
    runner: RowRunner,
    prices: FloatArray,
    *,
    reps: int = 1000,
    seed: int = 0,
    block: int | None = None,
    level: float = 0.90,
    workers: int | None = 1,
    client: Any = None,
) -> BootstrapResult:
    """Bootstrap every row of ``runner`` over ``prices`` (see the module docstring).

    ``workers``: processes (``None`` = all cores); ``client``: a ``distributed.Client`` to
    run the resamples on a Dask cluster instead. The figures depend on neither.
    """
    p = np.ascontiguousarray(prices, dtype=np.float64)
    if reps < 10:
        raise ConfigError(f"--reps must be at least 10 resamples, got {reps}")
    if not 0.5 <= level < 1:
        raise ConfigError(f"--level must be in [0.5, 1), e.g. 0.9, got {level}")
    b = block_length(p) if block is None else int(block)
    if b < 1:
        raise ConfigError(f"--block-length must be >= 1 bar, got {b}")
    check_panel(p.shape[0], b)
    returns = log_returns(p)
    real = runner.stats(p)
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    chunks = index_chunks(returns, b, reps, seed)
    if client is not None:
        draws = _dask_draws(client, runner, p, returns, chunks)
    else:
        draws = _draws(runner, p, returns, chunks, n_workers)
    rows = tuple(
        RowBootstrap(
            premium=_interval(float(real.premium[k]), draws[:, 0, k], level),
            sharpe=_interval(float(real.sharpe[k]), draws[:, 1, k], level),
            max_drawdown=_interval(float(real.max_drawdown[k]), draws[:, 2, k], level),
            p_beat=float(np.mean(draws[:, 0, k] > 0)),
        )
        for k in range(len(runner.rules))
    )
    return BootstrapResult(
        rows=rows,
        reps=reps,
        block=b,
        level=level,
        seed=seed,
        premiums=draws[:, 0, :],
        sharpes=draws[:, 1, :],
        drawdowns=draws[:, 2, :],
    )
