"""Reading the account: :func:`evaluate` (read and decide) and :func:`reconcile` (settle the
order intents an earlier cycle left unresolved)."""

from __future__ import annotations

from datetime import datetime

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.errors import ExchangeBanned, RebalancerError
from rebalancer.core.model import Fill, Snapshot
from rebalancer.core.planner import effective_targets
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Decision, TriggerContext
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import Exchange, Journal, OrderOutcome, PriceHistory
from rebalancer.service.report import ReconcileReport


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
    neither block the bot nor fill later behind its back. A ban is raised (it must halt).
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
