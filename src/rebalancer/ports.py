"""The seams between the service and the outside world, as small Protocols.

Adapters implement them; the service and the daemon only ever see these types. Money is
Decimal; times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from rebalancer.core.model import Fill, OrderRequest, Snapshot


class Exchange(Protocol):
    """One account on one exchange (real, paper, or simulated over history)."""

    name: str

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        """Balances of ``assets`` and ``quote``, prices and market rules of ``assets``.

        Costs a constant number of requests whatever ``len(assets)``. Raises
        :class:`~rebalancer.core.errors.UnknownSymbol` for an asset without a market
        against ``quote`` and :class:`~rebalancer.core.errors.RetryLater` for transient
        failures.
        """
        ...

    def create_market_order(self, order: OrderRequest) -> Fill:
        """Send ``order`` (with its ``client_order_id``) and return its final fill.

        Raises :class:`~rebalancer.core.errors.SkipLeg` subclasses when the order is
        refused, :class:`~rebalancer.core.errors.OrderOutcomeUnknown` when it may exist.
        """
        ...

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Look an order up by our client id; None if the exchange has no such order."""
        ...


class PriceHistory(Protocol):
    """Recent closes for triggers that look back (volatility-scaled bands)."""

    def closes(
        self, assets: Sequence[str], until: datetime, bars: int
    ) -> Mapping[str, Sequence[Decimal]]:
        """Per asset, the last ``bars`` closes of bars closed at or before ``until``, oldest
        first (fewer when the history is shorter; never a later price)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...


@dataclass(frozen=True)
class Event:
    """Something the user should hear about. ``kind``: rebalance, skip, error, halt, ..."""

    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    def send(self, event: Event) -> None:
        """Deliver ``event``; must not raise (log failures instead)."""
        ...


@dataclass(frozen=True)
class TriggerTimes:
    """What a trigger needs to remember between cycles."""

    last_check: datetime | None = None
    last_fired: datetime | None = None


@dataclass(frozen=True)
class OrderOutcome:
    """What became of an order intent, and how we know.

    ``status``: ``filled`` (``fill`` set; a partial fill too), ``rejected`` (refused, never
    placed), ``not_found`` (looked up: the exchange has no such order), ``canceled`` (found,
    ended with nothing filled), or ``unknown`` (it may exist, or is still open: the intent
    stays unresolved until reconciliation settles it). ``source`` says where the outcome
    came from: ``exchange reply``, ``reconciled: filled``, ``not found: never placed``, ...
    """

    status: str
    source: str
    fill: Fill | None = None
    error: str = ""

    @property
    def resolved(self) -> bool:
        return self.status != "unknown"


@dataclass(frozen=True)
class Halt:
    """A circuit-breaker halt: no order is sent until the user resumes."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class HaltStatus:
    """The active halt (None when trading is allowed) and when the last one was lifted."""

    active: Halt | None = None
    last_resume: datetime | None = None


class Journal(Protocol):
    """The bot's memory: cycles, write-ahead order intents and their outcomes, halts."""

    def trigger_times(self) -> TriggerTimes: ...

    def record_cycle(self, report: Any) -> None: ...

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        """Make the intent to send ``order`` durable; called *before* the request is sent."""
        ...

    def record_outcome(self, client_order_id: str, outcome: OrderOutcome, at: datetime) -> None:
        """Record a state change of an intent (its fill, once, deduplicated)."""
        ...

    def unresolved_intents(self) -> list[OrderRequest]:
        """Intents whose outcome is not known yet (sent, or perhaps sent), oldest first."""
        ...

    def value_history(self, since: datetime) -> list[tuple[datetime, Decimal]]:
        """Journaled portfolio totals of the cycles at or after ``since``, oldest first."""
        ...

    def halt_status(self) -> HaltStatus: ...

    def record_halt(self, reason: str, at: datetime) -> None: ...

    def record_resume(self, at: datetime, note: str = "") -> None: ...
