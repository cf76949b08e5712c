"""The daemon's waiter for tests: no test sleeps, the manual clock jumps instead."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from rebalancer.adapters.clock import ManualClock


@dataclass
class JumpingWaiter:
    """Waits by moving the manual clock to the wake-up time at once (not once a stop was
    requested); ``waits`` records every wake-up time asked for."""

    clock: ManualClock
    waits: list[datetime] = field(default_factory=list)

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        self.waits.append(when)
        if not stop.is_set() and when > self.clock.now():
            self.clock.set(when)
