"""CcxtExchange through the real ``ccxt.binance``, answered by a local Binance double.

CCXT signs, sends, parses and maps errors for real; only the HTTP transport is replaced
(tests/doubles/binance.py). Nothing touches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from doubles.binance import BinanceDouble, Fault, UnhandledRequest, fixture_markets
from doubles.wire import snapshot_calls
from rebalancer.adapters.ccxt import CcxtExchange, MarketDataRejected, make_client
from rebalancer.adapters.clock import ManualClock
from rebalancer.core.errors import (
    AuthError,
    BelowMinimum,
    ConfigError,
    InsufficientFunds,
    OrderOutcomeUnknown,
    OrderRejected,
    RetryLater,
    UnknownSymbol,
)
from rebalancer.core.model import OrderRequest, Side
from rebalancer.core.planner import PlanPolicy, plan

KEY = "test-api-key-7f3a9c21"
SECRET = "test-secret-b84e0d55"

BOOKS = {
    "BTCUSDT": ("60000.00", "60000.01"),
    "ETHUSDT": ("3000.00", "3000.01"),
    "ADAUSDT": ("0.5000", "0.5001"),
    "LTCUSDT": ("80.00", "80.01"),
    "XRPUSDT": ("0.6000", "0.6001"),
    "DOGEUSDT": ("0.10000", "0.10001"),
    "TRXUSDT": ("0.1200", "0.1201"),
    "BNBUSDT": ("600.0", "600.1"),
    "SOLUSDT": ("150.00", "150.01"),
    "LINKUSDT": ("15.000", "15.001"),
}
TEN = ["BTC", "ETH", "ADA", "LTC", "XRP", "DOGE", "TRX", "BNB", "SOL", "LINK"]


def build(
    balances: dict[str, str] | None = None, **double_kw: Any
) -> tuple[Any, BinanceDouble, CcxtExchange]:
    client = make_client("binance", KEY, SECRET, rateLimit=1)
    double = BinanceDouble(
        KEY,
        SECRET,
        balances=balances or {"USDT": "1000", "BTC": "0.05", "ETH": "0", "BNB": "1"},
        books=BOOKS,
        **double_kw,
    ).mount(client)
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )
    return client, double, exchange


@pytest.fixture
def env() -> Iterator[tuple[Any, BinanceDouble, CcxtExchange]]:
    yield build()


def sell(asset: str, amount: str, cid: str, price: str = "60000") -> OrderRequest:
    cost = Decimal(amount) * Decimal(price)
    return OrderRequest(
        asset, f"{asset}/USDT", Side.SELL, Decimal(amount), Decimal(price), cost, cost / 1000, cid
    )


def buy(asset: str, amount: str, cid: str, price: str = "60000.01") -> OrderRequest:
    cost = Decimal(amount) * Decimal(price)
    return OrderRequest(
        asset, f"{asset}/USDT", Side.BUY, Decimal(amount), Decimal(price), cost, cost / 1000, cid
    )


def chain(exc: BaseException) -> Iterator[BaseException]:
    e: BaseException | None = exc
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


# -- markets and snapshots ------------------------------------------------------------------


def test_markets_loaded_once_then_refreshed_on_schedule() -> None:
    client, double, _ = build()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        clock=clock,
        markets_ttl=timedelta(hours=1),
    )
    exchange.markets()
    exchange.markets()
    clock.set(clock.now() + timedelta(minutes=59))
    exchange.markets()
    assert double.calls[("GET", "/api/v3/exchangeInfo")] == 1
    clock.set(clock.now() + timedelta(minutes=2))
    exchange.markets()
    assert double.calls[("GET", "/api/v3/exchangeInfo")] == 2


def test_snapshot_costs_the_same_requests_for_3_and_10_assets() -> None:
    counts = snapshot_calls(build, (TEN[:3], TEN), "USDT")
    assert (
        counts[0]
        == counts[1]
        == {
            ("GET", "/api/v3/exchangeInfo"): 1,
            ("GET", "/api/v3/account"): 1,
            ("GET", "/api/v3/ticker/24hr"): 1,
        }
    )


def test_snapshot_values_are_decimal_from_the_wire(env: Any) -> None:
    _, _, exchange = env
    snap = exchange.snapshot(["BTC", "ETH"], "USDT")
    assert snap.balances == {"BTC": Decimal("0.05"), "ETH": 0, "USDT": Decimal("1000")}
    assert snap.prices["BTC"] == Decimal("60000.01")  # last
    assert snap.bids["BTC"] == Decimal("60000.00")
    assert snap.asks["ETH"] == Decimal("3000.01")
    assert all(isinstance(v, Decimal) for v in [*snap.prices.values(), *snap.balances.values()])


def test_without_batched_tickers_one_request_per_symbol(env: Any) -> None:
    client, double, exchange = env
    client.has = dict(client.has, fetchTickers=False)
    exchange.snapshot(TEN[:4], "USDT")
    assert double.calls[("GET", "/api/v3/ticker/24hr")] == 4


def test_market_rules_match_the_fixture_filters(env: Any) -> None:
    _, _, exchange = env
    for symbol, market in fixture_markets().items():
        filters = {f["filterType"]: f for f in market["info"]["filters"]}
        rules = exchange.rules(symbol)
        lot, market_lot = filters["LOT_SIZE"], filters["MARKET_LOT_SIZE"]
        assert rules.amount_step == Decimal(lot["stepSize"]), symbol
        assert rules.min_amount == Decimal(lot["minQty"]), symbol
        assert rules.max_amount == min(Decimal(lot["maxQty"]), Decimal(market_lot["maxQty"]))
        assert rules.min_notional == Decimal(filters["NOTIONAL"]["minNotional"]), symbol
        assert rules.taker_fee == Decimal("0.001")
        assert (rules.base, rules.quote) == (market["base"], market["quote"])


def test_unknown_symbol_names_near_matches(env: Any) -> None:
    _, _, exchange = env
    with pytest.raises(UnknownSymbol, match=r"BTCC/USDT.*did you mean BTC/USDT"):
        exchange.snapshot(["BTCC"], "USDT")


def test_stale_ticker_is_refused(env: Any) -> None:
    _, double, exchange = env
    double.ticker_age_ms["ETHUSDT"] = 90_000
    with pytest.raises(MarketDataRejected, match=r"ETH/USDT: stale, 9\d\.\d s old"):
        exchange.snapshot(["BTC", "ETH"], "USDT")


def test_ticker_without_timestamp_fails_closed(env: Any) -> None:
    _, _, exchange = env
    ticker = {"symbol": "BTC/USDT", "timestamp": None, "last": 1.0, "bid": 1.0, "ask": 1.0}
    with pytest.raises(MarketDataRejected, match="no timestamp"):
        exchange._check_ticker("BTC/USDT", ticker, datetime.now(UTC))


def test_crossed_book_is_refused(env: Any) -> None:
    _, double, exchange = env
    double.set_book("BTCUSDT", "60010.00", "60000.00")
    with pytest.raises(RetryLater, match=r"crossed book, bid 60010\.0 > ask 60000\.0"):
        exchange.snapshot(["BTC"], "USDT")


def test_price_jump_is_refused_once_then_accepted(env: Any) -> None:
    _, double, exchange = env
    exchange.snapshot(["BTC", "ETH"], "USDT")
    double.set_book("ETHUSDT", "4500.00", "4500.01")
    with pytest.raises(MarketDataRejected, match=r"ETH/USDT 3000\.01 -> 4500\.01"):
        exchange.snapshot(["BTC", "ETH"], "USDT")
    assert exchange.snapshot(["BTC", "ETH"], "USDT").prices["ETH"] == Decimal("4500.01")


def test_truncated_balance_body_is_not_read_as_empty(env: Any) -> None:
    _, double, exchange = env
    double.inject("GET", "/api/v3/account", Fault.TRUNCATED)
    with pytest.raises(RetryLater, match="could not be parsed"):
        exchange.snapshot(["BTC"], "USDT")


@pytest.mark.parametrize(
    "fault", [Fault.HTTP_429, Fault.HTTP_418, Fault.HTTP_503, Fault.TIMEOUT_BEFORE]
)
def test_transient_read_failures_are_retry_later(env: Any, fault: Fault) -> None:
    _, double, exchange = env
    exchange.markets()
    double.inject("GET", "/api/v3/ticker/24hr", fault)
    with pytest.raises(RetryLater):
        exchange.snapshot(["BTC"], "USDT")


def test_timestamp_outside_recv_window_on_read_is_retry_later() -> None:
    _, _, exchange = build(clock_offset_ms=-60_000)
    exchange.markets()  # public, unsigned
    with pytest.raises(RetryLater, match="InvalidNonce"):
        exchange.snapshot(["BTC"], "USDT")


# -- start-up checks ------------------------------------------------------------------------


def test_ccxt_retries_are_refused() -> None:
    client = make_client("binance", KEY, SECRET, options={"maxRetriesOnFailure": 2})
    with pytest.raises(ConfigError, match="maxRetriesOnFailure=2"):
        CcxtExchange(client, max_ticker_age=timedelta(seconds=5), max_price_jump=Decimal("0.1"))
    client = make_client("binance", KEY, SECRET, options={"order": {"maxRetriesOnFailure": 1}})
    with pytest.raises(ConfigError, match=r"options\.order\.maxRetriesOnFailure=1"):
        CcxtExchange(client, max_ticker_age=timedelta(seconds=5), max_price_jump=Decimal("0.1"))


def test_rate_limit_off_is_refused() -> None:
    client = make_client("binance", KEY, SECRET, enableRateLimit=False)
    with pytest.raises(ConfigError, match="enableRateLimit"):
        CcxtExchange(client, max_ticker_age=timedelta(seconds=5), max_price_jump=Decimal("0.1"))


def test_venue_without_client_id_lookup_is_refused() -> None:
    client = make_client("bitstamp", KEY, SECRET)
    with pytest.raises(
        ConfigError, match="'bitstamp': live trading supports binance, coinbase, kraken"
    ):
        CcxtExchange(client, max_ticker_age=timedelta(seconds=5), max_price_jump=Decimal("0.1"))


def test_sandbox_talks_to_the_testnet_host() -> None:
    client = make_client("binance", KEY, SECRET, sandbox=True, rateLimit=1)
    double = BinanceDouble(
        KEY, SECRET, balances={"USDT": "50"}, books=BOOKS, host="testnet.binance.vision"
    ).mount(client)
    exchange = CcxtExchange(
        client, max_ticker_age=timedelta(seconds=30), max_price_jump=Decimal("0.2")
    )
    assert exchange.snapshot(["BTC"], "USDT").balances["USDT"] == Decimal("50")
    assert double.calls[("GET", "/api/v3/account")] == 1


def test_unhandled_request_never_reaches_the_network(env: Any) -> None:
    client, _, _ = env
    with pytest.raises(UnhandledRequest):
        client.fetch_ohlcv("BTC/USDT")


# -- orders -----------------------------------------------------------------------------------


def test_full_rebalance_sells_then_buys(env: Any) -> None:
    _, double, exchange = env
    targets = {"BTC": Decimal("0.5"), "ETH": Decimal("0.3"), "USDT": Decimal("0.2")}
    policy = PlanPolicy(min_trade=Decimal(10), slippage=Decimal("0.001"))
    snap = exchange.snapshot(["BTC", "ETH"], "USDT")
    first = plan(snap, targets, policy)
    assert [o.asset for o in first.sells] == ["BTC"]
    fills = []
    for i, order in enumerate(first.sells):
        fills.append(exchange.create_market_order(_with_id(order, f"run1-sell-{i}")))
    snap = exchange.snapshot(["BTC", "ETH"], "USDT")
    second = plan(snap, targets, policy, phase="buys")
    assert [o.asset for o in second.buys] == ["ETH"]
    for i, order in enumerate(second.buys):
        fills.append(exchange.create_market_order(_with_id(order, f"run1-buy-{i}")))

    wire = double.placed()
    assert [(r.params["side"], r.params["newClientOrderId"]) for r in wire] == [
        ("SELL", "run1-sell-0"),
        ("BUY", "run1-buy-0"),
    ]
    assert [f.client_order_id for f in fills] == ["run1-sell-0", "run1-buy-0"]
    after = exchange.snapshot(["BTC", "ETH"], "USDT")
    total = sum(after.amount(a) * after.price(a) for a in ("BTC", "ETH", "USDT"))
    for asset, target in targets.items():
        weight = after.amount(asset) * after.price(asset) / total
        assert abs(weight - target) < Decimal("0.01"), (asset, weight)
    assert after.amount("BTC") == Decimal("0.05") - fills[0].amount
    assert after.amount("ETH") == fills[1].amount - fills[1].fee  # fee taken in base


def test_ten_asset_rebalance_from_cash_respects_every_market_step() -> None:
    _, double, exchange = build(balances={"USDT": "20000"})
    targets = {a: Decimal("0.09") for a in TEN} | {"USDT": Decimal("0.1")}
    policy = PlanPolicy(min_trade=Decimal(10), slippage=Decimal("0.002"))
    snap = exchange.snapshot(TEN, "USDT")
    planned = plan(snap, targets, policy)
    assert planned.sells == () and len(planned.buys) == 10
    for i, order in enumerate(planned.buys):
        exchange.create_market_order(_with_id(order, f"ten-{i}"))
    assert len(double.placed()) == 10
    assert all(o.status == "FILLED" for o in double.orders)
    after = exchange.snapshot(TEN, "USDT")
    total = sum(after.amount(a) * after.price(a) for a in [*TEN, "USDT"])
    for asset in TEN:
        weight = after.amount(asset) * after.price(asset) / total
        assert abs(weight - Decimal("0.09")) < Decimal("0.005"), (asset, weight)
    assert after.amount("USDT") >= 0


def _with_id(order: OrderRequest, cid: str) -> OrderRequest:
    from dataclasses import replace

    return replace(order, client_order_id=cid)


def test_our_client_id_is_the_one_on_the_wire(env: Any) -> None:
    _, double, exchange = env
    fill = exchange.create_market_order(sell("BTC", "0.001", "cycle-42-BTC-sell"))
    (request,) = double.placed()
    assert request.signed
    assert request.params["newClientOrderId"] == "cycle-42-BTC-sell"
    assert double.orders[0].client_order_id == "cycle-42-BTC-sell"
    assert fill.client_order_id == "cycle-42-BTC-sell"
    assert fill.exchange_order_id == str(double.orders[0].order_id)
    # one look-up (-2013: no such order yet), one POST; the FULL response is final
    assert sum(n for (method, _), n in double.calls.items() if method == "POST") == 1
    assert double.calls[("GET", "/api/v3/order")] == 1
    assert double.calls[("GET", "/api/v3/myTrades")] == 0


def test_sending_the_same_client_id_twice_trades_once(env: Any) -> None:
    _, double, exchange = env
    first = exchange.create_market_order(sell("BTC", "0.01", "once-only"))
    again = exchange.create_market_order(sell("BTC", "0.01", "once-only"))
    assert len(double.placed()) == 1  # Binance itself would accept the reused id
    assert (again.exchange_order_id, again.amount, again.fee) == (
        first.exchange_order_id,
        first.amount,
        first.fee,
    )
    assert double.balances["BTC"] == Decimal("0.04")


def test_failed_check_before_send_skips_the_leg_without_sending(env: Any) -> None:
    _, double, exchange = env
    exchange.markets()
    double.inject("GET", "/api/v3/order", Fault.HTTP_503)
    with pytest.raises(OrderRejected, match="NOT sent"):
        exchange.create_market_order(sell("BTC", "0.01", "unchecked"))
    assert double.placed() == []


def test_sell_amount_is_truncated_to_the_step(env: Any) -> None:
    _, double, exchange = env
    fill = exchange.create_market_order(sell("BTC", "0.0123456789", "trunc-1"))
    assert double.placed()[0].params["quantity"] == "0.01234"
    assert fill.amount == Decimal("0.01234")
    assert fill.price == Decimal("60000")
    assert fill.cost == Decimal("740.4")


def test_amount_below_one_step_is_below_minimum_and_not_sent(env: Any) -> None:
    _, double, exchange = env
    with pytest.raises(BelowMinimum, match="truncates to 0"):
        exchange.create_market_order(sell("BTC", "0.000009", "tiny-1"))
    assert double.placed() == []


def test_market_buy_is_sent_by_quote_cost(env: Any) -> None:
    _, double, exchange = env
    fill = exchange.create_market_order(buy("BTC", "0.002", "buy-cost-1"))
    params = double.placed()[0].params
    assert params["quoteOrderQty"] == "120"  # 120.00002 truncated to the 0.01 tick
    assert "quantity" not in params
    # 120.00002 USDT truncated to the 0.01 tick -> 120 USDT buys 0.00199 BTC (step 0.00001)
    assert fill.amount == Decimal("0.00199")
    assert fill.cost == Decimal("0.00199") * Decimal("60000.01")


def test_fees_in_quote_for_a_sell_and_in_base_for_a_buy(env: Any) -> None:
    _, _, exchange = env
    sold = exchange.create_market_order(sell("BTC", "0.01", "fee-sell"))
    assert (sold.fee_asset, sold.fee) == ("USDT", Decimal("0.6"))
    bought = exchange.create_market_order(buy("ETH", "0.1", "fee-buy", price="3000.01"))
    assert bought.fee_asset == "ETH"
    assert bought.fee == bought.amount * Decimal("0.001")


def test_two_fills_give_the_average_price_and_the_summed_fee(env: Any) -> None:
    _, double, exchange = env
    double.split_fills = True
    fill = exchange.create_market_order(sell("BTC", "0.01", "two-fills"))
    assert len(double.orders[0].fills) == 2
    assert fill.amount == Decimal("0.01")
    assert fill.cost == Decimal("0.005") * Decimal("60000") + Decimal("0.005") * Decimal("59999.99")
    assert fill.price == fill.cost / fill.amount
    assert (fill.fee_asset, fill.fee) == ("USDT", Decimal("0.3") + Decimal("0.29999995"))


def test_fee_in_bnb_when_the_account_pays_fees_in_bnb() -> None:
    _, double, exchange = build(bnb_fees=True)
    sold = exchange.create_market_order(sell("BTC", "0.01", "fee-bnb"))
    expected = (Decimal("600") * Decimal("0.001") * Decimal("0.75") / Decimal("600.1")).quantize(
        Decimal("0.00000001"), rounding="ROUND_DOWN"
    )
    assert (sold.fee_asset, sold.fee) == ("BNB", expected)
    assert double.balances["BNB"] == Decimal("1") - expected
    assert double.balances["USDT"] == Decimal("1600")


def test_partial_fill_then_expiry_reports_the_real_amount(env: Any) -> None:
    _, double, exchange = env
    double.liquidity["BTCUSDT"] = Decimal("0.004")
    fill = exchange.create_market_order(sell("BTC", "0.01", "thin-book"))
    assert (fill.amount, fill.status) == (Decimal("0.004"), "expired")
    assert fill.cost == Decimal("240")


def test_market_order_expiring_unfilled_is_rejected(env: Any) -> None:
    _, double, exchange = env
    double.liquidity["BTCUSDT"] = Decimal(0)
    with pytest.raises(OrderRejected, match="'expired' with nothing filled"):
        exchange.create_market_order(sell("BTC", "0.01", "no-book"))


def test_notional_filter_failure_is_order_rejected() -> None:
    _, double, exchange = build(balances={"USDT": "100", "ADA": "50"})
    with pytest.raises(OrderRejected, match="Filter failure: NOTIONAL"):
        exchange.create_market_order(sell("ADA", "2", "ada-small", price="0.5"))
    assert double.orders == []


def test_insufficient_balance_is_insufficient_funds(env: Any) -> None:
    _, double, exchange = env
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        exchange.create_market_order(sell("BTC", "0.2", "too-much"))
    assert double.orders == []


def test_timeout_after_acceptance_is_outcome_unknown_then_found(env: Any) -> None:
    _, double, exchange = env
    double.inject("POST", "/api/v3/order", Fault.TIMEOUT_AFTER)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        exchange.create_market_order(sell("BTC", "0.01", "lost-reply-1"))
    assert caught.value.client_order_id == "lost-reply-1"
    assert len(double.placed()) == 1  # never re-sent
    found = exchange.fetch_order("lost-reply-1", "BTC/USDT")
    assert found is not None
    assert (found.amount, found.price, found.status) == (
        Decimal("0.01"),
        Decimal("60000"),
        "closed",
    )
    assert (found.fee, found.fee_asset) == (Decimal("0.6"), "USDT")  # from the order's trades
    assert double.calls[("GET", "/api/v3/myTrades")] == 1


def test_timeout_before_acceptance_is_outcome_unknown_and_not_found(env: Any) -> None:
    _, double, exchange = env
    double.inject("POST", "/api/v3/order", Fault.TIMEOUT_BEFORE)
    with pytest.raises(OrderOutcomeUnknown):
        exchange.create_market_order(sell("BTC", "0.01", "never-arrived"))
    assert exchange.fetch_order("never-arrived", "BTC/USDT") is None


@pytest.mark.parametrize(
    "fault",
    [
        Fault.HTTP_503,
        (
            503,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        ),
    ],
)
def test_unknown_execution_status_on_create_is_outcome_unknown(env: Any, fault: Any) -> None:
    _, double, exchange = env
    double.inject("POST", "/api/v3/order", fault)
    with pytest.raises(OrderOutcomeUnknown):
        exchange.create_market_order(sell("BTC", "0.01", "status-unknown"))


def test_fetch_order_returns_none_for_order_does_not_exist(env: Any) -> None:
    _, double, exchange = env
    assert exchange.fetch_order("no-such-order", "ETH/USDT") is None
    assert double.calls[("GET", "/api/v3/order")] == 1


def test_timestamp_outside_recv_window_on_create_is_rejected_not_placed() -> None:
    client, double, exchange = build(clock_offset_ms=-60_000)
    exchange.markets()
    with pytest.raises(OrderRejected, match="NOT sent, could not check"):
        exchange.create_market_order(sell("BTC", "0.01", "clock-skew"))  # the check fails
    unchecked = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        check_before_send=False,
    )
    with pytest.raises(OrderRejected, match=r"NOT placed.*-1021"):
        unchecked.create_market_order(sell("BTC", "0.01", "clock-skew"))
    assert len(double.placed()) == 1
    assert double.orders == []


def test_order_still_open_is_polled_until_filled() -> None:
    _, double, exchange = build()
    double.fill_after_polls = 2
    fill = exchange.create_market_order(sell("BTC", "0.01", "slow-1"))
    assert double.calls[("GET", "/api/v3/order")] == 1 + 2  # the check, then two polls
    assert (fill.amount, fill.status, fill.fee_asset) == (Decimal("0.01"), "closed", "USDT")


def test_failed_poll_after_acceptance_is_outcome_unknown_not_retry_later() -> None:
    _, double, exchange = build()
    double.fill_after_polls = 1
    double.inject("GET", "/api/v3/order", Fault.HTTP_503, after=1)  # the poll, not the check
    with pytest.raises(OrderOutcomeUnknown, match="placed but its final state"):
        exchange.create_market_order(sell("BTC", "0.01", "poll-fails"))
    found = exchange.fetch_order("poll-fails", "BTC/USDT")
    assert found is not None and found.amount == Decimal("0.01")


@pytest.mark.parametrize("check_before_send", [True, False])
def test_resending_an_open_order_finds_it_instead_of_trading_again(
    check_before_send: bool,
) -> None:
    client, double, _ = build()
    double.fill_after_polls = 3
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        max_polls=1,
        sleep=lambda _s: None,
        check_before_send=check_before_send,
    )
    with pytest.raises(OrderOutcomeUnknown, match="still 'open'"):
        exchange.create_market_order(sell("BTC", "0.01", "dup-1"))
    fill = exchange.create_market_order(sell("BTC", "0.01", "dup-1"))
    assert fill.amount == Decimal("0.01")
    assert len(double.orders) == 1
    assert double.balances["BTC"] == Decimal("0.04")
    # without the check the exchange answers the second POST "-2010 Duplicate order sent."
    assert len(double.placed()) == (1 if check_before_send else 2)


def test_wrong_secret_is_auth_error_and_secrets_never_leak() -> None:
    client = make_client("binance", KEY, "wrong-secret-123456", rateLimit=1)
    BinanceDouble(KEY, SECRET, balances={"USDT": "1"}, books=BOOKS).mount(client)
    exchange = CcxtExchange(
        client, max_ticker_age=timedelta(seconds=30), max_price_jump=Decimal("0.2")
    )
    with pytest.raises(AuthError, match="refused the API key") as caught:
        exchange.snapshot(["BTC"], "USDT")
    for e in chain(caught.value):
        assert KEY not in str(e) and "wrong-secret-123456" not in str(e)


def test_key_revoked_mid_session_is_auth_error_not_retry(env: Any) -> None:
    _, double, exchange = env
    exchange.snapshot(["BTC"], "USDT")  # a private call succeeds first
    double.api_key = "another-key"
    with pytest.raises(AuthError, match="-2015"):
        exchange.snapshot(["BTC"], "USDT")


def test_secrets_never_appear_in_order_errors(env: Any) -> None:
    _, double, exchange = env
    double.inject("POST", "/api/v3/order", Fault.TIMEOUT_AFTER)
    errors: list[BaseException] = []
    for order in (sell("BTC", "0.01", "leak-1"), sell("BTC", "9", "leak-2")):
        try:
            exchange.create_market_order(order)
        except Exception as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [OrderOutcomeUnknown, InsufficientFunds]
    for error in errors:
        for e in chain(error):
            assert KEY not in str(e) and SECRET not in str(e)
