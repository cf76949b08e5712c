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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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
from rebalancer.core.execution import MARKET, ExecutionPolicy, book, limit_price, remainder
from rebalancer.core.execution import slice_order as slice_by_notional
from rebalancer.core.flows import detect_flows, flow_targets
from rebalancer.core.model import ZERO, Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import Plan, effective_targets, plan
from rebalancer.core.retarget import Cadence, next_due, targets_due
from rebalancer.core.risk import RiskLimits, drawdown_breach, plan_breach
from rebalancer.core.rules import truncate, violation
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, TriggerContext
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import (
    Event,
    Exchange,
    Journal,
    Notifier,
    OrderOutcome,
    PriceHistory,
    TargetChange,
    TargetOptimiser,
)


@dataclass(frozen=True)
class FailedOrder:
    order: OrderRequest
    error: str
    kind: str


@dataclass(frozen=True)
class LimitOrder:
    """A post-only limit placed inside the spread (``order_type = "limit_inside"``).

    ``amount`` asked and ``filled`` (as maker) in base units at ``price`` (quote per base).
    ``fallback``: what became of the rest -- ``""`` (nothing left), ``"market <id>"`` (sent
    at market with that client order id), ``"none"`` (left for the next cycle) or
    ``"skipped: <why>"`` (below the market's minimum).
    """

    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    filled: Decimal
    fallback: str = ""

    def describe(self) -> str:
        head = (
            f"limit {self.side.value} {self.amount} {self.symbol} @ {self.price:.6g}: "
            f"{self.filled} filled as maker"
        )
        if not self.fallback:
            return head
        if self.fallback.startswith("market"):
            return f"{head}; the rest at market ({self.fallback.split()[-1]})"
        if self.fallback == "none":
            return f"{head}; the rest left for the next cycle"
        return f"{head}; the rest {self.fallback}"

    def as_dict(self) -> dict[str, str]:
        return {
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "amount": str(self.amount),
            "price": str(self.price),
            "filled_as_maker": str(self.filled),
            "fallback": self.fallback,
        }


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
    # limits placed inside the spread and what became of them (order_type "limit_inside")
    limits: list[LimitOrder] = field(default_factory=list)

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
    # optimised targets ([optimise]): what became of them this cycle ("" when off)
    targets_note: str = ""

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
            "limits": [x.as_dict() for x in self.limits],
            "reconciled": {
                cid: outcome.source
                for cid, outcome in (self.reconciled.resolved if self.reconciled else {}).items()
            },
            "suggestions": list(self.suggestions),
            "targets_note": self.targets_note,
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


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
#: most slices one leg is cut into: 2 x 300 < 36**2 keeps the part in two digits
MAX_PARTS = 300
#: client ids count milliseconds from here; 8 base-36 digits last until 2089
ID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _base36(n: int, width: int = 1) -> str:
    out = ""
    while n or not out:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return out.rjust(width, "0")


def id_stamp(at: datetime) -> str:
    """``at`` as 8 base-36 digits of milliseconds since 2000-01-01 UTC: the part of a client
    order id that makes it unique to the cycle (two runs of one account cannot start in the
    same millisecond: the account lock serialises them). :func:`id_time` reads it back."""
    ms = (at - ID_EPOCH) // _MS
    if not 0 <= ms < 36**8:
        raise ValueError(f"client order ids cover 2000-01-01 .. 2089, not {at:%Y-%m-%d}")
    return _base36(ms, 8)


def id_time(client_order_id: str) -> datetime:
    """The cycle time (to the millisecond) a client order id of ours was made for."""
    return ID_EPOCH + int(client_order_id[2:10], 36) * _MS


def client_order_id(at: datetime, side: Side, index: int) -> str:
    """Per cycle time and leg: ``rb`` + :func:`id_stamp` + s|b + the leg's index, e.g.
    ``rb0v9kq1z4s0`` (lower-case letters and digits, 12 characters for up to 10 legs)."""
    return f"rb{id_stamp(at)}{side.value[0]}{index}"


def part_order_id(at: datetime, side: Side, index: int, part: int, fallback: bool) -> str:
    """The client id of slice ``part`` of leg ``index`` (limit or market) or, with
    ``fallback``, of the market order sending what its limit left: ``rb`` +
    :func:`id_stamp` + s|b + the leg in base 36 + ``2 * part + fallback`` as two base-36
    digits. 14 characters for up to 36 legs and 648 parts (15 up to 1296 legs) -- within
    every venue's limit (Kraken's free-text ``cl_ord_id`` takes 18, Binance 36). A cycle
    uses either these or the plain :func:`client_order_id` for all its orders."""
    tail = _base36(2 * part + int(fallback), 2)
    return f"rb{id_stamp(at)}{side.value[0]}{_base36(index)}{tail}"


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


@dataclass(frozen=True)
class Retarget:
    """Optimised targets applied on a schedule (``[optimise]``): the optimiser, when it is
    due, and how many daily returns it reads (``window``; it needs ``window + 1`` closes)."""

    optimiser: TargetOptimiser
    cadence: Cadence
    window: int


@dataclass(frozen=True)
class TargetsStep:
    """The targets a cycle uses and what happened to them: ``changed`` when the optimiser
    replaced them in this cycle (journaled first when executing), ``note`` for the report."""

    strategy: Strategy
    note: str
    changed: bool = False


def apply_targets(
    retarget: Retarget,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    history: PriceHistory | None,
    *,
    execute: bool = True,
) -> TargetsStep:
    """The targets in force at ``now``: the journal's latest, or new ones when due.

    ``strategy.targets`` are the config's. With no journaled change, or one made under other
    config targets or another method, the config's targets are (re)applied and journaled
    (method ``"config"``): the first optimisation is at the next scheduled time. Otherwise
    the latest journaled targets hold until :func:`~rebalancer.core.retarget.targets_due`;
    then, with ``window + 1`` daily closes of every asset, the optimiser's targets are
    journaled *before* they are used and the user is told. Too little history keeps the
    current targets and says why (asked again at the next cycle). ``execute=False`` (plan,
    status) journals and notifies nothing.
    """
    method = retarget.optimiser.method
    config = dict(strategy.targets)
    latest = journal.latest_target_change()
    if latest is None or latest.config_method != method or latest.config_targets != config:
        why = "first start" if latest is None else "the configured targets or method changed"
        baseline = TargetChange(
            now,
            "config",
            config if latest is None else dict(latest.new),
            config,
            f"configured targets applied ({why}); {method} from "
            f"{next_due(retarget.cadence, now):%Y-%m-%d %H:%M} UTC",
            config,
            method,
        )
        if execute:
            journal.record_target_change(baseline)
            if latest is not None and latest.new != config:
                notifier.send(Event("targets", "targets reset to the config", baseline.explanation))
        return TargetsStep(strategy, baseline.explanation)
    current = dict(latest.new)
    in_force = replace(strategy, targets=current)
    if not targets_due(retarget.cadence, latest.at, now):
        when = next_due(retarget.cadence, latest.at)
        source = "configured" if latest.method == "config" else f"{latest.method}"
        return TargetsStep(
            in_force,
            f"{source} targets since {latest.at:%Y-%m-%d %H:%M} UTC; "
            f"{method} next at {when:%Y-%m-%d %H:%M} UTC",
        )
    bars = retarget.window + 1
    closes = history.closes(strategy.assets, now, bars) if history is not None else {}
    short = {a: len(closes.get(a, ())) for a in strategy.assets if len(closes.get(a, ())) < bars}
    if short:
        have = ", ".join(f"{a} {n}" for a, n in short.items())
        return TargetsStep(
            in_force,
            f"{method} targets due but not enough price history ({bars} daily closes needed; "
            f"have {have}): keeping the current targets",
        )
    try:
        proposal = retarget.optimiser.propose(
            {a: list(closes[a])[-bars:] for a in strategy.assets}, current
        )
    except ValueError as exc:
        return TargetsStep(in_force, f"{method} targets due but failed ({exc}): keeping them")
    change = TargetChange(
        now, method, current, dict(proposal.targets), proposal.explanation, config, method
    )
    if execute:
        journal.record_target_change(change)  # durable before a single order uses them
        lines = [f"{a}: {current.get(a, ZERO)} -> {w}" for a, w in change.new.items()]
        notifier.send(
            Event(
                "targets",
                "targets changed",
                "\n".join([*lines, proposal.explanation]),
                {
                    "method": method,
                    "old": {a: str(w) for a, w in current.items()},
                    "new": {a: str(w) for a, w in change.new.items()},
                },
            )
        )
    verb = "targets changed" if execute else "targets would change"
    return TargetsStep(
        replace(strategy, targets=change.new),
        f"{verb} by {method}: {proposal.explanation}",
        changed=change.new != current,
    )


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


def _send(
    exchange: Exchange,
    journal: Journal,
    orders: tuple[OrderRequest, ...],
    side: Side,
    report: CycleReport,
    execution: ExecutionPolicy = MARKET,
    quotes: Snapshot | None = None,
    pause: Callable[[timedelta], None] | None = None,
) -> bool:
    """Send ``orders``, each journaled first; False when an outcome is unknown (stop).

    With the plain policy each order is one market order (ids :func:`client_order_id`).
    Otherwise (ids :func:`part_order_id`) an order worth more than ``slice_above`` is sent
    as slices (:func:`rebalancer.core.execution.slice_order`), ``pause(slice_interval)``
    between them, and with ``limit_inside`` each part is first a post-only limit priced
    from ``quotes``' bid and ask (the snapshot the orders were planned from; a market order
    when the asset has none), its rest sent at market or left (see :func:`_place`).
    """
    for i, order in enumerate(orders):
        if execution.plain:
            cid = client_order_id(report.at, side, i)
            if not _market(exchange, journal, replace(order, client_order_id=cid), report):
                return False
            continue
        view = quotes or report.snapshot
        parts = _slices(order, view, execution)
        for k, part in enumerate(parts):
            if k and pause is not None and execution.slice_interval > timedelta(0):
                pause(execution.slice_interval)
            part = replace(part, client_order_id=part_order_id(report.at, side, i, k, False))
            fallback = part_order_id(report.at, side, i, k, True)
            if not _place(exchange, journal, part, fallback, report, execution, view):
                return False
    return True


def _slices(
    order: OrderRequest, view: Snapshot, execution: ExecutionPolicy
) -> tuple[OrderRequest, ...]:
    """``order`` cut into slices of at most ``slice_above`` (at most :data:`MAX_PARTS`)."""
    rules = view.markets.get(order.asset)
    if execution.slice_above is None or rules is None:
        return (order,)
    return slice_by_notional(order, rules, execution.slice_above, max_slices=MAX_PARTS)


def _market(exchange: Exchange, journal: Journal, order: OrderRequest, report: CycleReport) -> bool:
    """Journal, send and record one market order; False when its outcome is unknown."""
    journal.record_intent(order, report.at)
    report.sent[order.client_order_id] = order
    try:
        fill = exchange.create_market_order(order)
    except SkipLeg as exc:
        report.failed.append(FailedOrder(order, str(exc), type(exc).__name__))
        outcome = OrderOutcome("rejected", "exchange reply", error=str(exc))
    except OrderOutcomeUnknown as exc:
        _unknown(journal, order, report, exc)
        return False
    else:
        report.fills.append(fill)
        outcome = OrderOutcome("filled", "exchange reply", fill)
    finally:
        _collect_suggestions(exchange, report)
    journal.record_outcome(order.client_order_id, outcome, report.at)
    return True


def _unknown(
    journal: Journal, order: OrderRequest, report: CycleReport, exc: OrderOutcomeUnknown
) -> None:
    report.failed.append(FailedOrder(order, str(exc), "OrderOutcomeUnknown"))
    report.stopped = f"outcome of {exc.client_order_id} unknown: look it up first"
    journal.record_outcome(
        order.client_order_id,
        OrderOutcome("unknown", "exchange reply", error=str(exc)),
        report.at,
    )


def _place(
    exchange: Exchange,
    journal: Journal,
    order: OrderRequest,
    fallback_id: str,
    report: CycleReport,
    execution: ExecutionPolicy,
    view: Snapshot,
) -> bool:
    """Send one part: a market order, or with ``limit_inside`` and a known bid/ask a
    post-only limit whose unfilled rest goes at market (a new id, journaled first) when
    ``limit_fallback = "market"`` and the rest passes the market's rules, is left for the
    next cycle (``"none"``), or is reported as skipped (below a minimum). A limit that
    filled nothing is journaled as ``canceled``. False when an outcome is unknown."""
    quotes = book(view, order.asset) if execution.limit_inside else None
    if quotes is None:
        return _market(exchange, journal, order, report)
    price = limit_price(order.side, *quotes, execution.limit_offset)
    journal.record_intent(order, report.at)
    report.sent[order.client_order_id] = order
    try:
        fill = exchange.create_limit_order(order, price, execution.limit_timeout)
    except SkipLeg as exc:
        report.failed.append(FailedOrder(order, str(exc), type(exc).__name__))
        outcome = OrderOutcome("rejected", "exchange reply", error=str(exc))
        journal.record_outcome(order.client_order_id, outcome, report.at)
        return True
    except OrderOutcomeUnknown as exc:
        _unknown(journal, order, report, exc)
        return False
    finally:
        _collect_suggestions(exchange, report)
    if fill.amount > 0:
        report.fills.append(fill)
        outcome = OrderOutcome("filled", "exchange reply", fill)
    else:
        outcome = OrderOutcome("canceled", "exchange reply: limit unfilled, cancelled")
    journal.record_outcome(order.client_order_id, outcome, report.at)
    limit = LimitOrder(
        order.client_order_id, order.symbol, order.side, order.amount, price, fill.amount
    )
    rules = view.markets.get(order.asset)
    left = truncate(order.amount - fill.amount, None if rules is None else rules.amount_step)
    if left <= 0:
        report.limits.append(limit)
        return True
    if execution.limit_fallback == "none":
        report.limits.append(replace(limit, fallback="none"))
        return True
    rest = replace(remainder(order, order.amount - left), client_order_id=fallback_id)
    problem = None if rules is None else violation(rules, rest.amount, rest.expected_price)
    if problem is not None:
        report.limits.append(replace(limit, fallback=f"skipped: {problem[1]}"))
        return True
    report.limits.append(replace(limit, fallback=f"market {fallback_id}"))
    return _market(exchange, journal, rest, report)


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
    if not _send(
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
    if not _send(exchange, journal, buy_orders, Side.BUY, report, ex, after_sells, pause):
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
