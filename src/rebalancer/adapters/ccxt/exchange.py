"""The live exchange: :class:`rebalancer.ports.Exchange` over a CCXT client.

* Start-up refuses a client that could re-send an order by itself (``maxRetriesOnFailure``
  other than 0) or that would hammer the exchange (``enableRateLimit`` off).
* Markets are loaded once and reloaded when older than ``markets_ttl`` (injected clock).
* :meth:`CcxtExchange.snapshot` costs two requests whatever the number of assets: one
  ``fetch_balance`` and one batched ``fetch_tickers`` (one ``fetch_ticker`` per symbol only
  where the exchange has no batched tickers). Stale tickers, crossed books and price jumps
  are refused with :class:`MarketDataRejected` (a RetryLater).
* :meth:`CcxtExchange.create_market_order` is idempotent by client order id (an order
  already carrying it is returned, not sent again), sends the id under the exchange's
  own parameter, truncates the amount to the market step, buys by quote cost where the
  exchange supports it, then waits for the order to be final and returns the real fill.
* :meth:`CcxtExchange.create_limit_order` rests a post-only GTC limit (price rounded away
  from the book), waits up to a timeout, cancels the rest, re-reads the order and returns
  what really filled (0 when the post-only order would have crossed).
* :meth:`CcxtExchange.cancel_order` finds an order by client id (reconciliation after a
  crash), cancels it if it still rests and returns its final state, with the same code.
  Both come from :class:`~rebalancer.adapters.ccxt.limits.RestingOrders` (limits.py).
* Every CCXT exception goes through :mod:`rebalancer.adapters.ccxt.errors`.
* What differs per exchange is one :class:`Venue` row (Binance, Kraken, Coinbase); an
  exchange without a row is refused at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal, TypeVar

import ccxt

from rebalancer.adapters.ccxt import errors, ratelimit
from rebalancer.adapters.ccxt.book import estimate_fill
from rebalancer.adapters.ccxt.limits import FINAL_STATUSES, RestingOrders
from rebalancer.adapters.ccxt.markets import (
    dec,
    positive,
    resolve,
    rules_from_market,
    sum_by_currency,
    symbol_for,
)
from rebalancer.adapters.ccxt.venues import VENUES, retries_configured
from rebalancer.adapters.ccxt.venues import make_client as make_client  # re-export
from rebalancer.adapters.clock import SystemClock
from rebalancer.core.errors import (
    BelowMinimum,
    ConfigError,
    InvariantBroken,
    OrderOutcomeUnknown,
    OrderRejected,
    RetryLater,
    UnknownSymbol,
)
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.order_ids import id_time
from rebalancer.core.venue import venue_model
from rebalancer.ports import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")


LOOKUP_PAGE = 100  # orders listed per look-up by client id where the exchange cannot filter
LOOKUP_PAGES = 20  # pages followed by cursor before a look-up gives up (RetryLater)
LOOKUP_SLACK = timedelta(minutes=5)  # listed from this long before an id's cycle time


class MarketDataRejected(RetryLater):
    """Market data failed a sanity check (stale, crossed, jumped); try again later."""


class ThinBook(OrderRejected):
    """The order book cannot fill the order within max_slippage: the leg is skipped."""


class CcxtExchange(RestingOrders):
    """One account on one exchange, through CCXT (the only place the project imports it).

    ``client``: a CCXT exchange built by :func:`make_client` (or configured alike).
    ``max_ticker_age``: older tickers are refused. ``max_price_jump``: a fraction (0.2 =
    20 %); a price that moved more than this since the previous snapshot is refused once.
    ``markets_ttl``: markets are reloaded when older. ``poll_interval`` (seconds) and
    ``max_polls``: how long to wait for an order to become final before reporting its
    outcome as unknown. ``check_before_send``: look the client id up before sending, so a
    second call with the same id returns the first order instead of trading again (one
    read per order). ``max_slippage`` (a fraction; None: off): before each order the
    book is fetched (one request) and the fill estimated; above the cap ``thin_book``
    decides: "slice" sends the part that fits, "skip" refuses the leg (:class:`ThinBook`).
    ``order_type`` "limit_ioc" sends limit immediate-or-cancel orders at ``max_slippage``
    from the best price instead of market orders; "limit_inside" changes nothing here (the
    service calls :meth:`create_limit_order`, and market orders for what is left).
    ``lookup_window``: how far back orders are listed where the exchange cannot look an
    order up by client id (Coinbase).
    ``clock`` and ``sleep`` are injected for tests.
    """

    def __init__(
        self,
        client: Any,
        *,
        max_ticker_age: timedelta,
        max_price_jump: Decimal,
        clock: Clock | None = None,
        markets_ttl: timedelta = timedelta(hours=1),
        poll_interval: float = 0.5,
        max_polls: int = 20,
        sleep: Callable[[float], None] = time.sleep,
        check_before_send: bool = True,
        lookup_window: timedelta = timedelta(days=7),
        max_slippage: Decimal | None = None,
        thin_book: Literal["slice", "skip"] = "slice",
        order_type: Literal["market", "limit_ioc", "limit_inside"] = "market",
        book_depth: int = 50,
    ) -> None:
        if not getattr(client, "enableRateLimit", False):
            raise ConfigError(
                f"{client.id}: enableRateLimit is off; turn it on (the exchange bans "
                "clients that exceed its request weight)"
            )
        retries = retries_configured(client.options)
        if retries:
            raise ConfigError(
                f"{client.id}: CCXT is set to retry failed requests ({', '.join(retries)}); "
                "set maxRetriesOnFailure to 0: a retried order request can place the order "
                "twice"
            )
        venue = VENUES.get(str(client.id))
        if venue is None:
            raise ConfigError(
                f"exchange {client.id!r}: live trading supports {', '.join(sorted(VENUES))} "
                "so far (orders must be found again by our client order id)"
            )
        self.venue = venue
        self.model = venue_model(str(client.id))  # who pays the fee, how buys are sent
        self.client = client
        self.name = str(client.id)
        self.max_ticker_age = max_ticker_age
        self.max_price_jump = max_price_jump
        self.clock: Clock = clock or SystemClock()
        self.markets_ttl = markets_ttl
        self.poll_interval = poll_interval
        self.max_polls = max_polls
        self.sleep = sleep
        self.check_before_send = check_before_send
        self.lookup_window = lookup_window
        if order_type == "limit_ioc" and max_slippage is None:
            raise ConfigError(
                f"{client.id}: order_type limit_ioc needs max_slippage (how far from the best "
                "price the limit goes)"
            )
        self.max_slippage = max_slippage
        self.thin_book = thin_book
        self.order_type = order_type
        self.book_depth = book_depth
        self._markets_at: datetime | None = None
        self._last_prices: dict[str, Decimal] = {}

    # -- plumbing -----------------------------------------------------------------------

    @property
    def _secrets(self) -> tuple[str, ...]:
        return tuple(
            str(s) for s in (self.client.apiKey, self.client.secret, self.client.password) if s
        )

    def _read(self, what: str, call: Callable[[], T]) -> T:
        try:  # Retry-After honoured on 429, ExchangeBanned on 418 (ratelimit.py)
            return ratelimit.call_read(self.client, call, self.sleep, what)
        except ccxt.BaseError as exc:
            raise errors.translate(exc, what=what, secrets=self._secrets) from exc

    def markets(self) -> Mapping[str, Any]:
        """The exchange's markets, loaded once and reloaded when older than markets_ttl."""
        now = self.clock.now()
        stale = self._markets_at is None or now - self._markets_at > self.markets_ttl
        if stale:
            reload = self._markets_at is not None
            self._read("load_markets", lambda: self.client.load_markets(reload))
            self._markets_at = now
        markets: Mapping[str, Any] = self.client.markets
        return markets

    def rules(self, symbol: str) -> MarketRules:
        """The market's rules as this venue executes them (fee side from the venue model)."""
        market = resolve(self.markets(), symbol)
        return self.model.market(rules_from_market(market, int(self.client.precisionMode)))

    def tradable(self, assets: Sequence[str], quote: str) -> list[str]:
        """The ``assets`` with an active spot market against ``quote`` here (no request
        beyond the cached markets); used to route legs between several accounts."""
        markets = self.markets()
        out = []
        for asset in assets:
            try:
                resolve(markets, symbol_for(asset, quote))
            except UnknownSymbol:
                continue
            out.append(asset.upper())
        return out

    # -- snapshot -------------------------------------------------------------------------

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        quote = quote.upper()
        wanted = [a.upper() for a in dict.fromkeys(assets) if a.upper() != quote]
        markets = {a: self.rules(symbol_for(a, quote)) for a in wanted}
        balance = self._read("fetch_balance", self.client.fetch_balance)
        if not isinstance(balance.get("info"), dict | list):
            # CCXT hands an unparseable body (e.g. truncated JSON) to the parser as text and
            # returns an empty balance: never read that as "holds nothing".
            raise RetryLater("fetch_balance: the exchange's response could not be parsed")
        tickers = self._tickers([m.symbol for m in markets.values()])
        now = self.clock.now()
        free = balance.get("free") or {}
        balances = {a: dec(free.get(a)) or ZERO for a in [*wanted, quote]}
        prices: dict[str, Decimal] = {}
        bids: dict[str, Decimal] = {}
        asks: dict[str, Decimal] = {}
        for asset, rules in markets.items():
            ticker = tickers.get(rules.symbol)
            if ticker is None or not isinstance(ticker.get("info"), dict):
                raise MarketDataRejected(f"fetch_tickers: no ticker returned for {rules.symbol}")
            price, bid, ask = self._check_ticker(rules.symbol, ticker, now)
            prices[asset] = price
            if bid is not None:
                bids[asset] = bid
            if ask is not None:
                asks[asset] = ask
        self._check_jumps(prices, markets)
        return Snapshot(quote, balances, prices, markets, now, bids, asks)

    def _tickers(self, symbols: list[str]) -> Mapping[str, Any]:
        if not symbols:
            return {}
        if self.venue.bids_asks:
            books: Mapping[str, Any] = self._read(
                "fetch_bids_asks", lambda: self.client.fetch_bids_asks(symbols)
            )
            return books
        if self.client.has.get("fetchTickers"):
            batch: Mapping[str, Any] = self._read(
                "fetch_tickers", lambda: self.client.fetch_tickers(symbols)
            )
            return batch
        out: dict[str, Any] = {}
        for symbol in symbols:
            out[symbol] = self._read(
                f"fetch_ticker {symbol}", partial(self.client.fetch_ticker, symbol)
            )
        return out

    def _check_ticker(
        self, symbol: str, ticker: Mapping[str, Any], now: datetime
    ) -> tuple[Decimal, Decimal | None, Decimal | None]:
        stamp_ms = ticker.get("timestamp")
        if stamp_ms is None and self.venue.ticker_time == "received":
            stamp_ms = int(now.timestamp() * 1000)
        if stamp_ms is None:
            raise MarketDataRejected(
                f"ticker {symbol}: no timestamp, cannot tell its age (max_ticker_age "
                f"{self.max_ticker_age}); refusing to trade on it"
            )
        age = now - datetime.fromtimestamp(int(stamp_ms) / 1000, UTC)
        if age > self.max_ticker_age:
            raise MarketDataRejected(
                f"ticker {symbol}: stale, {age.total_seconds():.1f} s old > max_ticker_age "
                f"{self.max_ticker_age.total_seconds():.1f} s"
            )
        bid = dec(ticker.get("bid")) or None
        ask = dec(ticker.get("ask")) or None
        if bid is not None and ask is not None and bid > ask:
            raise MarketDataRejected(f"ticker {symbol}: crossed book, bid {bid} > ask {ask}")
        last = ticker.get("last")
        if last is None and bid is not None and ask is not None:
            return (bid + ask) / 2, bid, ask
        return positive(last, f"ticker {symbol} last price"), bid, ask

    def _check_jumps(
        self, prices: Mapping[str, Decimal], markets: Mapping[str, MarketRules]
    ) -> None:
        """Refuse a price that moved more than max_price_jump since the last snapshot.

        The new prices become the reference either way, so a real move is accepted on the
        next snapshot while a one-off glitch is never traded on.
        """
        jumps = []
        for asset, price in prices.items():
            symbol = markets[asset].symbol
            before = self._last_prices.get(symbol)
            self._last_prices[symbol] = price
            if before is not None and abs(price / before - 1) > self.max_price_jump:
                jumps.append(f"{symbol} {before} -> {price}")
        if jumps:
            raise MarketDataRejected(
                f"price jump above max_price_jump {self.max_price_jump} since the last "
                f"snapshot: {'; '.join(jumps)}; retry to confirm"
            )

    # -- orders ---------------------------------------------------------------------------

    def create_market_order(self, order: OrderRequest) -> Fill:
        cid = order.client_order_id
        if not cid:
            raise InvariantBroken(f"order {order.side} {order.symbol}: no client_order_id")
        market = resolve(self.markets(), order.symbol)
        symbol = str(market["symbol"])
        params: dict[str, Any] = {**self.venue.order_params, self.venue.client_id_param: cid}
        what = f"create_market_order {order.side} {symbol} client id {cid}"
        if self.check_before_send:
            existing = self._existing(cid, symbol, what)
            if existing is not None:
                return self._settle_or_unknown(existing, order.asset, symbol, cid, what)
        by_cost = order.side is Side.BUY and self._buys_by_cost(market)
        order, best = self._within_cap(order, symbol, by_cost, what)
        if self.order_type == "limit_ioc":
            send = self._limit_ioc(order, symbol, best, params, what)
        elif by_cost:
            # Coinbase spends the quote sent, fee included: send cost + fee to get the amount
            cost = order.expected_cost + (order.expected_fee if self.model.cost_includes_fee else 0)
            if cost <= 0:
                raise BelowMinimum(f"{what}: cost {cost} is not positive")

            def send() -> Any:
                return self.client.create_market_buy_order_with_cost(symbol, float(cost), params)

        else:
            amount = self._amount_to_precision(symbol, order.amount, what)

            def send() -> Any:
                return self.client.create_order(
                    symbol, "market", order.side.value, float(amount), None, params
                )

        try:
            raw = send()
        except ccxt.BaseError as exc:
            action = errors.action_for(exc, create=True)
            if action is errors.Action.LOOKUP:
                log.warning("%s: exchange says duplicate; looking the order up", what)
                try:
                    found = self._fetch_raw(cid, symbol)
                except RetryLater:
                    found = None  # cannot tell: OrderOutcomeUnknown below
                if found is not None:
                    return self._settle_or_unknown(found, order.asset, symbol, cid, what)
            raise errors.translate(
                exc, what=what, create=True, client_order_id=cid, secrets=self._secrets
            ) from exc
        return self._settle_or_unknown(raw, order.asset, symbol, cid, what)

    def _within_cap(
        self, order: OrderRequest, symbol: str, by_cost: bool, what: str
    ) -> tuple[OrderRequest, Decimal | None]:
        """``order`` as it fits the book within ``max_slippage``, and the book's best price.

        Off (order unchanged, best None) without ``max_slippage``. A whole order within the
        cap goes as it is; above it, ``thin_book = "slice"`` keeps the part that fits (the
        rest waits for the next cycle) and ``"skip"`` refuses the leg with :class:`ThinBook`.
        """
        if self.max_slippage is None:
            return order, None
        cap = self.max_slippage
        try:
            book = self._read(
                f"fetch_order_book {symbol}",
                lambda: self.client.fetch_order_book(symbol, self.book_depth),
            )
        except RetryLater as exc:
            raise OrderRejected(
                f"{what}: NOT sent, the order book could not be read ({exc})"
            ) from exc
        side = book.get("asks" if order.side is Side.BUY else "bids") or []
        levels = [(dec(level[0]) or ZERO, dec(level[1]) or ZERO) for level in side]
        levels = [(p, q) for p, q in levels if p > 0]
        if not levels:
            raise ThinBook(f"{what}: the order book has no {order.side.value} liquidity")
        est = estimate_fill(
            levels,
            order.side,
            cap,
            amount=None if by_cost else order.amount,
            cost=order.expected_cost if by_cost else None,
        )
        if est.within(cap):
            return order, est.best
        reason = (
            f"{what}: the book would fill it at {est.describe()}, above max_slippage "
            f"{float(cap * 100):.3g} %"
        )
        if self.thin_book == "skip" or est.fits_amount <= 0:
            raise ThinBook(f"{reason}; leg skipped instead of walking a thin book")
        share = est.fits_amount / order.amount if order.amount > 0 else ZERO
        log.warning("%s; sending the %s that fits, the rest waits", reason, est.fits_amount)
        sliced = replace(
            order,
            amount=est.fits_amount,
            expected_cost=est.fits_cost,
            expected_fee=order.expected_fee * share,
        )
        return sliced, est.best

    def _limit_ioc(
        self,
        order: OrderRequest,
        symbol: str,
        best: Decimal | None,
        params: dict[str, Any],
        what: str,
    ) -> Callable[[], Any]:
        """A limit IOC order at ``max_slippage`` from the best price (book, else planned)."""
        cap = self.max_slippage or ZERO
        reference = best or order.expected_price
        if order.side is Side.BUY:
            limit = reference * (1 + cap)
            wanted = min(order.amount, order.expected_cost / limit) if limit > 0 else ZERO
        else:
            limit = reference * (1 - cap)
            wanted = order.amount
        amount = self._amount_to_precision(symbol, wanted, what)
        price = self.client.price_to_precision(symbol, str(limit))
        ioc = {**params, "timeInForce": "IOC"}

        def send() -> Any:
            return self.client.create_order(
                symbol, "limit", order.side.value, float(amount), float(price), ioc
            )

        return send

    def _existing(self, cid: str, symbol: str, what: str) -> Any:
        """The order already carrying ``cid``, if any: sending is then idempotent.

        Binance only refuses a client id that an *open* order uses; a filled market order's
        id can be sent again and would trade twice.
        """
        try:
            existing = self._fetch_raw(cid, symbol)
        except RetryLater as exc:
            raise OrderRejected(
                f"{what}: NOT sent, could not check whether an order with this client id "
                f"already exists ({exc})"
            ) from exc
        if existing is not None:
            log.warning("%s: an order with this client id exists; not sending again", what)
        return existing

    def _buys_by_cost(self, market: Mapping[str, Any]) -> bool:
        if not self.venue.buy_by_cost or not self.client.has.get("createMarketBuyOrderWithCost"):
            return False
        info = market.get("info") or {}
        return bool(info.get("quoteOrderQtyMarketAllowed", True))

    def _amount_to_precision(self, symbol: str, amount: Decimal, what: str) -> Decimal:
        try:
            text = self.client.amount_to_precision(symbol, str(amount))
        except ccxt.InvalidOrder as exc:
            raise BelowMinimum(f"{what}: amount {amount} truncates to 0 ({exc})") from exc
        out = dec(text)
        if out is None or out <= 0:
            raise BelowMinimum(f"{what}: amount {amount} truncates to {text!r}")
        return out

    def _settle_or_unknown(
        self, raw: Mapping[str, Any], asset: str, symbol: str, cid: str, what: str
    ) -> Fill:
        """:meth:`_settle`, where a failed read means "placed, final state unknown"."""
        try:
            return self._settle(raw, asset, symbol, cid, what)
        except RetryLater as exc:
            raise OrderOutcomeUnknown(
                f"{what}: the order was placed but its final state could not be read ({exc}); "
                "look it up later by client order id",
                cid,
            ) from exc

    def _settle(self, raw: Mapping[str, Any], asset: str, symbol: str, cid: str, what: str) -> Fill:
        """Wait until the order is final and translate it; poll by client id."""
        order = raw
        polls = 0
        while order.get("status") not in FINAL_STATUSES:
            if polls >= self.max_polls:
                raise OrderOutcomeUnknown(
                    f"{what}: still {order.get('status')!r} after {polls} polls; look it up "
                    "later by client order id",
                    cid,
                )
            self.sleep(self.poll_interval)
            polls += 1
            if self.venue.poll_by_id and order.get("id"):
                order = self._fetch_by_id(str(order["id"]), symbol, cid)
            else:
                order = self._fetch_raw(cid, symbol) or order
        fill = self._to_fill(order, asset, symbol, cid)
        if fill.amount <= 0:
            raise OrderRejected(
                f"{what}: order ended {order.get('status')!r} with nothing filled "
                "(no liquidity or the exchange cancelled it)"
            )
        return fill

    def _fetch_by_id(self, order_id: str, symbol: str, cid: str) -> Any:
        """The CCXT order with the exchange's id ``order_id`` (known to exist)."""
        what = f"fetch_order {symbol} id {order_id} (client id {cid})"
        return self._read(what, lambda: self.client.fetch_order(order_id, symbol))

    def _find_recent(self, cid: str, symbol: str) -> Any:
        """List ``symbol``'s orders since ``cid`` was made (at most ``lookup_window`` back)
        page by page, following the exchange's cursor, and pick ours by client id.

        "Not found" is only claimed when the listing was complete (the last page carried no
        cursor); more than ``LOOKUP_PAGES`` full pages cannot tell, and is a RetryLater. A
        market with many earlier orders (the user's own, a busy week) no longer hides ours:
        the listing starts at the order's own cycle time, less ``LOOKUP_SLACK``.
        """
        since = self.clock.now() - self.lookup_window
        made = _made_at(cid)
        if made is not None:
            since = max(since, made - LOOKUP_SLACK)
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            orders, cursor = self._recent_page(symbol, since, cursor)
            for found in orders:
                if found.get("clientOrderId") == cid:
                    return found
            if not cursor:
                return None
        raise RetryLater(
            f"fetch_orders {symbol}: client id {cid} is not among the "
            f"{LOOKUP_PAGES * LOOKUP_PAGE} orders listed since {since:%Y-%m-%d %H:%M} UTC; "
            "cannot tell whether it exists"
        )

    def _recent_page(self, symbol: str, since: datetime, cursor: str) -> tuple[list[Any], str]:
        """One page of ``symbol``'s orders since ``since`` (newest first) and the cursor of
        the next one ("" when this was the last). Coinbase's order list is read directly:
        CCXT's ``fetch_orders`` hides the page's cursor in an order's ``info``, where every
        Coinbase order already has a ``cursor`` field of its own."""
        market = self.client.market(symbol)
        request: dict[str, Any] = {
            "product_id": market["id"],
            "limit": LOOKUP_PAGE,
            "start_date": self.client.iso8601(int(since.timestamp() * 1000)),
        }
        if cursor:
            request["cursor"] = cursor
        response = self.client.v3PrivateGetBrokerageOrdersHistoricalBatch(request)
        orders = self.client.parse_orders(response.get("orders") or [], market)
        more = bool(response.get("has_next")) and bool(response.get("cursor"))
        return orders, str(response["cursor"]) if more else ""

    def _fetch_raw(self, cid: str, symbol: str) -> Any:
        """The CCXT order with our client id ``cid``, or None if the exchange has none."""
        try:
            if self.venue.lookup_param is not None:
                return self.client.fetch_order(cid, symbol, {self.venue.lookup_param: cid})
            if self.venue.lookup_recent:
                return self._find_recent(cid, symbol)
            for method in (self.client.fetch_closed_orders, self.client.fetch_open_orders):
                for found in method(symbol, None, None, {"clientOrderId": cid}):
                    if found.get("clientOrderId") == cid:
                        return found
            return None
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            if errors.action_for(exc, create=False) is errors.Action.NOT_FOUND:
                return None
            what = f"fetch_order {symbol} client id {cid}"
            ratelimit.raise_if_banned(self.client, exc, what)  # 418: halt, not retry
            raise errors.translate(exc, what=what, secrets=self._secrets) from exc

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        market = resolve(self.markets(), symbol)
        order = self._fetch_raw(client_order_id, str(market["symbol"]))
        if order is None:
            return None
        return self._to_fill(order, str(market["base"]), str(market["symbol"]), client_order_id)

    def _to_fill(self, order: Mapping[str, Any], asset: str, symbol: str, cid: str) -> Fill:
        filled = dec(order.get("filled")) or ZERO
        cost = dec(order.get("cost"))
        average = dec(order.get("average"))
        if average is None and cost is not None and filled > 0:
            average = cost / filled
        if cost is None and average is not None:
            cost = average * filled
        fee, fee_asset, other_fees = self._fee(order, symbol, filled)
        return Fill(
            client_order_id=str(order.get("clientOrderId") or cid),
            asset=asset,
            symbol=symbol,
            side=Side(str(order.get("side"))),
            amount=filled,
            price=average or ZERO,
            cost=cost or ZERO,
            fee=fee,
            fee_asset=fee_asset,
            status=str(order.get("status")),
            exchange_order_id=str(order.get("id") or ""),
            other_fees=other_fees,
        )

    def _fee(
        self, order: Mapping[str, Any], symbol: str, filled: Decimal
    ) -> tuple[Decimal, str, tuple[tuple[str, Decimal], ...]]:
        """Every fee as given by the exchange (base, quote or a third asset such as BNB):
        the main one (the quote's where the order paid one, else the first) and the others.

        An order look-up may carry no fee (Binance's GET /api/v3/order has no fills): the
        order's trades are fetched then. CCXT's ``fees`` list is read whole (``fee`` only
        where there is no list), so fees charged in two currencies are all kept.
        """
        fees = list(order.get("fees") or ([order["fee"]] if order.get("fee") else []))
        by_currency = sum_by_currency(fees)
        if not by_currency and filled > 0 and self.client.has.get("fetchOrderTrades"):
            order_id = order.get("id")
            trades = self._read(
                f"fetch_order_trades {symbol} {order_id}",
                lambda: self.client.fetch_order_trades(order_id, symbol),
            )
            by_currency = sum_by_currency(
                fee
                for t in trades
                for fee in (t.get("fees") or ([t["fee"]] if t.get("fee") else []))
            )
        if not by_currency:
            return ZERO, "", ()
        quote = symbol.split("/")[-1]
        currency = quote if quote in by_currency else next(iter(by_currency))
        others = tuple((c, a) for c, a in by_currency.items() if c != currency)
        return by_currency[currency], currency, others


def _made_at(cid: str) -> datetime | None:
    """The cycle time our client id ``cid`` carries (None for an id not made by us)."""
    if not cid.startswith("rb"):
        return None
    try:
        return id_time(cid)
    except (ValueError, OverflowError):
        return None

