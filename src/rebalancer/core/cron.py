"""A small, exact cron matcher (5 fields: minute hour day-of-month month day-of-week).

Supports ``*``, numbers, ``a-b`` ranges, ``*/n`` and ``a-b/n`` steps and comma lists;
day-of-week 0-6 with 0 (or 7) = Sunday. As in classic cron, when both day fields are
restricted a time matches if either matches. Pure: times are passed in, never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))


def _parse_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    """Values of one field; ValueError naming the field, the part and the rule broken."""
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        try:
            step = int(step_s) if step_s else 1
            if rng == "*":
                start, end = lo, hi
            elif "-" in rng:
                a, b = rng.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = end = int(rng)
        except ValueError:
            raise ValueError(
                f"cron field {name}={text!r}: {part!r} is not '*', a number, a range a-b "
                "or a step */n"
            ) from None
        if step < 1:
            raise ValueError(f"cron field {name}={text!r}: step {step} must be at least 1")
        if start < lo or end > hi:
            raise ValueError(f"cron field {name}={text!r}: values must lie in {lo}-{hi}")
        if start > end:
            raise ValueError(f"cron field {name}={text!r}: range {start}-{end} is reversed")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_after(t)`` gives the first match strictly after t."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron expression {expression!r} has {len(parts)} fields; "
                "write 5: minute hour day-of-month month day-of-week, e.g. '0 */4 * * *'"
            )
        try:
            sets = [
                _parse_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=True)
            ]
        except ValueError as exc:
            raise ValueError(f"cron expression {expression!r}: {exc}") from None
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            expression,
            sets[0],
            sets[1],
            sets[2],
            sets[3],
            weekdays,
            parts[2] == "*",
            parts[4] == "*",
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime:
        """First minute strictly after ``t`` that matches (searches up to 5 years)."""
        cur = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = cur + timedelta(days=366 * 5)
        while cur < limit:
            if cur.month not in self.months or not self._day_matches(cur):
                cur = (cur + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if cur.hour not in self.hours:
                cur = (cur + timedelta(hours=1)).replace(minute=0)
                continue
            if cur.minute not in self.minutes:
                cur += timedelta(minutes=1)
                continue
            return cur
        raise ValueError(f"cron expression {self.expression!r} never matches")
