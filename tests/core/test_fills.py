"""The fill model shared by paper trading and the backtester."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.errors import InsufficientFunds, OrderRejected, SkipLeg
from rebalancer.core.fills import apply_fill, fill_market_order
from rebalancer.core.model import Fill, MarketRules, OrderRequest, Side

from .strategies import CORE, decimals

D = Decimal
RULES = MarketRules(
    "BTC/USDT", "BTC", "USDT", amount_step=D("0.0001"), min_amount=D("0.001"), min_notional=D(10),
    taker_fee=D("0.001"),
)  # fmt: skip


def order(side: Side, amount: str) -> OrderRequest:
    return OrderRequest("BTC", "BTC/USDT", side, D(amount), D(0), D(0), D(0), "cid-1")


def test_sell_fills_at_bid_less_slippage_fee_in_quote() -> None:
    """Sell 0.5 BTC, bid 40 000, slippage 0.5 %: price 39 800, cost 19 900, fee 0.1 % of it
    = 19.9 USDT. Balances: BTC 1 -> 0.5; USDT 100 + 19 900 - 19.9 = 19 980.1."""
    balances = {"BTC": D(1), "USDT": D(100)}
    f = fill_market_order(order(Side.SELL, "0.5"), RULES, D(40000), D(40100), D("0.005"), balances)
    assert (f.price, f.cost, f.fee, f.fee_asset) == (D(39800), D(19900), D("19.9"), "USDT")
    assert (f.amount, f.side, f.client_order_id, f.symbol) == (
        D("0.5"),
        Side.SELL,
        "cid-1",
        "BTC/USDT",
    )
    after = apply_fill(balances, f, "USDT")
    assert after == {"BTC": D("0.5"), "USDT": D("19980.1")}
    assert balances == {"BTC": D(1), "USDT": D(100)}  # input untouched


def test_buy_fills_at_ask_plus_slippage_fee_in_base() -> None:
    """Buy 0.5 BTC, ask 40 000, slippage 0.5 %: price 40 200, cost 20 100; fee 0.1 % of
    the 0.5 BTC received = 0.0005 BTC. Balances: USDT 20 100 -> 0; BTC 0 + 0.4995."""
    balances = {"USDT": D(20100)}
    f = fill_market_order(order(Side.BUY, "0.5"), RULES, D(39900), D(40000), D("0.005"), balances)
    assert (f.price, f.cost, f.fee, f.fee_asset) == (D(40200), D(20100), D("0.0005"), "BTC")
    assert apply_fill(balances, f, "USDT") == {"USDT": D(0), "BTC": D("0.4995")}


@pytest.mark.parametrize(
    ("side", "amount", "bid", "fragment"),
    [
        (Side.SELL, "0.00015", "40000", "not a multiple of step 0.0001"),
        (Side.BUY, "0.0005", "40000", "< market minimum 0.001"),
        # 0.001 BTC at 10 000 = 10 USDT meets the minimum only before slippage
        (Side.SELL, "0.001", "10000", "notional 9.95 < market minimum 10"),
        (Side.SELL, "0", "40000", "rounds to 0"),
    ],
)
def test_rule_violations_are_rejected(side: Side, amount: str, bid: str, fragment: str) -> None:
    balances = {"BTC": D(10), "USDT": D(10**6)}
    with pytest.raises(OrderRejected) as info:
        fill_market_order(order(side, amount), RULES, D(bid), D(bid), D("0.005"), balances)
    assert fragment in str(info.value)
    assert "BTC/USDT" in str(info.value)
    assert isinstance(info.value, SkipLeg)


def test_insufficient_funds() -> None:
    with pytest.raises(InsufficientFunds, match=r"sell of 0.5 BTC: only 0.4 free"):
        fill_market_order(order(Side.SELL, "0.5"), RULES, D(100), D(100), D(0), {"BTC": D("0.4")})
    # 20 000 USDT covers 0.5 BTC at the ask, but not with 0.5 % slippage (20 100)
    with pytest.raises(InsufficientFunds, match=r"buy costs 20100\.0* USDT: only 20000 free"):
        fill_market_order(
            order(Side.BUY, "0.5"), RULES, D(40000), D(40000), D("0.005"), {"USDT": D(20000)}
        )
    with pytest.raises(InsufficientFunds):
        fill_market_order(order(Side.SELL, "0.5"), RULES, D(100), D(100), D(0), {})


@CORE
@given(
    st.sampled_from([Side.SELL, Side.BUY]),
    decimals(-4, 2),
    decimals(-3, 5),
    st.integers(0, 200),
    st.integers(0, 50),
)
def test_fill_moves_value_only_by_fee_and_slippage(
    side: Side, amount: Decimal, price: Decimal, slip_bps: int, fee_bps: int
) -> None:
    rules = MarketRules("BTC/USDT", "BTC", "USDT", taker_fee=D(fee_bps) / 10_000)
    slip = D(slip_bps) / 10_000
    balances = {"BTC": amount * 2, "USDT": amount * price * 3}
    o = OrderRequest("BTC", "BTC/USDT", side, amount, price, amount * price, D(0))
    f = fill_market_order(o, rules, price, price, slip, balances)
    # slippage always against the taker
    assert f.price <= price if side is Side.SELL else f.price >= price
    assert f.price == (price * (1 - slip) if side is Side.SELL else price * (1 + slip))
    after = apply_fill(balances, f, "USDT")
    assert all(v >= 0 for v in after.values())

    def worth(b: dict[str, Decimal]) -> Decimal:
        return b["BTC"] * price + b["USDT"]

    fee_value = f.fee * (price if f.fee_asset == "BTC" else 1)
    slip_cost = abs(f.price - price) * f.amount
    assert f.fee_asset == ("USDT" if side is Side.SELL else "BTC")
    diff = worth(after) - (worth(balances) - fee_value - slip_cost)
    assert abs(diff) <= worth(balances) * D("1e-24")


def test_fill_record_fields() -> None:
    f = Fill("c", "BTC", "BTC/USDT", Side.BUY, D(1), D(2), D(2), D(0), "BTC")
    assert f.status == "closed"
    assert f.exchange_order_id == ""
