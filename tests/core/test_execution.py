"""Limit prices inside the spread, order slicing and the limit fill model (pure core)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rebalancer.core.errors import InsufficientFunds, OrderRejected
from rebalancer.core.execution import (
    MARKET,
    MAX_SLICES,
    ExecutionPolicy,
    fill_limit_order,
    limit_price,
    remainder,
    slice_order,
)
from rebalancer.core.model import MarketRules, OrderRequest, Side
from rebalancer.core.rules import truncate, violation

from .strategies import CORE, decimals

D = Decimal


def order(amount: Decimal, price: Decimal, side: Side = Side.BUY) -> OrderRequest:
    cost = amount * price
    return OrderRequest("BTC", "BTC/USDT", side, amount, price, cost, cost * D("0.001"))


def rules(
    step: Decimal | None = D("0.001"),
    min_amount: Decimal = D(0),
    min_notional: Decimal = D(0),
    max_amount: Decimal | None = None,
) -> MarketRules:
    return MarketRules("BTC/USDT", "BTC", "USDT", step, min_amount, min_notional, max_amount)


# -- limit price ------------------------------------------------------------------------------


@CORE
@given(
    bid=decimals(-4, 5),
    spread=decimals(-6, 2) | st.just(D(0)),
    offset=st.integers(0, 9999).map(lambda n: D(n) / 10000),
    side=st.sampled_from(Side),
)
def test_limit_price_lies_in_the_spread_on_our_side(
    bid: Decimal, spread: Decimal, offset: Decimal, side: Side
) -> None:
    ask = bid + spread
    price = limit_price(side, bid, ask, offset)
    assert bid <= price <= ask
    mid = (bid + ask) / 2
    if spread > 0:  # never crosses: a buy under the ask, a sell over the bid
        assert price < ask if side is Side.BUY else price > bid
    if offset <= D("0.5"):  # our own half of the spread
        assert price <= mid if side is Side.BUY else price >= mid
    if offset == 0:
        assert price == (bid if side is Side.BUY else ask)


def test_limit_price_examples() -> None:
    assert limit_price(Side.BUY, D(100), D(102), D("0.25")) == D("100.5")
    assert limit_price(Side.SELL, D(100), D(102), D("0.25")) == D("101.5")
    assert limit_price(Side.BUY, D(100), D(102), D("0.5")) == D(101)


@pytest.mark.parametrize(
    ("bid", "ask", "offset"),
    [(D(0), D(1), D(0)), (D(2), D(1), D(0)), (D(1), D(2), D(1)), (D(1), D(2), D(-1))],
)
def test_limit_price_refuses_a_bad_book_or_offset(
    bid: Decimal, ask: Decimal, offset: Decimal
) -> None:
    with pytest.raises(ValueError):
        limit_price(Side.BUY, bid, ask, offset)


# -- slicing ----------------------------------------------------------------------------------


@st.composite
def slicing_cases(draw: st.DrawFn) -> tuple[OrderRequest, MarketRules, Decimal]:
    step = draw(st.none() | decimals(-8, 0, digits=1))
    price = draw(decimals(-3, 5, digits=5))
    min_amount = draw(st.just(D(0)) | decimals(-8, 0, digits=2))
    min_notional = draw(st.just(D(0)) | decimals(0, 2, digits=2))
    max_amount = draw(st.none() | decimals(-3, 3, digits=2))
    amount = draw(decimals(-6, 3, digits=7))
    if step is not None:
        amount = truncate(amount, step)
    r = rules(step, min_amount, min_notional, max_amount)
    o = order(amount, price, draw(st.sampled_from(Side)))
    assume(amount > 0 and violation(r, amount, price) is None)
    cap = draw(decimals(0, 5, digits=4))
    return o, r, cap


def _legal_split_under_cap_exists(o: OrderRequest, r: MarketRules, cap: Decimal) -> bool:
    """Whether some split of the order into legal slices each <= cap exists (steps only):
    the legal slice sizes form an interval [lo, hi] of steps, checked against violation."""
    assert r.amount_step is not None
    step, price = r.amount_step, o.expected_price
    total = int(o.amount / step)
    lo = max(1, math.ceil(r.min_amount / step), math.ceil(r.min_notional / (step * price)))
    hi = min(total, math.floor(cap / (step * price)))
    if r.max_amount is not None:
        hi = min(hi, math.floor(r.max_amount / step))
    if lo > hi:
        return False
    assert violation(r, lo * step, price) is None and violation(r, hi * step, price) is None
    assert lo == 1 or violation(r, (lo - 1) * step, price) is not None
    n = -(-total // hi)
    return n * lo <= total


@CORE
@given(slicing_cases())
def test_slices_sum_exactly_are_legal_and_under_the_cap(
    case: tuple[OrderRequest, MarketRules, Decimal],
) -> None:
    o, r, cap = case
    slices = slice_order(o, r, cap)
    assert slices == slice_order(o, r, cap)  # deterministic
    assert sum((s.amount for s in slices), D(0)) == o.amount
    assert sum((s.expected_cost for s in slices), D(0)) == o.expected_cost
    assert sum((s.expected_fee for s in slices), D(0)) == o.expected_fee
    for s in slices:
        assert violation(r, s.amount, o.expected_price) is None, s
        assert (s.asset, s.side, s.expected_price) == (o.asset, o.side, o.expected_price)
    assert [s.amount for s in slices] == sorted((s.amount for s in slices), reverse=True)
    if r.amount_step is not None:
        assert max(s.amount for s in slices) - min(s.amount for s in slices) <= r.amount_step
    over = [s for s in slices if s.amount * o.expected_price > cap]
    assert len(slices) <= MAX_SLICES
    if over and len(slices) < MAX_SLICES:  # only where the rules make it impossible
        if r.amount_step is not None:
            assert not _legal_split_under_cap_exists(o, r, cap)
        else:
            # n slices under the cap need n * smallest <= amount (one more at the exact edge)
            smallest = max(r.min_amount, r.min_notional / o.expected_price)
            needed = math.ceil(o.amount * o.expected_price / cap)
            assert (needed + 1) * smallest > o.amount
    if o.amount * o.expected_price <= cap:
        assert slices == (o,)


def test_slicing_examples() -> None:
    o = order(D("1.000"), D(5000))  # 5,000 USDT
    parts = slice_order(o, rules(), D(2000))
    assert [p.amount for p in parts] == [D("0.334"), D("0.333"), D("0.333")]
    assert all(p.amount * 5000 <= 2000 for p in parts)
    # a minimum notional of 1,800 forbids 3 slices of 1,667: two of 2,500 remain legal
    parts = slice_order(o, rules(min_notional=D(1800)), D(2000))
    assert [p.amount for p in parts] == [D("0.500"), D("0.500")]
    # no step: equal parts, the last exact
    parts = slice_order(order(D(1), D(2500)), rules(step=None), D(1000))
    assert len(parts) == 3 and sum(p.amount for p in parts) == 1
    assert all(p.amount * 2500 <= 1000 for p in parts)
    assert slice_order(o, rules(), D(6000)) == (o,)


def test_remainder_keeps_cost_and_fee_pro_rata() -> None:
    o = order(D("1.0"), D(100))
    rest = remainder(o, D("0.25"))
    assert rest.amount == D("0.75")
    assert rest.expected_cost == D(75) and rest.expected_fee == o.expected_fee * D("0.75")


# -- the limit fill model -----------------------------------------------------------------------


def fill(side: Side, price: str, low: str | None, high: str | None, balances: dict[str, str]):  # type: ignore[no-untyped-def]
    return fill_limit_order(
        order(D("0.1"), D(100), side),
        rules(),
        D(price),
        bid=D(99),
        ask=D(101),
        low=None if low is None else D(low),
        high=None if high is None else D(high),
        maker_fee=D("0.0002"),
        balances={k: D(v) for k, v in balances.items()},
    )


def test_a_limit_fills_at_its_price_with_the_maker_fee_when_the_range_reaches_it() -> None:
    f = fill(Side.BUY, "99.5", low="99", high="103", balances={"USDT": "100"})
    assert (f.amount, f.price, f.cost, f.status) == (D("0.1"), D("99.5"), D("9.95"), "closed")
    assert (f.fee, f.fee_asset) == (D("0.1") * D("0.0002"), "BTC")
    f = fill(Side.SELL, "100.5", low="98", high="100.5", balances={"BTC": "1"})
    assert (f.amount, f.fee, f.fee_asset) == (D("0.1"), D("10.05") * D("0.0002"), "USDT")


@pytest.mark.parametrize(
    ("side", "price", "low", "high"),
    [
        (Side.BUY, "99.5", "99.6", "103"),  # never traded down to the limit
        (Side.SELL, "100.5", "98", "100.4"),  # never traded up to it
        (Side.BUY, "99.5", None, None),  # no range known: nothing fills
        (Side.BUY, "101.5", "90", "110"),  # post-only above the ask: would cross
        (Side.SELL, "98.5", "90", "110"),  # post-only below the bid
    ],
)
def test_a_limit_the_range_misses_or_that_would_cross_fills_nothing(
    side: Side, price: str, low: str | None, high: str | None
) -> None:
    f = fill(side, price, low, high, balances={"BTC": "1", "USDT": "100"})
    assert (f.amount, f.cost, f.fee, f.status) == (0, 0, 0, "canceled")


def test_a_limit_checks_rules_and_funds_like_a_market_order() -> None:
    with pytest.raises(InsufficientFunds):
        fill(Side.BUY, "99.5", "99", "103", balances={"USDT": "1"})
    with pytest.raises(OrderRejected):
        fill_limit_order(
            order(D("0.1"), D(100)),
            rules(min_notional=D(20)),
            D(100),
            bid=D(99),
            ask=D(101),
            low=D(1),
            high=D(200),
            maker_fee=D(0),
            balances={"USDT": D(1000)},
        )


def test_policy_defaults_are_plain_market_orders() -> None:
    assert MARKET.plain and not MARKET.limit_inside
    assert not ExecutionPolicy(order_type="limit_inside").plain
    assert not ExecutionPolicy(slice_above=D(2000)).plain
    with pytest.raises(ValueError):
        ExecutionPolicy(limit_offset=D(1))
    with pytest.raises(ValueError):
        ExecutionPolicy(slice_interval=timedelta(seconds=-1))
