"""The one retry policy of every read (adapters/ccxt/ratelimit.py, on tenacity): Retry-After,
bans and backoff, with an injected sleep (no real waiting) and without any exchange."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from rebalancer.adapters.ccxt.errors import translate
from rebalancer.adapters.ccxt.ratelimit import (
    DOWNLOAD,
    HISTORY,
    LIVE_READ,
    MAX_ATTEMPTS,
    FetchStats,
    Retry,
    call_read,
    retry_after,
    status_of,
)
from rebalancer.core.errors import ExchangeBanned, OrderOutcomeUnknown, RetryLater


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


# --- the one policy (tenacity) for every read ----------------------------------------------


def test_a_retry_after_longer_than_max_wait_is_not_waited_in_place() -> None:
    sleeps: list[float] = []
    call = failing(ccxt.RateLimitExceeded("binance 429 Error"))
    with pytest.raises(ccxt.RateLimitExceeded):
        call_read(Client({"Retry-After": "61"}), call, sleeps.append, "x")
    assert sleeps == []
    stats = FetchStats()
    call = failing(ccxt.RateLimitExceeded("binance 429 Error"))
    assert (
        call_read(
            Client({"Retry-After": "61"}), call, sleeps.append, "x", policy=DOWNLOAD, stats=stats
        )
        == "ok"
    )
    assert sleeps == [pytest.approx(61.0)] and (stats.requests, stats.retries) == (2, 1)


def test_backoff_never_waits_less_than_the_exchange_asks() -> None:
    sleeps: list[float] = []
    policy = Retry(attempts=4, base=0.5, cap=10)
    call = failing(
        ccxt.RateLimitExceeded("binance 429"),
        ccxt.RequestTimeout("t"),
        ccxt.ExchangeNotAvailable("503"),
    )
    stats = FetchStats()
    assert (
        call_read(
            Client({"Retry-After": "5"}), call, sleeps.append, "x", policy=policy, stats=stats
        )
        == "ok"
    )
    # the 429 waits its Retry-After; the timeout and the 503 carry none (the headers left
    # by an earlier reply are not theirs): plain backoff, 1 s then 2 s (+ up to 10 % jitter)
    assert sleeps[0] == 5.0 and 1.0 <= sleeps[1] <= 1.1 and 2.0 <= sleeps[2] <= 2.2
    assert stats.retries == 3 and stats.slept == pytest.approx(sum(sleeps))


def test_live_reads_leave_transient_errors_to_the_daemon() -> None:
    sleeps: list[float] = []
    with pytest.raises(ccxt.RequestTimeout):
        call_read(Client(None), failing(ccxt.RequestTimeout("t")), sleeps.append, "x")
    with pytest.raises(ccxt.AuthenticationError):  # never retried, whatever the policy
        call_read(
            Client(None),
            failing(ccxt.AuthenticationError("-2015")),
            sleeps.append,
            "x",
            policy=DOWNLOAD,
        )
    assert sleeps == []


def test_a_418_is_never_retried_by_any_policy_and_translates_to_a_ban() -> None:
    for policy in (LIVE_READ, HISTORY, DOWNLOAD):
        sleeps: list[float] = []
        call = failing(
            ccxt.DDoSProtection("binance 418 Error {}"), ccxt.DDoSProtection("binance 418")
        )
        with pytest.raises(ExchangeBanned):
            call_read(Client({"Retry-After": "2"}), call, sleeps.append, "x", policy=policy)
        assert sleeps == []
    banned = translate(ccxt.DDoSProtection("binance GET https://x 418 I'm a teapot"), what="ohlcv")
    assert isinstance(banned, ExchangeBanned) and "HTTP 418" in str(banned)
    unknown = translate(
        ccxt.DDoSProtection("binance 418"), what="order", create=True, client_order_id="rb1"
    )
    assert isinstance(unknown, OrderOutcomeUnknown)  # an order request: looked up, never re-sent
