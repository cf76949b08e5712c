"""When the daemon ticks: every period (aligned to the Unix epoch, UTC) or on a cron.

Why not APScheduler: its schedulers read the wall clock and sleep on their own event, so a
test cannot drive them with a manual clock without patching their internals, and in 3.x its
crontab day-of-week counts 0 as Monday while the config (and the trigger's cron) counts 0 as
Sunday. The schedule is the same pure arithmetic as the calendar trigger: a period aligned to
1970-01-01 00:00 UTC, or :class:`~rebalancer.core.cron.Cron`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rebalancer.core.cron import Cron
from rebalancer.core.retarget import Cadence


@dataclass(frozen=True)
class Schedule(Cadence):
    """Exactly one of ``period`` or ``cron``: the same arithmetic as the optimised targets'
    cadence (:class:`~rebalancer.core.retarget.Cadence`), read from ``[daemon]``."""

    @classmethod
    def from_config(cls, daemon: Any) -> Schedule:
        """From a validated ``[daemon]`` table (:class:`rebalancer.config.schema.Daemon`)."""
        if daemon.cron is not None:
            return cls(cron=Cron.parse(daemon.cron))
        return cls(period=daemon.period)
