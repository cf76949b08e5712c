"""When optimised targets are due (core/retarget.py): once per scheduled time, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.cron import Cron
from rebalancer.core.retarget import MONTHLY, Cadence, next_due, targets_due

T = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
CADENCES = [
    MONTHLY,
    Cadence(cron=Cron.parse("0 0 * * 1")),  # Mondays
    Cadence(period=timedelta(days=30)),
    Cadence(period=timedelta(hours=4)),
]
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
gaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))


def test_monthly_is_due_on_the_first_at_midnight_and_not_before() -> None:
    last = datetime(2025, 1, 1, tzinfo=UTC)
    assert not targets_due(MONTHLY, last, datetime(2025, 1, 31, 23, 59, tzinfo=UTC))
    assert targets_due(MONTHLY, last, datetime(2025, 2, 1, tzinfo=UTC))
    assert next_due(MONTHLY, last) == datetime(2025, 2, 1, tzinfo=UTC)
    assert targets_due(MONTHLY, None, T)  # nothing known: due


def test_periods_are_aligned_to_the_epoch() -> None:
    four_hours = Cadence(period=timedelta(hours=4))
    assert next_due(four_hours, T) == datetime(2025, 1, 15, 12, tzinfo=UTC)
    assert not targets_due(four_hours, T, datetime(2025, 1, 15, 11, 59, tzinfo=UTC))


@pytest.mark.parametrize("cadence", CADENCES, ids=lambda c: c.describe())
@given(last=times, gap=gaps)
def test_never_due_twice_in_one_period(cadence: Cadence, last: datetime, gap: timedelta) -> None:
    """After a change at ``now`` (it was due), nothing is due again before the next
    scheduled time, and at it it is."""
    now = last + gap
    if not targets_due(cadence, last, now):
        return
    following = next_due(cadence, now)
    assert following > now
    assert not targets_due(cadence, now, following - timedelta(minutes=1))
    assert targets_due(cadence, now, following)


@pytest.mark.parametrize("cadence", CADENCES, ids=lambda c: c.describe())
@given(last=times, extra=gaps)
def test_due_after_a_missed_period(cadence: Cadence, last: datetime, extra: timedelta) -> None:
    """Down over one or more scheduled times: due at the first check after, exactly once."""
    missed = next_due(cadence, next_due(cadence, last))  # two scheduled times went by
    now = missed + extra
    assert targets_due(cadence, last, now)
    assert not targets_due(cadence, now, now)


def test_a_cadence_needs_exactly_one_schedule() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Cadence()
    with pytest.raises(ValueError, match="positive"):
        Cadence(period=timedelta(0))
