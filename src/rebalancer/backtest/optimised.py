"""A backtest whose targets change on a schedule (optimised targets), segment by segment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.core.retarget import MONTHLY, Cadence
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import Constraints, FloatArray, OptMethod, to_targets


@dataclass
class OptimisedRun:
    """A backtest whose targets change on a schedule: the segments' equity and fills."""

    equity: FloatArray
    metrics: Any
    fills: list[Any]
    schedule: list[tuple[pd.Timestamp, dict[str, Decimal]]]
    gains: dict[int, Any]


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
    lots: str = "fifo",
) -> OptimisedRun:
    """Run the live loop segment by segment: ``start_targets`` until the first decision date,
    then at each date the optimiser's targets (bought on that bar, threshold ``band`` in
    between). Holdings carry over; lots and gains are computed over every fill."""
    from datetime import timedelta

    from rebalancer.backtest.engine import FirstBar, run_backtest
    from rebalancer.backtest.metrics import compute_metrics
    from rebalancer.core.lots import TimedFill, gains_by_year, realise
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import AnyOf, Threshold

    assets = [a for a in start_targets if a != quote]
    closes = closes[assets]
    index = pd.DatetimeIndex(closes.index)
    initial = {a: float(start_targets[a]) for a in assets}
    plan = target_schedule(closes, method, constraints, window=window, every=every, initial=initial)
    cuts = [0] + [int(index.searchsorted(when)) - 1 for when, _ in plan] + [len(closes)]
    targets_at = [dict(start_targets)] + [
        to_targets(assets, w, quote, constraints) for _, w in plan
    ]
    segments = [
        (cuts[k], cuts[k + 1], targets_at[k])
        for k in range(len(targets_at))
        if cuts[k + 1] - cuts[k] >= 2
    ]
    policy = PlanPolicy(min_trade=Decimal(10), slippage=slippage)
    bar = timedelta(days=1)
    balances: dict[str, Decimal] = {quote: capital}
    equity: list[float] = []
    fills: list[TimedFill] = []
    rebalances, fees, traded, turnover = 0, Decimal(0), Decimal(0), 0.0
    for lo, hi, targets in segments:
        strategy = Strategy(quote, targets, AnyOf((FirstBar(), Threshold(band))), policy)
        start = {k: v for k, v in balances.items() if v > 0}
        res = run_backtest(
            closes.iloc[lo:hi],
            strategy,
            initial=start,
            taker_fee=taker_fee,
            slippage=slippage,
            bar=bar,
            benchmarks=False,
        )
        run = res.run
        equity.extend(float(x) for x in run.equity)
        for c in run.fires:
            fills.extend(TimedFill(c.at, f, quote) for f in c.fills)
            if c.fills:
                rebalances += 1
                turnover += float(c.traded / c.value_before)
        fees += run.fees
        traded += run.traded
        balances = dict(run.final_balances)
    eq = np.asarray(equity, dtype=np.float64)
    metrics = compute_metrics(
        eq,
        bar,
        times=index[np.concatenate([np.arange(lo, hi) for lo, hi, _ in segments])],
        initial=float(capital),
        n_rebalances=rebalances,
        fees=float(fees),
        traded=float(traded),
        turnover=turnover,
    )
    _, disposals = realise(fills, lots)  # type: ignore[arg-type]
    schedule = [(index[lo], t) for lo, _, t in segments]
    return OptimisedRun(eq, metrics, fills, schedule, gains_by_year(disposals))
