"""One rebalance cycle: snapshot -> drift -> decision -> plan -> sells -> buys -> record.

The same function runs live, in paper and in replays over history; only the adapters
passed in differ. Sells go first; balances are read again before the buys, which are
re-planned from the cash the sells really produced. A leg that fails is reported and the
rest of the plan goes on; an order whose outcome is unknown stops the cycle (it must be
looked up, never re-sent).

Safety, in the order it runs: :func:`reconcile` first resolves every order intent left
unresolved by an earlier cycle (by looking it up on the exchange) and no order is sent
while any outcome stays unknown; an active halt blocks every order; the circuit breaker
(:mod:`rebalancer.core.risk`) halts on a drawdown, too much turnover or a notional cap;
each order's intent is journaled before the request is sent and its outcome after.

The package: :mod:`.report` (the cycle report), :mod:`.orders` (sending, journaled
first), :mod:`.targets` (optimised targets on a schedule); client order ids are
:mod:`rebalancer.core.order_ids`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.errors import ExchangeBanned, RebalancerError, RetryLater
from rebalancer.core.flows import detect_flows, flow_targets
from rebalancer.core.model import ZERO, Fill, Side, Snapshot
from rebalancer.core.order_ids import client_order_id, id_stamp, id_time, part_order_id
from rebalancer.core.planner import effective_targets, plan
from rebalancer.core.risk import RiskLimits, drawdown_breach, plan_breach
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, TriggerContext
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import Event, Exchange, Journal, Notifier, OrderOutcome, PriceHistory
from rebalancer.service.orders import send_orders, transfer_suggestions
from rebalancer.service.report import (
    CycleReport,
    FailedOrder,
    LimitOrder,
    ReconcileReport,
    fill_dict,
)
from rebalancer.service.targets import Retarget, TargetsStep, apply_targets

__all__ = [
    "CycleReport",
    "FailedOrder",
    "LimitOrder",
    "ReconcileReport",
    "Retarget",
    "TargetsStep",
    "apply_targets",
    "client_order_id",
    "evaluate",
    "fill_dict",
    "id_stamp",
    "id_time",
    "part_order_id",
    "reconcile",
    "run_cycle",
    "transfer_suggestions",
]


def evaluate(
    exchange: Exchange,
    journal: Journal,
    strategy: Strategy,
    now: datetime,
    history: PriceHistory | None = None,
) -> tuple[Snapshot, PortfolioDrift, Decision]:
    """Read the account and decide, without trading.

    ``history`` feeds the recent closes to a trigger that asks for them (a volatility-scaled
    band); without it such a trigger uses its base band.
    """
    snapshot = exchange.snapshot(strategy.assets, strategy.quote)
    targets = effective_targets(snapshot, strategy.targets, strategy.policy)
    drift = compute_drift(snapshot, targets)
    times = journal.trigger_times()
    bars = history_bars(strategy.trigger)
    closes = history.closes(strategy.assets, now, bars) if bars and history else None
    decision = strategy.trigger.check(
        drift, TriggerContext(now, times.last_check, times.last_fired, closes)
    )
    return snapshot, drift, decision


def reconcile(exchange: Exchange, journal: Journal, now: datetime) -> ReconcileReport:
    """Look every unresolved intent up by its client order id and journal what was found.

    An order the exchange knows is recorded as filled ("reconciled: filled"), one it does
    not know as never placed ("not found: never placed"); a failed look-up leaves the
    intent unknown, and no new order may be sent until a later reconciliation resolves it.
    An order still resting (a limit left by a crash mid-wait: every order of ours was meant
    to end within its cycle) is cancelled and its final state recorded, so that it can
    neither block the bot nor fill later behind its back.
    """
    result = ReconcileReport()
    for order in journal.unresolved_intents():
        cid = order.client_order_id
        try:
            found = exchange.fetch_order(cid, order.symbol)
            if found is not None and found.status == "open":
                found = exchange.cancel_order(cid, order.symbol)  # still open: unknown
        except ExchangeBanned:
            raise
        except RebalancerError as exc:
            result.unknown.append(f"{cid} ({exc})")
            continue
        outcome = _found(found)
        journal.record_outcome(cid, outcome, now)
        if outcome.resolved:
            result.resolved[cid] = outcome
        else:
            result.unknown.append(f"{cid} (still open on the exchange)")
    return result


def _found(found: Fill | None) -> OrderOutcome:
    """The outcome of an order looked up on the exchange."""
    if found is None:
        return OrderOutcome("not_found", "not found: never placed")
    if found.status == "open":
        return OrderOutcome(
            "unknown", "reconciled: still open", error=f"{found.amount} filled so far"
        )
    if found.amount == 0:
        return OrderOutcome("canceled", f"reconciled: {found.status}, nothing filled")
    partial = "" if found.status == "closed" else "partially "
    return OrderOutcome("filled", f"reconciled: {partial}filled", found)


def run_cycle(
    exchange: Exchange,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    *,
    execute: bool = True,
    force: bool = False,
    risk: RiskLimits | None = None,
    history: PriceHistory | None = None,
    expected: Mapping[str, Decimal] | None = None,
    retarget: Retarget | None = None,
    pause: Callable[[timedelta], None] | None = None,
) -> CycleReport:
    """Run one cycle at ``now``. ``execute=False`` plans only; ``force`` ignores the rule.

    ``risk``: the circuit breaker's limits (None: no breaker, as in backtests); an active
    halt in the journal blocks orders either way. ``history``: see :func:`evaluate`.
    ``expected``: the balances this cycle should find (the previous cycle's post-trade
    balances plus the fills since); with ``policy.cash_flows == "spread"`` a quote deposit
    or withdrawal they do not explain is traded on its own when the rule does not fire
    (:func:`rebalancer.core.flows.flow_targets`), and every flow is in ``report.flows``.
    ``retarget``: optimised targets on a schedule (:func:`apply_targets`, first); a cycle
    whose targets changed rebalances to them.
    ``pause``: how to wait ``strategy.execution.slice_interval`` between the slices of an
    order (None: no wait, as in backtests; the CLI and the daemon pass a real sleep).
    """
    step = TargetsStep(strategy, "")
    if retarget is not None:
        step = apply_targets(retarget, journal, notifier, strategy, now, history, execute=execute)
        strategy = step.strategy
    try:
        reconciled = reconcile(exchange, journal, now) if execute else ReconcileReport()
        snapshot, drift, decision = evaluate(exchange, journal, strategy, now, history)
    except ExchangeBanned as exc:
        # a ban lengthens with every request: halt (once) until the user resumes
        if execute and journal.halt_status().active is None:
            _halt(journal, notifier, str(exc), now)
        raise
    if force and not decision.fire:
        decision = Decision(True, f"forced by the user ({decision.reason})")
    if step.changed:  # new targets: rebalance to them (as the backtest does)
        decision = replace(decision, fire=True, reason=f"targets changed ({decision.reason})")
    report = CycleReport(now, snapshot, drift, decision, reconciled=reconciled)
    report.targets_note = step.note
    if expected is not None:
        report.flows = detect_flows(expected, snapshot.balances)
    if decision.fire:
        report.plan = plan(snapshot, strategy.targets, strategy.policy, strategy.threshold)
    elif report.flows and strategy.policy.cash_flows == "spread":
        strategy = _flow_strategy(strategy, report)
    if execute:
        report.stopped = _blocked(journal, notifier, reconciled, report, risk)
        if report.plan is not None and not report.stopped:
            _execute(exchange, journal, notifier, strategy, report, risk, pause)
        journal.record_cycle(report)
        _notify(notifier, report)
    return report


def _flow_strategy(strategy: Strategy, report: CycleReport) -> Strategy:
    """Plan a detected quote flow on its own (the strategy whose targets trade it)."""
    flow = report.flows.get(strategy.quote, ZERO)
    weights = flow_targets(report.drift, flow, strategy.quote)
    if weights is None:
        return strategy
    kind = "deposit" if flow > 0 else "withdrawal"
    report.decision = Decision(
        True,
        f"{kind} of {abs(flow)} {strategy.quote} spread over the "
        f"{'underweight' if flow > 0 else 'overweight'} assets ({report.decision.reason})",
    )
    flow_strategy = replace(strategy, targets=weights)
    report.plan = plan(report.snapshot, weights, strategy.policy)
    return flow_strategy


def _blocked(
    journal: Journal,
    notifier: Notifier,
    reconciled: ReconcileReport,
    report: CycleReport,
    risk: RiskLimits | None,
) -> str:
    """Why this cycle may send no order ("" when it may)."""
    if not reconciled.clear:
        return (
            f"outcome of {', '.join(reconciled.unknown)} still unknown: no new order until "
            "it is found"
        )
    status = journal.halt_status()
    if status.active is not None:
        halt = status.active
        return f"halted since {halt.at:%Y-%m-%d %H:%M} UTC: {halt.reason}; run `rebalancer resume`"
    if risk is None:
        return ""
    since = report.at - risk.window
    if status.last_resume is not None and status.last_resume > since:
        since = status.last_resume
    history = journal.value_history(since)
    reason = drawdown_breach(history, report.drift.total_value, report.at, risk)
    if reason is None and report.plan is not None:
        notionals = [o.expected_cost for o in report.plan.orders]
        reason = plan_breach(notionals, report.drift.total_value, risk)
    return _halt(journal, notifier, reason, report.at) if reason else ""


def _halt(journal: Journal, notifier: Notifier, reason: str, at: datetime) -> str:
    journal.record_halt(reason, at)
    notifier.send(Event("halt", "trading halted by the circuit breaker", reason))
    return f"halted: {reason}; run `rebalancer resume` to trade again"


def _execute(
    exchange: Exchange,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    report: CycleReport,
    risk: RiskLimits | None,
    pause: Callable[[timedelta], None] | None = None,
) -> None:
    assert report.plan is not None
    report.executed = True
    ex = strategy.execution
    if not send_orders(
        exchange, journal, report.plan.sells, Side.SELL, report, ex, report.snapshot, pause
    ):
        return
    try:
        after_sells = exchange.snapshot(strategy.assets, strategy.quote)
    except RetryLater as exc:  # the sells are journaled; the buys wait for fresh balances
        if isinstance(exc, ExchangeBanned):
            report.stopped = _halt(journal, notifier, str(exc), report.at)
        else:
            report.stopped = f"balances could not be read after the sells ({exc}); buys wait"
        return
    report.buy_plan = plan(
        after_sells, strategy.targets, strategy.policy, strategy.threshold, phase="buys"
    )
    if risk is not None:
        buys = [o.expected_cost for o in report.buy_plan.buys]
        reason = plan_breach(
            buys, report.drift.total_value, risk, already_traded=report.traded_value
        )
        if reason:
            report.stopped = _halt(journal, notifier, reason, report.at)
            return
    buy_orders = report.buy_plan.buys
    if not send_orders(exchange, journal, buy_orders, Side.BUY, report, ex, after_sells, pause):
        return
    final = exchange.snapshot(strategy.assets, strategy.quote)
    report.drift_after = compute_drift(
        final, effective_targets(final, strategy.targets, strategy.policy)
    )


def _notify(notifier: Notifier, report: CycleReport) -> None:
    if report.fills:
        lines = [f"{f.side.value} {f.amount} {f.symbol} @ {f.price:.6g}" for f in report.fills]
        lines += [x.describe() for x in report.limits]
        notifier.send(
            Event(
                "rebalance",
                f"rebalanced: {len(report.fills)} orders",
                "\n".join(lines),
                report.summary(),
            )
        )
    elif report.limits:  # limits that filled nothing, their rest left for the next cycle
        notifier.send(
            Event(
                "limit",
                f"{len(report.limits)} limit order(s) unfilled",
                "\n".join(x.describe() for x in report.limits),
                report.summary(),
            )
        )
    for failed in report.failed:
        notifier.send(Event("skip", f"order {failed.order.symbol} not placed", failed.error))
    if report.suggestions:
        notifier.send(
            Event(
                "transfer",
                f"{len(report.suggestions)} transfer(s) between accounts suggested",
                "\n".join(report.suggestions)
                + "\n(the bot never moves money between accounts: you decide)",
                {"suggestions": list(report.suggestions)},
            )
        )
