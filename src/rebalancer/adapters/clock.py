"""Clocks: the system clock for live and paper, a manual one for replays and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class ManualClock:
    """A clock that only moves when told (backtests, tests)."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when
