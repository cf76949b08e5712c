"""The one retry policy for every exchange read: live reads, price history, downloads.

Built on `tenacity <https://tenacity.readthedocs.io>`_ (:func:`call_read`); the presets
differ only in their numbers (:data:`LIVE_READ`, :data:`HISTORY`, :data:`DOWNLOAD`). For a
read that failed with a CCXT error, in this order:

1. **HTTP 418** (a ban for ignoring rate limits): **never retried**. Every further request
   lengthens the ban, so :class:`~rebalancer.core.errors.ExchangeBanned` is raised at once,
   carrying the exchange's ``Retry-After``; the service halts trading, a download stops and
   says how long to wait.
2. **HTTP 429 with a** ``Retry-After`` **within** ``max_wait``: waited out, never less than the
   exchange asks (with ``backoff``, the longer of the two), then asked again. A longer one is
   not waited in place: the error goes on (the daemon backs off, a download stops).
3. Any other **retry-later** error (network, timeout, 5xx, garbled body, a 429 without the
   header; see :mod:`~rebalancer.adapters.ccxt.errors`): retried after ``base`` x 2**n
   seconds (at most ``cap``, plus up to 10 % jitter) when the policy has ``backoff``;
   live reads have none (the daemon's loop backs off between checks). A host that cannot
   be reached at all (no DNS, no route) is not retried when ``unreachable`` is off: a
   download's first request fails at once offline.
4. Anything else (auth, bad symbol, ...): raised at once, unchanged.

At most ``attempts`` tries in all. ``Retry-After`` is read (delta-seconds form) only on a
418/429 answer: after a timeout CCXT's ``last_response_headers`` belong to an older reply.
The sleep is injected (tests pass a recorder; no real waiting), and only reads come through
here: an order request is never retried.

CCXT's own parsers crash with a ``ValueError`` on some garbled bodies (a ticker whose price
is ``"NaN"`` or ``"Infinity"``); such a crash becomes ``ccxt.BadResponse`` (a retry-later
error) instead of escaping as an unexplained exception.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt
import tenacity

from rebalancer.adapters.ccxt.errors import Action, action_for, status_of, unreachable
from rebalancer.core.errors import ExchangeBanned

T = TypeVar("T")
Sleep = Callable[[float], None]

MAX_WAIT = 60.0  # seconds: a longer Retry-After is left to the caller (daemon backoff)
MAX_ATTEMPTS = 3  # live reads


@dataclass(frozen=True)
class Retry:
    """How a read is retried (see the module docstring): up to ``attempts`` tries; a 429's
    ``Retry-After`` up to ``max_wait`` seconds is waited out; with ``backoff``, other
    retry-later errors wait ``base`` x 2**n seconds (at most ``cap``, up to 10 % jitter)."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    max_wait: float = MAX_WAIT
    backoff: bool = True
    #: retry when the host cannot be reached at all (no DNS, no route, refused); a first
    #: contact sets it False to fail fast offline instead of backing off for half a minute
    unreachable: bool = True

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before try ``attempt + 2`` (``attempt`` counts from 0): the backoff (when
        on) or the exchange's ``Retry-After``, whichever is longer."""
        wait = 0.0
        if self.backoff:
            wait = min(self.cap, self.base * 2.0**attempt) * (1 + 0.1 * random.random())
        return max(wait, retry_after or 0.0)


#: live reads of the trading account: a 429's Retry-After only; the daemon backs off
LIVE_READ = Retry(attempts=MAX_ATTEMPTS, backoff=False)
#: live price history (daily closes, on the authenticated client): one more try, briefly
HISTORY = Retry(attempts=2, base=1.0, cap=5.0)
#: public candle downloads: patient exponential backoff, a Retry-After up to 5 minutes
DOWNLOAD = Retry(max_wait=300.0)


@dataclass
class FetchStats:
    """What reads cost: requests sent (retries included), retries, seconds slept."""

    requests: int = 0
    retries: int = 0
    slept: float = 0.0
    errors: list[str] = field(default_factory=list)


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


def _asked_wait(client: Any, exc: BaseException) -> float | None:
    """The ``Retry-After`` of the reply that raised ``exc`` (418/429 only, else None)."""
    if not isinstance(exc, Exception) or status_of(exc) is None:
        return None
    return retry_after(getattr(client, "last_response_headers", None))


def raise_if_banned(client: Any, exc: Exception, what: str) -> None:
    """Raise :class:`ExchangeBanned` when ``exc`` is an HTTP 418 ban (any read, look-ups too)."""
    if status_of(exc) != 418:
        return
    wait = _asked_wait(client, exc)
    after = f"; the exchange asks to wait {wait:g} s" if wait is not None else ""
    raise ExchangeBanned(
        f"{what}: the exchange banned this client (HTTP 418, rate limits were exceeded)"
        f"{after}; trading is halted until you check the request rate and run "
        "`rebalancer resume`",
        wait,
    ) from exc


def retryable(exc: BaseException, client: Any, policy: Retry) -> bool:
    """Whether ``policy`` tries the read again after ``exc`` (a ban never reaches here)."""
    if not isinstance(exc, ccxt.BaseError) or action_for(exc, create=False) is not Action.RETRY:
        return False
    if not policy.unreachable and unreachable(exc):
        return False
    asked = _asked_wait(client, exc)
    if asked is not None and status_of(exc) == 429:
        return asked <= policy.max_wait
    return policy.backoff


def call_read(
    client: Any,
    call: Callable[[], T],
    sleep: Sleep,
    what: str,
    *,
    policy: Retry = LIVE_READ,
    stats: FetchStats | None = None,
) -> T:
    """Run the read ``call`` under ``policy`` (see the module docstring).

    Raises :class:`ExchangeBanned` on a 418; any other CCXT error that is not retried (or
    still fails on the last try) is re-raised unchanged for the caller to translate.
    """
    stats = stats if stats is not None else FetchStats()

    def attempt() -> T:
        stats.requests += 1
        try:
            try:
                return call()
            except (ValueError, ArithmeticError) as exc:
                raise ccxt.BadResponse(
                    f"{what}: the response could not be parsed ({type(exc).__name__}: {exc})"
                ) from exc
        except ccxt.BaseError as exc:
            raise_if_banned(client, exc, what)
            raise

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = _asked_wait(client, exc) if exc is not None else None
        return policy.delay(state.attempt_number - 1, asked)

    def record(state: tenacity.RetryCallState) -> None:
        seconds = state.next_action.sleep if state.next_action else 0.0
        exc = state.outcome.exception() if state.outcome else None
        stats.retries += 1
        stats.slept += seconds
        stats.errors.append(f"{type(exc).__name__} (waited {seconds:.1f} s)")

    retrying = tenacity.Retrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(lambda exc: retryable(exc, client, policy)),
        before_sleep=record,
        reraise=True,
    )
    return retrying(attempt)
