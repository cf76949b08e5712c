"""CcxtExchange through the real ``ccxt.coinbase`` (Advanced Trade), answered by a local double.

CCXT builds and signs the ES256 JWT, sends, parses and maps errors for real; the double
verifies the JWT with the public key (tests/doubles/coinbase.py). Nothing touches the network.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from doubles.binance import Fault
from doubles.coinbase import CoinbaseDouble, new_ed25519_key_pair, new_key_pair
from doubles.wire import snapshot_calls
from rebalancer.adapters.ccxt import CcxtExchange, MarketDataRejected, errors, make_client
from rebalancer.adapters.ccxt import exchange as exchange_module
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import (
    AuthError,
    BelowMinimum,
    ConfigError,
    InsufficientFunds,
    OrderOutcomeUnknown,
    OrderRejected,
    RetryLater,
)
from rebalancer.core.model import ZERO, OrderRequest, Side
from rebalancer.core.planner import PlanPolicy, plan
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.service import id_stamp, run_cycle

KEY = "organizations/0b2e1f3c-org/apiKeys/7d4c9a1e-key"
PRIVATE, PUBLIC = new_key_pair()
BOOKS = {
    "BTC-USD": ("60000.00", "60000.01"),
    "ETH-USD": ("3000.00", "3000.01"),
    "SOL-USD": ("150.00", "150.01"),
    "ADA-USD": ("0.5000", "0.5001"),
    "DOGE-USD": ("0.10000", "0.10001"),
    "LTC-USD": ("80.00", "80.01"),
    "LINK-USD": ("15.000", "15.001"),
    "XRP-USD": ("0.6000", "0.6001"),
    "DOT-USD": ("5.000", "5.001"),
    "AVAX-USD": ("30.00", "30.01"),
}
TEN = ["BTC", "ETH", "SOL", "ADA", "DOGE", "LTC", "LINK", "XRP", "DOT", "AVAX"]


def build(private: str = PRIVATE, **kw: Any) -> tuple[Any, CoinbaseDouble, CcxtExchange]:
    client = make_client("coinbase", KEY, private, rateLimit=1)
    double = CoinbaseDouble(
        KEY,
        PUBLIC,
        balances=kw.pop("balances", {"USD": "1000", "BTC": "0.05"}),
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
        asset, f"{asset}/USD", side, Decimal(amount), Decimal(price), cost, cost * 6 / 1000, cid
    )


ORDERS = ("POST", "/api/v3/brokerage/orders")
BY_ID = ("GET", "/api/v3/brokerage/orders/historical/{order_id}")
LIST = ("GET", "/api/v3/brokerage/orders/historical/batch")


# -- markets and snapshots ------------------------------------------------------------------


def test_snapshot_costs_the_same_requests_for_3_and_10_assets() -> None:
    counts = snapshot_calls(build, (TEN[:3], TEN), "USD")
    assert (
        counts[0]
        == counts[1]
        == {
            # markets: spot products, the fee tier, the (empty) futures products
            ("GET", "/api/v3/brokerage/market/products"): 2,
            ("GET", "/api/v3/brokerage/transaction_summary"): 1,
            # each cycle: one balance page, one batched best bid/ask
            ("GET", "/api/v3/brokerage/accounts"): 1,
            ("GET", "/api/v3/brokerage/best_bid_ask"): 1,
        }
    )


def test_snapshot_reads_bid_ask_rules_and_fee_tier() -> None:
    _, double, exchange = build()
    snap = exchange.snapshot(["BTC", "SOL"], "USD")
    assert snap.balances == {"BTC": Decimal("0.05"), "SOL": 0, "USD": Decimal("1000")}
    assert (snap.bids["BTC"], snap.asks["BTC"]) == (Decimal("60000.00"), Decimal("60000.01"))
    assert snap.prices["BTC"] == Decimal("60000.005")  # the book's mid: no last price sent
    rules = snap.markets["SOL"]
    assert rules.amount_step == Decimal("0.001")  # base_increment
    assert rules.min_amount == Decimal("0.001")  # base_min_size
    assert rules.min_notional == Decimal("1")  # quote_min_size
    assert rules.taker_fee == Decimal("0.006")  # transaction_summary fee_tier
    query = next(r for r in double.log if r.path.endswith("best_bid_ask")).params
    assert query["product_ids"] == "BTC-USD,SOL-USD"


def test_stale_book_is_refused() -> None:
    _, double, exchange = build()
    double.book_age_s["BTC-USD"] = 120
    with pytest.raises(MarketDataRejected, match="stale"):
        exchange.snapshot(["BTC"], "USD")


# -- a rebalance ----------------------------------------------------------------------------


def test_rebalance_sells_then_buys_with_our_client_ids_on_the_wire() -> None:
    _, double, exchange = build()
    targets = {"BTC": Decimal("0.4"), "ETH": Decimal("0.4"), "USD": Decimal("0.2")}
    policy = PlanPolicy(min_trade=Decimal(10), slippage=Decimal("0.001"))
    planned = plan(exchange.snapshot(["BTC", "ETH"], "USD"), targets, policy)
    assert [o.asset for o in planned.sells] == ["BTC"]
    fills = [
        exchange.create_market_order(replace(o, client_order_id=f"cb-run1-{i}"))
        for i, o in enumerate(planned.orders)
    ]
    wire = double.placed()
    assert [(b["side"], b["client_order_id"]) for b in wire] == [
        ("SELL", "cb-run1-0"),
        ("BUY", "cb-run1-1"),
    ]
    # CCXT would send its own "ccxt-<uuid>"; ours is the one Coinbase stores
    assert [o.client_order_id for o in double.orders] == ["cb-run1-0", "cb-run1-1"]
    assert set(wire[0]["order_configuration"]["market_market_ioc"]) == {"base_size"}
    assert set(wire[1]["order_configuration"]["market_market_ioc"]) == {"quote_size"}
    assert [f.fee_asset for f in fills] == ["USD", "USD"]
    assert fills[0].fee == (fills[0].cost * Decimal("0.006")).quantize(Decimal("1e-10"))
    assert [f.client_order_id for f in fills] == ["cb-run1-0", "cb-run1-1"]
    after = exchange.snapshot(["BTC", "ETH"], "USD")
    total = sum(after.amount(a) * after.price(a) for a in ("BTC", "ETH", "USD"))
    for asset, target in targets.items():
        assert abs(after.amount(asset) * after.price(asset) / total - target) < Decimal("0.01")


def test_market_buy_by_quote_includes_the_fee_and_truncates_to_quote_increment() -> None:
    """The venue model: Coinbase spends the quote_size sent, fee included, so the order
    sends cost + fee (300.019 + 1.800006) truncated to the quote increment 0.01."""
    _, double, exchange = build()
    fill = exchange.create_market_order(
        replace(
            order(Side.BUY, "ETH", "0.1", "3000.01", "cb-buy"), expected_cost=Decimal("300.019")
        )
    )
    assert double.placed()[0]["order_configuration"]["market_market_ioc"] == {
        "quote_size": "301.81"  # truncated to quote_increment 0.01, never rounded up
    }
    # the whole quote_size is spent, fee included; the amount is not cut to the increment
    assert double.balances["USD"] == Decimal("1000") - Decimal("301.81")
    assert abs(fill.cost + fill.fee - Decimal("301.81")) < Decimal("1e-9")  # CCXT floats
    assert double.balances["ETH"] == Decimal("301.81") / Decimal("1.006") / Decimal("3000.01")
    assert abs(fill.amount - double.balances["ETH"]) < Decimal("1e-15")


def test_sell_amount_truncated_to_base_increment() -> None:
    _, double, exchange = build(balances={"USD": "0", "SOL": "5"})
    fill = exchange.create_market_order(order(Side.SELL, "SOL", "1.23456", "150", "cb-sol"))
    assert double.placed()[0]["order_configuration"]["market_market_ioc"] == {"base_size": "1.234"}
    assert fill.amount == Decimal("1.234")
    assert double.balances["SOL"] == Decimal("3.766")


def test_amount_below_the_increment_is_below_minimum_and_not_sent() -> None:
    _, double, exchange = build(balances={"USD": "0", "SOL": "5"})
    with pytest.raises(BelowMinimum):
        exchange.create_market_order(order(Side.SELL, "SOL", "0.0004", "150", "cb-dust"))
    assert double.placed() == []


def test_quote_size_below_minimum_is_rejected_by_the_exchange() -> None:
    _, double, exchange = build()
    small = replace(
        order(Side.BUY, "ETH", "0.0001", "3000", "cb-small"), expected_cost=Decimal("0.5")
    )
    with pytest.raises(OrderRejected, match="PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"):
        exchange.create_market_order(small)
    assert double.orders == []


def test_insufficient_funds_is_mapped() -> None:
    _, double, exchange = build()
    with pytest.raises(InsufficientFunds, match="PREVIEW_INSUFFICIENT_FUND"):
        exchange.create_market_order(order(Side.SELL, "BTC", "1", "60000", "cb-big"))
    assert double.orders == []


def test_partial_fill_returns_the_real_filled_amount() -> None:
    _, double, exchange = build()
    double.liquidity["BTC-USD"] = Decimal("0.004")
    fill = exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-part"))
    assert (fill.amount, fill.status) == (Decimal("0.004"), "canceled")
    assert double.balances["BTC"] == Decimal("0.046")


def test_open_order_is_polled_by_its_exchange_id_until_final() -> None:
    _, double, exchange = build()
    double.fill_after_polls = 2
    fill = exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-slow"))
    assert fill.status == "closed"
    assert double.calls[BY_ID] == 2
    assert double.calls[LIST] == 1  # the check before sending


# -- unknown outcomes, look-ups by client id --------------------------------------------------


def test_timeout_after_acceptance_then_found_by_client_id() -> None:
    _, double, exchange = build()
    double.inject(*ORDERS, Fault.TIMEOUT_AFTER)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-lost"))
    assert caught.value.client_order_id == "cb-lost"
    assert len(double.orders) == 1
    found = exchange.fetch_order("cb-lost", "BTC/USD")
    assert found is not None
    assert (found.amount, found.price, found.fee_asset) == (
        Decimal("0.01"),
        Decimal("60000"),
        "USD",
    )
    listed = [r for r in double.log if r.path.endswith("/batch")][-1].params
    assert listed["product_id"] == "BTC-USD" and "start_date" in listed


def test_server_error_on_create_is_outcome_unknown_not_rejected() -> None:
    _, double, exchange = build()
    double.inject(*ORDERS, Fault.HTTP_500)
    with pytest.raises(OrderOutcomeUnknown, match="INTERNAL"):
        exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-500"))


def test_rate_limit_on_create_is_rejected_and_on_read_retry() -> None:
    _, double, exchange = build()
    double.inject(*ORDERS, Fault.HTTP_429)
    with pytest.raises(OrderRejected, match="RESOURCE_EXHAUSTED"):
        exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-429"))
    double.inject("GET", "/api/v3/brokerage/accounts", Fault.HTTP_429)
    with pytest.raises(RetryLater):
        exchange.snapshot(["BTC"], "USD")


def test_resending_a_client_id_returns_the_first_order() -> None:
    client, double, _ = build()
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        check_before_send=False,
    )
    first = exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-twice"))
    again = exchange.create_market_order(order(Side.SELL, "BTC", "0.01", "60000", "cb-twice"))
    assert len(double.placed()) == 2 and len(double.orders) == 1
    assert again.exchange_order_id == first.exchange_order_id
    assert double.balances["BTC"] == Decimal("0.04")


def test_a_look_up_follows_the_cursor_and_gives_up_only_past_its_page_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, double, exchange = build()
    assert exchange.fetch_order("cb-none", "BTC/USD") is None
    for i in range(5):
        exchange.create_market_order(order(Side.SELL, "BTC", "0.001", "60000", f"cb-{i}"))
    monkeypatch.setattr(exchange_module, "LOOKUP_PAGE", 2)
    # newest first: cb-0 is on the third page of two; the cursor leads there
    found = exchange.fetch_order("cb-0", "BTC/USD")
    assert found is not None and found.client_order_id == "cb-0"
    assert exchange.fetch_order("cb-older", "BTC/USD") is None  # three pages, complete
    cursors = [r.params["cursor"] for r in double.log if "cursor" in r.params]
    assert cursors == ["2", "4", "2", "4"], "the later pages were asked for by cursor"
    monkeypatch.setattr(exchange_module, "LOOKUP_PAGES", 2)  # 4 of 5 orders: cannot tell
    with pytest.raises(RetryLater, match="cannot tell"):
        exchange.fetch_order("cb-older", "BTC/USD")


def test_unknown_order_id_reads_as_not_found_although_ccxt_leaves_it_plain() -> None:
    client, _, exchange = build()
    exchange.markets()
    with pytest.raises(ccxt.ExchangeError, match="orderID was not found") as caught:
        client.fetch_order("no-such-id", "BTC/USD")
    assert type(caught.value) is ccxt.ExchangeError  # CCXT's broad rule misses it
    assert errors.action_for(caught.value, create=False) is errors.Action.NOT_FOUND


# -- keys -----------------------------------------------------------------------------------


def test_wrong_private_key_is_auth_error_without_leaking_it() -> None:
    other, _ = new_key_pair()
    _, double, exchange = build(private=other)
    with pytest.raises(AuthError, match="401") as caught:
        exchange.snapshot(["BTC"], "USD")
    e: BaseException | None = caught.value
    while e is not None:
        assert other not in str(e) and "PRIVATE KEY" not in str(e)
        e = e.__cause__
    assert double.orders == []


def test_a_jwt_is_only_good_for_its_own_request() -> None:
    client, _, _ = build()
    headers = client.sign("brokerage/accounts", ["v3", "private"], "GET", {})["headers"]
    jwt = headers["Authorization"].removeprefix("Bearer ")
    claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    assert claims["uri"] == "GET api.coinbase.com/api/v3/brokerage/accounts"
    assert claims["sub"] == KEY and claims["exp"] - claims["nbf"] == 120
    # replayed against another endpoint, the double refuses it
    replay = client.session.get(
        "https://api.coinbase.com/api/v3/brokerage/best_bid_ask", headers=headers
    )
    assert replay.status_code == 401
    ok = client.session.get("https://api.coinbase.com/api/v3/brokerage/accounts", headers=headers)
    assert ok.status_code == 200


def test_sandbox_is_refused_with_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no test network for 'coinbase'"):
        make_client("coinbase", KEY, PRIVATE, sandbox=True)


def test_the_service_runs_a_cycle_on_coinbase() -> None:
    _, double, exchange = build(balances={"USD": "200", "BTC": "0.03"})
    targets = {"BTC": Decimal("0.4"), "ETH": Decimal("0.3"), "SOL": Decimal("0.3"), "USD": ZERO}
    strategy = Strategy(
        "USD", targets, Threshold(Decimal("0.05")), PlanPolicy(min_trade=Decimal(10))
    )
    at = datetime(2026, 3, 1, tzinfo=UTC)
    report = run_cycle(exchange, MemoryJournal(), MemoryNotifier(), strategy, at)
    assert not report.failed and not report.stopped
    assert (report.fills[0].side, report.fills[0].asset) == (Side.SELL, "BTC")
    assert {f.asset for f in report.fills[1:]} == {"ETH", "SOL"}
    ids = [b["client_order_id"] for b in double.placed()]
    assert ids == [f.client_order_id for f in report.fills]
    assert all(i.startswith("rb" + id_stamp(at)) for i in ids)
    assert report.drift_after is not None
    assert all(abs(a.drift) < Decimal("0.02") for a in report.drift_after.assets)
    assert double.balances["USD"] >= 0


def test_ed25519_cdp_keys_sign_with_eddsa() -> None:
    secret, public = new_ed25519_key_pair()
    assert len(secret) == 88  # what CCXT takes for an Ed25519 CDP key
    client = make_client("coinbase", KEY, secret, rateLimit=1)
    double = CoinbaseDouble(KEY, public, balances={"USD": "500"}, books=BOOKS).mount(client)
    exchange = CcxtExchange(
        client, max_ticker_age=timedelta(seconds=30), max_price_jump=Decimal("0.2")
    )
    assert exchange.snapshot(["BTC"], "USD").balances["USD"] == Decimal(500)
    jwt = client.sign("brokerage/accounts", ["v3", "private"], "GET", {})["headers"]
    head = json.loads(base64.urlsafe_b64decode(jwt["Authorization"].split(".")[0][7:] + "=="))
    assert head["alg"] == "EdDSA"
    other, _ = new_ed25519_key_pair()
    wrong = make_client("coinbase", KEY, other, rateLimit=1)
    double.mount(wrong)
    with pytest.raises(AuthError):
        CcxtExchange(
            wrong, max_ticker_age=timedelta(seconds=30), max_price_jump=Decimal("0.2")
        ).snapshot(["BTC"], "USD")
