"""Paper trading on live public prices: fresh tickers at every snapshot, limits that watch.

The real ``ccxt.binance`` class runs over the Binance double (``serve_books`` moves the book
between tickers requests); a fake clock stands in for time, so no test sleeps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from doubles.binance import BinanceDouble, Fault
from rebalancer import bootstrap
from rebalancer.adapters.ccxt.public import PublicTickers
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import LimitWatch, PaperExchange
from rebalancer.config import parse_config
from rebalancer.core.errors import RetryLater
from rebalancer.core.model import OrderRequest, Side
from rebalancer.daemon import Daemon, DaemonPolicy, Schedule

TICKERS = ("GET", "/api/v3/ticker/24hr")
MARKETS = ("GET", "/api/v3/exchangeInfo")
START_BOOK = ("59999", "60000")  # the double's last price is the ask: 60000
POLL = timedelta(seconds=5)
MINUTE = timedelta(seconds=60)


@dataclass
class FakeTime:
    """A monotonic clock (seconds) that moves only when slept on; records the sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def double_and_client() -> tuple[BinanceDouble, Any]:
    """The public client of ``public_client`` with CCXT's throttle at 1 ms a cost unit
    (the double answers at once; 50 ms would make each tickers call wait ~0.8 s)."""
    client = make_client("binance", "", "", rateLimit=1)
    double = BinanceDouble("unused", "unused", books={"BTCUSDT": START_BOOK}).mount(client)
    return double, client


def paper(client: Any, t: FakeTime, **balances: str) -> PaperExchange:
    """A paper account on the double's tickers: slippage 0.001 (simulated book 59940 /
    60060 at 60000), taker 0.001, maker 0.0002, polls every 5 s of the fake clock."""
    return PaperExchange(
        "USDT",
        {a: D(v) for a, v in balances.items()},
        D("0.001"),
        D("0.001"),
        maker_fee=D("0.0002"),
        quote_book=True,
        feed=PublicTickers("binance", "USDT", client),
        watch=LimitWatch(POLL, t.sleep, t.clock),
    )


def order(side: Side, amount: str, cid: str = "rbtest01") -> OrderRequest:
    amt = D(amount)
    return OrderRequest("BTC", "BTC/USDT", side, amt, D(60000), amt * 60000, amt * 60, cid)


# --- prices refresh at every snapshot -------------------------------------------------------


def test_every_snapshot_reads_fresh_prices_with_one_tickers_request() -> None:
    double, client = double_and_client()
    double.serve_books("BTCUSDT", [("60990", "61000"), ("61990", "62000"), ("58990", "59000")])
    ex = paper(client, FakeTime(), USDT="1000")
    seen = [ex.snapshot(["BTC"], "USDT").prices["BTC"] for _ in range(3)]
    assert seen == [D(61000), D(62000), D(59000)]
    assert dict(double.calls) == {MARKETS: 1, TICKERS: 3}  # markets once, then one per snapshot
    snap = ex.snapshot(["BTC"], "USDT")  # the book stays at its last state
    assert snap.prices == {"BTC": D(59000)} and snap.taken_at.tzinfo is not None
    assert snap.bids["BTC"] == D(59000) * D("0.999")  # the simulated book around the price


def test_a_failed_tickers_read_is_retry_later_with_the_message_and_updates_nothing() -> None:
    double, client = double_and_client()
    ex = paper(client, FakeTime(), USDT="1000")
    first = ex.snapshot(["BTC"], "USDT")
    double.serve_books("BTCUSDT", [("61990", "62000")])
    double.inject(*TICKERS, Fault.TIMEOUT_BEFORE)
    with pytest.raises(RetryLater) as caught:
        ex.snapshot(["BTC"], "USDT")
    assert "no network, or binance cannot be reached" in str(caught.value)
    assert 'use prices = "candles"' in str(caught.value)
    assert ex.prices == {"BTC": D(60000)} and ex.prices_at == first.taken_at
    assert ex.snapshot(["BTC"], "USDT").prices["BTC"] == D(62000)  # the next one recovers


def test_a_ticker_without_a_usable_price_is_transient_in_a_refresh() -> None:
    double, client = double_and_client()
    ex = paper(client, FakeTime(), USDT="1000")
    ex.snapshot(["BTC"], "USDT")
    double.set_book("BTCUSDT", "0", "0")
    with pytest.raises(RetryLater, match="public ticker BTC/USDT: no usable price"):
        ex.snapshot(["BTC"], "USDT")


# --- limits watch the market ----------------------------------------------------------------


def test_a_limit_buy_fills_at_its_price_as_maker_once_the_ask_reaches_it() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    books = [("59980", "59990"), ("59975", "59980"), ("59960", "59970"), ("59900", "59910")]
    double.serve_books("BTCUSDT", books)
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), MINUTE)
    assert (fill.amount, fill.price, fill.cost) == (D("0.01"), D(59970), D("599.70"))
    assert (fill.fee, fill.fee_asset) == (D("0.01") * D("0.0002"), "BTC")  # the maker fee
    assert t.sleeps == [5.0, 5.0, 5.0]  # the third poll reached it: polling stopped
    assert dict(double.calls) == {MARKETS: 1, TICKERS: 1 + 3}
    assert double.book_script["BTCUSDT"] == [(D(59900), D(59910))]  # never asked for
    assert ex.balances == {"USDT": D("9400.30"), "BTC": D("0.009998")}
    assert ex.orders["rbtest01"] == fill


def test_a_limit_whose_price_is_never_reached_fills_nothing_after_timeout_over_poll() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    double.serve_books("BTCUSDT", [("59990", "60010")])
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), MINUTE)
    assert (fill.amount, fill.status) == (D(0), "canceled")
    assert t.sleeps == [5.0] * 12 and t.now == 1060.0
    assert dict(double.calls) == {MARKETS: 1, TICKERS: 1 + 12}
    assert (ex.balances["USDT"], ex.balances.get("BTC", D(0))) == (D(10000), D(0))


def test_the_last_wait_is_cut_to_the_timeout() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), timedelta(seconds=12))
    assert t.sleeps == [5.0, 5.0, 2.0] and double.calls[TICKERS] == 1 + 3


def test_a_limit_sell_needs_the_bid_to_reach_it_not_the_last_trade() -> None:
    """The double's last trade is its ask: at 60060 it is above the 60050 limit, but a
    resting sell is only certainly hit when the best bid comes up to it."""
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, BTC="0.1", USDT="0")
    ex.snapshot(["BTC"], "USDT")
    double.serve_books("BTCUSDT", [("60030", "60060"), ("60040", "60070"), ("60050", "60070")])
    fill = ex.create_limit_order(order(Side.SELL, "0.1"), D(60050), MINUTE)
    assert (fill.amount, fill.price, fill.fee_asset) == (D("0.1"), D(60050), "USDT")
    assert fill.fee == D(6005) * D("0.0002")
    assert len(t.sleeps) == 3 and double.calls[TICKERS] == 1 + 3


def test_a_failed_poll_is_skipped_and_the_watch_goes_on() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    double.inject(*TICKERS, Fault.TIMEOUT_BEFORE)
    double.inject(*TICKERS, Fault.HTTP_503)
    double.serve_books("BTCUSDT", [("59960", "59970")])
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), MINUTE)
    assert fill.amount == D("0.01")
    assert len(t.sleeps) == 3 and double.calls[TICKERS] == 1 + 3


def test_when_no_poll_succeeds_nothing_fills() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    for _ in range(4):
        double.inject(*TICKERS, Fault.TIMEOUT_BEFORE)
    double.serve_books("BTCUSDT", [("59900", "59910")])  # would fill, but is never read
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), timedelta(seconds=20))
    assert (fill.amount, fill.status) == (D(0), "canceled")
    assert len(t.sleeps) == 4 and double.calls[TICKERS] == 1 + 4


def test_a_crossing_limit_is_cancelled_at_once_without_watching() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(60100), MINUTE)  # above 60060
    assert fill.amount == 0 and t.sleeps == [] and double.calls[TICKERS] == 1


def test_a_range_from_set_ranges_still_wins_and_nothing_is_polled() -> None:
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")
    ex.set_ranges({"BTC": D(59000)}, {"BTC": D(61000)})
    fill = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), MINUTE)
    assert fill.amount == D("0.01") and t.sleeps == [] and double.calls[TICKERS] == 1


# --- wired by bootstrap, run by the daemon ----------------------------------------------------

LIVE = '[paper]\nprices = "live"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n'


def test_build_paper_wires_the_live_feed() -> None:
    double, client = double_and_client()
    made: list[str] = []

    def factory(exchange_id: str) -> Any:
        made.append(exchange_id)
        return client

    runtime = bootstrap.build_paper(parse_config(LIVE), public_client=factory)
    try:
        ex = runtime.exchange
        assert isinstance(ex, PaperExchange) and isinstance(ex.feed, PublicTickers)
        assert made == ["binance"] and "binance public tickers (live" in runtime.prices_note
        assert ex.watch.poll == POLL
        double.serve_books("BTCUSDT", [("60990", "61000"), ("61990", "62000")])
        seen = [ex.snapshot(["BTC"], "USDT").prices["BTC"] for _ in range(2)]
        assert seen == [D(61000), D(62000)]
        assert dict(double.calls) == {MARKETS: 1, TICKERS: 1 + 2}  # build, then each snapshot
    finally:
        runtime.close()


def test_build_paper_on_candles_has_no_feed() -> None:
    runtime = bootstrap.build_paper(parse_config("[targets]\nBTC = 0.5\nUSDT = 0.5\n"))
    try:
        assert isinstance(runtime.exchange, PaperExchange) and runtime.exchange.feed is None
    finally:
        runtime.close()


@dataclass
class CutTheNetworkOnce:
    """The daemon's waiter: jumps the manual clock; before the second tick, the next
    tickers request fails as without a network."""

    clock: ManualClock
    double: BinanceDouble
    waits: int = 0

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        self.waits += 1
        if self.waits == 1:
            self.double.inject(*TICKERS, Fault.TIMEOUT_BEFORE)
        self.clock.set(max(when, self.clock.now()))


def test_the_daemon_backs_off_on_a_failed_read_and_recovers_on_fresh_prices() -> None:
    double, client = double_and_client()
    runtime = bootstrap.build_paper(parse_config(LIVE), public_client=lambda _: client)
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    notifier = MemoryNotifier()
    policy = DaemonPolicy(Schedule(period=timedelta(hours=4)), max_ticks=3)
    daemon = Daemon(
        runtime.exchange,
        runtime.journal,
        notifier,
        runtime.strategy,
        clock,
        policy,
        CutTheNetworkOnce(clock, double),
    )
    try:
        double.serve_books("BTCUSDT", [("59999", "60000"), ("64999", "65000")])
        result = daemon.run(handle_signals=False)
    finally:
        runtime.close()
    assert (result.exit_code, result.ticks) == (0, 3)  # backed off, did not halt
    texts = [f"{e.kind}: {e.title} {e.body}" for e in notifier.events]
    failed = [t for t in texts if "no network, or binance cannot be reached" in t]
    assert failed and any(t.startswith("recovered") for t in texts)
    assert isinstance(runtime.exchange, PaperExchange)
    assert runtime.exchange.prices["BTC"] == D(65000)  # the third tick saw the new price


def test_the_market_fallback_after_a_watch_fills_at_the_last_price_seen() -> None:
    """The rest of an unfilled limit goes at market right after the watch: at the price the
    watch last read (the double's last trade is its ask), not the snapshot's from before."""
    double, client = double_and_client()
    t = FakeTime()
    ex = paper(client, t, USDT="10000")
    ex.snapshot(["BTC"], "USDT")  # 60000
    double.serve_books("BTCUSDT", [("60490", "60500")])  # the market moves up, away
    limit = ex.create_limit_order(order(Side.BUY, "0.01"), D(59970), MINUTE)
    assert limit.amount == 0
    rest = ex.create_market_order(order(Side.BUY, "0.01", "rbtest02"))
    assert rest.price == D(60500) * D("1.001")  # the last price seen, slippage against us
