"""Live public prices for paper trading: a real exchange's tickers, no keys, no orders.

:class:`PublicTickers` is the paper exchange's live :class:`~rebalancer.adapters.paper.PriceFeed`
(one batched tickers call per read; the markets are loaded once per client and cached by
CCXT); :func:`public_prices` is one read of it with a description of the source.

Needs a network. Without one a read fails with a :class:`RetryLater` that says so in plain
words (which host could not be reached, and that ``prices = "candles"`` works offline); the
paper account is never valued on stale or made-up prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import ccxt

from rebalancer.adapters.ccxt import errors
from rebalancer.adapters.ccxt.markets import dec, resolve, symbol_for
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.adapters.paper import Quotes
from rebalancer.core.errors import DataError, RetryLater

#: how long the start-up probe of ``[paper] prices = "auto"`` waits for an answer (seconds)
PROBE_TIMEOUT_S = 2.0


def public_client(exchange_id: str) -> Any:
    """A keyless CCXT client (public endpoints only), configured like the live one."""
    return make_client(exchange_id, "", "")


def reach(client: Any, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """One short public call to the exchange behind the keyless ``client``: its server time
    (``fetch_time``; the markets where CCXT has no such call). None when it answered, else
    why not, in words. At most ``timeout_s`` seconds per request (the client's own timeout
    is restored after); never raises for a network or exchange failure."""
    saved = client.timeout
    client.timeout = int(timeout_s * 1000)  # CCXT counts milliseconds
    try:
        if client.has.get("fetchTime"):
            client.fetch_time()
        else:
            client.load_markets()
    except ccxt.BaseError as exc:  # NetworkError, an exchange error, a refused answer
        host = _host(client)
        return f"{client.id} could not be reached ({host}; {type(exc).__name__})"
    finally:
        client.timeout = saved
    return None


def _host(client: Any) -> str:
    """The REST host CCXT talks to (for messages)."""
    api = client.urls.get("api")
    return str((api.get("public") or api.get("rest")) if isinstance(api, dict) else api)


@dataclass
class PublicTickers:
    """The public tickers of ``exchange_id`` against ``quote``, read on demand.

    ``client``: a keyless CCXT client (None: :func:`public_client`). Each :meth:`read` is
    one batched tickers request, plus the markets on the client's first read.
    """

    exchange_id: str
    quote: str
    client: Any = None
    source: str = field(init=False)

    def __post_init__(self) -> None:
        self.quote = self.quote.upper()
        self.client = self.client or public_client(self.exchange_id)
        self.source = f"{self.exchange_id} public tickers (live, no keys)"

    def markets(self) -> dict[str, Any]:
        """The exchange's markets (loaded once per client, cached by CCXT): with
        :attr:`client`, this makes the feed a source of
        :class:`~rebalancer.adapters.ccxt.history.ExchangeHistory` (daily closes for paper on
        live prices)."""
        return dict(self.client.load_markets())

    def read(self, assets: Sequence[str]) -> Quotes:
        """Last prices (bid/ask mid when a ticker has no last), best bids and asks of
        ``assets`` in quote units per base unit; the time is the oldest ticker timestamp
        (now, for an exchange that sends none). :class:`RetryLater` without a network,
        :class:`DataError` for a ticker without a usable price."""
        wanted = [a.upper() for a in dict.fromkeys(assets) if a.upper() != self.quote]
        symbols, tickers = self._fetch(wanted)
        now = datetime.now(UTC)
        rows = {a: self._row(s, tickers.get(s) or {}, now) for a, s in symbols.items()}
        return Quotes(
            prices={a: r.price for a, r in rows.items()},
            at=min((r.at for r in rows.values()), default=now),
            bids={a: r.bid for a, r in rows.items() if r.bid is not None},
            asks={a: r.ask for a, r in rows.items() if r.ask is not None},
        )

    def _fetch(self, wanted: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
        """The unified symbol of each asset and the raw tickers, errors translated."""
        try:
            markets = self.client.load_markets()
            symbols = {
                a: str(resolve(markets, symbol_for(a, self.quote))["symbol"]) for a in wanted
            }
            tickers = self.client.fetch_tickers(list(symbols.values())) if symbols else {}
        except ccxt.NetworkError as exc:
            raise RetryLater(
                f'paper prices = "live": no network, or {self.exchange_id} cannot be reached '
                f"({self._host()}; {type(exc).__name__}). No price was updated; use prices = "
                '"candles" to paper trade offline'
            ) from exc
        except ccxt.BaseError as exc:
            raise errors.translate(exc, what=f"{self.exchange_id} public tickers") from exc
        return symbols, tickers

    def _host(self) -> str:
        return _host(self.client)

    def _row(self, symbol: str, ticker: dict[str, Any], now: datetime) -> _Row:
        """The price, best bid and ask (None: not sent) and time of one raw ticker."""
        price = dec(ticker.get("last"))
        bid, ask = _positive(ticker.get("bid")), _positive(ticker.get("ask"))
        if (price is None or price <= 0) and bid and ask:
            price = (bid + ask) / 2
        if price is None or price <= 0:
            raise DataError(
                f"{self.exchange_id} public ticker {symbol}: no usable price ({ticker})"
            )
        stamp = ticker.get("timestamp")
        at = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else now
        return _Row(price, bid, ask, at)


class _Row(NamedTuple):
    price: Decimal
    bid: Decimal | None
    ask: Decimal | None
    at: datetime


def _positive(value: Any) -> Decimal | None:
    """A CCXT number as a Decimal when it is above zero, else None."""
    number = dec(value)
    return number if number is not None and number > 0 else None


def public_prices(
    exchange_id: str, assets: Sequence[str], quote: str, *, client: Any = None
) -> tuple[dict[str, Decimal], datetime, str]:
    """Last prices of ``assets`` against ``quote`` on ``exchange_id``, their time, a source.

    Two requests: the markets and one batched tickers call. The time is the oldest ticker
    timestamp (now, for an exchange that sends none).
    """
    feed = PublicTickers(exchange_id, quote, client)
    quotes = feed.read(assets)
    return quotes.prices, quotes.at, feed.source
