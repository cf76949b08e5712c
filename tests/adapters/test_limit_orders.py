"""Post-only limit orders inside the spread, through the real CCXT classes over the doubles.

``CcxtExchange.create_limit_order`` on Binance (LIMIT_MAKER), Kraken (``oflags`` fciq,post)
and Coinbase (``limit_limit_gtc`` with ``post_only``): the order rests, the test decides when
the market trades through it (``double.tape``), the adapter polls by the injected clock,
cancels at the timeout, reads the order again and returns what really filled. Every request
is answered by a local double; nothing touches the network.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doubles.binance import BinanceDouble, Fault, Recorded
from doubles.coinbase import CoinbaseDouble, new_key_pair
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.ccxt.markets import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    passive_price,
)
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.core.errors import BelowMinimum, InsufficientFunds, OrderOutcomeUnknown
from rebalancer.core.model import ZERO, OrderRequest, Side

B_KEY, B_SECRET = "limit-binance-key-01", "limit-binance-secret-01"
K_KEY = "limit-kraken-key-01"
K_SECRET = base64.b64encode(b"limit-kraken-secret-bytes").decode()
C_KEY = "organizations/0b2e1f3c-org/apiKeys/limit-key"
C_PRIVATE, C_PUBLIC = new_key_pair()

BID, ASK = Decimal("60000.00"), Decimal("60010.00")  # a wide spread to rest inside
AMOUNT = Decimal("0.01")
POLL = 1.0  # seconds between polls (the fake clock moves by the fake sleep)
MAKER = {"binance": Decimal("0.0005"), "kraken": Decimal("0.0025"), "coinbase": Decimal("0.004")}


@dataclass
class Rig:
    """One venue: the real CCXT client over its double, the adapter, the fake clock."""

    venue: str
    double: Any
    exchange: CcxtExchange
    clock: ManualClock
    client: Any
    symbol: str  # unified, e.g. BTC/USDT
    market_id: str  # the double's id, e.g. BTCUSDT
    create: tuple[str, str]  # (method, path) of the order request
    cancel: tuple[str, str]

    def order(self, side: Side, cid: str, amount: Decimal = AMOUNT) -> OrderRequest:
        price = ASK if side is Side.BUY else BID
        cost = amount * price
        return OrderRequest("BTC", self.symbol, side, amount, price, cost, cost / 1000, cid)

    def creates(self) -> list[Recorded]:
        return [r for r in self.double.log if (r.method, r.path) == self.create]

    def cancels(self) -> list[Recorded]:
        return [r for r in self.double.log if (r.method, r.path) == self.cancel]

    def sent_price(self) -> Decimal:
        """The limit price of the (last) order request on the wire."""
        params = self.creates()[-1].params
        if self.venue == "coinbase":
            return Decimal(
                json.loads(params["order_configuration"])["limit_limit_gtc"]["limit_price"]
            )
        return Decimal(params["price"])

    def maker_fee(self, amount: Decimal, price: Decimal, side: Side) -> tuple[Decimal, str]:
        """The fee the venue charges a maker fill of ``amount`` at ``price``, and its asset."""
        rate = MAKER[self.venue]
        cost = amount * price
        if self.venue == "binance":  # a buy pays in the base, a sell in the quote
            fee, asset = (amount * rate, "BTC") if side is Side.BUY else (cost * rate, "USDT")
            return fee.quantize(Decimal("1e-8"), ROUND_DOWN), asset
        if self.venue == "kraken":  # oflags fciq: in the quote, half up to cost_decimals 5
            return (cost * rate).quantize(Decimal("0.00001"), ROUND_HALF_UP), "USD"
        return (cost * rate).quantize(Decimal("1e-10"), ROUND_DOWN), "USD"


def _clocked(client: Any, **kw: Any) -> tuple[CcxtExchange, ManualClock]:
    clock = ManualClock(datetime.now(UTC))

    def sleep(seconds: float) -> None:
        clock.set(clock.now() + timedelta(seconds=seconds))

    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        clock=clock,
        sleep=sleep,
        poll_interval=POLL,
        **kw,
    )
    return exchange, clock


def rig(venue: str, **kw: Any) -> Rig:
    if venue == "binance":
        client = make_client("binance", B_KEY, B_SECRET, rateLimit=1)
        double: Any = BinanceDouble(
            B_KEY,
            B_SECRET,
            balances={"USDT": "1000", "BTC": "0.05"},
            books={"BTCUSDT": (str(BID), str(ASK))},
            maker_fee=str(MAKER[venue]),
        ).mount(client)
        exchange, clock = _clocked(client, **kw)
        order = ("POST", "/api/v3/order")
        return Rig(
            venue,
            double,
            exchange,
            clock,
            client,
            "BTC/USDT",
            "BTCUSDT",
            order,
            ("DELETE", "/api/v3/order"),
        )
    if venue == "kraken":
        client = make_client("kraken", K_KEY, K_SECRET, rateLimit=1)
        double = KrakenDouble(
            K_KEY,
            K_SECRET,
            balances={"ZUSD": "1000", "XXBT": "0.05"},
            books={"XXBTZUSD": ("60000.0", "60010.0")},
            maker_fee=str(MAKER[venue]),
        ).mount(client)
        exchange, clock = _clocked(client, **kw)
        return Rig(
            venue,
            double,
            exchange,
            clock,
            client,
            "BTC/USD",
            "XXBTZUSD",
            ("POST", "/0/private/AddOrder"),
            ("POST", "/0/private/CancelOrder"),
        )
    client = make_client("coinbase", C_KEY, C_PRIVATE, rateLimit=1)
    double = CoinbaseDouble(
        C_KEY,
        C_PUBLIC,
        balances={"USD": "1000", "BTC": "0.05"},
        books={"BTC-USD": (str(BID), str(ASK))},
        maker_fee=str(MAKER[venue]),
    ).mount(client)
    exchange, clock = _clocked(client, **kw)
    p = "/api/v3/brokerage/"
    return Rig(
        venue,
        double,
        exchange,
        clock,
        client,
        "BTC/USD",
        "BTC-USD",
        ("POST", p + "orders"),
        ("POST", p + "orders/batch_cancel"),
    )


VENUES = ["binance", "kraken", "coinbase"]
INSIDE_BUY, INSIDE_SELL = Decimal("60004"), Decimal("60006")


# -- the fill cases --------------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
def test_full_fill_before_the_timeout_is_closed_and_never_cancelled(venue: str) -> None:
    r = rig(venue)
    r.double.tape.at_poll = {2: Decimal(1)}
    start = r.clock.now()
    fill = r.exchange.create_limit_order(
        r.order(Side.BUY, "rbfull1"), INSIDE_BUY, timedelta(seconds=30)
    )
    assert (fill.status, fill.amount, fill.price) == ("closed", AMOUNT, INSIDE_BUY)
    assert fill.cost == AMOUNT * INSIDE_BUY
    assert (fill.fee, fill.fee_asset) == r.maker_fee(AMOUNT, INSIDE_BUY, Side.BUY)
    assert r.clock.now() - start == timedelta(seconds=2)  # stopped waiting once filled
    assert r.cancels() == []
    assert len(r.creates()) == 1


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_partial_fill_then_cancel_reports_the_filled_part_and_its_fee(
    venue: str, side: Side
) -> None:
    r = rig(venue)
    r.double.tape.at_poll = {1: Decimal("0.4")}
    price = INSIDE_BUY if side is Side.BUY else INSIDE_SELL
    fill = r.exchange.create_limit_order(r.order(side, "rbpart1"), price, timedelta(seconds=5))
    part = Decimal("0.004")
    assert (fill.status, fill.amount, fill.price, fill.side) == ("canceled", part, price, side)
    assert fill.cost == part * price
    assert (fill.fee, fill.fee_asset) == r.maker_fee(part, price, side)
    assert fill.exchange_order_id
    assert len(r.cancels()) == 1
    # the look-up by client id tells the same story afterwards
    again = r.exchange.fetch_order("rbpart1", r.symbol)
    assert again is not None
    assert (again.status, again.amount, again.fee) == ("canceled", part, fill.fee)


@pytest.mark.parametrize("venue", VENUES)
def test_nothing_filled_waits_the_timeout_then_cancels_to_a_zero_fill(venue: str) -> None:
    r = rig(venue)
    start = r.clock.now()
    fill = r.exchange.create_limit_order(
        r.order(Side.SELL, "rbnone1"), INSIDE_SELL, timedelta(seconds=5)
    )
    assert (fill.status, fill.amount, fill.cost, fill.fee) == ("canceled", ZERO, ZERO, ZERO)
    assert r.clock.now() - start == timedelta(seconds=5)  # five polls of one second
    assert len(r.cancels()) == 1
    assert r.double.resting() == []  # nothing left on the book


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_post_only_that_would_cross_is_a_zero_fill(venue: str, side: Side) -> None:
    r = rig(venue)
    balances = dict(r.double.balances)
    crossing = ASK if side is Side.BUY else BID  # at the touch of the other side: it would take
    fill = r.exchange.create_limit_order(r.order(side, "rbcross1"), crossing, timedelta(seconds=30))
    assert (fill.status, fill.amount, fill.cost, fill.fee) == ("canceled", ZERO, ZERO, ZERO)
    assert len(r.creates()) == 1
    assert r.cancels() == []
    assert r.double.resting() == []
    assert r.double.balances == balances


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(("racing", "status"), [("0.3", "canceled"), ("1", "closed")])
def test_a_fill_racing_the_cancel_is_counted(venue: str, racing: str, status: str) -> None:
    r = rig(venue)
    r.double.tape.at_poll = {1: Decimal("0.2")}
    r.double.tape.at_cancel = Decimal(racing)  # the market trades just as the cancel arrives
    fill = r.exchange.create_limit_order(
        r.order(Side.BUY, "rbrace1"), INSIDE_BUY, timedelta(seconds=3)
    )
    expected = min(AMOUNT, AMOUNT * Decimal("0.2") + AMOUNT * Decimal(racing))
    assert (fill.status, fill.amount) == (status, expected)
    assert fill.fee > 0
    assert len(r.cancels()) == 1  # refused when it had filled meanwhile: read, not re-sent


# -- sending: the wire ------------------------------------------------------------------------


def test_binance_sends_limit_maker_with_our_client_id() -> None:
    r = rig("binance")
    r.exchange.create_limit_order(r.order(Side.BUY, "rbwire1"), INSIDE_BUY, timedelta(0))
    sent = r.creates()[0].params
    assert (sent["type"], sent["side"], sent["newClientOrderId"]) == (
        "LIMIT_MAKER",
        "BUY",
        "rbwire1",
    )
    assert (sent["quantity"], Decimal(sent["price"])) == ("0.01", INSIDE_BUY)
    assert "timeInForce" not in sent  # LIMIT_MAKER is good till cancelled by itself
    cancel = r.cancels()[0].params
    assert (cancel["symbol"], cancel["orderId"]) == ("BTCUSDT", "1001")


def test_kraken_adds_post_to_our_fee_flag_and_sends_our_client_id() -> None:
    r = rig("kraken")
    r.exchange.create_limit_order(r.order(Side.SELL, "rbwire2"), INSIDE_SELL, timedelta(0))
    sent = r.creates()[0].params
    assert (sent["ordertype"], sent["type"], sent["cl_ord_id"]) == ("limit", "sell", "rbwire2")
    assert sent["oflags"] == "fciq,post"  # fee in the quote AND post-only
    assert "timeinforce" not in sent  # GTC, Kraken's default
    assert r.cancels()[0].params["txid"] == r.double.orders[0].txid


def test_coinbase_sends_limit_gtc_post_only_with_our_client_id() -> None:
    r = rig("coinbase")
    r.exchange.create_limit_order(r.order(Side.BUY, "rbwire3"), INSIDE_BUY, timedelta(0))
    sent = r.creates()[0].params
    assert sent["client_order_id"] == "rbwire3"
    assert json.loads(sent["order_configuration"]) == {
        "limit_limit_gtc": {"base_size": "0.01", "limit_price": "60004", "post_only": True}
    }
    assert json.loads(r.cancels()[0].params["order_ids"]) == [r.double.orders[0].order_id]


@pytest.mark.parametrize(
    ("venue", "buy", "sell"),
    [
        ("binance", "60005.99", "60004.01"),  # tick 0.01
        ("kraken", "60005.9", "60004.1"),  # tick 0.1 (pair_decimals 1)
        ("coinbase", "60005.99", "60004.01"),  # quote_increment 0.01
    ],
)
def test_price_is_rounded_away_from_the_book(venue: str, buy: str, sell: str) -> None:
    r = rig(venue)
    r.exchange.create_limit_order(r.order(Side.BUY, "rbtick1"), Decimal("60005.999"), timedelta(0))
    assert r.sent_price() == Decimal(buy)  # down: a buy never pays more than asked
    r.exchange.create_limit_order(r.order(Side.SELL, "rbtick2"), Decimal("60004.001"), timedelta(0))
    assert r.sent_price() == Decimal(sell)  # up: a sell never takes less than asked


@pytest.mark.parametrize("venue", VENUES)
def test_below_the_minimum_notional_at_the_limit_price_is_not_sent(venue: str) -> None:
    r = rig(venue)
    tiny = Decimal("0.00000001") if venue != "kraken" else Decimal("0.00001")
    with pytest.raises(BelowMinimum):
        r.exchange.create_limit_order(
            r.order(Side.BUY, "rbmin1", amount=tiny), INSIDE_BUY, timedelta(0)
        )
    assert r.creates() == []


@pytest.mark.parametrize("venue", VENUES)
def test_refused_for_balance_is_a_skip(venue: str) -> None:
    r = rig(venue)
    with pytest.raises(InsufficientFunds):
        r.exchange.create_limit_order(
            r.order(Side.BUY, "rbfunds1", amount=Decimal("1")), INSIDE_BUY, timedelta(0)
        )


# -- a lost response, an order already there, a cancel that cannot be confirmed ---------------


@pytest.mark.parametrize("venue", VENUES)
def test_lost_create_response_is_looked_up_by_client_id_not_resent(venue: str) -> None:
    r = rig(venue)
    r.double.inject(*r.create, Fault.TIMEOUT_AFTER)  # placed; the response never arrives
    r.double.tape.at_poll = {1: Decimal(1)}
    fill = r.exchange.create_limit_order(
        r.order(Side.BUY, "rblost1"), INSIDE_BUY, timedelta(seconds=10)
    )
    assert len(r.creates()) == 1
    assert (fill.status, fill.amount, fill.client_order_id) == ("closed", AMOUNT, "rblost1")


@pytest.mark.parametrize("venue", VENUES)
def test_create_that_never_arrived_is_outcome_unknown_not_resent(venue: str) -> None:
    r = rig(venue)
    r.double.inject(*r.create, Fault.TIMEOUT_BEFORE)
    calls_before = len(r.double.log)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        r.exchange.create_limit_order(
            r.order(Side.BUY, "rblost2"), INSIDE_BUY, timedelta(seconds=10)
        )
    assert caught.value.client_order_id == "rblost2"
    assert len(r.creates()) == 1
    after = r.double.log[calls_before:]
    assert len(after) > 1  # looked up after the failed create
    assert r.double.orders == []


@pytest.mark.parametrize("venue", VENUES)
def test_an_order_already_carrying_the_client_id_is_managed_not_sent_again(venue: str) -> None:
    r = rig(venue)
    params = {**r.exchange.venue.order_params, r.exchange.venue.client_id_param: "rbtwice1"}
    r.client.create_order(r.symbol, "limit", "buy", 0.01, 60004.0, {**params, "postOnly": True})
    r.double.trade_through(r.market_id, "0.5")
    fill = r.exchange.create_limit_order(
        r.order(Side.BUY, "rbtwice1"), INSIDE_BUY, timedelta(seconds=2)
    )
    assert len(r.creates()) == 1  # the one placed above
    assert (fill.status, fill.amount) == ("canceled", Decimal("0.005"))
    assert r.double.resting() == []


@pytest.mark.parametrize("venue", VENUES)
def test_fetch_order_reports_open_then_canceled_partial(venue: str) -> None:
    r = rig(venue)
    params = {**r.exchange.venue.order_params, r.exchange.venue.client_id_param: "rbfetch1"}
    placed = r.client.create_order(
        r.symbol, "limit", "sell", 0.01, 60006.0, {**params, "postOnly": True}
    )
    first = r.exchange.fetch_order("rbfetch1", r.symbol)
    assert first is not None
    assert (first.status, first.amount) == ("open", ZERO)
    r.double.trade_through(r.market_id, "0.25")
    r.client.cancel_order(placed["id"], r.symbol)
    later = r.exchange.fetch_order("rbfetch1", r.symbol)
    assert later is not None
    assert (later.status, later.amount, later.side) == ("canceled", Decimal("0.0025"), Side.SELL)
    assert later.cost == Decimal("0.0025") * INSIDE_SELL


def test_cancel_that_cannot_be_confirmed_is_outcome_unknown() -> None:
    r = rig("binance", check_before_send=False)
    for _ in range(3):  # every read after the cancel fails
        r.double.inject("GET", "/api/v3/order", Fault.HTTP_503)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        r.exchange.create_limit_order(r.order(Side.BUY, "rbunk1"), INSIDE_BUY, timedelta(0))
    assert "may still rest on the book" in str(caught.value)
    assert len(r.cancels()) == 3  # cancelling is idempotent: tried again each round


def test_a_cancel_lost_on_the_network_is_sent_again() -> None:
    r = rig("binance")
    r.double.inject("DELETE", "/api/v3/order", Fault.TIMEOUT_BEFORE)
    fill = r.exchange.create_limit_order(r.order(Side.BUY, "rbcan1"), INSIDE_BUY, timedelta(0))
    assert (fill.status, fill.amount) == ("canceled", ZERO)
    assert len(r.cancels()) == 2
    assert r.double.resting() == []


def test_polls_that_fail_are_skipped_and_the_cancel_decides() -> None:
    r = rig("binance", check_before_send=False)
    r.double.inject("GET", "/api/v3/order", Fault.HTTP_503)
    r.double.inject("GET", "/api/v3/order", Fault.HTTP_503)
    r.double.tape.at_poll = {1: Decimal("0.5")}  # the first poll that gets through
    fill = r.exchange.create_limit_order(
        r.order(Side.BUY, "rbpoll1"), INSIDE_BUY, timedelta(seconds=3)
    )
    assert (fill.status, fill.amount) == ("canceled", Decimal("0.005"))


# -- several accounts --------------------------------------------------------------------------


def test_multi_account_routes_the_limit_to_the_account_holding_the_asset() -> None:
    b_client = make_client("binance", B_KEY, B_SECRET, rateLimit=1)
    b = BinanceDouble(
        B_KEY,
        B_SECRET,
        balances={"USDT": "1000", "BTC": "0"},
        books={"BTCUSDT": (str(BID), str(ASK)), "SOLUSDT": ("150.00", "150.10")},
    ).mount(b_client)
    k_client = make_client("kraken", K_KEY, K_SECRET, rateLimit=1)
    k = KrakenDouble(
        K_KEY,
        K_SECRET,
        balances={"USDT": "0", "XXBT": "0.05"},
        books={"XBTUSDT": ("60000.0", "60010.0")},
    ).mount(k_client)
    binance, _ = _clocked(b_client)
    kraken, _ = _clocked(k_client)
    multi = MultiAccountExchange({"binance": binance, "kraken": kraken})
    multi.snapshot(["BTC", "SOL"], "USDT")
    k.tape.at_poll = {1: Decimal(1)}
    b.tape.at_poll = {1: Decimal("0.5")}

    def leg(asset: str, side: Side, amount: str, price: str, cid: str) -> OrderRequest:
        cost = Decimal(amount) * Decimal(price)
        return OrderRequest(
            asset, f"{asset}/USDT", side, Decimal(amount), Decimal(price), cost, cost / 1000, cid
        )

    sold = multi.create_limit_order(
        leg("BTC", Side.SELL, "0.01", "60000", "rbmulti1"), INSIDE_SELL, timedelta(seconds=5)
    )
    assert (sold.status, sold.amount, sold.price) == ("closed", AMOUNT, INSIDE_SELL)
    assert [r.params["cl_ord_id"] for r in k.placed()] == ["rbmulti1"]
    assert b.placed() == []  # binance holds no BTC
    bought = multi.create_limit_order(
        leg("SOL", Side.BUY, "2", "150.10", "rbmulti2"), Decimal("150.05"), timedelta(seconds=5)
    )
    assert (bought.status, bought.amount) == ("canceled", Decimal("1"))
    assert [r.params["type"] for r in b.placed()] == ["LIMIT_MAKER"]  # only binance lists SOL
    assert len(k.placed()) == 1
    assert bought.fee_asset == "SOL"  # Binance takes a buy's fee in the base
    assert multi.holdings()["binance"]["SOL"] == Decimal("1") - bought.fee


# -- the rounding helper -------------------------------------------------------------------------

prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000"), places=8)
ticks = st.sampled_from(["0.00001", "0.0001", "0.01", "0.1", "0.5", "0.25", "1", "5", "10"])


@given(price=prices, tick=ticks, side=st.sampled_from([Side.BUY, Side.SELL]))
def test_passive_price_lands_on_the_tick_and_never_crosses(
    price: Decimal, tick: str, side: Side
) -> None:
    step = Decimal(tick)
    out = passive_price(price, side, tick, TICK_SIZE)
    assert out % step == 0
    if side is Side.BUY:
        assert out <= price < out + step
    else:
        assert out - step < price <= out


@given(price=prices, places=st.integers(0, 8), side=st.sampled_from([Side.BUY, Side.SELL]))
def test_passive_price_in_decimal_places_mode(price: Decimal, places: int, side: Side) -> None:
    out = passive_price(price, side, places, DECIMAL_PLACES)
    step = Decimal(1).scaleb(-places)
    assert out % step == 0
    assert (out <= price) if side is Side.BUY else (out >= price)
    assert abs(out - price) < step


@given(price=prices, digits=st.integers(1, 8), side=st.sampled_from([Side.BUY, Side.SELL]))
def test_passive_price_in_significant_digits_mode(price: Decimal, digits: int, side: Side) -> None:
    out = passive_price(price, side, digits, SIGNIFICANT_DIGITS)
    assert (out <= price) if side is Side.BUY else (out >= price)
    assert len(out.normalize().as_tuple().digits) <= digits
    assert abs(out - price) < Decimal(1).scaleb(price.adjusted() - digits + 1)


def test_passive_price_without_precision_keeps_the_price() -> None:
    assert passive_price(Decimal("1.23456"), Side.BUY, None, TICK_SIZE) == Decimal("1.23456")


def test_an_ip_ban_while_resting_is_outcome_unknown_not_a_retry() -> None:
    r = rig("binance")
    r.double.inject("DELETE", "/api/v3/order", Fault.HTTP_418)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        r.exchange.create_limit_order(r.order(Side.BUY, "rbban1"), INSIDE_BUY, timedelta(0))
    assert "418" in str(caught.value)
    assert len(r.double.resting()) == 1  # it really is still on the book


def test_fee_unreadable_after_the_cancel_is_outcome_unknown_not_a_retry() -> None:
    r = rig("binance")
    r.double.tape.at_poll = {1: Decimal("0.5")}
    r.double.inject("GET", "/api/v3/myTrades", Fault.HTTP_503)  # Binance: fees come from trades
    with pytest.raises(OrderOutcomeUnknown):
        r.exchange.create_limit_order(r.order(Side.BUY, "rbfee1"), INSIDE_BUY, timedelta(seconds=2))
    assert r.double.resting() == []  # it was cancelled; only its fill could not be read
