"""Cost-aware execution: limit orders inside the spread, and slicing large orders.

Pure values and functions (standard library only):

* :class:`ExecutionPolicy` -- how the service sends the planner's orders (``[execution]``).
* :func:`limit_price` -- where a post-only (maker) limit sits in the spread.
* :func:`book` -- the best bid/ask of an asset in a snapshot, or None (then: market).
* :func:`slice_order` -- equal slices of one order, each legal and at most a notional cap.
* :func:`fill_limit_order` -- the paper/backtest fill model of a resting limit.

Units as in :mod:`rebalancer.core.model`: amounts in base units, prices in quote per base,
notionals in quote units; offsets and fee rates are fractions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from rebalancer.core.errors import InsufficientFunds, OrderRejected
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.rules import violation
from rebalancer.core.venue import REFERENCE, VenueModel, fill_fee

OrderType = Literal["market", "limit_ioc", "limit_inside"]
Fallback = Literal["market", "none"]


@dataclass(frozen=True)
class ExecutionPolicy:
    """How planned orders are sent. The default is plain market orders, unsliced.

    ``order_type``: ``"market"``; ``"limit_ioc"`` (handled inside the live adapter, a market
    order for the service); ``"limit_inside"``: a post-only limit at :func:`limit_price`
    with ``limit_offset`` in [0, 1), left resting ``limit_timeout``, then cancelled; what did
    not fill is sent at market (``limit_fallback = "market"``) or left for the next cycle
    (``"none"``). ``slice_above``: orders worth more than this (quote units, at the order's
    expected price) are sent as equal slices of at most this notional, ``slice_interval``
    apart; None: no slicing.
    """

    order_type: OrderType = "market"
    limit_offset: Decimal = Decimal("0.25")
    limit_timeout: timedelta = timedelta(seconds=60)
    limit_fallback: Fallback = "market"
    slice_above: Decimal | None = None
    slice_interval: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not ZERO <= self.limit_offset < 1:
            raise ValueError(f"limit_offset must lie in [0, 1), got {self.limit_offset}")
        if self.slice_above is not None and self.slice_above <= 0:
            raise ValueError(f"slice_above must be > 0 or None, got {self.slice_above}")
        if self.limit_timeout < timedelta(0) or self.slice_interval < timedelta(0):
            raise ValueError("limit_timeout and slice_interval must not be negative")

    @property
    def limit_inside(self) -> bool:
        return self.order_type == "limit_inside"

    @property
    def plain(self) -> bool:
        """True when orders go out exactly as before this module: one market order each."""
        return not self.limit_inside and self.slice_above is None


MARKET = ExecutionPolicy()


def book(snapshot: Snapshot, asset: str) -> tuple[Decimal, Decimal] | None:
    """``(bid, ask)`` of ``asset`` when the snapshot has both and they make a book
    (``0 < bid <= ask``); None otherwise (the caller then sends a market order)."""
    bid, ask = snapshot.bids.get(asset), snapshot.asks.get(asset)
    if bid is None or ask is None or not ZERO < bid <= ask:
        return None
    return bid, ask


def limit_price(side: Side, bid: Decimal, ask: Decimal, offset: Decimal) -> Decimal:
    """The price of a post-only limit ``offset`` of the spread in from our own side.

    A buy sits at ``bid + offset * (ask - bid)``, a sell at ``ask - offset * (ask - bid)``:
    0 joins our side's best price, 0.5 is the mid. Invariant: the price lies in
    ``[bid, ask]``, on our side of the mid for ``offset <= 0.5``, and never crosses
    (a buy is below the ask and a sell above the bid whenever ``bid < ask``).
    """
    if not (ZERO < bid <= ask):
        raise ValueError(f"need 0 < bid <= ask, got bid {bid}, ask {ask}")
    if not ZERO <= offset < 1:
        raise ValueError(f"offset must lie in [0, 1), got {offset}")
    inside = offset * (ask - bid)
    return bid + inside if side is Side.BUY else ask - inside


#: most slices :func:`slice_order` makes of one order unless told otherwise
MAX_SLICES = 1000


def slice_order(
    order: OrderRequest, rules: MarketRules, max_notional: Decimal, *, max_slices: int = MAX_SLICES
) -> tuple[OrderRequest, ...]:
    """``order`` as equal slices each worth at most ``max_notional`` at its expected price.

    Invariants: the amounts sum exactly to ``order.amount``; each is on the market's amount
    step and passes :func:`rebalancer.core.rules.violation` (so no slice is below a minimum);
    the slices differ by at most one step, largest first; expected cost and fee are split in
    proportion to the amount (summing exactly). A slice exceeds ``max_notional`` only when
    the rules leave no other way (one step, or the minimum slice, is worth more than the
    cap; or no split into legal slices under the cap exists): then the order is cut into as
    many legal slices as possible -- and when it would take more than ``max_slices``: then
    it is cut into ``max_slices``. An order already under the cap, one that is not on the
    step or not legal itself, comes back unchanged as the only slice. Deterministic.
    """
    price, amount, step = order.expected_price, order.amount, rules.amount_step
    if max_notional <= 0 or price <= 0 or amount <= 0 or amount * price <= max_notional:
        return (order,)
    if violation(rules, amount, price) is not None:
        return (order,)
    if step is None or step <= 0:
        parts = _continuous(amount, price, rules, max_notional, max_slices)
    else:
        units = amount / step
        if units != units.to_integral_value():
            return (order,)
        sizes = _units(int(units), step, price, rules, max_notional, max_slices)
        parts = [u * step for u in sizes]
    if len(parts) <= 1 or any(violation(rules, a, price) is not None for a in parts):
        return (order,)
    return _split(order, parts)


def _units(
    total: int, step: Decimal, price: Decimal, rules: MarketRules, cap: Decimal, most: int
) -> list[int]:
    """Slice sizes in steps: ``n`` slices of ``total // n`` or ``total // n + 1`` steps."""
    unit = step * price
    hi = max(1, int((cap / unit).to_integral_value(rounding=ROUND_FLOOR)))
    if rules.max_amount is not None:
        hi = min(hi, max(1, int((rules.max_amount / step).to_integral_value(ROUND_FLOOR))))
    lo = max(
        1,
        int((rules.min_amount / step).to_integral_value(rounding=ROUND_CEILING)),
        int((rules.min_notional / unit).to_integral_value(rounding=ROUND_CEILING)),
    )
    n = min(-(-total // hi), most)  # fewest slices under the cap
    if n * lo > total:  # no legal split under the cap: as many legal slices as fit
        n = max(1, total // lo)
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)


def _continuous(
    amount: Decimal, price: Decimal, rules: MarketRules, cap: Decimal, most: int
) -> list[Decimal]:
    """Slices of a market without an amount step: ``n`` equal parts rounded up to 19
    significant digits (each at most the cap), the last part the exact rest (the
    smallest)."""
    n = int((amount * price / cap).to_integral_value(rounding=ROUND_CEILING))
    smallest = max(rules.min_amount, rules.min_notional / price)
    limit = n + 1 if smallest <= 0 else int((amount / smallest).to_integral_value(ROUND_FLOOR))
    limit = min(limit, most)
    n = min(n, limit)
    quantum = Decimal(1).scaleb(amount.adjusted() - 18)  # exact sums below 28 digits
    part = (amount / n).quantize(quantum, rounding=ROUND_CEILING) if n > 1 else amount
    if n > 1 and part * price > cap and n < limit:  # a hair over the cap: one more
        n += 1
        part = (amount / n).quantize(quantum, rounding=ROUND_CEILING)
    if n <= 1:
        return [amount]
    return [part] * (n - 1) + [amount - part * (n - 1)]


def _pro_rata(whole: Decimal, share: Decimal) -> Decimal:
    """``whole * share`` on a grid of 18 significant digits of ``whole`` (0 stays 0)."""
    if not whole:
        return whole
    return (whole * share).quantize(Decimal(1).scaleb(whole.adjusted() - 17))


def _split(order: OrderRequest, amounts: list[Decimal]) -> tuple[OrderRequest, ...]:
    """Orders for ``amounts`` (summing to ``order.amount``), cost and fee pro rata: each
    share rounded to 18 significant digits of the whole, the last slice takes the exact rest,
    so the parts add up to the whole exactly (no 28-digit context rounding on the way)."""
    out: list[OrderRequest] = []
    cost_left, fee_left = order.expected_cost, order.expected_fee
    for i, a in enumerate(amounts):
        last = i == len(amounts) - 1
        share = a / order.amount
        cost = cost_left if last else _pro_rata(order.expected_cost, share)
        fee = fee_left if last else _pro_rata(order.expected_fee, share)
        cost_left, fee_left = cost_left - cost, fee_left - fee
        out.append(replace(order, amount=a, expected_cost=cost, expected_fee=fee))
    return tuple(out)


def remainder(order: OrderRequest, filled: Decimal) -> OrderRequest:
    """What is left of ``order`` after ``filled`` base units: cost and fee pro rata."""
    left = order.amount - filled
    share = left / order.amount if order.amount else ZERO
    return replace(
        order,
        amount=left,
        expected_cost=order.expected_cost * share,
        expected_fee=order.expected_fee * share,
    )


def fill_limit_order(
    order: OrderRequest,
    rules: MarketRules,
    price: Decimal,
    *,
    bid: Decimal,
    ask: Decimal,
    low: Decimal | None,
    high: Decimal | None,
    maker_fee: Decimal,
    balances: Mapping[str, Decimal],
    venue: VenueModel = REFERENCE,
) -> Fill:
    """The paper/backtest fill model of a post-only limit at ``price`` left resting.

    ``venue`` decides the fee's asset (:mod:`rebalancer.core.venue`): with the fee in the
    quote (Kraken, Coinbase) a buy needs its cost plus the fee in cash.

    The simulated book is ``bid``/``ask``. A limit that would cross it (a buy above the ask,
    a sell below the bid) is cancelled by post-only: nothing fills. Otherwise the order
    fills completely at ``price``, paying ``maker_fee`` (in the asset received, as the
    market fill model), when the price range the market traded during the wait reaches it
    -- a buy when ``low <= price``, a sell when ``high >= price`` -- and not at all
    otherwise (also when the range is unknown: ``low``/``high`` None). No partial fills.
    Raises :class:`OrderRejected` for a market-rule violation and :class:`InsufficientFunds`
    when the balance does not cover the order, as the market fill model does.
    """
    problem = violation(rules, order.amount, price)
    if problem is not None:
        raise OrderRejected(f"{order.symbol} {order.side.value} rejected: {problem[1]}")
    cost = order.amount * price
    buy = order.side is Side.BUY
    plain = replace(venue, fee_currency=None)
    fee, fee_asset = fill_fee(plain, rules, order.side, order.amount, cost, maker_fee)
    if buy:
        cash = balances.get(rules.quote, ZERO)
        need = cost + fee if fee_asset == rules.quote else cost
        if need > cash:
            raise InsufficientFunds(
                f"{order.symbol} buy costs {need} {rules.quote} (fee included): only {cash} "
                "free"
            )
    else:
        held = balances.get(rules.base, ZERO)
        if order.amount > held:
            raise InsufficientFunds(
                f"{order.symbol} sell of {order.amount} {rules.base}: only {held} free"
            )
    crosses = price > ask if buy else price < bid
    reached = (low is not None and low <= price) if buy else (high is not None and high >= price)
    if crosses or not reached:
        return Fill(
            order.client_order_id,
            order.asset,
            order.symbol,
            order.side,
            ZERO,
            price,
            ZERO,
            ZERO,
            fee_asset,
            status="canceled",
        )
    return Fill(
        order.client_order_id,
        order.asset,
        order.symbol,
        order.side,
        order.amount,
        price,
        cost,
        fee,
        fee_asset,
    )
