"""CcxtExchange through the real ``ccxt.kraken``, answered by a local Kraken double."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from doubles.binance import Fault
from doubles.kraken import KrakenDouble
from doubles.wire import snapshot_calls
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.core.errors import (
    AuthError,
    InsufficientFunds,
    OrderOutcomeUnknown,
    OrderRejected,
    RetryLater,
)
from rebalancer.core.model import OrderRequest, Side
from rebalancer.core.planner import PlanPolicy, plan

KEY = "kraken-key-5d2e81"
SECRET = base64.b64encode(b"kraken-secret-bytes-a9f3c7e1").decode()
BOOKS = {
    "XXBTZUSD": ("60000.0", "60000.1"),
    "XETHZUSD": ("3000.00", "3000.01"),
    "SOLUSD": ("150.00", "150.01"),
}


def build(secret: str = SECRET, **kw: Any) -> tuple[Any, KrakenDouble, CcxtExchange]:
    client = make_client("kraken", KEY, secret, rateLimit=1)
    double = KrakenDouble(
        KEY,
        SECRET,
        balances=kw.pop("balances", {"ZUSD": "1000", "XXBT": "0.05"}),
        books=BOOKS,
        **kw,
    ).mount(client)
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )
    return client, double, exchange


def order(side: Side, asset: str, amount: str, price: str, cid: str) -> OrderRequest:
    cost = Decimal(amount) * Decimal(price)
    return OrderRequest(
        asset, f"{asset}/USD", side, Decimal(amount), Decimal(price), cost, cost * 4 / 1000, cid
    )


def test_snapshot_costs_the_same_requests_for_1_and_3_assets() -> None:
    counts = snapshot_calls(build, (["BTC"], ["BTC", "ETH", "SOL"]), "USD")
    assert (
        counts[0]
        == counts[1]
        == {
            ("GET", "/0/public/Assets"): 1,
            ("GET", "/0/public/AssetPairs"): 1,
            ("POST", "/0/private/BalanceEx"): 1,
            ("GET", "/0/public/Ticker"): 1,
        }
    )


def test_snapshot_reads_kraken_codes_and_rules() -> None:
    _, _, exchange = build()
    snap = exchange.snapshot(["BTC", "ETH"], "USD")
    assert snap.balances == {"BTC": Decimal("0.05"), "ETH": 0, "USD": Decimal("1000")}
    assert (snap.bids["BTC"], snap.asks["BTC"]) == (Decimal("60000.0"), Decimal("60000.1"))
    rules = snap.markets["ETH"]
    assert rules.amount_step == Decimal("1e-8")  # lot_decimals 8
    assert rules.min_amount == Decimal("0.002")  # ordermin
    assert rules.min_notional == Decimal("0.5")  # costmin
    assert rules.taker_fee == Decimal("0.004")  # first tier of "fees", in percent


def test_rebalance_sends_our_client_id_and_fee_in_quote() -> None:
    _, double, exchange = build()
    targets = {"BTC": Decimal("0.4"), "ETH": Decimal("0.4"), "USD": Decimal("0.2")}
    policy = PlanPolicy(min_trade=Decimal(10), slippage=Decimal("0.001"))
    planned = plan(exchange.snapshot(["BTC", "ETH"], "USD"), targets, policy)
    assert [o.asset for o in planned.sells] == ["BTC"]
    fills = [
        exchange.create_market_order(dataclass_replace(o, f"kr-{i}"))
        for i, o in enumerate(planned.orders)
    ]
    wire = double.placed()
    assert [(r.params["type"], r.params["cl_ord_id"], r.params["oflags"]) for r in wire] == [
        ("sell", "kr-0", "fciq"),
        ("buy", "kr-1", "fciq"),
    ]
    assert "volume" in wire[1].params  # buys by amount on Kraken
    assert [f.fee_asset for f in fills] == ["USD", "USD"]
    # half up to cost_decimals 5, as the captured real order (7.105741 -> fee 0.018475)
    assert fills[0].fee == (fills[0].cost * Decimal("0.004")).quantize(
        Decimal("0.00001"), ROUND_HALF_UP
    )
    after = exchange.snapshot(["BTC", "ETH"], "USD")
    total = sum(after.amount(a) * after.price(a) for a in ("BTC", "ETH", "USD"))
    for asset, target in targets.items():
        assert abs(after.amount(asset) * after.price(asset) / total - target) < Decimal("0.01")


def dataclass_replace(o: OrderRequest, cid: str) -> OrderRequest:
    from dataclasses import replace

    return replace(o, client_order_id=cid)


def test_timeout_after_acceptance_then_found_by_client_id() -> None:
    _, double, exchange = build()
    double.inject("POST", "/0/private/AddOrder", Fault.TIMEOUT_AFTER)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "kr-lost"))
    assert caught.value.client_order_id == "kr-lost"
    assert len(double.placed()) == 1
    found = exchange.fetch_order("kr-lost", "BTC/USD")
    assert found is not None
    assert (found.amount, found.price, found.fee_asset) == (
        Decimal("0.01"),
        Decimal("60000"),
        "USD",
    )
    assert double.log[-1].params["cl_ord_id"] == "kr-lost"


def test_unknown_client_id_is_none_after_closed_and_open_orders() -> None:
    _, double, exchange = build()
    assert exchange.fetch_order("kr-none", "ETH/USD") is None
    assert double.calls[("POST", "/0/private/ClosedOrders")] == 1
    assert double.calls[("POST", "/0/private/OpenOrders")] == 1


def test_insufficient_funds_and_order_minimum() -> None:
    _, double, exchange = build()
    with pytest.raises(InsufficientFunds, match="EOrder:Insufficient funds"):
        exchange.create_market_order(order(Side.SELL, "BTC", "1", "60000", "kr-big"))
    with pytest.raises(OrderRejected, match="EOrder:Order minimum not met"):
        exchange.create_market_order(order(Side.SELL, "ETH", "0.001", "3000", "kr-small"))
    assert double.orders == []


def test_stale_nonce_on_create_is_rejected_not_placed_and_on_read_retry() -> None:
    client, double, _ = build()
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        check_before_send=False,
    )
    exchange.markets()
    double.last_nonce = 10**15
    with pytest.raises(OrderRejected, match=r"NOT placed.*EAPI:Invalid nonce"):
        exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "kr-nonce"))
    with pytest.raises(RetryLater):
        exchange.snapshot(["BTC"], "USD")
    assert double.orders == []


def test_wrong_secret_is_auth_error_without_leaking_it() -> None:
    wrong = base64.b64encode(b"not-the-secret-0000").decode()
    _, _, exchange = build(secret=wrong)
    with pytest.raises(AuthError, match="EAPI:Invalid signature") as caught:
        exchange.snapshot(["BTC"], "USD")
    e: BaseException | None = caught.value
    while e is not None:
        assert wrong not in str(e) and KEY not in str(e)
        e = e.__cause__
