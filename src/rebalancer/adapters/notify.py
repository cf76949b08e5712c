"""Notifiers. The full set (apprise) comes with the daemon; these two cover the foundation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rebalancer.ports import Event

log = logging.getLogger("rebalancer.notify")


class LogNotifier:
    """Writes every event to the log; never raises."""

    def send(self, event: Event) -> None:
        log.info("%s: %s — %s", event.kind, event.title, event.body)


@dataclass
class MemoryNotifier:
    """Keeps events in memory (replays and tests)."""

    events: list[Event] = field(default_factory=list)

    def send(self, event: Event) -> None:
        self.events.append(event)
