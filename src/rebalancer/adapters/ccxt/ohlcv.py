"""Closed candles from an exchange through CCXT's ``fetch_ohlcv``, page by page.

:func:`fetch_closed_candles` walks forward from ``since_ms`` one page at a time (the next
page starts one timeframe after the last candle received), with CCXT's rate limiter on
(``enableRateLimit``, see :func:`venues.make_client`). Every read goes through the project's
one retry policy (:mod:`rebalancer.adapters.ccxt.ratelimit`, on tenacity): retry-later errors
(network, 5xx, 429, garbled body) are retried with exponential backoff, never before the
exchange's ``Retry-After``; an HTTP 418 ban is never retried (ExchangeBanned); any other
error stops the download.

Only **closed** candles are returned: "now" is the exchange's clock (``fetch_time``, else
the local one), and a candle whose open time + timeframe is after it is still open and is
dropped -- its close and volume would change. Nothing is filled: a candle the exchange does
not have (an outage) is simply absent, and the caller reports the hole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import ccxt

from rebalancer.adapters.ccxt import errors
from rebalancer.adapters.ccxt.markets import resolve, symbol_for
from rebalancer.adapters.ccxt.ratelimit import DOWNLOAD, FetchStats, Retry, call_read
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.core.errors import ConfigError

Candle = tuple[int, float, float, float, float, float]
Sleep = Callable[[float], None]

#: Binance's (and CCXT's) largest kline page
PAGE_LIMIT = 1000


__all__ = ["DOWNLOAD", "Candle", "FetchStats", "Retry", "Sleep", "fetch_closed_candles"]


def download_client(exchange_id: str) -> Any:
    """A keyless CCXT client for public candles: rate limiter on, CCXT's own retries off."""
    if exchange_id not in ccxt.exchanges:
        near = [e for e in ccxt.exchanges if e.startswith(exchange_id[:3].lower())][:8]
        raise ConfigError(
            f"exchange {exchange_id!r} is not a CCXT exchange id"
            + (f" (similar: {', '.join(near)})" if near else "")
            + ". Fix: use an id such as binance, kraken, coinbase."
        )
    return make_client(exchange_id, "", "")


def timeframe_ms(client: Any, timeframe: str) -> int:
    """``"1h"`` -> 3_600_000; refuses a timeframe the exchange does not offer."""
    offered = getattr(client, "timeframes", None) or {}
    if offered and timeframe not in offered:
        raise ConfigError(
            f"timeframe {timeframe!r} is not offered by {client.id}: it has "
            f"{', '.join(offered)}. Fix: pick one of those."
        )
    return int(client.parse_timeframe(timeframe)) * 1000


def read(
    client: Any,
    what: str,
    call: Callable[[], Any],
    *,
    retry: Retry,
    stats: FetchStats,
    sleep: Sleep,
) -> Any:
    """``call()`` under the ``retry`` policy (:func:`ratelimit.call_read`); an error that is
    not retried, or outlasts the tries, is translated and raised (a 418: ExchangeBanned)."""
    try:
        return call_read(client, call, sleep, what, policy=retry, stats=stats)
    except ccxt.BaseError as exc:
        raise errors.translate(exc, what=what) from exc


def exchange_now_ms(client: Any, *, retry: Retry, stats: FetchStats, sleep: Sleep) -> int:
    """The exchange's clock in ms (one request), or the local clock if it has no time call."""
    if client.has.get("fetchTime"):
        return int(
            read(client, "fetch_time", client.fetch_time, retry=retry, stats=stats, sleep=sleep)
        )
    return int(client.milliseconds())


def fetch_closed_candles(
    client: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    *,
    until_ms: int | None = None,
    now_ms: int,
    limit: int = PAGE_LIMIT,
    retry: Retry | None = None,
    stats: FetchStats | None = None,
    sleep: Sleep = time.sleep,
) -> Iterator[list[Candle]]:
    """Pages of closed candles of ``symbol`` opening in ``[since_ms, until_ms]`` (inclusive).

    A candle is closed when its open time + timeframe <= ``now_ms`` (the exchange's clock).
    Stops at the first page that is empty, reaches ``until_ms`` or the last closed candle, or
    holds a still-open candle (a short page is not the end: some exchanges cap pages lower).
    Candles are ``(open_ms, open, high, low, close, volume)``.
    """
    retry = retry or DOWNLOAD
    stats = stats if stats is not None else FetchStats()
    step = timeframe_ms(client, timeframe)
    last_closed = (now_ms // step) * step - step  # open time of the last closed candle
    end = last_closed if until_ms is None else min(until_ms, last_closed)
    since = since_ms
    while since <= end:
        start = since
        raw = read(
            client,
            f"fetch_ohlcv {symbol} {timeframe} since {start}",
            lambda s=start: _fetch_page(client, symbol, timeframe, s, limit),  # type: ignore[misc]
            retry=retry,
            stats=stats,
            sleep=sleep,
        )
        page = [_candle(row) for row in raw if int(row[0]) >= start]
        kept = [c for c in page if c[0] <= end]
        if kept:
            yield kept
        if not page or len(kept) < len(page) or page[-1][0] >= end:
            return  # no more history, or the pages reached the end / the open candle
        since = page[-1][0] + step


def _fetch_page(client: Any, symbol: str, timeframe: str, since: int, limit: int) -> Any:
    """One ``fetch_ohlcv`` call. CCXT turns a body that is not JSON (truncated, an HTML error
    page with status 200) into an empty list, which would read as "no more history": such
    an empty page is raised as ``BadResponse`` (retried) instead."""
    rows = client.fetch_ohlcv(symbol, timeframe, since, limit)
    if not rows:
        body = getattr(client, "last_http_response", None)
        if isinstance(body, str | bytes) and body:
            try:
                json.loads(body)
            except ValueError:
                raise ccxt.BadResponse(
                    f"{client.id} fetch_ohlcv {symbol}: unreadable response {body[:80]!r}"
                ) from None
    return rows


def _candle(row: list[Any]) -> Candle:
    t, o, h, low, c, v = row[:6]
    return (int(t), float(o), float(h), float(low), float(c), float(v or 0.0))


def market_symbols(
    client: Any,
    assets: list[str],
    quote: str,
    *,
    retry: Retry,
    stats: FetchStats,
    sleep: Sleep,
) -> dict[str, str]:
    """Asset -> the exchange's unified symbol against ``quote`` (markets loaded once)."""
    markets = read(
        client,
        f"{client.id} load_markets",
        client.load_markets,
        retry=retry,
        stats=stats,
        sleep=sleep,
    )
    return {a: str(resolve(markets, symbol_for(a, quote))["symbol"]) for a in assets}
