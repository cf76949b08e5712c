"""The seams between the service and the outside world, as small Protocols.

Adapters implement them; the service and the daemon only ever see these types. Money is
Decimal; times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.model import Fill, OrderRequest, Snapshot
from rebalancer.core.planner import Plan
from rebalancer.core.triggers import Decision


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

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        """Place ``order`` as a post-only (maker) limit at ``price`` (quote per base), wait
        up to ``timeout``, cancel the rest, return the final fill: amount 0..order.amount,
        status "closed" when complete else "canceled" (also amount 0 when a post-only order
        would have crossed). Same errors as create_market_order."""
        ...

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Look an order up by our client id; None if the exchange has no such order."""
        ...

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Cancel our order ``client_order_id`` if it still rests and return its final
        state read back (the amount really filled, status "canceled" or "closed"); None
        when the exchange has no such order. Raises
        :class:`~rebalancer.core.errors.OrderOutcomeUnknown` when the final state cannot be
        confirmed. Reconciliation calls it for an order left resting by a crash."""
        ...


class PriceHistory(Protocol):
    """Recent closes for triggers that look back (volatility-scaled bands)."""

    def closes(
        self, assets: Sequence[str], until: datetime, bars: int
    ) -> Mapping[str, Sequence[Decimal]]:
        """Per asset, the last ``bars`` closes of bars closed at or before ``until``, oldest
        first (fewer when the history is shorter; never a later price)."""
        ...


@dataclass(frozen=True)
class TargetProposal:
    """An optimiser's answer: ``targets`` (Decimal weights, the quote included, summing to
    exactly 1) and a short ``explanation`` for the journal and the notification."""

    targets: dict[str, Decimal]
    explanation: str


class TargetOptimiser(Protocol):
    """Computes new targets from recent daily closes (implemented outside the core)."""

    @property
    def method(self) -> str:
        """The optimiser's name as in the config (e.g. ``risk_parity``)."""
        ...

    def propose(
        self, closes: Mapping[str, Sequence[Decimal]], current: Mapping[str, Decimal]
    ) -> TargetProposal:
        """New targets from ``closes`` (per asset, oldest first, the same length for every
        asset) and the ``current`` targets (the quote included). Raises ``ValueError`` when
        the constraints cannot be met."""
        ...


@dataclass(frozen=True)
class TargetChange:
    """A change of the targets in use, journaled *before* the new targets trade.

    ``method``: the optimiser's method, or ``"config"`` when the configured targets were
    (re)applied (first start with optimised targets on, or the config's targets or method
    changed). ``config_targets`` / ``config_method``: the config this change was made under;
    a config that no longer matches them resets the targets to the config's.
    """

    at: datetime
    method: str
    old: dict[str, Decimal]
    new: dict[str, Decimal]
    explanation: str
    config_targets: dict[str, Decimal]
    config_method: str


@dataclass(frozen=True)
class CommandRecord:
    """A command an operator gave from a chat, journaled whether answered or refused.

    ``channel``: ``"telegram"``; ``sender``: the chat id as text; ``command``: the text as
    received; ``outcome``: the first line of the answer, or why it was refused.
    """

    at: datetime
    channel: str
    sender: str
    command: str
    outcome: str


@dataclass(frozen=True)
class FlowRecord:
    """A deposit (``amount`` > 0) or withdrawal (< 0) of ``asset`` found by the cycle at
    ``at`` (``CycleReport.flows``), worth ``value`` in the ``quote`` at that cycle's price
    (the quote itself at 1; 0 when the asset has no price)."""

    at: datetime
    asset: str
    amount: Decimal
    value: Decimal
    quote: str


class CycleRecord(Protocol):
    """What the journal keeps of one cycle (the service's ``CycleReport`` is one).

    ``at``: when; ``snapshot``/``drift``: the account as read then, before trading;
    ``decision``: whether the rule fired and why; ``plan``/``buy_plan``: the orders planned
    and the buys re-planned after the sells; ``executed``: sending began (a fired and
    executed cycle is the last firing); ``stopped``: why it ended early ("" when it did
    not); ``flows``: deposits (> 0) and withdrawals (< 0) found, per asset.
    """

    @property
    def at(self) -> datetime: ...
    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def drift(self) -> PortfolioDrift: ...
    @property
    def decision(self) -> Decision: ...
    @property
    def plan(self) -> Plan | None: ...
    @property
    def buy_plan(self) -> Plan | None: ...
    @property
    def executed(self) -> bool: ...
    @property
    def stopped(self) -> str: ...
    @property
    def flows(self) -> Mapping[str, Decimal]: ...

    def fees_in_quote(self) -> Decimal:
        """The cycle's fees valued in the quote."""
        ...

    def summary(self) -> dict[str, Any]:
        """The cycle as JSON-ready values."""
        ...


def flow_records(report: CycleRecord) -> list[FlowRecord]:
    """The flows of a cycle report, valued at its snapshot's prices, in asset order."""
    snap = report.snapshot
    out = []
    for asset, amount in sorted(report.flows.items()):
        price = Decimal(1) if asset == snap.quote else snap.prices.get(asset, Decimal(0))
        out.append(FlowRecord(report.at, asset, amount, amount * price, snap.quote))
    return out


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
    """The bot's memory: cycles (with their cash flows), write-ahead order intents and their
    outcomes, halts, target changes."""

    def trigger_times(self) -> TriggerTimes: ...

    def record_cycle(self, report: CycleRecord) -> None:
        """Make the cycle durable (its flows in the same transaction); its time becomes the
        last check, and the last firing when it fired and executed."""
        ...

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

    def latest_target_change(self) -> TargetChange | None:
        """The newest journaled :class:`TargetChange` (None: none yet)."""
        ...

    def record_target_change(self, change: TargetChange) -> None:
        """Make ``change`` durable (committed before it returns)."""
        ...
