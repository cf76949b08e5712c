"""Live price history: the exchange's closed daily candles, for look-back triggers.

:class:`ExchangeHistory` answers :class:`rebalancer.ports.PriceHistory` in live mode from
the exchange's own daily closes (``fetch_ohlcv`` through
:func:`rebalancer.adapters.ccxt.ohlcv.fetch_closed_candles`). A daily close changes once a
day, so each asset's closes are fetched once per UTC day (one request per asset: a
volatility window is far shorter than a page of 1000 candles) and cached; every other cycle
of that day costs no request at all. Only closed candles are used, and only those closed
at or before the decision time: never a later price.

A failed read does not fail the cycle: the asset keeps the closes of its last good read
(or has none, and the trigger uses its base band for it), the failure is logged, and the
next cycle tries again. The reads share the project's retry policy (``ratelimit.HISTORY``:
one more try, never before a ``Retry-After``), and an HTTP 418 ban is never retried nor
swallowed: these reads use the trading account's client, so :class:`ExchangeBanned` goes
on and the cycle halts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from rebalancer.adapters.ccxt.markets import resolve, symbol_for
from rebalancer.adapters.ccxt.ohlcv import FetchStats, Retry, fetch_closed_candles
from rebalancer.adapters.ccxt.ratelimit import HISTORY
from rebalancer.core.errors import ExchangeBanned, RebalancerError

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
DAY_MS = 86_400_000


@dataclass
class _Cached:
    last_open_ms: int  # open time of the last closed candle when fetched
    bars: int  # how many closes were asked for
    closes: list[tuple[int, Decimal]]  # (open ms, close), oldest first


class ExchangeHistory:
    """Daily closes of ``assets`` against ``quote`` from one or several CCXT exchanges.

    ``sources``: objects with a CCXT ``client`` and a ``markets()`` method (the live
    :class:`~rebalancer.adapters.ccxt.exchange.CcxtExchange` accounts), in priority order:
    an asset's closes come from the first one that lists it against ``quote``, as the
    prices of several accounts do. ``stats`` counts the requests sent.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        quote: str,
        *,
        retry: Retry | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not sources:
            raise ValueError("ExchangeHistory needs at least one exchange")
        self.sources = list(sources)
        self.quote = quote.upper()
        self.retry = retry or HISTORY
        self.sleep = sleep
        self.stats = FetchStats()
        self._cache: dict[str, _Cached] = {}

    def closes(
        self, assets: Sequence[str], until: datetime, bars: int
    ) -> Mapping[str, Sequence[Decimal]]:
        until_ms = int(until.astimezone(UTC).timestamp() * 1000)
        last_open = (until_ms // DAY_MS) * DAY_MS - DAY_MS  # last candle closed by `until`
        out: dict[str, Sequence[Decimal]] = {}
        for asset in dict.fromkeys(a.upper() for a in assets):
            if asset == self.quote:
                continue
            cached = self._cache.get(asset)
            if cached is None or cached.last_open_ms < last_open or cached.bars < bars:
                cached = self._refresh(asset, last_open, bars, until_ms) or cached
            if cached is None:
                continue
            closes = [c for t, c in cached.closes if t + DAY_MS <= until_ms]
            out[asset] = closes[-bars:] if bars > 0 else []
        return out

    def _source(self, asset: str) -> tuple[Any, str] | None:
        for source in self.sources:
            try:
                market = resolve(source.markets(), symbol_for(asset, self.quote))
            except RebalancerError:
                continue
            return source, str(market["symbol"])
        return None

    def _refresh(self, asset: str, last_open: int, bars: int, until_ms: int) -> _Cached | None:
        """Fetch ``bars`` closed daily candles of ``asset`` up to ``last_open`` (one request)."""
        try:
            found = self._source(asset)
            if found is None:
                log.warning("price history: no exchange lists %s/%s", asset, self.quote)
                return None
            source, symbol = found
            sleep = self.sleep or getattr(source, "sleep", None)
            kwargs = {} if sleep is None else {"sleep": sleep}
            rows: list[tuple[int, Decimal]] = []
            for page in fetch_closed_candles(
                source.client,
                symbol,
                "1d",
                last_open - (bars - 1) * DAY_MS,
                until_ms=last_open,
                now_ms=until_ms,
                limit=max(bars, 1),
                retry=self.retry,
                stats=self.stats,
                **kwargs,
            ):
                rows.extend((t, Decimal(repr(c))) for t, _o, _h, _l, c, _v in page)
        except ExchangeBanned:
            raise  # the trading account's client is banned: the cycle halts, never retries
        except RebalancerError as exc:
            log.warning(
                "price history of %s could not be read (%s); the last closes known are used",
                asset,
                exc,
            )
            return None
        cached = _Cached(last_open, bars, rows)
        self._cache[asset] = cached
        return cached


def history_sources(exchange: Any) -> list[Any]:
    """The CCXT accounts behind a live exchange (one, or those of several joined)."""
    if hasattr(exchange, "client") and hasattr(exchange, "markets"):
        return [exchange]
    accounts = getattr(exchange, "accounts", {})
    return [s for account in accounts.values() for s in history_sources(account)]
