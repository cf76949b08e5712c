"""Sending a cycle's orders: each journaled before it is sent, its outcome after.

With the plain policy each order is one market order; otherwise orders are sliced above
``slice_above`` and, with ``limit_inside``, first placed as post-only limits inside the
spread whose rest goes at market under a new id (:mod:`rebalancer.core.execution`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from rebalancer.core.errors import (
    OrderOutcomeUnknown,
    SkipLeg,
)
from rebalancer.core.execution import MARKET, ExecutionPolicy, book, limit_price, remainder
from rebalancer.core.execution import slice_order as slice_by_notional
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.order_ids import MAX_PARTS, client_order_id, part_order_id
from rebalancer.core.rules import truncate, violation
from rebalancer.ports import (
    Exchange,
    Journal,
    OrderOutcome,
)
from rebalancer.service.report import FailedOrder, LimitOrder


@dataclass
class Sent:
    """What the orders of the cycle at ``at`` did, gathered as they are sent: each order by
    client id (``orders``), its fills, the orders refused (``failed``), the limits placed,
    the transfers suggested, and ``unknown``: why sending stopped ("" unless an outcome is
    unknown)."""

    at: datetime
    orders: dict[str, OrderRequest] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    failed: list[FailedOrder] = field(default_factory=list)
    limits: list[LimitOrder] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    unknown: str = ""


def transfer_suggestions(exchange: Exchange) -> list[str]:
    """The exchange's suggested transfers between accounts (none for a single account).

    Optional, not part of the Exchange port: only an exchange spanning several accounts
    (:class:`rebalancer.adapters.multi.MultiAccountExchange`) has ``suggestions()``.
    """
    suggestions = getattr(exchange, "suggestions", None)
    return [str(s) for s in suggestions()] if callable(suggestions) else []


def collect_suggestions(exchange: Exchange, sent: Sent) -> None:
    """Add the exchange's current suggestions to ``sent`` (read before the next snapshot
    clears them), once each."""
    for text in transfer_suggestions(exchange):
        if text not in sent.suggestions:
            sent.suggestions.append(text)


def send_orders(
    exchange: Exchange,
    journal: Journal,
    orders: tuple[OrderRequest, ...],
    side: Side,
    sent: Sent,
    quotes: Snapshot,
    execution: ExecutionPolicy = MARKET,
    pause: Callable[[timedelta], None] | None = None,
) -> bool:
    """Send ``orders``, each journaled first; False when an outcome is unknown (stop).

    With the plain policy each order is one market order (ids :func:`client_order_id`).
    Otherwise (ids :func:`part_order_id`) an order worth more than ``slice_above`` is sent
    as slices (:func:`rebalancer.core.execution.slice_order`), ``pause(slice_interval)``
    between them, and with ``limit_inside`` each part is first a post-only limit priced
    from ``quotes``' bid and ask (the snapshot the orders were planned from; a market order
    when the asset has none), its rest sent at market or left (see :func:`place`).
    """
    at = sent.at
    for i, order in enumerate(orders):
        if execution.plain:
            cid = client_order_id(at, side, i)
            if not send_market(exchange, journal, replace(order, client_order_id=cid), sent):
                return False
            continue
        for k, part in enumerate(slices(order, quotes, execution)):
            if k and pause is not None and execution.slice_interval > timedelta(0):
                pause(execution.slice_interval)
            part = replace(part, client_order_id=part_order_id(at, side, i, k, False))
            fallback = part_order_id(at, side, i, k, True)
            if not place(exchange, journal, part, fallback, sent, execution, quotes):
                return False
    return True


def slices(
    order: OrderRequest, view: Snapshot, execution: ExecutionPolicy
) -> tuple[OrderRequest, ...]:
    """``order`` cut into slices of at most ``slice_above`` (at most :data:`MAX_PARTS`)."""
    rules = view.markets.get(order.asset)
    if execution.slice_above is None or rules is None:
        return (order,)
    return slice_by_notional(order, rules, execution.slice_above, max_slices=MAX_PARTS)


def send_market(exchange: Exchange, journal: Journal, order: OrderRequest, sent: Sent) -> bool:
    """Journal, send and record one market order; False when its outcome is unknown."""
    go_on, _ = submit(exchange, journal, order, sent, exchange.create_market_order)
    return go_on


def submit(
    exchange: Exchange,
    journal: Journal,
    order: OrderRequest,
    sent: Sent,
    send: Callable[[OrderRequest], Fill],
) -> tuple[bool, Fill | None]:
    """Journal the intent of ``order``, ``send`` it and journal the outcome (``filled``;
    ``canceled`` for a limit that filled nothing; ``rejected`` when the exchange refused
    it). Returns whether the cycle may go on (False: the outcome is unknown) and the fill
    (None unless the exchange answered with one)."""
    journal.record_intent(order, sent.at)
    sent.orders[order.client_order_id] = order
    try:
        fill = send(order)
    except SkipLeg as exc:
        sent.failed.append(FailedOrder(order, str(exc), type(exc).__name__))
        outcome = OrderOutcome("rejected", "exchange reply", error=str(exc))
        journal.record_outcome(order.client_order_id, outcome, sent.at)
        return True, None
    except OrderOutcomeUnknown as exc:
        record_unknown(journal, order, sent, exc)
        return False, None
    finally:
        collect_suggestions(exchange, sent)
    if fill.amount > 0:
        sent.fills.append(fill)
        outcome = OrderOutcome("filled", "exchange reply", fill)
    else:
        outcome = OrderOutcome("canceled", "exchange reply: limit unfilled, cancelled")
    journal.record_outcome(order.client_order_id, outcome, sent.at)
    return True, fill


def record_unknown(
    journal: Journal, order: OrderRequest, sent: Sent, exc: OrderOutcomeUnknown
) -> None:
    """Journal ``order``'s outcome as unknown and stop sending: it must be looked up."""
    sent.failed.append(FailedOrder(order, str(exc), "OrderOutcomeUnknown"))
    sent.unknown = f"outcome of {exc.client_order_id} unknown: look it up first"
    journal.record_outcome(
        order.client_order_id,
        OrderOutcome("unknown", "exchange reply", error=str(exc)),
        sent.at,
    )


def place(
    exchange: Exchange,
    journal: Journal,
    order: OrderRequest,
    fallback_id: str,
    sent: Sent,
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
        return send_market(exchange, journal, order, sent)
    price = limit_price(order.side, *quotes, execution.limit_offset)
    go_on, fill = submit(
        exchange,
        journal,
        order,
        sent,
        lambda o: exchange.create_limit_order(o, price, execution.limit_timeout),
    )
    if fill is None:
        return go_on
    limit = LimitOrder(
        order.client_order_id, order.symbol, order.side, order.amount, price, fill.amount
    )
    rules = view.markets.get(order.asset)
    left = truncate(order.amount - fill.amount, None if rules is None else rules.amount_step)
    if left <= 0:
        sent.limits.append(limit)
        return True
    if execution.limit_fallback == "none":
        sent.limits.append(replace(limit, fallback="none"))
        return True
    rest = replace(remainder(order, order.amount - left), client_order_id=fallback_id)
    problem = None if rules is None else violation(rules, rest.amount, rest.expected_price)
    if problem is not None:
        sent.limits.append(replace(limit, fallback=f"skipped: {problem[1]}"))
        return True
    sent.limits.append(replace(limit, fallback=f"market {fallback_id}"))
    return send_market(exchange, journal, rest, sent)
