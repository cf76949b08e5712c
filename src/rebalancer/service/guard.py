"""What may stop a cycle from sending orders: unknown outcomes, an active halt, and the
circuit breaker (:mod:`rebalancer.core.risk`), which journals a halt when it trips."""

from __future__ import annotations

from datetime import datetime

from rebalancer.core.model import ZERO
from rebalancer.core.risk import drawdown_breach, plan_breach
from rebalancer.ports import Event, Journal, Notifier
from rebalancer.service.context import Cycle


def blocked(cycle: Cycle) -> str:
    """Why this cycle may send no order ("" when it may).

    In order: an intent whose outcome is still unknown, an active halt, then (with risk
    limits) a drawdown beyond the limit over the window since the last resume, or a plan
    whose orders exceed the turnover or notional caps -- these two halt trading.
    """
    journal, risk = cycle.wiring.journal, cycle.wiring.risk
    if not cycle.reconciled.clear:
        unknown = ", ".join(cycle.reconciled.unknown)
        return f"outcome of {unknown} still unknown: no new order until it is found"
    status = journal.halt_status()
    active = status.active
    if active is not None:
        when = f"{active.at:%Y-%m-%d %H:%M} UTC"
        return f"halted since {when}: {active.reason}; run `rebalancer resume`"
    if risk is None:
        return ""
    at, (_, drift, _) = cycle.request.at, cycle.seen()
    since = at - risk.window
    if status.last_resume is not None and status.last_resume > since:
        since = status.last_resume
    reason = drawdown_breach(journal.value_history(since), drift.total_value, at, risk)
    if reason is None and cycle.plan is not None:
        notionals = [o.expected_cost for o in cycle.plan.orders]
        reason = plan_breach(notionals, drift.total_value, risk)
    return halt(cycle, reason) if reason else ""


def buys_blocked(cycle: Cycle) -> str:
    """Why the re-planned buys may not be sent: with the sells' value they exceed the
    turnover or notional caps (a halt, journaled); "" when they may."""
    risk = cycle.wiring.risk
    if risk is None or cycle.buy_plan is None:
        return ""
    _, drift, _ = cycle.seen()
    traded = sum((f.cost for f in cycle.sent.fills), ZERO)
    buys = [o.expected_cost for o in cycle.buy_plan.buys]
    reason = plan_breach(buys, drift.total_value, risk, already_traded=traded)
    return halt(cycle, reason) if reason else ""


def halt(cycle: Cycle, reason: str) -> str:
    """Journal a halt, tell the user, and say why the cycle stops."""
    record_halt(cycle.wiring.journal, cycle.wiring.notifier, reason, cycle.request.at)
    return f"halted: {reason}; run `rebalancer resume` to trade again"


def record_halt(journal: Journal, notifier: Notifier, reason: str, at: datetime) -> None:
    """Journal a halt (no order until ``rebalancer resume``) and tell the user."""
    journal.record_halt(reason, at)
    notifier.send(Event("halt", "trading halted by the circuit breaker", reason))
