"""Resting limit orders on a CCXT exchange: :class:`RestingOrders`, mixed into
:class:`~rebalancer.adapters.ccxt.exchange.CcxtExchange`.

:meth:`RestingOrders.create_limit_order` runs this sequence:

1. The limit price (quote per base) goes onto the market's tick *away* from the book (a buy
   rounds down, a sell up), so the order can only rest; the amount (base units) is truncated
   to the market step, and minimum amount and notional are checked at that price before
   anything is sent. An order already carrying the client id is managed instead of a new
   one being sent.
2. It is sent post-only and good till cancelled (:data:`POST_ONLY`). An exchange that
   refuses it because it would have crossed the book returns nothing filled (amount 0,
   status "canceled"). A lost create response is resolved by looking the order up by
   client id, never by sending it again.
3. The order is read again every ``poll_interval`` seconds (injected ``sleep`` and
   ``clock``) until it is final or the ``timeout`` has passed (at most ``timeout /
   poll_interval`` polls); a failed poll is skipped.
4. What still rests is cancelled by its exchange id and the order is ALWAYS read again, so
   a fill racing the cancel is counted. A cancel lost to the network (or a busy exchange)
   is sent again, up to :data:`CANCEL_ATTEMPTS` rounds ``poll_interval`` seconds apart; a
   "not found" on cancel means it closed meanwhile, and the re-read tells how.
5. The Fill carries what really filled: status "closed" when complete, "canceled"
   otherwise. An order whose final state cannot be confirmed (no final state read after
   the rounds, or a read failing past the send, an IP ban included) raises
   :class:`OrderOutcomeUnknown` with the client id, to be looked up later.

:meth:`RestingOrders.cancel_order` (reconciliation after a crash) finds an order by client
id and runs steps 4-5 on it when it still rests.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt

from rebalancer.adapters.ccxt import errors, ratelimit
from rebalancer.adapters.ccxt.markets import dec, passive_price, resolve, rules_from_market
from rebalancer.core.errors import (
    BelowMinimum,
    ExchangeBanned,
    InvariantBroken,
    OrderOutcomeUnknown,
    OrderRejected,
    RetryLater,
)
from rebalancer.core.model import ZERO, Fill, OrderRequest, Side
from rebalancer.core.rules import violation

if TYPE_CHECKING:
    from rebalancer.adapters.ccxt.venues import Venue
    from rebalancer.ports import Clock

log = logging.getLogger(__name__)


FINAL_STATUSES = frozenset({"closed", "canceled", "expired", "rejected"})
CANCEL_ATTEMPTS = 3  # cancel + re-read rounds before a resting order's state is "unknown"
# Sent with every resting limit: CCXT's unified flag, which each venue turns into its own
# (Binance type LIMIT_MAKER, Kraken oflags "post" appended to ours, Coinbase
# limit_limit_gtc.post_only = true). Without timeInForce the order is good till cancelled.
POST_ONLY: Mapping[str, Any] = {"postOnly": True}


class RestingOrders:
    """Post-only limit orders that rest, then are cancelled and read back (see the module).

    A mixin: :class:`~rebalancer.adapters.ccxt.exchange.CcxtExchange` provides the client,
    its settings and the order look-ups declared below.
    """

    if TYPE_CHECKING:
        client: Any
        venue: Venue
        clock: Clock
        sleep: Callable[[float], None]
        poll_interval: float
        check_before_send: bool

        @property
        def _secrets(self) -> tuple[str, ...]: ...
        def markets(self) -> Mapping[str, Any]: ...
        def _existing(self, cid: str, symbol: str, what: str) -> Any: ...
        def _amount_to_precision(self, symbol: str, amount: Decimal, what: str) -> Decimal: ...
        def _fetch_raw(self, cid: str, symbol: str) -> Any: ...
        def _fetch_by_id(self, order_id: str, symbol: str, cid: str) -> Any: ...
        def _to_fill(self, order: Mapping[str, Any], asset: str, symbol: str, cid: str) -> Fill: ...

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        """Place ``order`` (``order.amount`` base units, ``order.client_order_id`` set) as a
        post-only (maker) GTC limit at ``price`` (quote per base), wait up to ``timeout`` for
        fills, cancel what is left, and return the final fill: ``amount`` may be anything from
        0 to order.amount, ``status`` "closed" when complete, "canceled" otherwise (also when
        the post-only order was refused because it would have crossed the book: amount 0).
        Same errors as create_market_order (SkipLeg subclasses when refused for
        size/balance/market rules, OrderOutcomeUnknown when it may exist and could not be
        confirmed).

        ``price`` goes onto the market's tick away from the book (buy down, sell up); the
        amount is truncated to the step; minimum amount and notional are checked at the
        limit price before sending. The order is polled every ``poll_interval`` seconds by the
        injected ``sleep``/``clock`` until it is final or ``timeout`` has passed, then
        cancelled by its exchange id and ALWAYS read again, so a fill racing the cancel is
        counted. A lost create response is resolved by looking the order up by client id
        (never by sending it again); an order already carrying the client id is managed
        (waited for, cancelled) instead of a new one being sent.
        """
        cid = order.client_order_id
        if not cid:
            raise InvariantBroken(f"limit order {order.side} {order.symbol}: no client_order_id")
        if price <= 0 or timeout < timedelta(0):
            raise InvariantBroken(
                f"limit order {order.side} {order.symbol}: price {price} must be > 0 and "
                f"timeout {timeout} not negative"
            )
        market = resolve(self.markets(), order.symbol)
        symbol = str(market["symbol"])
        what = f"create_limit_order {order.side} {symbol} client id {cid}"
        deadline = self.clock.now() + timeout
        if self.check_before_send:
            existing = self._existing(cid, symbol, what)
            if existing is not None:
                return self._rest_then_cancel(existing, order, symbol, deadline, timeout, what)
        limit = self._limit_price(market, order.side, price, what)
        amount = self._amount_to_precision(symbol, order.amount, what)
        rules = rules_from_market(market, int(self.client.precisionMode))
        problem = violation(rules, amount, limit)
        if problem is not None:
            code, detail = problem
            error = OrderRejected if code == "above_max_amount" else BelowMinimum
            raise error(f"{what}: NOT sent, {detail} (at the limit price {limit})")
        params: dict[str, Any] = {
            **self.venue.order_params,
            **POST_ONLY,
            self.venue.client_id_param: cid,
        }
        try:
            raw = self.client.create_order(
                symbol, "limit", order.side.value, float(amount), float(limit), params
            )
        except ccxt.BaseError as exc:
            if errors.post_only_refused(exc):
                log.info(
                    "%s: post-only limit at %s would have crossed the book: %s", what, limit, exc
                )
                return self._unfilled(order, symbol, cid)
            action = errors.action_for(exc, create=True)
            if action in (errors.Action.LOOKUP, errors.Action.OUTCOME_UNKNOWN):
                log.warning(
                    "%s: outcome unknown (%s); looking the order up by client id", what, exc
                )
                try:
                    found = self._fetch_raw(cid, symbol)
                except RetryLater:
                    found = None  # cannot tell: OrderOutcomeUnknown below
                if found is not None:
                    return self._rest_then_cancel(found, order, symbol, deadline, timeout, what)
            raise errors.translate(
                exc, what=what, create=True, client_order_id=cid, secrets=self._secrets
            ) from exc
        return self._rest_then_cancel(raw, order, symbol, deadline, timeout, what)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Cancel our order ``client_order_id`` if it still rests, then return its final state read
        back from the exchange (a Fill with the amount really filled and status "canceled" or
        "closed"); None when the exchange has no order with that client id. Raises
        OrderOutcomeUnknown when its final state cannot be confirmed.

        For reconciliation: an order left resting by a crash (or whose outcome was unknown)
        is found by client id, as by :meth:`fetch_order`. An order already final is returned
        without a cancel request; an open one is cancelled by its exchange id and read again,
        exactly as at the end of :meth:`create_limit_order` (a fill racing the cancel is
        counted, a lost cancel is sent again, up to CANCEL_ATTEMPTS rounds).
        """
        cid = client_order_id
        if not cid:
            raise InvariantBroken(f"cancel_order {symbol}: no client_order_id")
        what = f"cancel_order {symbol} client id {cid}"

        def cancel() -> Fill | None:
            market = resolve(self.markets(), symbol)
            unified = str(market["symbol"])
            found = self._fetch_raw(cid, unified)
            if found is None:
                return None
            if found.get("status") in FINAL_STATUSES:
                log.info("%s: already %s; nothing to cancel", what, found.get("status"))
            return self._cancel_if_open(found, str(market["base"]), unified, cid, what)

        with _confirming(cid, what):
            return cancel()

    def _limit_price(
        self, market: Mapping[str, Any], side: Side, price: Decimal, what: str
    ) -> Decimal:
        """``price`` on the market's tick away from the book, checked against CCXT's own
        formatting (which would round to the nearest tick) so what is sent is what we chose."""
        precision = (market.get("precision") or {}).get("price")
        limit = passive_price(price, side, precision, int(self.client.precisionMode))
        if limit <= 0:
            raise BelowMinimum(f"{what}: price {price} rounds to {limit} at tick {precision}")
        sent = dec(self.client.price_to_precision(str(market["symbol"]), str(limit)))
        if sent != limit:
            raise InvariantBroken(
                f"{what}: price {price} rounded to {limit}, but CCXT would send {sent} "
                f"(precision {precision!r}, mode {self.client.precisionMode})"
            )
        return limit

    def _rest_then_cancel(
        self,
        raw: Mapping[str, Any],
        order: OrderRequest,
        symbol: str,
        deadline: datetime,
        timeout: timedelta,
        what: str,
    ) -> Fill:
        """Poll the resting order until it is final or ``deadline`` passes (by the injected
        clock; at most ``timeout / poll_interval`` polls, so a clock that does not move still
        ends), then cancel it and read it again. A failed poll is skipped (the cancel and
        the re-read after it decide). A read that fails past that point (an IP ban, HTTP
        418, while waiting; the fee's trades after the cancel) leaves the outcome unknown:
        OrderOutcomeUnknown, with the reason."""
        cid = order.client_order_id
        wait = timeout.total_seconds()
        most = max(1, math.ceil(wait / self.poll_interval)) if self.poll_interval > 0 else 1
        with _confirming(cid, what):
            current, polls = raw, 0
            while current.get("status") not in FINAL_STATUSES and polls < most:
                left = (deadline - self.clock.now()).total_seconds()
                if left <= 0:
                    break
                self.sleep(min(self.poll_interval, left))
                polls += 1
                try:
                    current = self._reread(current, symbol, cid) or current
                except ExchangeBanned:
                    raise
                except RetryLater as exc:
                    log.warning("%s: poll %d failed (%s); still waiting", what, polls, exc)
            return self._cancel_if_open(current, order.asset, symbol, cid, what)

    def _cancel_if_open(
        self, current: Mapping[str, Any], asset: str, symbol: str, cid: str, what: str
    ) -> Fill:
        """The order's final fill: cancelled and read again first unless ``current`` is
        already final (then no cancel is sent). Status "closed" when it filled completely,
        "canceled" otherwise (expired and rejected included)."""
        if current.get("status") not in FINAL_STATUSES:
            current = self._cancel_and_confirm(current, symbol, cid, what)
        fill = self._to_fill(current, asset, symbol, cid)
        complete = current.get("status") == "closed"
        return replace(fill, status="closed" if complete else "canceled")

    def _reread(self, current: Mapping[str, Any], symbol: str, cid: str) -> Any:
        """The order read again: by exchange id where the venue polls so, else by client id."""
        order_id = current.get("id")
        if self.venue.poll_by_id and order_id:
            return self._fetch_by_id(str(order_id), symbol, cid)
        return self._fetch_raw(cid, symbol)

    def _cancel_and_confirm(
        self, current: Mapping[str, Any], symbol: str, cid: str, what: str
    ) -> Mapping[str, Any]:
        """Cancel the order by its exchange id and read it until it is final.

        "Not found" / "unknown order" on cancel means it closed meanwhile: the re-read tells
        how. A cancel that failed otherwise (network, exchange busy) is retried: cancelling
        is idempotent. OrderOutcomeUnknown when no final state was read after
        CANCEL_ATTEMPTS rounds.
        """
        last_error = ""
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            order_id = current.get("id")
            if order_id:
                last_error = self._cancel(str(order_id), symbol, what) or last_error
            try:
                found = self._reread(current, symbol, cid)
            except ExchangeBanned:
                raise
            except RetryLater as exc:
                found, last_error = None, str(exc)
            if found is not None:
                current = found
                if current.get("status") in FINAL_STATUSES:
                    return current
            if attempt < CANCEL_ATTEMPTS:
                self.sleep(self.poll_interval)
        raise OrderOutcomeUnknown(
            f"{what}: cancelled but its final state could not be confirmed (last seen "
            f"{current.get('status')!r}, filled {current.get('filled')}"
            + (f"; {last_error}" if last_error else "")
            + "); it may still rest on the book: look it up by client order id",
            cid,
        )

    def _cancel(self, order_id: str, symbol: str, what: str) -> str:
        """Send one cancel; "" when accepted or the order is no longer open, else why not.

        Raises only what must stop the bot (a refused key, an IP ban)."""
        try:
            self.client.cancel_order(order_id, symbol)
        except ccxt.OrderNotFound:
            log.info("%s: cancel %s: no longer open (filled or cancelled)", what, order_id)
            return ""
        except ccxt.BaseError as exc:
            action = errors.action_for(exc, create=False)
            if action is errors.Action.AUTH:
                raise errors.translate(exc, what=f"{what}: cancel", secrets=self._secrets) from exc
            ratelimit.raise_if_banned(self.client, exc, f"{what}: cancel")
            if action is errors.Action.NOT_FOUND:
                return ""
            # Coinbase refuses a cancel of a filled order (ORDER_IS_FULLY_FILLED, a BadRequest
            # in CCXT); a network error leaves it unknown: the re-read decides either way.
            log.warning("%s: cancel %s failed (%s); reading the order again", what, order_id, exc)
            return f"cancel failed: {type(exc).__name__}: {errors.scrub(str(exc), self._secrets)}"
        return ""

    @staticmethod
    def _unfilled(order: OrderRequest, symbol: str, cid: str) -> Fill:
        """Nothing traded: the post-only order was refused before resting."""
        return Fill(
            client_order_id=cid,
            asset=order.asset,
            symbol=symbol,
            side=order.side,
            amount=ZERO,
            price=ZERO,
            cost=ZERO,
            fee=ZERO,
            fee_asset="",
            status="canceled",
        )


@contextmanager
def _confirming(cid: str, what: str) -> Iterator[None]:
    """A read that fails inside (RetryLater, an IP ban included) leaves a resting order's
    final state unknown: raised as OrderOutcomeUnknown for ``cid``, with the reason."""
    try:
        yield
    except RetryLater as exc:  # ExchangeBanned included
        raise OrderOutcomeUnknown(
            f"{what}: {exc}; the limit order may still rest on the book or its fill "
            "could not be read: look it up by client order id",
            cid,
        ) from exc
