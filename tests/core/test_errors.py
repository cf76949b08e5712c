"""The error tree is grouped by what the caller must do."""

from __future__ import annotations

import pytest

from rebalancer.core import errors as e


@pytest.mark.parametrize(
    ("cls", "group"),
    [
        (e.BelowMinimum, e.SkipLeg),
        (e.OrderRejected, e.SkipLeg),
        (e.InsufficientFunds, e.SkipLeg),
        (e.ConfigError, e.StopAndTell),
        (e.AuthError, e.StopAndTell),
        (e.InvariantBroken, e.StopAndTell),
        (e.DataError, e.StopAndTell),
        (e.UnknownSymbol, e.StopAndTell),
    ],
)
def test_groups(cls: type[e.RebalancerError], group: type[e.RebalancerError]) -> None:
    assert issubclass(cls, group)
    assert issubclass(cls, e.RebalancerError)
    others = {e.RetryLater, e.SkipLeg, e.StopAndTell, e.OrderOutcomeUnknown} - {group}
    assert not any(issubclass(cls, o) for o in others)


def test_outcome_unknown_carries_the_client_order_id() -> None:
    err = e.OrderOutcomeUnknown("timeout after send", "rb240101000000b0")
    assert err.client_order_id == "rb240101000000b0"
    assert str(err) == "timeout after send"
    assert not isinstance(err, e.SkipLeg | e.StopAndTell | e.RetryLater)
