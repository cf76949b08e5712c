"""CCXT exceptions -> the project's error tree, in one table, by what the caller must do.

Rows are tried in order (most specific class first); the first ``isinstance`` match wins.
A *read* is any call that cannot change the account (markets, balances, tickers, order
look-ups); a *create* is the order request itself, where the one rule is: never guess that
an order does not exist unless the exchange said so.

=====================================  =========================  ==============================
CCXT exception (Binance, Kraken, CB)   read                       create
=====================================  =========================  ==============================
InvalidNonce (-1021 recvWindow,        RetryLater                 OrderRejected (refused before
EAPI:Invalid nonce)                                               matching: not placed; fix the
                                                                  clock, the next cycle retries)
AuthenticationError, PermissionDenied  AuthError                  AuthError
(-2014, -2015, -1022), AccountSusp.;
-2015 also when CCXT raised it as
DDoSProtection (it does so once a
private call has succeeded); Kraken's
"EAPI:Invalid signature" (a plain
ExchangeError in CCXT)
InsufficientFunds (-2010 "insuffic.",  RetryLater                 InsufficientFunds
Coinbase PREVIEW_INSUFFICIENT_FUND)
DuplicateOrderId, "Duplicate order     (n/a)                      LOOKUP: the order exists; look
sent." (-2010)                                                    it up by our client order id
OrderNotFound (-2013)                  NOT_FOUND (None)           OrderRejected
BadSymbol                              UnknownSymbol              UnknownSymbol
MarketClosed, OrderImmediatelyFill.    RetryLater                 OrderRejected
InvalidOrder, BadRequest (-1013        StopAndTell (our request   OrderRejected
"Filter failure: NOTIONAL", LOT_SIZE)  is malformed)
RequestTimeout (-1007, read timeout)   RetryLater                 OrderOutcomeUnknown
DDoSProtection with HTTP 418 (a ban)    ExchangeBanned (never      OrderOutcomeUnknown
                                       retried: halt)
NetworkError: ExchangeNotAvailable     RetryLater                 OrderOutcomeUnknown (5xx: the
(5xx), DDoSProtection (429),                                      exchange says execution status
RateLimitExceeded, OnMaintenance                                  unknown; look it up, never
                                                                  re-send)
BadResponse / NullResponse (garbled    RetryLater                 OrderOutcomeUnknown
or truncated body), OperationFailed
NotSupported, ArgumentsRequired        StopAndTell                StopAndTell
Coinbase gRPC body "INTERNAL",         RetryLater                 OrderOutcomeUnknown (a 5xx
"UNAVAILABLE", "DEADLINE_EXCEEDED"                                CCXT left a plain
(plain ExchangeError in CCXT)                                     ExchangeError)
Coinbase "order with this orderID was  NOT_FOUND (None)           OrderRejected
not found" (plain ExchangeError)
ExchangeError (anything else with an   RetryLater                 OrderRejected (the exchange
error body; Coinbase "RESOURCE_                                   answered with an error; the
EXHAUSTED" 429, PREVIEW_..._TOO_SMALL)                            order was not placed)
BaseError (anything else)              RetryLater                 OrderOutcomeUnknown
=====================================  =========================  ==============================

Messages never carry the API key or secret: :func:`scrub` masks them in every message this
module builds (CCXT's own messages name the URL and the response body, not the secret).
"""

from __future__ import annotations

import errno
import re
import socket
from enum import Enum

import ccxt

from rebalancer.core import errors as core


class Action(Enum):
    RETRY = "retry"
    AUTH = "auth"
    FUNDS = "funds"
    REJECTED = "rejected"
    UNKNOWN_SYMBOL = "unknown_symbol"
    STOP = "stop"
    OUTCOME_UNKNOWN = "outcome_unknown"
    LOOKUP = "lookup"
    NOT_FOUND = "not_found"


# (ccxt exception class, action on a read, action on an order creation), most specific first.
TABLE: tuple[tuple[type[Exception], Action, Action], ...] = (
    (ccxt.InvalidNonce, Action.RETRY, Action.REJECTED),
    (ccxt.AuthenticationError, Action.AUTH, Action.AUTH),
    (ccxt.InsufficientFunds, Action.RETRY, Action.FUNDS),
    (ccxt.DuplicateOrderId, Action.STOP, Action.LOOKUP),
    (ccxt.OrderNotFound, Action.NOT_FOUND, Action.REJECTED),
    (ccxt.BadSymbol, Action.UNKNOWN_SYMBOL, Action.UNKNOWN_SYMBOL),
    (ccxt.MarketClosed, Action.RETRY, Action.REJECTED),
    (ccxt.OrderImmediatelyFillable, Action.RETRY, Action.REJECTED),
    (ccxt.InvalidOrder, Action.STOP, Action.REJECTED),
    (ccxt.BadRequest, Action.STOP, Action.REJECTED),
    (ccxt.RequestTimeout, Action.RETRY, Action.OUTCOME_UNKNOWN),
    (ccxt.NetworkError, Action.RETRY, Action.OUTCOME_UNKNOWN),
    (ccxt.OperationFailed, Action.RETRY, Action.OUTCOME_UNKNOWN),
    (ccxt.NotSupported, Action.STOP, Action.STOP),
    (ccxt.ArgumentsRequired, Action.STOP, Action.STOP),
    (ccxt.ExchangeError, Action.RETRY, Action.REJECTED),
    (ccxt.BaseError, Action.RETRY, Action.OUTCOME_UNKNOWN),
)

# Messages that mean something more precise than their exception class.
_DUPLICATE = "Duplicate order sent"
_REVOKED_KEY = '"code":-2015'
_BAD_SIGNATURE = "EAPI:Invalid signature"  # Kraken, wrong secret: CCXT leaves it ExchangeError
# Coinbase Advanced answers HTTP errors with gRPC-gateway bodies ({"error": "INTERNAL", ...});
# CCXT raises a plain ExchangeError for them before looking at the HTTP status, so a 5xx on
# an order request would read as "rejected" although the order may exist.
_SERVER_FAILURE = ('"error":"INTERNAL"', '"error":"UNAVAILABLE"', '"error":"DEADLINE_EXCEEDED"')
# Coinbase's unknown order id: CCXT's Python port looks for "order with self orderID" (a
# transpiler slip), so the real message arrives as a plain ExchangeError.
_NO_SUCH_ORDER = "order with this orderID was not found"


# A post-only limit refused because it would have crossed the book (nothing was placed):
# Binance -2010 "Order would immediately match and take." (CCXT: OrderImmediatelyFillable);
# Coinbase HTTP 200 {"success": false, "error_response": {"error":
# "INVALID_LIMIT_PRICE_POST_ONLY", "preview_failure_reason":
# "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"}} (a plain ExchangeError in CCXT). Kraken accepts
# the order and cancels it at once (status "canceled", reason "Post only order").
_POST_ONLY_REFUSED = "INVALID_LIMIT_PRICE_POST_ONLY"


def post_only_refused(exc: Exception) -> bool:
    """True when ``exc`` (raised by an order creation) says a post-only order would have
    taken liquidity and was not placed."""
    return isinstance(exc, ccxt.OrderImmediatelyFillable) or _POST_ONLY_REFUSED in str(exc)


_STATUS = re.compile(r"\b(418|429)\b")


def status_of(exc: Exception) -> int | None:
    """418 or 429 when ``exc`` is CCXT's rate-limit error for that HTTP status."""
    if not isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return None
    found = _STATUS.search(str(exc))
    if found is None:
        return 429 if isinstance(exc, ccxt.RateLimitExceeded) else None
    return int(found.group(1))


_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED}
_HOST = re.compile(r"https?://([^/\s:]+)")


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (a CCXT NetworkError) means the host could not be reached at all:
    its name does not resolve (no network, no DNS), or the network or host is unreachable,
    or the connection was refused. Found in the exception's cause chain (CCXT raises a
    NetworkError from requests' ConnectionError, raised from urllib3's, from the socket's)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror | ConnectionRefusedError):
            return True
        if isinstance(cause, OSError) and cause.errno in _NO_ROUTE:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def host_of(exc: BaseException) -> str:
    """The host named in a CCXT error message (``binance GET https://HOST/...``), or ""."""
    found = _HOST.search(str(exc))
    return found.group(1) if found else ""


def action_for(exc: Exception, *, create: bool) -> Action:
    """What the caller must do about ``exc`` (a CCXT exception)."""
    if create and _DUPLICATE.lower() in str(exc).lower():
        return Action.LOOKUP
    compact = str(exc).replace(" ", "")
    if type(exc) is ccxt.ExchangeError:
        if create and any(marker in compact for marker in _SERVER_FAILURE):
            return Action.OUTCOME_UNKNOWN
        if not create and _NO_SUCH_ORDER in str(exc):
            return Action.NOT_FOUND
    if _REVOKED_KEY in str(exc).replace(" ", "") or _BAD_SIGNATURE in str(exc):
        # CCXT turns Binance's -2015 into DDoSProtection once a private call has succeeded
        # (a temporary ban looks the same); a revoked key must still stop the bot.
        return Action.AUTH
    for cls, on_read, on_create in TABLE:
        if isinstance(exc, cls):
            return on_create if create else on_read
    return Action.OUTCOME_UNKNOWN if create else Action.RETRY


_SIGNED = re.compile(r"(?i)\b(signature|apiKey|api_key|X-MBX-APIKEY)=[^&\s'\"]+")


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every non-trivial secret, and the ``signature=`` (and key) values of
    signed request URLs that CCXT puts in its messages, replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SIGNED.sub(r"\1=***", text)


def translate(
    exc: Exception,
    *,
    what: str,
    create: bool = False,
    client_order_id: str = "",
    secrets: tuple[str, ...] = (),
) -> core.RebalancerError:
    """The project error for ``exc`` raised while doing ``what`` (e.g. "fetch_balance").

    Actions LOOKUP and NOT_FOUND are handled by the caller before it gets here; if they
    arrive anyway they become the safe choice (OrderOutcomeUnknown / RetryLater).
    """
    action = action_for(exc, create=create)
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if action is Action.AUTH:
        return core.AuthError(
            f"{what}: the exchange refused the API key ({detail}); check the key, its "
            "permissions (spot trading) and its IP whitelist"
        )
    if action is Action.FUNDS:
        return core.InsufficientFunds(f"{what}: insufficient balance ({detail})")
    if action is Action.REJECTED:
        if isinstance(exc, ccxt.InvalidNonce):
            return core.OrderRejected(
                f"{what}: refused for its timestamp, the order was NOT placed ({detail}); "
                "the local clock is off by more than recvWindow; sync the clock, the next "
                "cycle retries"
            )
        return core.OrderRejected(f"{what}: the exchange rejected the order ({detail})")
    if action is Action.UNKNOWN_SYMBOL:
        return core.UnknownSymbol(f"{what}: the exchange does not know the market ({detail})")
    if action is Action.STOP:
        return core.StopAndTell(f"{what}: unexpected refusal, stopping ({detail})")
    if not create and unreachable(exc):
        host = host_of(exc)
        return core.RetryLater(
            f"{what}: no network, or the exchange cannot be reached"
            f"{f' ({host})' if host else ''}; {type(exc).__name__}. Fix: check the internet "
            "connection (and any proxy or firewall), then run it again"
        )
    if not create and status_of(exc) == 418:  # a ban: never "retry later" (ratelimit.py)
        return core.ExchangeBanned(
            f"{what}: the exchange banned this client (HTTP 418, rate limits were exceeded; "
            f"{detail}); do not ask again before the ban ends"
        )
    if create and action in (Action.OUTCOME_UNKNOWN, Action.LOOKUP):
        return core.OrderOutcomeUnknown(
            f"{what}: the order may have reached the exchange ({detail}); look it up by "
            f"client order id {client_order_id!r}, never re-send it",
            client_order_id,
        )
    return core.RetryLater(f"{what}: transient failure, retry later ({detail})")
