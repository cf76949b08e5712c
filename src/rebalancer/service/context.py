"""The one object a cycle's steps read and fill: :class:`Cycle`, over :class:`Wiring` (what
the composition root wired) and :class:`Request` (what this call asks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.errors import InvariantBroken
from rebalancer.core.model import Snapshot
from rebalancer.core.planner import Plan
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, Threshold
from rebalancer.ports import Exchange, Journal, Notifier, PriceHistory
from rebalancer.service.orders import Sent
from rebalancer.service.report import CycleReport, ReconcileReport
from rebalancer.service.targets import Retarget


@dataclass(frozen=True)
class Wiring:
    """The adapters and the limits, the same for every cycle of a run.

    ``risk``: the circuit breaker's limits (None: no breaker, as in backtests; an active
    halt blocks orders either way). ``history``: recent closes for look-back triggers and
    the optimiser. ``retarget``: optimised targets on a schedule. ``pause``: how to wait
    ``execution.slice_interval`` between the slices of an order (None: no wait).
    """

    exchange: Exchange
    journal: Journal
    notifier: Notifier
    strategy: Strategy
    risk: RiskLimits | None = None
    history: PriceHistory | None = None
    retarget: Retarget | None = None
    pause: Callable[[timedelta], None] | None = None


@dataclass(frozen=True)
class Request:
    """One cycle asked for at ``at``: ``execute=False`` plans only (nothing sent, journaled
    or told); ``force`` trades even when the rule does not fire; ``expected``: the balances
    the cycle should find (the last cycle's plus its fills), to tell deposits and
    withdrawals apart (None: unknown, no flow is looked for)."""

    at: datetime
    execute: bool = True
    force: bool = False
    expected: Mapping[str, Decimal] | None = None


@dataclass(frozen=True)
class Basis:
    """What the plan and the re-planned buys both aim at: ``targets`` (weights summing to
    1, the quote included) and ``band`` (the threshold for ``style = "band_edge"``; None:
    back to the targets exactly)."""

    targets: Mapping[str, Decimal]
    band: Threshold | None


@dataclass
class Cycle:
    """One cycle in progress. Each step reads what the steps before it found and adds its
    own; nothing else holds state. ``strategy`` is the one in force after the retarget step
    (never swapped later); ``step`` names the step running (for a failure's message)."""

    wiring: Wiring
    request: Request
    strategy: Strategy
    step: str = ""
    targets_note: str = ""
    targets_changed: bool = False
    reconciled: ReconcileReport = field(default_factory=ReconcileReport)
    snapshot: Snapshot | None = None
    drift: PortfolioDrift | None = None
    decision: Decision | None = None
    flows: dict[str, Decimal] = field(default_factory=dict)
    basis: Basis | None = None
    plan: Plan | None = None
    after_sells: Snapshot | None = None
    buy_plan: Plan | None = None
    drift_after: PortfolioDrift | None = None
    executed: bool = False
    stopped: str = ""
    sent: Sent = field(init=False)

    def __post_init__(self) -> None:
        self.sent = Sent(self.request.at)

    @property
    def read(self) -> bool:
        """Whether the account was read and judged (a report can be made)."""
        return self.snapshot is not None and self.drift is not None and self.decision is not None

    def seen(self) -> tuple[Snapshot, PortfolioDrift, Decision]:
        """The account as read at the start and the decision (after the evaluate step)."""
        if self.snapshot is None or self.drift is None or self.decision is None:
            raise InvariantBroken(f"step {self.step!r} ran before the account was read")
        return self.snapshot, self.drift, self.decision

    def report(self) -> CycleReport:
        """The cycle as it stands, frozen."""
        snapshot, drift, decision = self.seen()
        sent = self.sent
        return CycleReport(
            self.request.at,
            snapshot,
            drift,
            decision,
            plan=self.plan,
            buy_plan=self.buy_plan,
            fills=list(sent.fills),
            failed=list(sent.failed),
            drift_after=self.drift_after,
            executed=self.executed,
            stopped=self.stopped,
            reconciled=self.reconciled,
            sent=dict(sent.orders),
            limits=list(sent.limits),
            flows=dict(self.flows),
            suggestions=list(sent.suggestions),
            targets_note=self.targets_note,
        )
