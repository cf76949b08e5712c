"""A backtest whose targets change on a schedule (optimised targets): one run over the whole
panel with the schedule's target path.

:func:`optimised_path` asks :func:`rebalancer.optimise.schedule.target_schedule` (the live
due function and optimiser, no look-ahead) for the changes; :func:`backtest_optimised`
runs the threshold rule over every bar with that path as input -- on the compiled engine
by default, or on the Decimal replay, where the live ``retarget`` step applies it (an
audit). Both read the path as the live service does (:mod:`rebalancer.optimise.path`): a
change forces a full rebalance to the new targets at its bar, the band holds in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.backtest.engine import Engine, check_engine, run_backtest
from rebalancer.core.lots import Method, TimedFill, gains_by_year, realise
from rebalancer.core.model import ZERO
from rebalancer.core.retarget import MONTHLY, Cadence
from rebalancer.optimise.path import TargetPath
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import Constraints, FloatArray, OptMethod, to_targets

DAY = timedelta(days=1)


@dataclass
class OptimisedRun:
    """A backtest with scheduled optimised targets: per-bar equity (after each bar's
    trades), metrics, every fill, the targets in force from each bar where they changed
    (the first: the starting targets at the first bar; times are candle open times), the
    realised gains per year, the path and the engine that ran it."""

    equity: FloatArray
    metrics: Any
    fills: list[TimedFill]
    schedule: list[tuple[pd.Timestamp, dict[str, Decimal]]]
    gains: dict[int, Any]
    path: TargetPath
    engine: Engine


def optimised_path(
    closes: pd.DataFrame,
    start_targets: Mapping[str, Decimal],
    method: OptMethod,
    constraints: Constraints,
    *,
    quote: str = "USDT",
    window: int = 90,
    every: Cadence | str = MONTHLY,
    bar: timedelta = DAY,
    daily: pd.DataFrame | None = None,
) -> TargetPath:
    """The target changes of ``method`` over ``closes`` (see :func:`target_schedule`;
    ``daily``: the daily closes the optimiser's window is read from, when ``closes`` is not
    daily), as Decimal targets summing to 1 (:func:`to_targets`)."""
    assets = [a for a in start_targets if a != quote]
    initial = {a: float(start_targets[a]) for a in assets}
    plan = target_schedule(
        closes[assets],
        method,
        constraints,
        window=window,
        every=every,
        initial=initial,
        bar=bar,
        daily=None if daily is None else daily[assets],
    )
    return TargetPath.of(
        [(when, to_targets(assets, w, quote, constraints)) for when, w in plan], method
    )


def backtest_optimised(
    closes: pd.DataFrame,
    start_targets: Mapping[str, Decimal],
    method: OptMethod,
    constraints: Constraints,
    *,
    quote: str = "USDT",
    window: int = 90,
    every: Cadence | str = MONTHLY,
    band: Decimal = Decimal("0.05"),
    capital: Decimal = Decimal(10000),
    taker_fee: Decimal = Decimal("0.001"),
    slippage: Decimal = Decimal("0.0005"),
    lots: Method = "fifo",
    engine: Engine = "compiled",
    bar: timedelta = DAY,
) -> OptimisedRun:
    """Start from ``capital`` in cash with ``start_targets`` and an absolute ``band``
    (``min_trade`` 10, the paper exchange's Binance-like market rules from the first bar's
    prices); at each of the optimiser's changes, rebalance fully to its targets. One
    :func:`rebalancer.backtest.engine.run_backtest` over every bar of ``closes`` (daily
    closes, UTC open times) with the path, on ``engine`` -- the one backtest model."""
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold

    which = check_engine(engine)
    assets = [a for a in start_targets if a != quote]
    closes = closes[assets]
    targets = {**start_targets, quote: start_targets.get(quote, ZERO)}
    path = optimised_path(
        closes, targets, method, constraints, quote=quote, window=window, every=every, bar=bar
    )
    policy = PlanPolicy(min_trade=Decimal(10), slippage=slippage)
    run = run_backtest(
        closes,
        Strategy(quote, dict(targets), Threshold(band), policy),
        capital=capital,
        taker_fee=taker_fee,
        slippage=slippage,
        bar=bar,
        benchmarks=False,
        engine=which,
        targets=path,
    ).run
    fills = [TimedFill(c.at, f, quote) for c in run.fires for f in c.fills]
    _, disposals = realise(fills, lots)
    times = [t.to_pydatetime() + bar for t in closes.index]
    schedule = [
        (pd.Timestamp(closes.index[lo]), t)
        for lo, _, t in path.segments(times, list(targets), targets)
    ]
    return OptimisedRun(
        np.asarray(run.equity, dtype=np.float64),
        run.metrics,
        fills,
        schedule,
        gains_by_year(disposals),
        path,
        which,
    )
