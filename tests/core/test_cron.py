"""Cron parsing and next_after, checked against hand-written predicates by a minute scan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.cron import Cron

from .strategies import CORE

# Each expression with an independent, hand-written predicate of what it means.
# Day of week: Python's weekday() is Mon=0..Sun=6; cron's is Sun=0..Sat=6.
Pred = Callable[[datetime], bool]


def cron_dow(t: datetime) -> int:
    return (t.weekday() + 1) % 7


EXPRESSIONS: dict[str, Pred] = {
    "0 */4 * * *": lambda t: t.minute == 0 and t.hour in (0, 4, 8, 12, 16, 20),
    "30 9 * * 1-5": lambda t: (t.hour, t.minute) == (9, 30) and cron_dow(t) in (1, 2, 3, 4, 5),
    "0 0 1 * *": lambda t: (t.day, t.hour, t.minute) == (1, 0, 0),
    "*/15 * * * *": lambda t: t.minute in (0, 15, 30, 45),
    # both day fields restricted: the 13th OR any Friday (classic cron "or")
    "0 12 13 * 5": lambda t: (t.hour, t.minute) == (12, 0) and (t.day == 13 or cron_dow(t) == 5),
    # lists, ranges with steps, months
    "5,35 8-18/5 * 1,7 *": lambda t: (
        t.minute in (5, 35) and t.hour in (8, 13, 18) and t.month in (1, 7)
    ),
    # 7 is Sunday too
    "0 6 * * 0,7": lambda t: (t.hour, t.minute) == (6, 0) and cron_dow(t) == 0,
}


def scan(pred: Pred, t: datetime) -> datetime:
    """Brute force: the first whole minute strictly after ``t`` for which ``pred`` holds."""
    cur = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while not pred(cur):
        cur += timedelta(minutes=1)
    return cur


times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
)


@CORE
@given(st.sampled_from(sorted(EXPRESSIONS)), times)
def test_next_after_matches_a_minute_scan(expression: str, t: datetime) -> None:
    got = Cron.parse(expression).next_after(t)
    assert got == scan(EXPRESSIONS[expression], t)
    assert got > t
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */4 * * *", datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 4, 0)),
        ("0 */4 * * *", datetime(2024, 1, 1, 22, 59, 59), datetime(2024, 1, 2, 0, 0)),
        # Friday 2024-01-05 after 9:30 -> Monday 2024-01-08
        ("30 9 * * 1-5", datetime(2024, 1, 5, 10, 0), datetime(2024, 1, 8, 9, 30)),
        ("30 9 * * 1-5", datetime(2024, 1, 5, 9, 29, 59), datetime(2024, 1, 5, 9, 30)),
        ("0 0 1 * *", datetime(2024, 1, 31, 23, 59), datetime(2024, 2, 1, 0, 0)),
        ("0 0 1 * *", datetime(2024, 12, 1, 0, 0), datetime(2025, 1, 1, 0, 0)),
        ("*/15 * * * *", datetime(2024, 1, 1, 10, 7, 30), datetime(2024, 1, 1, 10, 15)),
        # strictly after: a time that matches is not its own next
        ("*/15 * * * *", datetime(2024, 1, 1, 10, 15), datetime(2024, 1, 1, 10, 30)),
        ("0 0 29 2 *", datetime(2024, 3, 1), datetime(2028, 2, 29)),
    ],
)
def test_next_after_examples(expression: str, after: datetime, expected: datetime) -> None:
    got = Cron.parse(expression).next_after(after.replace(tzinfo=UTC))
    assert got == expected.replace(tzinfo=UTC)


def test_day_of_month_or_day_of_week() -> None:
    """Both restricted: either matches. From Sunday 2024-09-01, '0 0 2 * 5' fires on Monday
    the 2nd (day of month) and then Friday the 6th (day of week); with "and" semantics it
    would wait for a Friday the 2nd (May 2025)."""
    c = Cron.parse("0 0 2 * 5")
    first = c.next_after(datetime(2024, 9, 1, tzinfo=UTC))
    assert first == datetime(2024, 9, 2, tzinfo=UTC)
    assert c.next_after(first) == datetime(2024, 9, 6, tzinfo=UTC)


def test_only_one_day_field_restricted_uses_that_field() -> None:
    assert Cron.parse("0 0 2 * *").next_after(datetime(2024, 9, 3, tzinfo=UTC)) == datetime(
        2024, 10, 2, tzinfo=UTC
    )
    # Fridays only, whatever the day of month
    assert Cron.parse("0 0 * * 5").next_after(datetime(2024, 9, 1, tzinfo=UTC)) == datetime(
        2024, 9, 6, tzinfo=UTC
    )


def test_sunday_is_0_or_7() -> None:
    t = datetime(2024, 9, 2, tzinfo=UTC)  # a Monday
    sunday = datetime(2024, 9, 8, tzinfo=UTC)
    assert Cron.parse("0 0 * * 0").next_after(t) == sunday
    assert Cron.parse("0 0 * * 7").next_after(t) == sunday


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("0 * * *", ["4 fields", "write 5", "minute hour day-of-month month day-of-week"]),
        ("0 0 * * * *", ["6 fields", "write 5"]),
        ("", ["0 fields"]),
        ("60 * * * *", ["minute", "'60'", "0-59"]),
        ("0 24 * * *", ["hour", "'24'", "0-23"]),
        ("0 0 0 * *", ["day", "'0'", "1-31"]),
        ("0 0 32 * *", ["day", "1-31"]),
        ("0 0 * 13 *", ["month", "1-12"]),
        ("0 0 * * 8", ["weekday", "0-7"]),
        ("*/0 * * * *", ["minute", "step 0", "at least 1"]),
        ("x * * * *", ["minute", "'x'", "not"]),
        ("0 5-3 * * *", ["hour", "5-3", "reversed"]),
        ("0 1,,2 * * *", ["hour", "''"]),
    ],
)
def test_parse_errors_are_clear(expression: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Cron.parse(expression)
    message = str(info.value)
    assert repr(expression) in message
    for fragment in fragments:
        assert fragment in message


def test_impossible_date_never_matches() -> None:
    with pytest.raises(ValueError, match="never matches"):
        Cron.parse("0 0 31 2 *").next_after(datetime(2024, 1, 1, tzinfo=UTC))


def test_parsed_fields() -> None:
    c = Cron.parse("5,10-20/5 */6 1 1-3 1-5")
    assert c.minutes == frozenset({5, 10, 15, 20})
    assert c.hours == frozenset({0, 6, 12, 18})
    assert c.days == frozenset({1})
    assert c.months == frozenset({1, 2, 3})
    assert c.weekdays == frozenset({1, 2, 3, 4, 5})
    assert not c.day_star
    assert not c.weekday_star
    assert c.expression == "5,10-20/5 */6 1 1-3 1-5"
