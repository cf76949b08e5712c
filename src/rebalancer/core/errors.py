"""The project's error tree, grouped by what the caller must do.

* :class:`RetryLater` -- a read failed for a transient reason; try again later.
* :class:`SkipLeg` -- this order cannot be placed; report it and go on with the rest.
* :class:`StopAndTell` -- stop and tell the user (bad config, auth, broken invariant, halt).
* :class:`OrderOutcomeUnknown` -- an order may or may not exist: look it up, never re-send.
"""

from __future__ import annotations

from collections.abc import Sequence


class RebalancerError(Exception):
    """Base of every error the project raises on purpose."""


class RetryLater(RebalancerError):
    """Transient failure of a read (network, rate limit, exchange busy)."""


class ExchangeBanned(RetryLater):
    """The exchange banned this client (HTTP 418, after ignoring rate limits).

    A :class:`RetryLater` for callers that only wait; the service records a persisted halt
    on it, so no order is sent until the user has looked and run ``rebalancer resume``.
    ``retry_after``: seconds the exchange asked to wait (None when it did not say).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkipLeg(RebalancerError):
    """One order cannot be placed; the rest of the plan goes on."""


class BelowMinimum(SkipLeg):
    """The order is below the market's minimum amount or notional."""


class OrderRejected(SkipLeg):
    """The exchange refused the order (filters, market closed, ...)."""


class InsufficientFunds(SkipLeg):
    """Not enough free balance for the order."""


class StopAndTell(RebalancerError):
    """Nothing more should be done until the user acts."""


class ConfigError(StopAndTell):
    """The configuration is invalid; the message names field, rule, value and fix.

    ``problems`` lists every problem found, one line each (just the message when the
    error was raised with a message alone).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]


class AuthError(StopAndTell):
    """Keys missing, wrong, or without the needed permission."""


class InvariantBroken(StopAndTell):
    """A rule the core relies on does not hold (e.g. a negative balance)."""


class DataError(StopAndTell):
    """Market data is unusable: NaN, zero or negative prices, missing series."""


class UnknownSymbol(StopAndTell):
    """An asset or market the exchange does not list."""


class OrderOutcomeUnknown(RebalancerError):
    """The order request may have reached the exchange: look it up by client id."""

    def __init__(self, message: str, client_order_id: str) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id
