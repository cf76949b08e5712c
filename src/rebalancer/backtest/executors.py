"""Where a sweep's rows run: this machine (the default) or a Dask distributed cluster.

:class:`DaskExecutor` runs the same rows as :func:`rebalancer.backtest.grid.run_grid` does
locally, with the same code (the reference kernel for ``--semantics reference``, the
Decimal replay for the full semantics), so the results are identical to a local
``--engine replay`` run. The price panel (and, for replay rows, the
closes and the strategy) is sent to the workers **once** with ``scatter(broadcast=True)``;
the combinations go out in chunks (``kernel_chunk`` per kernel task, ``replay_chunk`` per
replay task), and the progress bar moves as chunks come back.

Dask is an optional extra (``pip install 'rebalancer[cluster]'``) imported only here, only
when a Dask executor is asked for.

Pointing it at a real cluster::

    # on the scheduler machine
    dask scheduler --host 10.0.0.5 --port 8786
    # on every worker machine (same Python and the same rebalancer version installed,
    # e.g. pip install 'rebalancer[cluster]'); one process per machine is enough: the
    # kernel uses every core of its machine (numba threads)
    dask worker tcp://10.0.0.5:8786 --nworkers 1 --nthreads 2
    # on your machine
    rebalancer sweep --data-dir DIR --executor dask --scheduler tcp://10.0.0.5:8786

Only the scheduler address is needed: the candles are read here and shipped to the workers,
so they need no copy of the data. Keep the scheduler port on a private network (Dask
runs what it is sent; use TLS, ``tls://``, with a security object outside one).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.backtest.grid import Combo, Executor, Market, Progress, _run_kernel, replay_one
from rebalancer.core.errors import ConfigError
from rebalancer.core.strategy import Strategy

EXECUTORS = ("local", "dask")
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: numba's default threading layer must not run two parallel kernels at once in one process
#: (Dask worker threads would); the kernel already uses every core, so they take turns.
_KERNEL_LOCK = threading.Lock()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "--executor dask needs Dask's distributed scheduler, which is not installed "
            f"({exc}). Fix: pip install 'rebalancer[cluster]' (or pip install "
            "'dask[distributed]'), or run without --executor dask."
        ) from None
    return distributed


def kernel_chunk(
    combos: Sequence[Combo],
    prices: FloatArray,
    targets: FloatArray,
    capital: float,
    bar: timedelta,
    span: timedelta | None = None,
) -> list[dict[str, Any]]:
    """One task on a worker: ``combos`` through the compiled kernel (as run locally)."""
    with _KERNEL_LOCK:
        return _run_kernel(
            list(combos), prices, targets, capital, bar, lambda _n: None, span=span
        )


def replay_chunk(
    combos: Sequence[Combo],
    closes: pd.DataFrame,
    strategy: Strategy,
    capital: Decimal,
    bar: timedelta,
    market: Market,
) -> list[dict[str, Any]]:
    """One task on a worker: ``combos`` through the full replay (as run locally)."""
    return [replay_one(c, closes, strategy, capital, bar, market) for c in combos]


class DaskExecutor:
    """Runs a grid's rows on the Dask cluster whose scheduler is at ``scheduler`` (an
    address such as ``tcp://10.0.0.5:8786``) or on an existing ``distributed.Client``."""

    def __init__(
        self,
        scheduler: str | Any,
        *,
        kernel_chunk: int = 64,
        replay_chunk: int = 4,
        timeout: float = 30.0,
    ) -> None:
        distributed = _import_distributed()
        if kernel_chunk < 1 or replay_chunk < 1:
            raise ConfigError(f"chunk sizes must be >= 1, got {kernel_chunk}, {replay_chunk}")
        self.kernel_chunk = kernel_chunk
        self.replay_chunk = replay_chunk
        self._own = isinstance(scheduler, str)
        if self._own:
            try:
                self.client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({exc}). "
                    "Fix: start one (`dask scheduler`, then `dask worker ADDRESS` on each "
                    "machine) and pass its address, e.g. tcp://10.0.0.5:8786."
                ) from None
        else:
            self.client = scheduler
        self.address = str(self.client.scheduler.address)
        self.scattered = 0  # how many objects were sent to the workers (once per sweep)

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.client.close()

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def _map(
        self, fn: Any, todo: list[Combo], size: int, shared: tuple[Any, ...], progress: Progress
    ) -> list[dict[str, Any]]:
        if not todo:
            return []
        distributed = _import_distributed()
        futures_shared = [self.client.scatter(x, broadcast=True, hash=False) for x in shared]
        self.scattered += len(futures_shared)
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        futures = [self.client.submit(fn, chunk, *futures_shared, pure=False) for chunk in chunks]
        where = {f.key: i for i, f in enumerate(futures)}
        results: list[list[dict[str, Any]] | None] = [None] * len(chunks)
        try:
            with self.client.as_current():  # as_completed looks up the current client
                for future in distributed.as_completed(futures):
                    i = where[future.key]
                    results[i] = future.result()
                    progress(len(chunks[i]))
        finally:
            self.client.cancel([*futures, *futures_shared])
        return [row for part in results if part is not None for row in part]

    def kernel_rows(
        self,
        todo: list[Combo],
        prices: FloatArray,
        targets: FloatArray,
        capital: float,
        bar: timedelta,
        progress: Progress,
        span: timedelta | None = None,
    ) -> list[dict[str, Any]]:
        return self._map(
            kernel_chunk, todo, self.kernel_chunk, (prices, targets, capital, bar, span), progress
        )

    def replay_rows(
        self,
        todo: list[Combo],
        closes: pd.DataFrame,
        strategy: Strategy,
        capital: Decimal,
        bar: timedelta,
        market: Market,
        progress: Progress,
    ) -> list[dict[str, Any]]:
        return self._map(
            replay_chunk,
            todo,
            self.replay_chunk,
            (closes, strategy, capital, bar, market),
            progress,
        )


def make_executor(kind: str, scheduler: str | None) -> DaskExecutor | None:
    """``local`` -> None (run_grid's own processes); ``dask`` -> a :class:`DaskExecutor`."""
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, not {kind!r}")
    if kind == "local":
        if scheduler is not None:
            raise ConfigError("--scheduler is only used with --executor dask")
        return None
    if not scheduler:
        raise ConfigError(
            "--executor dask needs --scheduler ADDRESS, e.g. tcp://10.0.0.5:8786 "
            "(the address `dask scheduler` prints)"
        )
    return DaskExecutor(scheduler)


__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "make_executor"]
