"""Paper trading on live public prices: keyless tickers, and a plain message without network."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from doubles.binance import BinanceDouble
from doubles.kraken import KrakenDouble
from rebalancer import bootstrap
from rebalancer.adapters.ccxt.public import public_client, public_prices
from rebalancer.config import parse_config
from rebalancer.core.errors import RetryLater, UnknownSymbol


class NoNetwork(BaseAdapter):
    """What requests sees on a machine without a network: the name does not resolve."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raise requests.exceptions.ConnectionError(
            f"Failed to resolve '{request.url}' ([Errno -3] Temporary failure in name resolution)"
        )

    def close(self) -> None:
        pass


def test_binance_public_tickers_without_keys() -> None:
    client = public_client("binance")
    double = BinanceDouble(
        "unused", "unused", books={"BTCUSDT": ("60000.00", "60000.01"), "ETHUSDT": ("3000", "3001")}
    ).mount(client)
    prices, at, source = public_prices("binance", ["BTC", "ETH", "USDT"], "USDT", client=client)
    assert prices == {"BTC": Decimal("60000.01"), "ETH": Decimal("3001")}
    assert source == "binance public tickers (live, no keys)"
    assert at.tzinfo is not None
    assert not any(r.signed for r in double.log)  # public endpoints only
    assert dict(double.calls) == {
        ("GET", "/api/v3/exchangeInfo"): 1,
        ("GET", "/api/v3/ticker/24hr"): 1,
    }


def test_kraken_public_tickers_have_no_timestamp_so_the_time_is_now() -> None:
    client = public_client("kraken")
    KrakenDouble("unused", "dW51c2Vk", books={"XXBTZUSD": ("60000.0", "60000.1")}).mount(client)
    before = datetime.now(UTC)
    prices, at, _ = public_prices("kraken", ["BTC"], "USD", client=client)
    assert prices == {"BTC": Decimal("60000.1")}
    assert before <= at <= datetime.now(UTC)


def test_no_network_says_so_plainly() -> None:
    client = public_client("binance")
    client.session.mount("https://", NoNetwork())
    with pytest.raises(RetryLater) as caught:
        public_prices("binance", ["BTC"], "USDT", client=client)
    message = str(caught.value)
    assert "no network, or binance cannot be reached" in message
    assert "api.binance.com" in message and 'use prices = "candles"' in message


def test_unknown_market_is_named() -> None:
    client = public_client("binance")
    BinanceDouble("unused", "unused", books={}).mount(client)
    with pytest.raises(UnknownSymbol, match="'NOPE/USDT' is not listed"):
        public_prices("binance", ["NOPE"], "USDT", client=client)


def test_paper_prices_live_goes_to_the_exchange() -> None:
    settings = parse_config('[paper]\nprices = "live"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n')
    asked: list[str] = []

    def offline_client(exchange_id: str) -> Any:
        asked.append(exchange_id)
        client = public_client(exchange_id)
        client.session.mount("https://", NoNetwork())
        return client

    with pytest.raises(RetryLater, match="no network, or binance cannot be reached"):
        bootstrap.build_paper(settings, public_client=offline_client)
    assert asked == ["binance"]
