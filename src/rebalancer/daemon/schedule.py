"""When the daemon ticks: every period (aligned to the Unix epoch, UTC) or on a cron.

Why not APScheduler: its schedulers read the wall clock and sleep on their own event, so a
test cannot drive them with a manual clock without patching their internals, and in 3.x its
crontab day-of-week counts 0 as Monday while the config (and the trigger's cron) counts 0 as
Sunday. The schedule is the same pure arithmetic as the calendar trigger: a period aligned to
1970-01-01 00:00 UTC, or :class:`~rebalancer.core.cron.Cron`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rebalancer.core.cron import Cron
from rebalancer.core.triggers import EPOCH, format_period


@dataclass(frozen=True)
class Schedule:
    """Exactly one of ``period`` or ``cron``."""

    period: timedelta | None = None
    cron: Cron | None = None

    def __post_init__(self) -> None:
        if (self.period is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of period or cron")
        if self.period is not None and self.period <= timedelta(0):
            raise ValueError(f"schedule period must be positive, not {self.period}")

    @classmethod
    def from_config(cls, daemon: Any) -> Schedule:
        """From a validated ``[daemon]`` table (:class:`rebalancer.config.schema.Daemon`)."""
        if daemon.cron is not None:
            return cls(cron=Cron.parse(daemon.cron))
        return cls(period=daemon.period)

    def next_after(self, t: datetime) -> datetime:
        """The first scheduled time strictly after ``t``."""
        if self.cron is not None:
            return self.cron.next_after(t)
        assert self.period is not None
        return EPOCH + ((t - EPOCH) // self.period + 1) * self.period

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron.expression}' (UTC)"
        return f"every {format_period(self.period)}"
