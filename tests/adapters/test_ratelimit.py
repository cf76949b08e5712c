"""Retry-After and bans on reads (adapters/ccxt/ratelimit.py), without any exchange."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from rebalancer.adapters.ccxt.ratelimit import MAX_ATTEMPTS, call_read, retry_after, status_of
from rebalancer.core.errors import ExchangeBanned, RetryLater


class Client:
    def __init__(self, headers: dict[str, str] | None) -> None:
        self.last_response_headers = headers


def failing(*errors: Exception) -> Any:
    queue = list(errors)

    def call() -> str:
        if queue:
            raise queue.pop(0)
        return "ok"

    return call


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after": "0.5"}, 0.5), ({}, None), (None, None)],
)
def test_retry_after_header(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert retry_after(headers) == seconds
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None


def test_status_of_ccxt_rate_limit_errors() -> None:
    assert status_of(ccxt.DDoSProtection("binance 418 Error {}")) == 418
    assert status_of(ccxt.DDoSProtection("binance 429 Error {}")) == 429
    assert status_of(ccxt.RateLimitExceeded("slow down")) == 429
    assert status_of(ccxt.NetworkError("binance 429")) is None


def test_429_waits_what_the_exchange_asks_then_reads_again() -> None:
    sleeps: list[float] = []
    call = failing(ccxt.RateLimitExceeded("binance 429 Error"))
    assert call_read(Client({"Retry-After": "3"}), call, sleeps.append, "x") == "ok"
    assert sleeps == [3.0]


def test_429_gives_up_after_max_attempts_or_without_the_header() -> None:
    sleeps: list[float] = []
    errors = [ccxt.RateLimitExceeded("binance 429") for _ in range(MAX_ATTEMPTS)]
    with pytest.raises(ccxt.RateLimitExceeded):
        call_read(Client({"Retry-After": "1"}), failing(*errors), sleeps.append, "x")
    assert sleeps == [1.0] * (MAX_ATTEMPTS - 1)
    with pytest.raises(ccxt.RateLimitExceeded):
        call_read(Client(None), failing(ccxt.RateLimitExceeded("429")), sleeps.append, "x")


def test_418_is_a_ban_never_retried() -> None:
    sleeps: list[float] = []
    call = failing(ccxt.DDoSProtection("binance 418 Error {}"))
    with pytest.raises(ExchangeBanned, match="banned") as info:
        call_read(Client({"Retry-After": "30"}), call, sleeps.append, "fetch_balance")
    assert sleeps == [] and info.value.retry_after == 30.0
    assert isinstance(info.value, RetryLater)


def test_a_parser_crash_becomes_bad_response() -> None:
    with pytest.raises(ccxt.BadResponse, match="could not be parsed"):
        call_read(Client(None), failing(ValueError("NaN")), lambda s: None, "fetch_tickers")
