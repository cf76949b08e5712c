"""Cancelling a resting order found by our client id (reconciliation after a crash).

``CcxtExchange.cancel_order`` through the real CCXT classes over the Binance, Kraken and
Coinbase doubles: the order was placed by an earlier run (here: straight through the CCXT
client, as the crashed bot did), the adapter finds it by client id, cancels it by its
exchange id if it still rests, reads it back and returns what really filled.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from adapters.test_limit_orders import (
    AMOUNT,
    B_KEY,
    B_SECRET,
    INSIDE_BUY,
    INSIDE_SELL,
    K_KEY,
    K_SECRET,
    VENUES,
    Rig,
    _clocked,
    rig,
)
from doubles.binance import BinanceDouble, Fault
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import make_client
from rebalancer.adapters.journal import open_journal
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.core.errors import OrderOutcomeUnknown
from rebalancer.core.model import ZERO, Side
from rebalancer.service import reconcile

CB = "/api/v3/brokerage/"
# (method, path, good requests before it) of the read that looks the order up by client id
LOOKUP = {
    "binance": ("GET", "/api/v3/order", 0),
    "kraken": ("POST", "/0/private/ClosedOrders", 0),  # closed orders are listed first
    "coinbase": ("GET", CB + "orders/historical/batch", 0),
}
# ... and of the read after a cancel (the look-up above went through)
REREAD = {
    "binance": ("GET", "/api/v3/order", 1),
    "kraken": ("POST", "/0/private/ClosedOrders", 1),
    "coinbase": ("GET", CB + "orders/historical/{order_id}", 0),  # by exchange id
}


def rest(r: Rig, cid: str, side: Side = Side.SELL, amount: Decimal = AMOUNT) -> str:
    """Place a post-only limit inside the spread as an earlier run did; its exchange id."""
    params = {**r.exchange.venue.order_params, r.exchange.venue.client_id_param: cid}
    price = INSIDE_BUY if side is Side.BUY else INSIDE_SELL
    placed = r.client.create_order(
        r.symbol, "limit", side.value, float(amount), float(price), {**params, "postOnly": True}
    )
    return str(placed["id"])


def cancelled_ids(r: Rig) -> list[str]:
    """The exchange order ids of every cancel request on the wire, in order."""
    out: list[str] = []
    for sent in r.cancels():
        if r.venue == "binance":
            out.append(sent.params["orderId"])
        elif r.venue == "kraken":
            out.append(sent.params["txid"])
        else:
            out.extend(json.loads(sent.params["order_ids"]))
    return out


def fail_next(r: Rig, where: tuple[str, str, int], fault: Fault, times: int = 1) -> None:
    method, path, after = where
    for n in range(times):
        r.double.inject(method, path, fault, after=after if n == 0 else 0)


# -- the order still rests -----------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_a_resting_partly_filled_order_is_cancelled_and_its_fill_returned(
    venue: str, side: Side
) -> None:
    r = rig(venue)
    order_id = rest(r, "rbcxl1", side)
    r.double.trade_through(r.market_id, "0.4")
    fill = r.exchange.cancel_order("rbcxl1", r.symbol)
    assert fill is not None
    part, price = Decimal("0.004"), INSIDE_BUY if side is Side.BUY else INSIDE_SELL
    assert (fill.status, fill.amount, fill.price, fill.side) == ("canceled", part, price, side)
    assert (fill.client_order_id, fill.exchange_order_id, fill.symbol) == (
        "rbcxl1",
        order_id,
        r.symbol,
    )
    assert fill.cost == part * price
    assert (fill.fee, fill.fee_asset) == r.maker_fee(part, price, side)
    assert cancelled_ids(r) == [order_id]  # one cancel, by the exchange's order id
    assert r.double.resting() == []
    again = r.exchange.fetch_order("rbcxl1", r.symbol)
    assert again is not None
    assert (again.status, again.amount) == ("canceled", part)


@pytest.mark.parametrize("venue", VENUES)
def test_a_resting_order_with_nothing_filled_is_a_zero_fill(venue: str) -> None:
    r = rig(venue)
    order_id = rest(r, "rbcxl2")
    fill = r.exchange.cancel_order("rbcxl2", r.symbol)
    assert fill is not None
    assert (fill.status, fill.amount, fill.cost, fill.fee) == ("canceled", ZERO, ZERO, ZERO)
    assert cancelled_ids(r) == [order_id]
    assert r.double.resting() == []


@pytest.mark.parametrize("venue", VENUES)
def test_a_fill_racing_the_cancel_is_read_back_as_closed(venue: str) -> None:
    r = rig(venue)
    rest(r, "rbcxl3")
    r.double.trade_through(r.market_id, "0.3")
    r.double.tape.at_cancel = Decimal(1)  # the rest trades just as the cancel arrives
    fill = r.exchange.cancel_order("rbcxl3", r.symbol)
    assert fill is not None
    assert (fill.status, fill.amount, fill.price) == ("closed", AMOUNT, INSIDE_SELL)
    assert len(r.cancels()) == 1  # refused (already filled): read back, not sent again


# -- the order is already final, or not there ----------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
def test_a_closed_order_is_returned_without_a_cancel_request(venue: str) -> None:
    r = rig(venue)
    order_id = rest(r, "rbdone1")
    r.double.trade_through(r.market_id, "1")
    fill = r.exchange.cancel_order("rbdone1", r.symbol)
    assert fill is not None
    assert (fill.status, fill.amount, fill.exchange_order_id) == ("closed", AMOUNT, order_id)
    assert fill.fee > 0
    assert r.cancels() == []


@pytest.mark.parametrize("venue", VENUES)
def test_an_order_cancelled_earlier_is_returned_without_another_cancel(venue: str) -> None:
    r = rig(venue)
    order_id = rest(r, "rbdone2")
    r.double.trade_through(r.market_id, "0.25")
    r.client.cancel_order(order_id, r.symbol)  # by the earlier run, before it crashed
    fill = r.exchange.cancel_order("rbdone2", r.symbol)
    assert fill is not None
    assert (fill.status, fill.amount) == ("canceled", Decimal("0.0025"))
    assert len(r.cancels()) == 1  # the earlier run's only


@pytest.mark.parametrize("venue", VENUES)
def test_an_unknown_client_id_is_none_and_nothing_is_cancelled(venue: str) -> None:
    r = rig(venue)
    rest(r, "rbother1")  # another of our orders rests on the same market
    assert r.exchange.cancel_order("rbnope1", r.symbol) is None
    assert r.cancels() == []
    assert len(r.double.resting()) == 1


# -- the network ---------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(("fault", "sent"), [(Fault.TIMEOUT_BEFORE, 2), (Fault.TIMEOUT_AFTER, 1)])
def test_a_cancel_lost_on_the_network_is_read_again(venue: str, fault: Fault, sent: int) -> None:
    """Lost before the exchange: the re-read still says open and the cancel is sent again.
    Processed but the answer lost: the re-read says cancelled and nothing more is sent."""
    r = rig(venue)
    order_id = rest(r, "rblost3")
    r.double.trade_through(r.market_id, "0.4")
    r.double.inject(*r.cancel, fault)
    fill = r.exchange.cancel_order("rblost3", r.symbol)
    assert fill is not None
    assert (fill.status, fill.amount) == ("canceled", Decimal("0.004"))
    assert cancelled_ids(r) == [order_id] * sent
    assert r.double.resting() == []


@pytest.mark.parametrize("venue", VENUES)
def test_unconfirmable_after_the_cancel_is_outcome_unknown(venue: str) -> None:
    r = rig(venue)
    rest(r, "rbunk2")
    fail_next(r, REREAD[venue], Fault.TIMEOUT_BEFORE, times=3)  # every read after a cancel
    with pytest.raises(OrderOutcomeUnknown) as caught:
        r.exchange.cancel_order("rbunk2", r.symbol)
    assert caught.value.client_order_id == "rbunk2"
    assert "may still rest on the book" in str(caught.value)
    assert len(r.cancels()) == 3  # cancelling is idempotent: tried again each round


@pytest.mark.parametrize("venue", VENUES)
def test_a_failed_look_up_is_outcome_unknown_and_nothing_is_cancelled(venue: str) -> None:
    r = rig(venue)
    rest(r, "rbunk3")
    fail_next(r, LOOKUP[venue], Fault.TIMEOUT_BEFORE)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        r.exchange.cancel_order("rbunk3", r.symbol)
    assert caught.value.client_order_id == "rbunk3"
    assert r.cancels() == []
    assert len(r.double.resting()) == 1


# -- several accounts ----------------------------------------------------------------------------


def _two_accounts() -> tuple[MultiAccountExchange, BinanceDouble, KrakenDouble, Any, Any]:
    b_client = make_client("binance", B_KEY, B_SECRET, rateLimit=1)
    b = BinanceDouble(
        B_KEY,
        B_SECRET,
        balances={"USDT": "1000", "BTC": "0.05"},
        books={"BTCUSDT": ("60000.00", "60010.00"), "SOLUSDT": ("150.00", "150.10")},
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
    return multi, b, k, b_client, k_client


def _piece(client: Any, params: dict[str, str], amount: float) -> str:
    """One piece of a split sell leg resting on one account; its exchange id."""
    placed = client.create_order(
        "BTC/USDT", "limit", "sell", amount, 60006.0, {**params, "postOnly": True}
    )
    return str(placed["id"])


def test_multi_account_cancels_every_resting_piece_and_adds_them_up() -> None:
    multi, b, k, b_client, k_client = _two_accounts()
    b_id = _piece(b_client, {"newClientOrderId": "rbsplit1"}, 0.01)
    k_id = _piece(k_client, {"oflags": "fciq", "cl_ord_id": "rbsplit1"}, 0.02)
    b.trade_through("BTCUSDT", "0.5")
    k.trade_through("XBTUSDT", "0.25")
    fill = multi.cancel_order("rbsplit1", "BTC/USDT")
    assert fill is not None
    assert (fill.status, fill.amount, fill.price) == ("canceled", Decimal("0.01"), INSIDE_SELL)
    assert fill.cost == Decimal("0.01") * INSIDE_SELL
    assert fill.fee_asset == "USDT"  # a sell pays in the quote on both
    assert fill.exchange_order_id == f"binance:{b_id},kraken:{k_id}"
    assert [r.params["orderId"] for r in b.log if r.method == "DELETE"] == [b_id]
    assert [r.params["txid"] for r in k.log if r.path == "/0/private/CancelOrder"] == [k_id]
    assert b.resting() == [] and k.resting() == []


def test_multi_account_asks_only_the_accounts_listing_the_market() -> None:
    multi, b, k, b_client, _ = _two_accounts()
    b_client.create_order(
        "SOL/USDT", "limit", "buy", 1.0, 150.05, {"newClientOrderId": "rbsol1", "postOnly": True}
    )
    kraken_before = len(k.log)
    fill = multi.cancel_order("rbsol1", "SOL/USDT")
    assert fill is not None
    assert (fill.status, fill.amount, fill.asset) == ("canceled", ZERO, "SOL")
    assert len([r for r in b.log if r.method == "DELETE"]) == 1
    assert [r.path for r in k.log[kraken_before:] if r.path.startswith("/0/private/")] == []
    assert multi.cancel_order("rbnope2", "BTC/USDT") is None
    assert [r for r in k.log if r.path == "/0/private/CancelOrder"] == []


def test_multi_account_still_cancels_the_other_pieces_when_one_is_unconfirmable() -> None:
    multi, b, k, b_client, k_client = _two_accounts()
    _piece(b_client, {"newClientOrderId": "rbsplit2"}, 0.01)
    k_id = _piece(k_client, {"oflags": "fciq", "cl_ord_id": "rbsplit2"}, 0.01)
    for n in range(3):  # binance: the look-up works, every read after the cancel fails
        b.inject("GET", "/api/v3/order", Fault.HTTP_503, after=1 if n == 0 else 0)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        multi.cancel_order("rbsplit2", "BTC/USDT")
    assert caught.value.client_order_id == "rbsplit2"
    assert [r.params["txid"] for r in k.log if r.path == "/0/private/CancelOrder"] == [k_id]
    assert k.resting() == []


# -- reconciliation after a crash -----------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
def test_reconciliation_cancels_an_order_a_crash_left_resting(venue: str, tmp_path: Any) -> None:
    """The bot journaled a limit intent, placed it and died mid-wait: the next start finds it
    resting, cancels it on the exchange and journals the part that filled -- the order can
    neither block the bot (outcome unknown) nor fill later behind its back."""
    r = rig(venue)
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite", "crash")
    intent = r.order(Side.SELL, "rbcrash1")
    journal.record_intent(intent, r.clock.now())
    order_id = rest(r, "rbcrash1")
    r.double.trade_through(r.market_id, "0.25")
    result = reconcile(r.exchange, journal, r.clock.now())
    assert result.clear
    outcome = result.resolved["rbcrash1"]
    assert outcome.fill is not None
    assert (outcome.status, outcome.fill.amount) == ("filled", AMOUNT / 4)
    assert outcome.source == "reconciled: partially filled"
    assert cancelled_ids(r) == [order_id]
    assert r.double.resting() == []
    assert journal.unresolved_intents() == []
    journal.close()


def test_reconciliation_keeps_an_order_it_cannot_cancel_unknown(tmp_path: Any) -> None:
    r = rig("binance")
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite", "crash")
    journal.record_intent(r.order(Side.SELL, "rbcrash2"), r.clock.now())
    rest(r, "rbcrash2")
    fail_next(r, REREAD["binance"], Fault.TIMEOUT_BEFORE, times=3)  # every read after a cancel
    result = reconcile(r.exchange, journal, r.clock.now())
    assert not result.clear and "rbcrash2" in result.unknown[0]
    assert [o.client_order_id for o in journal.unresolved_intents()] == ["rbcrash2"]
    journal.close()
