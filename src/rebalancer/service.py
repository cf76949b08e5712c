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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.errors import (
    ExchangeBanned,
    OrderOutcomeUnknown,
    RebalancerError,
    RetryLater,
    SkipLeg,
)
from rebalancer.core.flows import detect_flows, flow_targets
from rebalancer.core.model import ZERO, Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import Plan, effective_targets, plan
from rebalancer.core.risk import RiskLimits, drawdown_breach, plan_breach
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, TriggerContext
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import Event, Exchange, Journal, Notifier, OrderOutcome, PriceHistory


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
    reconciled: ReconcileReport | None = None
    sent: dict[str, OrderRequest] = field(default_factory=dict)

    def fill_with_slippage(self, fill: Fill) -> dict[str, str]:
        """``fill_dict`` plus the order's expected price and the realised slippage (bps)."""
        order, bps = self.sent.get(fill.client_order_id), self.slippage_bps(fill)
        return {
            **fill_dict(fill),
            "expected_price": "" if order is None else str(order.expected_price),
            "slippage_bps": "" if bps is None else f"{bps:.2f}",
        }

    def slippage_bps(self, fill: Fill) -> Decimal | None:
        """Realised slippage of ``fill`` against the price its order expected, in basis
        points, positive when the fill was worse (bought dearer or sold cheaper)."""
        order = self.sent.get(fill.client_order_id)
        if order is None or order.expected_price <= 0:
            return None
        moved = fill.price / order.expected_price - 1
        return (moved if fill.side is Side.BUY else -moved) * 10000

    flows: dict[str, Decimal] = field(default_factory=dict)
    # transfers between accounts that would let the plan execute in full (several accounts:
    # MultiAccountExchange.suggestions()); never made by the bot, only reported
    suggestions: list[str] = field(default_factory=list)

    @property
    def traded_value(self) -> Decimal:
        return sum((f.cost for f in self.fills), ZERO)

    def fees_in_quote(self) -> Decimal:
        """Fees valued in the quote: the quote itself at 1, the traded asset at its fill
        price, any other asset (e.g. BNB) at the snapshot's price, or 0 when unpriced."""
        return sum((self._fee_value(f) for f in self.fills), ZERO)

    def _fee_value(self, f: Fill) -> Decimal:
        if f.fee_asset == self.snapshot.quote:
            return f.fee
        if f.fee_asset == f.asset:
            return f.fee * f.price
        return f.fee * self.snapshot.prices.get(f.fee_asset, ZERO)

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "total_value": str(self.drift.total_value),
            "fire": self.decision.fire,
            "reason": self.decision.reason,
            "executed": self.executed,
            "stopped": self.stopped,
            "fills": [self.fill_with_slippage(f) for f in self.fills],
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
            "reconciled": {
                cid: outcome.source
                for cid, outcome in (self.reconciled.resolved if self.reconciled else {}).items()
            },
            "suggestions": list(self.suggestions),
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


def transfer_suggestions(exchange: Exchange) -> list[str]:
    """The exchange's suggested transfers between accounts (none for a single account).

    Optional, not part of the Exchange port: only an exchange spanning several accounts
    (:class:`rebalancer.adapters.multi.MultiAccountExchange`) has ``suggestions()``.
    """
    suggestions = getattr(exchange, "suggestions", None)
    return [str(s) for s in suggestions()] if callable(suggestions) else []


def _collect_suggestions(exchange: Exchange, report: CycleReport) -> None:
    """Add the exchange's current suggestions to ``report`` (read before the next snapshot
    clears them), once each."""
    for text in transfer_suggestions(exchange):
        if text not in report.suggestions:
            report.suggestions.append(text)


def client_order_id(at: datetime, side: Side, index: int) -> str:
    """Deterministic per cycle time and leg: ``rb`` + yymmddHHMMSS + s|b + index."""
    return f"rb{at:%y%m%d%H%M%S}{side.value[0]}{index}"


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


@dataclass
class ReconcileReport:
    """What reconciliation found: resolved intents (id -> outcome) and those still unknown."""

    resolved: dict[str, OrderOutcome] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        return not self.unknown


def reconcile(exchange: Exchange, journal: Journal, now: datetime) -> ReconcileReport:
    """Look every unresolved intent up by its client order id and journal what was found.

    An order the exchange knows is recorded as filled ("reconciled: filled"), one it does
    not know as never placed ("not found: never placed"); a failed look-up leaves the
    intent unknown, and no new order may be sent until a later reconciliation resolves it.
    """
    result = ReconcileReport()
    for order in journal.unresolved_intents():
        cid = order.client_order_id
        try:
            found = exchange.fetch_order(cid, order.symbol)
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
) -> CycleReport:
    """Run one cycle at ``now``. ``execute=False`` plans only; ``force`` ignores the rule.

    ``risk``: the circuit breaker's limits (None: no breaker, as in backtests); an active
    halt in the journal blocks orders either way. ``history``: see :func:`evaluate`.
    ``expected``: the balances this cycle should find (the previous cycle's post-trade
    balances plus the fills since); with ``policy.cash_flows == "spread"`` a quote deposit
    or withdrawal they do not explain is traded on its own when the rule does not fire
    (:func:`rebalancer.core.flows.flow_targets`), and every flow is in ``report.flows``.
    """
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
    report = CycleReport(now, snapshot, drift, decision, reconciled=reconciled)
    if expected is not None:
        report.flows = detect_flows(expected, snapshot.balances)
    if decision.fire:
        report.plan = plan(snapshot, strategy.targets, strategy.policy, strategy.threshold)
    elif report.flows and strategy.policy.cash_flows == "spread":
        strategy = _flow_strategy(strategy, report)
    if execute:
        report.stopped = _blocked(journal, notifier, reconciled, report, risk)
        if report.plan is not None and not report.stopped:
            _execute(exchange, journal, notifier, strategy, report, risk)
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


def _send(
    exchange: Exchange,
    journal: Journal,
    orders: tuple[OrderRequest, ...],
    side: Side,
    report: CycleReport,
) -> bool:
    """Send ``orders``, each journaled first; False when an outcome is unknown (stop)."""
    for i, order in enumerate(orders):
        order = replace(order, client_order_id=client_order_id(report.at, side, i))
        journal.record_intent(order, report.at)
        report.sent[order.client_order_id] = order
        try:
            fill = exchange.create_market_order(order)
        except SkipLeg as exc:
            report.failed.append(FailedOrder(order, str(exc), type(exc).__name__))
            outcome = OrderOutcome("rejected", "exchange reply", error=str(exc))
        except OrderOutcomeUnknown as exc:
            report.failed.append(FailedOrder(order, str(exc), "OrderOutcomeUnknown"))
            report.stopped = f"outcome of {exc.client_order_id} unknown: look it up first"
            journal.record_outcome(
                order.client_order_id,
                OrderOutcome("unknown", "exchange reply", error=str(exc)),
                report.at,
            )
            return False
        else:
            report.fills.append(fill)
            outcome = OrderOutcome("filled", "exchange reply", fill)
        finally:
            _collect_suggestions(exchange, report)
        journal.record_outcome(order.client_order_id, outcome, report.at)
    return True


def _execute(
    exchange: Exchange,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    report: CycleReport,
    risk: RiskLimits | None,
) -> None:
    assert report.plan is not None
    report.executed = True
    if not _send(exchange, journal, report.plan.sells, Side.SELL, report):
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
    if not _send(exchange, journal, report.buy_plan.buys, Side.BUY, report):
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
