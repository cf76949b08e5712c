"""One rebalance cycle: snapshot -> drift -> decision -> plan -> sells -> buys -> record.

The same function runs live, in paper and in replays over history; only the adapters
passed in differ. Sells go first; balances are read again before the buys, which are
re-planned from the cash the sells really produced. A leg that fails is reported and the
rest of the plan goes on; an order whose outcome is unknown stops the cycle (it must be
looked up, never re-sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.errors import OrderOutcomeUnknown, SkipLeg
from rebalancer.core.model import ZERO, Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import Plan, effective_targets, plan
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, TriggerContext
from rebalancer.ports import Event, Exchange, Journal, Notifier


@dataclass(frozen=True)
class FailedOrder:
    order: OrderRequest
    error: str
    kind: str


@dataclass
class CycleReport:
    """Everything one cycle saw, decided and did; ``summary()`` is its JSON form."""

    at: datetime
    snapshot: Snapshot
    drift: PortfolioDrift
    decision: Decision
    plan: Plan | None = None
    buy_plan: Plan | None = None
    fills: list[Fill] = field(default_factory=list)
    failed: list[FailedOrder] = field(default_factory=list)
    drift_after: PortfolioDrift | None = None
    executed: bool = False
    stopped: str = ""

    @property
    def traded_value(self) -> Decimal:
        return sum((f.cost for f in self.fills), ZERO)

    def fees_in_quote(self) -> Decimal:
        """Fees valued in the quote at the snapshot's prices."""
        snap = self.snapshot
        return sum(
            (
                f.fee * (1 if f.fee_asset == snap.quote else snap.prices.get(f.fee_asset, f.price))
                for f in self.fills
            ),
            ZERO,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "total_value": str(self.drift.total_value),
            "fire": self.decision.fire,
            "reason": self.decision.reason,
            "executed": self.executed,
            "stopped": self.stopped,
            "fills": [fill_dict(f) for f in self.fills],
            "failed": [
                {
                    "symbol": x.order.symbol,
                    "side": x.order.side.value,
                    "amount": str(x.order.amount),
                    "error": x.error,
                    "kind": x.kind,
                }
                for x in self.failed
            ],
            "fees_quote": str(self.fees_in_quote()),
        }


def fill_dict(f: Fill) -> dict[str, str]:
    return {
        "client_order_id": f.client_order_id,
        "symbol": f.symbol,
        "side": f.side.value,
        "amount": str(f.amount),
        "price": str(f.price),
        "cost": str(f.cost),
        "fee": str(f.fee),
        "fee_asset": f.fee_asset,
        "status": f.status,
    }


def client_order_id(at: datetime, side: Side, index: int) -> str:
    """Deterministic per cycle time and leg: ``rb`` + yymmddHHMMSS + s|b + index."""
    return f"rb{at:%y%m%d%H%M%S}{side.value[0]}{index}"


def evaluate(
    exchange: Exchange, journal: Journal, strategy: Strategy, now: datetime
) -> tuple[Snapshot, PortfolioDrift, Decision]:
    """Read the account and decide, without trading."""
    snapshot = exchange.snapshot(strategy.assets, strategy.quote)
    targets = effective_targets(snapshot, strategy.targets, strategy.policy)
    drift = compute_drift(snapshot, targets)
    times = journal.trigger_times()
    decision = strategy.trigger.check(
        drift, TriggerContext(now, times.last_check, times.last_fired)
    )
    return snapshot, drift, decision


def run_cycle(
    exchange: Exchange,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    *,
    execute: bool = True,
    force: bool = False,
) -> CycleReport:
    """Run one cycle at ``now``. ``execute=False`` plans only; ``force`` ignores the rule."""
    snapshot, drift, decision = evaluate(exchange, journal, strategy, now)
    if force and not decision.fire:
        decision = Decision(True, f"forced by the user ({decision.reason})")
    report = CycleReport(now, snapshot, drift, decision)
    if decision.fire:
        report.plan = plan(snapshot, strategy.targets, strategy.policy, strategy.threshold)
        if execute:
            _execute(exchange, strategy, report)
    if execute:
        journal.record_cycle(report)
        _notify(notifier, report)
    return report


def _send(
    exchange: Exchange, orders: tuple[OrderRequest, ...], side: Side, report: CycleReport
) -> bool:
    """Send ``orders``; False when an outcome is unknown (the cycle must stop)."""
    for i, order in enumerate(orders):
        order = OrderRequest(
            **{**order.__dict__, "client_order_id": client_order_id(report.at, side, i)}
        )
        try:
            report.fills.append(exchange.create_market_order(order))
        except SkipLeg as exc:
            report.failed.append(FailedOrder(order, str(exc), type(exc).__name__))
        except OrderOutcomeUnknown as exc:
            report.failed.append(FailedOrder(order, str(exc), "OrderOutcomeUnknown"))
            report.stopped = f"outcome of {exc.client_order_id} unknown: look it up first"
            return False
    return True


def _execute(exchange: Exchange, strategy: Strategy, report: CycleReport) -> None:
    assert report.plan is not None
    report.executed = True
    if not _send(exchange, report.plan.sells, Side.SELL, report):
        return
    after_sells = exchange.snapshot(strategy.assets, strategy.quote)
    report.buy_plan = plan(
        after_sells, strategy.targets, strategy.policy, strategy.threshold, phase="buys"
    )
    if not _send(exchange, report.buy_plan.buys, Side.BUY, report):
        return
    final = exchange.snapshot(strategy.assets, strategy.quote)
    report.drift_after = compute_drift(
        final, effective_targets(final, strategy.targets, strategy.policy)
    )


def _notify(notifier: Notifier, report: CycleReport) -> None:
    if report.fills:
        lines = [f"{f.side.value} {f.amount} {f.symbol} @ {f.price:.6g}" for f in report.fills]
        notifier.send(
            Event(
                "rebalance",
                f"rebalanced: {len(report.fills)} orders",
                "\n".join(lines),
                report.summary(),
            )
        )
    for failed in report.failed:
        notifier.send(Event("skip", f"order {failed.order.symbol} not placed", failed.error))
