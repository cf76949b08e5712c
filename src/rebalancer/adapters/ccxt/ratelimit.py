"""Rate limits on reads: honour ``Retry-After`` on HTTP 429, halt on an HTTP 418 ban.

CCXT raises ``RateLimitExceeded`` / ``DDoSProtection`` for both statuses and keeps the
response headers of the last request in ``client.last_response_headers``. On a 429 that
names a ``Retry-After`` within :data:`MAX_WAIT` seconds, :func:`call_read` waits exactly that
long and tries the read again (at most :data:`MAX_ATTEMPTS` times in all); without the
header, or above the cap, the error goes on (a RetryLater: the daemon backs off). A 418
means the exchange banned the client for ignoring its limits: every further request
lengthens the ban, so :class:`~rebalancer.core.errors.ExchangeBanned` is raised at once and
the service halts trading. Only reads come through here: an order request is never retried.

CCXT's own parsers crash with a ``ValueError`` on some garbled bodies (a ticker whose price
is ``"NaN"`` or ``"Infinity"``); such a crash becomes ``ccxt.BadResponse`` (a RetryLater
once translated) instead of escaping as an unexplained exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import ccxt

from rebalancer.core.errors import ExchangeBanned

T = TypeVar("T")

MAX_WAIT = 60.0  # seconds: a longer Retry-After is left to the daemon's backoff
MAX_ATTEMPTS = 3

_STATUS = re.compile(r"\b(418|429)\b")


def status_of(exc: Exception) -> int | None:
    """418 or 429 when ``exc`` is CCXT's rate-limit error for that HTTP status."""
    if not isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return None
    found = _STATUS.search(str(exc))
    if found is None:
        return 429 if isinstance(exc, ccxt.RateLimitExceeded) else None
    return int(found.group(1))


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), None when absent."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        seconds = float(str(value))
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def raise_if_banned(client: Any, exc: Exception, what: str) -> None:
    """Raise :class:`ExchangeBanned` when ``exc`` is an HTTP 418 ban (any read, look-ups too)."""
    if status_of(exc) != 418:
        return
    wait = retry_after(getattr(client, "last_response_headers", None))
    after = f"; the exchange asks to wait {wait:g} s" if wait is not None else ""
    raise ExchangeBanned(
        f"{what}: the exchange banned this client (HTTP 418, rate limits were exceeded)"
        f"{after}; trading is halted until you check the request rate and run "
        "`rebalancer resume`",
        wait,
    ) from exc


def call_read(client: Any, call: Callable[[], T], sleep: Callable[[float], None], what: str) -> T:
    """Run the read ``call``, honouring Retry-After on 429 and raising ExchangeBanned on 418.

    Any other CCXT error (and a 429 that cannot be waited out) is re-raised unchanged for
    the caller to translate.
    """
    attempt = 1
    while True:
        try:
            try:
                return call()
            except (ValueError, ArithmeticError) as exc:
                raise ccxt.BadResponse(
                    f"{what}: the response could not be parsed ({type(exc).__name__}: {exc})"
                ) from exc
        except ccxt.BaseError as exc:
            raise_if_banned(client, exc, what)
            status = status_of(exc)
            wait = retry_after(getattr(client, "last_response_headers", None))
            if status != 429 or wait is None or wait > MAX_WAIT or attempt >= MAX_ATTEMPTS:
                raise
            sleep(wait)
            attempt += 1
