"""The paper exchange: real market rules, fills with slippage and fees, persistence."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from rebalancer.adapters.paper import PaperExchange, default_rules
from rebalancer.adapters.state_file import StateFile
from rebalancer.core.errors import DataError, InsufficientFunds, OrderRejected, UnknownSymbol
from rebalancer.core.model import OrderRequest, Side

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def order(side: Side, amount: str, asset: str = "BTC") -> OrderRequest:
    return OrderRequest(asset, f"{asset}/USDT", side, D(amount), D(0), D(0), D(0), "id-1")


def exchange(**kw: object) -> PaperExchange:
    ex = PaperExchange("USDT", {"USDT": D(1000), "BTC": D("0.01")}, D("0.001"), D("0.002"), **kw)  # type: ignore[arg-type]
    ex.set_prices({"BTC": D(50000), "ETH": D(2500)}, T0)
    return ex


@pytest.mark.parametrize(
    ("price", "step"),
    [("100000", "0.00001"), ("3000", "0.0001"), ("200", "0.001"), ("0.5", "1"), ("0.08", "10")],
)
def test_default_rules_scale_the_step_with_the_price(price: str, step: str) -> None:
    rules = default_rules("X", "USDT", D(price), D("0.001"))
    assert rules.amount_step == D(step)
    assert rules.min_notional == D(5)


def test_buy_fills_at_ask_plus_slippage_and_charges_fee_in_base() -> None:
    ex = exchange()
    fill = ex.create_market_order(order(Side.BUY, "0.01"))
    price = D(50000) * D("1.002")
    assert fill.price == price and fill.cost == D("0.01") * price
    assert fill.fee == D("0.01") * D("0.001") and fill.fee_asset == "BTC"
    assert ex.balances["USDT"] == D(1000) - fill.cost
    assert ex.balances["BTC"] == D("0.01") + D("0.01") - fill.fee


def test_sell_fills_at_bid_minus_slippage_and_charges_fee_in_quote() -> None:
    ex = exchange()
    fill = ex.create_market_order(order(Side.SELL, "0.005"))
    assert fill.price == D(50000) * D("0.998")
    assert fill.fee_asset == "USDT" and fill.fee == fill.cost * D("0.001")
    assert ex.balances["USDT"] == D(1000) + fill.cost - fill.fee
    assert ex.balances["BTC"] == D("0.005")


@pytest.mark.parametrize(
    ("amount", "code"), [("0.000015", "not a multiple"), ("0.00009", "notional")]
)
def test_orders_breaking_market_rules_are_rejected(amount: str, code: str) -> None:
    ex = exchange()
    with pytest.raises(OrderRejected, match=code):
        ex.create_market_order(order(Side.BUY, amount))
    assert ex.balances == {"USDT": D(1000), "BTC": D("0.01")}


def test_insufficient_funds_for_buy_and_sell() -> None:
    ex = exchange()
    with pytest.raises(InsufficientFunds, match="only 1000"):
        ex.create_market_order(order(Side.BUY, "0.1"))
    with pytest.raises(InsufficientFunds, match=r"only 0\.01"):
        ex.create_market_order(order(Side.SELL, "0.02"))


def test_bad_prices_and_unknown_assets() -> None:
    ex = exchange()
    for bad in (D(0), D(-1), D("NaN")):
        with pytest.raises(DataError, match="BTC"):
            ex.set_prices({"BTC": bad}, T0)
    with pytest.raises(UnknownSymbol, match="SOL"):
        ex.snapshot(["BTC", "SOL"], "USDT")


def test_deterministic_and_fetch_order_finds_the_fill() -> None:
    a, b = exchange(), exchange()
    fa = a.create_market_order(order(Side.BUY, "0.003"))
    fb = b.create_market_order(order(Side.BUY, "0.003"))
    assert fa == fb and a.balances == b.balances
    assert a.fetch_order("id-1", "BTC/USDT") == fa
    assert a.fetch_order("nope", "BTC/USDT") is None


def test_balances_persist_through_the_state_file(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "paper.json")
    ex = exchange(on_change=state.save_balances)
    ex.create_market_order(order(Side.SELL, "0.005"))
    assert state.balances() == ex.balances
    state.path.write_text("{not json")
    with pytest.raises(DataError, match="paper reset"):
        state.balances()


def test_orders_survive_a_restart_through_the_state_file(tmp_path: Path) -> None:
    """A crash after a paper fill: the next process finds the order by its client id."""
    state = StateFile(tmp_path / "paper.json")
    first = exchange(on_order=state.save_account)
    fill = first.create_market_order(order(Side.SELL, "0.004"))
    restarted = PaperExchange("USDT", state.balances() or {}, D("0.001"), orders=state.orders())
    assert restarted.fetch_order("id-1", "BTC/USDT") == fill
    assert restarted.balances == first.balances
    assert restarted.fetch_order("id-2", "BTC/USDT") is None
