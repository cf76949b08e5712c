"""Live public prices for paper trading: a real exchange's tickers, no keys, no orders.

Needs a network. Without one the call fails with a :class:`RetryLater` that says so in
plain words (which host could not be reached, and that ``prices = "candles"`` works
offline); the paper account is never valued on stale or made-up prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt

from rebalancer.adapters.ccxt import errors
from rebalancer.adapters.ccxt.markets import dec, resolve, symbol_for
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.core.errors import DataError, RetryLater


def public_client(exchange_id: str) -> Any:
    """A keyless CCXT client (public endpoints only), configured like the live one."""
    return make_client(exchange_id, "", "")


def public_prices(
    exchange_id: str, assets: Sequence[str], quote: str, *, client: Any = None
) -> tuple[dict[str, Decimal], datetime, str]:
    """Last prices of ``assets`` against ``quote`` on ``exchange_id``, their time, a source.

    Two requests: the markets and one batched tickers call. The time is the oldest ticker
    timestamp (now, for an exchange that sends none).
    """
    client = client or public_client(exchange_id)
    quote = quote.upper()
    wanted = [a.upper() for a in dict.fromkeys(assets) if a.upper() != quote]
    api = client.urls.get("api")
    host = str((api.get("public") or api.get("rest")) if isinstance(api, dict) else api)
    try:
        markets = client.load_markets()
        symbols = [str(resolve(markets, symbol_for(a, quote))["symbol"]) for a in wanted]
        tickers = client.fetch_tickers(symbols) if symbols else {}
    except ccxt.NetworkError as exc:
        raise RetryLater(
            f'paper prices = "live": no network, or {exchange_id} cannot be reached '
            f"({host}; {type(exc).__name__}). No price was updated; use prices = "
            '"candles" to paper trade offline'
        ) from exc
    except ccxt.BaseError as exc:
        raise errors.translate(exc, what=f"{exchange_id} public tickers") from exc
    now = datetime.now(UTC)
    prices: dict[str, Decimal] = {}
    stamps: list[datetime] = []
    for asset, symbol in zip(wanted, symbols, strict=True):
        ticker = tickers.get(symbol) or {}
        price = dec(ticker.get("last"))
        bid, ask = dec(ticker.get("bid")), dec(ticker.get("ask"))
        if (price is None or price <= 0) and bid and ask:
            price = (bid + ask) / 2
        if price is None or price <= 0:
            raise DataError(f"{exchange_id} public ticker {symbol}: no usable price ({ticker})")
        prices[asset] = price
        stamp = ticker.get("timestamp")
        stamps.append(datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else now)
    at = min(stamps, default=now)
    return prices, at, f"{exchange_id} public tickers (live, no keys)"
