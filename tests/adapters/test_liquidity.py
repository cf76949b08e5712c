"""Order-book checks before market orders, and limit IOC orders, on the Coinbase double."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from doubles.binance import BinanceDouble, Fault
from doubles.coinbase import CoinbaseDouble, new_key_pair
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.ccxt.book import estimate_fill
from rebalancer.adapters.ccxt.exchange import ThinBook
from rebalancer.core.errors import ConfigError, OrderRejected
from rebalancer.core.model import OrderRequest, Side

D = Decimal
KEY = "organizations/liq-org/apiKeys/liq-key"
PRIVATE, PUBLIC = new_key_pair()
BOOK = ("GET", "/api/v3/brokerage/market/product_book")

# -- the arithmetic -------------------------------------------------------------------------

ASKS = [(D(100), D(1)), (D(101), D(1)), (D(110), D(10))]
BIDS = [(D(100), D(1)), (D(99), D(1)), (D(90), D(10))]


def test_a_small_buy_fills_within_the_cap() -> None:
    est = estimate_fill(ASKS, Side.BUY, D("0.01"), amount=D(2))
    assert (est.best, est.average, est.slippage) == (D(100), D("100.5"), D("0.005"))
    assert est.within(D("0.01"))
    assert (est.fits_amount, est.fits_cost) == (D(2), D(201))


def test_a_large_buy_keeps_only_the_part_whose_average_stays_on_the_cap() -> None:
    est = estimate_fill(ASKS, Side.BUY, D("0.01"), amount=D(5))
    assert est.average == D("106.2") and not est.within(D("0.01"))
    # 2 units for 201, then x at 110 with (201 + 110 x) / (2 + x) = 101: x = 1/9
    assert abs(est.fits_amount - (2 + D(1) / 9)) < D("1e-20")
    assert abs(est.fits_cost / est.fits_amount - D(101)) < D("1e-20")


def test_sells_walk_the_bids_down_and_buys_by_cost_spend_the_cost() -> None:
    sell = estimate_fill(BIDS, Side.SELL, D("0.01"), amount=D(3))
    assert sell.average == D("289") / 3 and sell.slippage == 1 - D("289") / 300
    assert abs(sell.fits_cost / sell.fits_amount - D(99)) < D("1e-20")
    by_cost = estimate_fill(ASKS, Side.BUY, D("0.01"), cost=D("150.5"))
    assert by_cost.average == D("150.5") / D("1.5")
    assert by_cost.within(D("0.01"))


def test_a_book_too_shallow_has_no_average() -> None:
    est = estimate_fill(ASKS[:2], Side.BUY, D("0.5"), amount=D(5))
    assert est.average is None and est.slippage is None and not est.within(D("0.5"))
    assert est.fits_amount == D(2)
    assert estimate_fill([], Side.BUY, D("0.01"), amount=D(1)).fits_amount == 0


# -- through ccxt.coinbase ------------------------------------------------------------------


def build(**kw: Any) -> tuple[CoinbaseDouble, CcxtExchange]:
    client = make_client("coinbase", KEY, PRIVATE, rateLimit=1)
    double = CoinbaseDouble(
        KEY,
        PUBLIC,
        balances={"USD": "10000", "BTC": "1"},
        books={"BTC-USD": ("60000.00", "60000.01")},
    ).mount(client)
    # ten-dollar steps, 0.01 BTC per level behind the best price on both sides
    double.depth["BTC-USD"] = (D(10), D("0.01"))
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=D("0.2"),
        sleep=lambda _s: None,
        **kw,
    )
    return double, exchange


def sell(amount: str, cid: str) -> OrderRequest:
    cost = D(amount) * 60000
    return OrderRequest("BTC", "BTC/USD", Side.SELL, D(amount), D(60000), cost, cost / 100, cid)


def test_within_the_cap_the_order_goes_whole_after_one_book_read() -> None:
    double, exchange = build(max_slippage=D("0.001"))
    fill = exchange.create_market_order(sell("0.05", "liq-ok"))
    assert fill.amount == D("0.05")
    assert double.calls[BOOK] == 1
    assert double.log[[r.path for r in double.log].index(BOOK[1])].params["limit"] == "50"


def test_above_the_cap_skip_refuses_the_leg_and_says_why() -> None:
    double, exchange = build(max_slippage=D("0.0002"), thin_book="skip")
    with pytest.raises(
        ThinBook, match=r"above max_slippage 0\.02 %; leg skipped instead of walking"
    ):
        exchange.create_market_order(sell("0.05", "liq-skip"))
    assert double.orders == []


def test_above_the_cap_slice_sends_the_part_that_fits() -> None:
    double, exchange = build(max_slippage=D("0.0002"), thin_book="slice")
    fill = exchange.create_market_order(sell("0.05", "liq-slice"))
    # 0.01 each @ 60000, 59990, 59980 (average 59990), then x @ 59970 with the average on
    # the cap's 59988: (1799.7 + 59970 x) / (0.03 + x) = 59988, x = 1/300; truncated to 1e-8
    base_size = double.placed()[0]["order_configuration"]["market_market_ioc"]["base_size"]
    assert D(base_size) == D("0.03333333")
    assert fill.amount == D("0.03333333")
    assert fill.price >= D(60000) * (1 - D("0.0002"))


def test_limit_ioc_sends_a_limit_at_the_cap_and_fills_what_the_book_allows() -> None:
    double, exchange = build(max_slippage=D("0.0002"), order_type="limit_ioc", thin_book="slice")
    fill = exchange.create_market_order(sell("0.02", "liq-ioc"))
    config = double.placed()[0]["order_configuration"]
    assert config == {"sor_limit_ioc": {"base_size": "0.02", "limit_price": "59988"}}
    assert fill.amount == D("0.02") and fill.price == D(59995)


def test_limit_ioc_buy_never_spends_more_than_planned() -> None:
    double, exchange = build(max_slippage=D("0.0002"), order_type="limit_ioc")
    planned = D("0.03") * D("60000.01")
    buy = OrderRequest(
        "BTC", "BTC/USD", Side.BUY, D("0.03"), D("60000.01"), planned, D(1), "liq-buy"
    )
    fill = exchange.create_market_order(buy)
    config = double.placed()[0]["order_configuration"]["sor_limit_ioc"]
    assert D(config["limit_price"]) == D("60012.01")  # 60000.01 * 1.0002, to the cent
    assert D(config["base_size"]) * D(config["limit_price"]) <= planned
    # only the asks at 60000.01 and 60010.01 are inside the limit: the rest is cancelled
    assert (fill.amount, fill.status) == (D("0.02"), "canceled")
    assert fill.cost == D("0.01") * D("60000.01") + D("0.01") * D("60010.01")


def test_limit_ioc_needs_a_cap() -> None:
    client = make_client("coinbase", KEY, PRIVATE)
    with pytest.raises(ConfigError, match="limit_ioc needs max_slippage"):
        CcxtExchange(
            client,
            max_ticker_age=timedelta(seconds=30),
            max_price_jump=D("0.2"),
            order_type="limit_ioc",
        )


def test_binance_book_check_slices_the_quantity_on_the_wire() -> None:
    client = make_client("binance", "liq-binance-key", "liq-binance-secret", rateLimit=1)
    double = BinanceDouble(
        "liq-binance-key",
        "liq-binance-secret",
        balances={"USDT": "0", "BTC": "1"},
        books={"BTCUSDT": ("60000.00", "60000.01")},
    ).mount(client)
    double.depth["BTCUSDT"] = (D(10), D("0.01"))
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=D("0.2"),
        sleep=lambda _s: None,
        max_slippage=D("0.0002"),
    )
    order = OrderRequest("BTC", "BTC/USDT", Side.SELL, D("0.05"), D(60000), D(3000), D(3), "liq-bn")
    fill = exchange.create_market_order(order)
    assert double.calls[("GET", "/api/v3/depth")] == 1
    # the same walk as on Coinbase, truncated to Binance's BTC step of 0.00001
    assert double.placed()[0].params["quantity"] == "0.03333"
    assert fill.amount == D("0.03333")


def binance(**kw: Any) -> tuple[BinanceDouble, CcxtExchange]:
    client = make_client("binance", "liq-binance-key", "liq-binance-secret", rateLimit=1)
    double = BinanceDouble(
        "liq-binance-key",
        "liq-binance-secret",
        balances={"USDT": "1000", "BTC": "1"},
        books={"BTCUSDT": ("60000.00", "60000.01")},
    ).mount(client)
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=D("0.2"),
        sleep=lambda _s: None,
        **kw,
    )
    return double, exchange


def test_binance_limit_ioc_goes_out_as_limit_ioc_at_the_cap() -> None:
    double, exchange = binance(max_slippage=D("0.0002"), order_type="limit_ioc")
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.SELL, D("0.01"), D(60000), D(600), D("0.6"), "liq-bn-ioc"
    )
    fill = exchange.create_market_order(order)
    wire = double.placed()[0].params
    assert (wire["type"], wire["timeInForce"], wire["price"]) == ("LIMIT", "IOC", "59988")
    assert wire["newClientOrderId"] == "liq-bn-ioc"
    assert (fill.amount, fill.price) == (D("0.01"), D(60000))


def test_binance_limit_ioc_that_fills_nothing_is_rejected_with_the_reason() -> None:
    double, exchange = binance(max_slippage=D("0.0002"), order_type="limit_ioc")
    double.liquidity["BTCUSDT"] = D(0)
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.BUY, D("0.01"), D("60000.01"), D(600), D("0.6"), "liq-bn-none"
    )
    with pytest.raises(OrderRejected, match="nothing filled"):
        exchange.create_market_order(order)
    assert double.balances == {"USDT": D(1000), "BTC": D(1)}


def test_kraken_book_check_skips_a_buy_too_big_for_the_book() -> None:
    secret = "a3Jha2VuLWxpcS1zZWNyZXQ="
    client = make_client("kraken", "liq-kraken-key", secret, rateLimit=1)
    double = KrakenDouble(
        "liq-kraken-key",
        secret,
        balances={"ZUSD": "10000"},
        books={"XXBTZUSD": ("60000.0", "60000.1")},
    ).mount(client)
    double.depth["XXBTZUSD"] = (D(10), D("0.01"))
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=D("0.2"),
        sleep=lambda _s: None,
        max_slippage=D("0.0001"),
        thin_book="skip",
    )
    small = OrderRequest(
        "BTC", "BTC/USD", Side.BUY, D("0.01"), D("60000.1"), D("600.001"), D("2.4"), "kr-ok"
    )
    assert exchange.create_market_order(small).amount == D("0.01")
    big = OrderRequest(
        "BTC", "BTC/USD", Side.BUY, D("0.05"), D("60000.1"), D("3000.005"), D(12), "kr-big"
    )
    with pytest.raises(ThinBook, match=r"average 60020\.1 vs best 60000\.1"):
        exchange.create_market_order(big)
    assert [r.params["cl_ord_id"] for r in double.placed()] == ["kr-ok"]
    assert double.calls[("GET", "/0/public/Depth")] == 2


def test_coinbase_fills_show_the_walk_and_add_up_to_the_order() -> None:
    _, exchange = build()  # no book check: the market order walks the book
    fill = exchange.create_market_order(sell("0.025", "liq-walk"))
    trades = exchange.client.fetch_my_trades(
        "BTC/USD", None, None, {"order_ids": [fill.exchange_order_id]}
    )
    walked = sorted(((D(str(t["price"])), D(str(t["amount"]))) for t in trades), reverse=True)
    assert walked == [
        (D(60000), D("0.01")),
        (D(59990), D("0.01")),
        (D(59980), D("0.005")),
    ]
    assert sum(D(str(t["fee"]["cost"])) for t in trades) == fill.fee
    assert {t["fee"]["currency"] for t in trades} == {"USD"}
    assert fill.price == (600 + D("599.9") + D("299.9")) / D("0.025")


def test_an_unreadable_book_means_the_order_is_not_sent() -> None:
    double, exchange = build(max_slippage=D("0.001"))
    double.inject(*BOOK, Fault.HTTP_503)
    with pytest.raises(OrderRejected, match="NOT sent, the order book could not be read"):
        exchange.create_market_order(sell("0.01", "liq-nobook"))
    assert double.orders == []
