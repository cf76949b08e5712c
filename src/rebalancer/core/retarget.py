"""When optimised targets are due: one pure decision shared by live, paper and the backtest.

A :class:`Cadence` is every ``period`` (aligned to the Unix epoch, UTC, as the calendar
trigger and the daemon) or a 5-field UTC :class:`~rebalancer.core.cron.Cron`. A change is
due at ``now`` when a scheduled time ``s`` exists with ``last_change_at < s <= now``:

* never twice for one scheduled time (after a change at ``t`` the next is due at
  ``next_due(cadence, t)``, strictly later);
* a missed scheduled time (the bot was down) makes the change due at the next check, once.

The live service asks it at each cycle with the journal's latest change time;
``optimise/schedule.target_schedule`` asks it at each bar close. Pure: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rebalancer.core.cron import Cron
from rebalancer.core.triggers import EPOCH, format_period


@dataclass(frozen=True)
class Cadence:
    """Exactly one of ``period`` (positive, epoch-aligned) or ``cron`` (UTC). Also the
    daemon's tick schedule (:class:`rebalancer.daemon.schedule.Schedule`)."""

    period: timedelta | None = None
    cron: Cron | None = None

    def __post_init__(self) -> None:
        if (self.period is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of period or cron")
        if self.period is not None and self.period <= timedelta(0):
            raise ValueError(f"schedule period must be positive, not {self.period}")

    def next_after(self, t: datetime) -> datetime:
        """The first scheduled time strictly after ``t`` (aware UTC)."""
        if self.cron is not None:
            return self.cron.next_after(t)
        assert self.period is not None
        return EPOCH + ((t - EPOCH) // self.period + 1) * self.period

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron.expression}' (UTC)"
        return f"every {format_period(self.period)}"


MONTHLY = Cadence(cron=Cron.parse("0 0 1 * *"))


def next_due(cadence: Cadence, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after`` (aware UTC)."""
    return cadence.next_after(after)


def targets_due(cadence: Cadence, last_change_at: datetime | None, now: datetime) -> bool:
    """True when a scheduled time lies in ``(last_change_at, now]``; True with no change
    known yet (``None``): callers that want to wait for the first scheduled time pass the
    time the configured targets were first applied instead."""
    if last_change_at is None:
        return True
    return next_due(cadence, last_change_at) <= now
