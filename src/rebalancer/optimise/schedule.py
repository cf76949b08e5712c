"""When optimised targets change over a panel of closes: the backtest's schedule.

:func:`target_schedule` asks :func:`rebalancer.core.retarget.targets_due` -- the same function
the live service asks -- at each bar close, and :func:`rebalancer.optimise.weights.optimise`
for the weights, from the closes at or before the decision time (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from rebalancer.core.cron import Cron
from rebalancer.core.retarget import MONTHLY, Cadence, targets_due
from rebalancer.optimise.weights import Constraints, FloatArray, OptMethod, optimise


def cadence_of(every: Cadence | str) -> Cadence:
    """A :class:`Cadence` from itself, a period text ("30d") or a 5-field cron expression."""
    if isinstance(every, Cadence):
        return every
    if len(every.split()) == 5:
        return Cadence(cron=Cron.parse(every))
    from rebalancer.config.fields import parse_period

    return Cadence(period=parse_period(every))


def target_schedule(
    closes: pd.DataFrame,
    method: OptMethod,
    constraints: Constraints,
    *,
    window: int = 90,
    every: Cadence | str = MONTHLY,
    initial: Mapping[str, float] | None = None,
    bar: timedelta = timedelta(days=1),
    start: datetime | None = None,
    daily: pd.DataFrame | None = None,
) -> list[tuple[pd.Timestamp, FloatArray]]:
    """Weights decided at each bar close where :func:`~rebalancer.core.retarget.targets_due`
    says a change is due (``every``: a cadence, period text or cron; the 1st of each month by
    default), from the ``window`` daily returns of the closes at or before it. As live: the
    first bar's close is the start (the configured targets; ``start``: another time, e.g. a
    live run's first cycle, with the bars before it only as history), a change due without
    ``window + 1`` closes waits for the next bar, and the last change is the reference.

    ``daily``: the daily closes (UTC open times, the same columns) the window is read from
    when ``closes`` is not daily -- as live, where the optimiser reads daily closes whatever
    the cycle's period; None: ``closes`` themselves."""
    cadence = cadence_of(every)
    assets = list(closes.columns)
    source = closes if daily is None else daily[assets]
    logret = np.log(source.to_numpy(dtype=np.float64))
    source_times = pd.DatetimeIndex(source.index) + (bar if daily is None else timedelta(days=1))
    close_times = pd.DatetimeIndex(closes.index) + bar
    previous = None if initial is None else np.array([initial[a] for a in assets])
    out: list[tuple[pd.Timestamp, FloatArray]] = []
    last = close_times[0].to_pydatetime() if start is None else start
    for when in close_times:
        now = when.to_pydatetime()
        if now <= last or not targets_due(cadence, last, now):
            continue
        end = int(source_times.searchsorted(when, side="right"))  # rows closed by `now`
        if end - window - 1 < 0:
            continue  # too little history: keep the targets, ask again at the next bar
        rets = np.diff(logret[end - window - 1 : end], axis=0)
        w, _ = optimise(rets, method, constraints, previous)
        out.append((when, w))
        previous, last = w, now
    return out
