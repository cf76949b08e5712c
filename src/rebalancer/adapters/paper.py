"""The paper exchange: an in-process account behind the same port as the live adapter.

Prices come from outside: a candle replay through :meth:`PaperExchange.set_prices`, or a
live :class:`PriceFeed` (a real exchange's public tickers, wired by ``bootstrap`` when the
run trades on live prices, see :mod:`rebalancer.adapters.paper_prices`) that every
:meth:`PaperExchange.snapshot` reads first. Fills use the core's fill model
(:mod:`rebalancer.core.fills`), so paper and backtest trade exactly alike. Deterministic
given its inputs. Balances can be persisted through a callback after every fill; with
``on_order`` the balances *and* the orders (client id -> fill) are handed over together, so
a state file written atomically holds both and reconciliation after a crash finds the orders
the account already traded.

**Limit orders** (:meth:`PaperExchange.create_limit_order`, for ``order_type =
"limit_inside"``): the simulated book is ``bid = price * (1 - slippage)`` and
``ask = price * (1 + slippage)`` (what a market order fills at); with ``quote_book`` the
snapshots carry it as bids/asks so the service can price its limits. A post-only limit fills
completely at its limit price, paying the maker fee, when the price range the market traded
during the wait reaches it (buy: ``low <= limit``, sell: ``high >= limit``), and not at all
otherwise (:func:`rebalancer.core.execution.fill_limit_order`). That range comes from
:meth:`PaperExchange.set_ranges` -- the backtester passes the next bar's low and high; no
time passes -- and is forgotten at every :meth:`set_prices`. Without a range but with a
live feed the order *watches the market* for its ``timeout`` (:class:`LimitWatch`): the
feed is polled every ``poll``, and the range is the lowest best **ask** (a buy) or the
highest best **bid** (a sell) seen, the last trade price where the source has no book.
The opposite side of the book is used, not the last trade, because a resting buy at ``L``
has certainly been hit once the best ask came down to ``L`` (a book is never locked: every
bid at ``L`` or above, ours included, was taken), while a trade printed at ``L`` may only
have filled the orders queued ahead of ours. Polling stops as soon as the range reaches
the limit; a failed poll is skipped; when no poll succeeded nothing fills. Without a range
or a feed (the latest candle) nothing fills, so the service falls back to market orders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from rebalancer.core.drift import check_price
from rebalancer.core.errors import DataError, RetryLater, UnknownSymbol
from rebalancer.core.execution import fill_limit_order
from rebalancer.core.fills import apply_fill, fill_market_order
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.venue import REFERENCE, VenueModel, fee_currency_price

MIN_NOTIONAL = Decimal(5)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quotes:
    """One read of a live price source, in quote units per base unit: per asset the last
    trade price and, where the source has them, the best bid and ask; ``at`` their time."""

    prices: dict[str, Decimal]
    at: datetime
    bids: dict[str, Decimal] = field(default_factory=dict)
    asks: dict[str, Decimal] = field(default_factory=dict)


class PriceFeed(Protocol):
    """Live prices for the paper exchange (a real exchange's public tickers); ``source``
    says where they come from, for the user."""

    source: str

    def read(self, assets: Sequence[str]) -> Quotes:
        """The current quotes of ``assets`` in one request; :class:`RetryLater` when the
        source cannot be reached, :class:`DataError` when a ticker has no usable price."""
        ...


@dataclass(frozen=True)
class LimitWatch:
    """How a paper limit watches a live feed: one read every ``poll`` until the order's
    timeout. ``sleep`` waits that many seconds; ``clock`` is a monotonic clock in seconds
    (both injected so tests never really wait)."""

    poll: timedelta = timedelta(seconds=5)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def default_rules(asset: str, quote: str, price: Decimal, taker_fee: Decimal) -> MarketRules:
    """Binance-like rules for ``asset``: a step of 10^floor(log10(1/price)) base units
    (BTC at 100k -> 0.00001, ETH at 3k -> 0.0001, SOL at 200 -> 0.001) and a 5-quote
    minimum notional, as Binance's NOTIONAL filter on USDT markets."""
    exponent = (Decimal(1) / price).adjusted()
    return MarketRules(
        symbol=f"{asset}/{quote}",
        base=asset,
        quote=quote,
        amount_step=Decimal(1).scaleb(exponent),
        min_amount=Decimal(1).scaleb(exponent),
        min_notional=MIN_NOTIONAL,
        taker_fee=taker_fee,
    )


@dataclass
class PaperExchange:
    """A simulated account. ``slippage`` is the fraction fills move against the taker.

    ``maker_fee``: the fee rate of filled limit orders (None: the market's taker fee).
    ``quote_book``: snapshots carry the simulated book as bids/asks (off by default, so the
    planner sees exactly what it always saw).
    ``feed``: live prices, read before every snapshot and watched by limit orders as
    ``watch`` says (None: prices only from :meth:`set_prices`, as the backtester uses it).
    ``venue``: how the simulated exchange charges fees and fills buys
    (:mod:`rebalancer.core.venue`; by default ``REFERENCE``: Binance's fee side with exact
    fees, as the backtests use it; ``bootstrap`` passes the configured exchange's model),
    so paper on ``kraken`` or ``coinbase`` refuses or fills what that venue would. Every
    market is stamped with it.
    """

    quote: str
    balances: dict[str, Decimal]
    taker_fee: Decimal = Decimal("0.001")
    slippage: Decimal = ZERO
    rule_overrides: Mapping[str, MarketRules] = field(default_factory=dict)
    on_change: Callable[[dict[str, Decimal]], None] | None = None
    on_order: Callable[[dict[str, Decimal], dict[str, Fill]], None] | None = None
    name: str = "paper"
    prices: dict[str, Decimal] = field(default_factory=dict)
    prices_at: datetime | None = None
    markets: dict[str, MarketRules] = field(default_factory=dict)
    orders: dict[str, Fill] = field(default_factory=dict)
    maker_fee: Decimal | None = None
    quote_book: bool = False
    lows: dict[str, Decimal] = field(default_factory=dict)
    highs: dict[str, Decimal] = field(default_factory=dict)
    feed: PriceFeed | None = None
    watch: LimitWatch = field(default_factory=LimitWatch)
    venue: VenueModel = REFERENCE

    def set_ranges(self, lows: Mapping[str, Decimal], highs: Mapping[str, Decimal]) -> None:
        """The price range (quote per base) each asset trades while a limit order rests,
        until the next :meth:`set_prices`; an asset without one fills no limit order."""
        self.lows, self.highs = dict(lows), dict(highs)

    def set_prices(self, prices: Mapping[str, Decimal], at: datetime) -> None:
        """Move the market: ``prices`` per asset in quote units, valid at ``at``. Forgets
        the ranges of :meth:`set_ranges`."""
        self.lows, self.highs = {}, {}
        for asset, price in prices.items():
            check_price(asset, price)
            if asset not in self.markets:
                rules = self.rule_overrides.get(asset) or default_rules(
                    asset, self.quote, price, self.taker_fee
                )
                self.markets[asset] = replace(rules, fee_in_quote=self.venue.fee_in == "quote")
        self.prices.update(prices)
        self.prices_at = at

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        if quote != self.quote:
            raise UnknownSymbol(f"paper account is quoted in {self.quote}, not {quote}")
        if self.feed is not None:
            self._refresh(self.feed, assets)
        if self.prices_at is None:
            raise DataError("paper exchange has no prices yet: call set_prices first")
        missing = [a for a in assets if a not in self.prices]
        if missing:
            raise UnknownSymbol(
                f"no price for {', '.join(missing)} in the paper price source; it has "
                f"{', '.join(sorted(self.prices))}"
            )
        wanted = set(assets) | {quote}
        book = {a: self._book(a) for a in self.prices} if self.quote_book else {}
        return Snapshot(
            quote=quote,
            balances={a: b for a, b in self.balances.items() if a in wanted or b != 0},
            prices={a: self.prices[a] for a in self.prices},
            markets={a: self.markets[a] for a in self.prices},
            taken_at=self.prices_at,
            bids={a: bid for a, (bid, _) in book.items()},
            asks={a: ask for a, (_, ask) in book.items()},
        )

    def _refresh(self, feed: PriceFeed, assets: Sequence[str]) -> None:
        """Read the live prices of ``assets`` and of every asset already priced (one
        request). A ticker without a usable price is a :class:`RetryLater` here: the
        daemon backs off and tries again rather than halting."""
        wanted = [a for a in dict.fromkeys([*assets, *self.prices]) if a != self.quote]
        try:
            quotes = feed.read(wanted)
        except DataError as exc:
            raise RetryLater(str(exc)) from exc
        self.set_prices(quotes.prices, quotes.at)

    def _book(self, asset: str) -> tuple[Decimal, Decimal]:
        """The simulated best bid and ask: the prices a market sell and buy fill at."""
        price = self.prices[asset]
        return price * (1 - self.slippage), price * (1 + self.slippage)

    def create_market_order(self, order: OrderRequest) -> Fill:
        rules = self.markets.get(order.asset)
        if rules is None:
            raise UnknownSymbol(f"no market {order.symbol} on the paper exchange")
        price = self.prices[order.asset]
        fee_price = fee_currency_price(self.venue, self.prices, self.quote)
        fill = fill_market_order(
            order, rules, price, price, self.slippage, self.balances, self.venue, fee_price
        )
        return self._book_fill(order, fill)

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        """A post-only limit at ``price``, filled by the range model of the module doc.

        With a live feed and no range set, a limit that passes the market's rules and the
        balance and would rest (not cross the simulated book) watches the market for
        ``timeout`` first."""
        rules = self.markets.get(order.asset)
        if rules is None:
            raise UnknownSymbol(f"no market {order.symbol} on the paper exchange")
        low, high = self.lows.get(order.asset), self.highs.get(order.asset)
        fill = self._fill_limit(order, rules, price, low, high)  # raises when refused
        bid, ask = self._book(order.asset)
        rests = price <= ask if order.side is Side.BUY else price >= bid  # post-only
        unranged = low is None and high is None
        if self.feed is not None and fill.amount == 0 and unranged and rests:
            low, high, last = self._watch(self.feed, order, price, timeout)
            fill = self._fill_limit(order, rules, price, low, high)
            if last is not None:  # what a market fallback for the rest fills at
                self.prices[order.asset] = last
        return self._book_fill(order, fill)

    def _fill_limit(
        self,
        order: OrderRequest,
        rules: MarketRules,
        price: Decimal,
        low: Decimal | None,
        high: Decimal | None,
    ) -> Fill:
        """The core's limit fill model for a range (``low``..``high``, quote per base)."""
        bid, ask = self._book(order.asset)
        return fill_limit_order(
            order,
            rules,
            price,
            bid=bid,
            ask=ask,
            low=low,
            high=high,
            maker_fee=self._maker_fee(rules),
            balances=self.balances,
            venue=self.venue,
        )

    def _maker_fee(self, rules: MarketRules) -> Decimal:
        """The paper maker fee, else the market's, else its taker fee."""
        if self.maker_fee is not None:
            return self.maker_fee
        return rules.maker_fee if rules.maker_fee is not None else rules.taker_fee

    def _watch(
        self, feed: PriceFeed, order: OrderRequest, price: Decimal, timeout: timedelta
    ) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """Poll ``feed`` every ``watch.poll`` for ``timeout``: the lowest and highest touch
        (:meth:`_touch`) seen and the last trade price read, quote per base (None when no
        poll succeeded). Stops early once the touch reaches ``price``."""
        buy = order.side is Side.BUY
        seen: list[Decimal] = []
        last: Decimal | None = None
        deadline = self.watch.clock() + timeout.total_seconds()
        while (left := deadline - self.watch.clock()) > 0:
            self.watch.sleep(min(self.watch.poll.total_seconds(), left))
            quotes = self._poll(feed, order.asset)
            if quotes is None:
                continue
            last = quotes.prices.get(order.asset, last)
            touch = (quotes.asks if buy else quotes.bids).get(order.asset) or last
            if touch is not None:
                seen.append(touch)
                if (touch <= price) if buy else (touch >= price):
                    break
        return (min(seen), max(seen), last) if seen else (None, None, last)

    def _poll(self, feed: PriceFeed, asset: str) -> Quotes | None:
        """One read of ``asset`` (a resting buy is hit when the best ask reaches it, a sell
        when the best bid does; the last trade price stands in where the source has no
        book); None when the read failed."""
        try:
            return feed.read([asset])
        except (RetryLater, DataError) as exc:
            log.info("paper limit watch: a poll of %s failed, skipped (%s)", asset, exc)
            return None

    def _book_fill(self, order: OrderRequest, fill: Fill) -> Fill:
        """Apply ``fill`` to the balances, remember the order, persist both."""
        self.balances = apply_fill(self.balances, fill, self.quote)
        self.orders[order.client_order_id] = fill
        if self.on_order is not None:
            self.on_order(dict(self.balances), dict(self.orders))
        elif self.on_change is not None:
            self.on_change(dict(self.balances))
        return fill

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.orders.get(client_order_id)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Paper orders are final when created: nothing rests, so this is a look-up."""
        return self.orders.get(client_order_id)
