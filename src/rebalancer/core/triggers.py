"""Triggers: small composable rules that decide whether a cycle rebalances.

Every trigger is a frozen value with ``check(drift, ctx) -> Decision``. ``ctx`` carries
"now" and the times of the previous check and the previous firing, so triggers stay pure.

* :class:`Threshold` -- fire when an asset's drift leaves its band (``band_abs`` in weight
  points and/or ``band_rel`` as a fraction of the target; out of either band counts). A
  target asset held at zero is always out of band.
* :class:`Calendar` -- fire when a scheduled time (every ``period``, aligned to the Unix
  epoch in UTC, or a cron expression) has passed since the last firing (or the last check).
* :class:`AllOf` / :class:`AnyOf` -- combinators. ``hybrid(...)`` = all of (calendar since
  the last check, threshold): look on a schedule, act only when out of band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from rebalancer.core.cron import Cron
from rebalancer.core.drift import AssetDrift, PortfolioDrift

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TriggerContext:
    """``now``: the cycle's time; ``last_check``: previous cycle; ``last_fired``: last firing.

    ``history``: recent closes per asset, oldest first, the last one at or before ``now``
    (only given when the trigger asks for it, see :func:`rebalancer.core.vol_bands.history_bars`).
    """

    now: datetime
    last_check: datetime | None = None
    last_fired: datetime | None = None
    history: Mapping[str, Sequence[Decimal]] | None = None


@dataclass(frozen=True)
class Decision:
    """Whether to rebalance, why, and which assets are out of band (if a band applies)."""

    fire: bool
    reason: str
    out_of_band: tuple[str, ...] = ()


class Trigger(Protocol):
    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision: ...

    def describe(self) -> str: ...


def _pct(x: Decimal) -> str:
    return f"{float(x) * 100:.2f}%"


@dataclass(frozen=True)
class Threshold:
    """Band rule. ``band_abs`` in weight units (0.05 = 5 points); ``band_rel`` of target."""

    band_abs: Decimal | None = Decimal("0.05")
    band_rel: Decimal | None = None

    def __post_init__(self) -> None:
        if self.band_abs is None and self.band_rel is None:
            raise ValueError("Threshold needs band_abs or band_rel (or both); both are None")
        for name, band in (("band_abs", self.band_abs), ("band_rel", self.band_rel)):
            if band is not None and not (band.is_finite() and band >= 0):
                raise ValueError(f"Threshold {name} must be a finite number >= 0, got {band}")

    def band_width(self, target: Decimal) -> Decimal:
        """Half-width of the band around ``target`` (the tighter of the two bands).

        ``band_rel`` only applies to legs with a positive target: a leg with target 0 is
        judged by ``band_abs`` alone, and with ``band_rel`` alone its band is unbounded (it
        never fires on its own; the other legs' drift does). Otherwise leftover dust of a
        zero-target leg would fire the rule on every cycle.
        """
        widths = [self.band_abs] if self.band_abs is not None else []
        if self.band_rel is not None and target > 0:
            widths.append(self.band_rel * target)
        return min(widths) if widths else Decimal("Infinity")

    def is_out(self, a: AssetDrift) -> bool:
        if a.target > 0 and a.amount == 0:
            return True
        return abs(a.drift) > self.band_width(a.target)

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        out = [a for a in drift.assets if self.is_out(a)]
        if not out:
            worst = max(drift.assets, key=lambda a: abs(a.drift), default=None)
            detail = f"; largest drift {worst.asset} {_pct(worst.drift)}" if worst else ""
            return Decision(False, f"all assets within {self.describe()}{detail}")
        parts = [
            f"{a.asset} held at 0"
            if a.target > 0 and a.amount == 0
            else f"{a.asset} drift {_pct(a.drift)} beyond ±{_pct(self.band_width(a.target))}"
            for a in out
        ]
        return Decision(True, "; ".join(parts), tuple(a.asset for a in out))

    def describe(self) -> str:
        bands = []
        if self.band_abs is not None:
            bands.append(f"band_abs {_pct(self.band_abs)}")
        if self.band_rel is not None:
            bands.append(f"band_rel {_pct(self.band_rel)} of target")
        return " or ".join(bands)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Calendar:
    """Fire when a scheduled time passed since ``since`` (the last firing or the last check).

    Exactly one of ``period`` or ``cron`` is set. Periods are aligned to the Unix epoch plus
    ``anchor`` (UTC): the scheduled times are ``EPOCH + anchor + k * period``. The epoch,
    1970-01-01, was a Thursday, so a weekly period with no anchor falls on Thursdays 00:00
    UTC; ``anchor = timedelta(days=4)`` moves it to Mondays (see :func:`weekday_anchor`).
    With no reference time yet (first cycle), it fires.
    """

    period: timedelta | None = None
    cron: Cron | None = None
    since: Literal["fired", "check"] = "fired"
    anchor: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if (self.period is None) == (self.cron is None):
            raise ValueError("Calendar needs exactly one of period or cron")
        if self.period is not None and self.period <= timedelta(0):
            raise ValueError(f"Calendar period must be positive, got {self.period}")

    def _reference(self, ctx: TriggerContext) -> datetime | None:
        return ctx.last_fired if self.since == "fired" else ctx.last_check

    def next_due(self, ctx: TriggerContext) -> datetime:
        """The first scheduled time after the reference (``ctx.now`` when there is none)."""
        ref = self._reference(ctx)
        if ref is None:
            return ctx.now
        if self.cron is not None:
            return self.cron.next_after(ref)
        assert self.period is not None
        start = EPOCH + self.anchor
        return start + ((ref - start) // self.period + 1) * self.period

    def due(self, ctx: TriggerContext) -> bool:
        return self.next_due(ctx) <= ctx.now

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        if self.due(ctx):
            return Decision(True, f"calendar {self.describe()} is due")
        when = f"{self.next_due(ctx):%Y-%m-%d %H:%M} UTC"
        return Decision(False, f"calendar {self.describe()} not due yet (next due {when})")

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron.expression}'"
        assert self.period is not None
        text = f"every {format_period(self.period)}"
        if self.period % WEEK == timedelta(0):
            first = EPOCH + self.anchor
            text += f" ({first:%A}s {first:%H:%M} UTC"
            text += ")" if self.period == WEEK else f", counted from {first:%Y-%m-%d})"
        return text


def weekday_anchor(weekday: str) -> timedelta:
    """The anchor that puts weekly periods on ``weekday`` ("mon".."sun") at 00:00 UTC."""
    return timedelta(days=(WEEKDAYS.index(weekday) - EPOCH.weekday()) % 7)


def format_period(period: timedelta | None) -> str:
    if period is None:
        return "?"
    secs = int(period.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class AllOf:
    """Fire only when every part fires (evaluated in order; stops at the first no)."""

    parts: tuple[Trigger, ...]

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        reasons: list[str] = []
        out: tuple[str, ...] = ()
        for part in self.parts:
            d = part.check(drift, ctx)
            if not d.fire:
                return Decision(False, d.reason)
            reasons.append(d.reason)
            out = out or d.out_of_band
        return Decision(True, "; ".join(reasons), out)

    def describe(self) -> str:
        return "all of (" + ", ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class AnyOf:
    """Fire when any part fires; reasons of every firing part are kept."""

    parts: tuple[Trigger, ...]

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        decisions = [p.check(drift, ctx) for p in self.parts]
        fired = [d for d in decisions if d.fire]
        if not fired:
            return Decision(False, "; ".join(d.reason for d in decisions))
        out = tuple(dict.fromkeys(a for d in fired for a in d.out_of_band))
        return Decision(True, "; ".join(d.reason for d in fired), out)

    def describe(self) -> str:
        return "any of (" + ", ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class Never:
    """Buy-and-hold: never fires."""

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        return Decision(False, "buy-and-hold never rebalances")

    def describe(self) -> str:
        return "never (buy-and-hold)"


def hybrid(calendar: Calendar, threshold: Threshold) -> AllOf:
    """Look on ``calendar``'s schedule (since the last check), act only when out of band."""
    looks = Calendar(calendar.period, calendar.cron, since="check", anchor=calendar.anchor)
    return AllOf((looks, threshold))


def find_threshold(trigger: Trigger) -> Threshold | None:
    """The first :class:`Threshold` inside ``trigger`` (for band-edge rebalancing)."""
    if isinstance(trigger, Threshold):
        return trigger
    if isinstance(trigger, AllOf | AnyOf):
        for part in trigger.parts:
            found = find_threshold(part)
            if found is not None:
                return found
    return None
