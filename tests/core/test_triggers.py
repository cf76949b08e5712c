"""Triggers: threshold bands, calendars, combinators, texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rebalancer.core.cron import Cron
from rebalancer.core.drift import AssetDrift, PortfolioDrift
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import (
    AllOf,
    AnyOf,
    Calendar,
    Never,
    Threshold,
    TriggerContext,
    find_threshold,
    hybrid,
    weekday_anchor,
)

D = Decimal
NOW = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)


def portfolio(*rows: tuple[str, str, str]) -> PortfolioDrift:
    """Rows of (asset, weight, target); amounts are 1 unless the weight is 0."""
    assets = tuple(
        AssetDrift(a, D(0) if D(w) == 0 else D(1), D(1), D(w), D(w), D(t)) for a, w, t in rows
    )
    return PortfolioDrift(D(1), assets)


def at(**kw: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC).replace(**kw)


CTX = TriggerContext(NOW)

# -- threshold ---------------------------------------------------------------------------------


def test_band_abs() -> None:
    rule = Threshold(band_abs=D("0.05"))
    # drift exactly at the band edge is inside; beyond it is out
    assert not rule.check(portfolio(("BTC", "0.55", "0.5"), ("USDT", "0.45", "0.5")), CTX).fire
    d = rule.check(portfolio(("BTC", "0.56", "0.5"), ("USDT", "0.44", "0.5")), CTX)
    assert d.fire
    assert d.out_of_band == ("BTC", "USDT")
    assert d.reason == "BTC drift 6.00% beyond ±5.00%; USDT drift -6.00% beyond ±5.00%"


def test_band_rel() -> None:
    rule = Threshold(band_abs=None, band_rel=D("0.25"))
    # target 10 %: band ±2.5 points; 13 % is out
    d = rule.check(portfolio(("SOL", "0.13", "0.1"), ("BTC", "0.87", "0.9")), CTX)
    assert d.fire
    assert d.out_of_band == ("SOL",)  # BTC: 3 points off 90 %, band ±22.5 points
    assert d.reason == "SOL drift 3.00% beyond ±2.50%"
    assert not rule.check(portfolio(("SOL", "0.12", "0.1"), ("BTC", "0.88", "0.9")), CTX).fire


@pytest.mark.parametrize(
    ("weight", "target", "out"),
    [
        # 5/25 rule: out if more than 5 points OR more than 25 % of the target away
        ("0.66", "0.6", True),  # 6 points (only 10 % of target) -> out by the absolute band
        ("0.64", "0.6", False),  # 4 points, 6.7 % of target -> in
        ("0.13", "0.1", True),  # 3 points but 30 % of target -> out by the relative band
        ("0.12", "0.1", False),  # 2 points, 20 % of target -> in
        ("0.07", "0.1", True),  # -3 points, -30 % -> out (both directions)
        ("0.40", "0.5", True),  # -10 points
    ],
)
def test_band_abs_or_band_rel(weight: str, target: str, out: bool) -> None:
    rule = Threshold(band_abs=D("0.05"), band_rel=D("0.25"))
    rest = str(1 - D(weight))
    d = rule.check(portfolio(("X", weight, target), ("USDT", rest, str(1 - D(target)))), CTX)
    assert ("X" in d.out_of_band) is out


def test_band_width_is_the_tighter_band() -> None:
    rule = Threshold(band_abs=D("0.05"), band_rel=D("0.25"))
    assert rule.band_width(D("0.6")) == D("0.05")
    assert rule.band_width(D("0.1")) == D("0.025")
    # band_rel does not apply to a zero target: band_abs alone, else unbounded
    assert rule.band_width(D(0)) == D("0.05")
    assert Threshold(band_abs=None, band_rel=D("0.25")).band_width(D(0)) == D("Infinity")


def test_zero_target_dust_does_not_fire_a_relative_band() -> None:
    rule = Threshold(band_abs=None, band_rel=D("0.25"))
    d = rule.check(
        portfolio(("X", "0.5", "0.5"), ("DUST", "0.0001", "0"), ("USDT", "0.4999", "0.5")), CTX
    )
    assert not d.fire, d.reason


def test_target_asset_held_at_zero_is_always_out() -> None:
    rule = Threshold(band_abs=D("0.5"))  # a band so wide nothing else could be out
    d = rule.check(portfolio(("DOT", "0", "0.01"), ("USDT", "1", "0.99")), CTX)
    assert d.fire
    assert d.out_of_band == ("DOT",)
    assert d.reason == "DOT held at 0"
    # an asset with target 0 held at 0 is fine
    assert not rule.check(portfolio(("DOT", "0", "0"), ("USDT", "1", "1")), CTX).fire


def test_in_band_reason_names_the_largest_drift() -> None:
    d = Threshold(D("0.05")).check(portfolio(("BTC", "0.47", "0.5"), ("ETH", "0.53", "0.5")), CTX)
    assert not d.fire
    assert d.out_of_band == ()
    assert d.reason == "all assets within band_abs 5.00%; largest drift BTC -3.00%"


def test_threshold_describe() -> None:
    assert Threshold(D("0.05")).describe() == "band_abs 5.00%"
    assert Threshold(None, D("0.25")).describe() == "band_rel 25.00% of target"
    assert (
        Threshold(D("0.05"), D("0.25")).describe() == "band_abs 5.00% or band_rel 25.00% of target"
    )


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"band_abs": None, "band_rel": None}, "band_abs or band_rel"),
        ({"band_abs": D("-0.01")}, "band_abs"),
        ({"band_abs": None, "band_rel": D("NaN")}, "band_rel"),
    ],
)
def test_threshold_rejects_bad_bands(kw: dict[str, Decimal | None], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Threshold(**kw)


# -- calendar ----------------------------------------------------------------------------------


def due(
    cal: Calendar, now: datetime, last_fired: datetime | None, last_check: datetime | None = None
) -> bool:
    return cal.check(portfolio(), TriggerContext(now, last_check, last_fired)).fire


def test_calendar_fires_on_first_cycle() -> None:
    assert due(Calendar(period=timedelta(days=1)), NOW, None)
    assert due(Calendar(cron=Cron.parse("0 0 1 * *")), NOW, None)


def test_period_is_aligned_to_the_epoch_not_to_the_last_firing() -> None:
    daily = Calendar(period=timedelta(days=1))
    # one minute, but across midnight UTC: due
    assert due(daily, at(day=2, hour=0, minute=0), at(day=1, hour=23, minute=59))
    # almost 24 hours, but within the same UTC day: not due
    assert not due(daily, at(day=2, hour=23, minute=59), at(day=2, hour=0, minute=0))
    four_h = Calendar(period=timedelta(hours=4))  # boundaries at 00, 04, 08, ... UTC
    assert not due(four_h, at(hour=7, minute=59), at(hour=5))
    assert due(four_h, at(hour=8), at(hour=5))
    # the epoch (1970-01-01) was a Thursday: weekly boundaries are Thursdays 00:00 UTC
    weekly = Calendar(period=timedelta(weeks=1))
    assert due(weekly, at(day=4), at(day=3, hour=23))  # Wed 23:00 -> Thu 00:00
    assert not due(weekly, at(day=10, hour=23), at(day=4))  # Thu -> next Wed
    # a weekday anchor moves the boundaries: Mondays 00:00 UTC
    monday = Calendar(period=timedelta(weeks=1), anchor=weekday_anchor("mon"))
    assert weekday_anchor("thu") == timedelta(0) and weekday_anchor("mon") == timedelta(days=4)
    assert not due(monday, at(day=4), at(day=3, hour=23))  # Wed -> Thu: no longer a boundary
    ref = at(day=3, hour=23)
    nxt = monday.next_due(TriggerContext(at(day=4), last_fired=ref))
    assert nxt.strftime("%A %H:%M") == "Monday 00:00" and nxt > ref
    assert nxt - ref < timedelta(weeks=1)
    assert due(monday, nxt, ref) and not due(monday, nxt - timedelta(seconds=1), ref)


def test_next_due_is_the_first_scheduled_time_after_the_reference() -> None:
    four_h = Calendar(period=timedelta(hours=4))
    assert four_h.next_due(TriggerContext(at(hour=6), last_fired=at(hour=5))) == at(hour=8)
    assert four_h.next_due(TriggerContext(at(hour=6), last_fired=at(hour=8))) == at(hour=12)
    assert four_h.next_due(TriggerContext(at(hour=6))) == at(hour=6)  # never fired: now
    cron = Calendar(cron=Cron.parse("0 */4 * * *"))
    assert cron.next_due(TriggerContext(at(hour=6), last_fired=at(hour=5, minute=10))) == at(
        hour=8
    )
    ctx = TriggerContext(at(hour=6), last_fired=at(hour=5))
    assert four_h.check(portfolio(), ctx).reason.endswith(
        f"not due yet (next due {at(hour=8):%Y-%m-%d %H:%M} UTC)"
    )


def test_cron_calendar() -> None:
    cal = Calendar(cron=Cron.parse("0 */4 * * *"))
    assert not due(cal, at(hour=7, minute=59), at(hour=5, minute=10))
    assert due(cal, at(hour=8), at(hour=5, minute=10))
    assert due(cal, at(day=3), at(hour=5, minute=10))


def test_since_fired_vs_since_check() -> None:
    """A daily look that checked 10 minutes ago but last fired days ago."""
    last_fired, last_check, now = (
        at(day=1, hour=9),
        at(day=5, hour=11, minute=50),
        at(day=5, hour=12),
    )
    assert due(Calendar(period=timedelta(days=1), since="fired"), now, last_fired, last_check)
    assert not due(Calendar(period=timedelta(days=1), since="check"), now, last_fired, last_check)
    # since="check" with no check yet fires
    assert due(Calendar(period=timedelta(days=1), since="check"), now, last_fired, None)


def test_calendar_texts() -> None:
    assert Calendar(period=timedelta(days=1)).describe() == "every 1d"
    assert Calendar(period=timedelta(hours=4)).describe() == "every 4h"
    assert Calendar(period=timedelta(weeks=1)).describe() == "every 1w (Thursdays 00:00 UTC)"
    assert (
        Calendar(period=timedelta(weeks=2), anchor=weekday_anchor("mon")).describe()
        == "every 2w (Mondays 00:00 UTC, counted from 1970-01-05)"
    )
    assert Calendar(period=timedelta(minutes=30)).describe() == "every 30m"
    assert Calendar(period=timedelta(seconds=90)).describe() == "every 90s"
    assert Calendar(cron=Cron.parse("0 */4 * * *")).describe() == "cron '0 */4 * * *'"
    cal = Calendar(period=timedelta(days=1))
    assert cal.check(portfolio(), TriggerContext(NOW)).reason == "calendar every 1d is due"
    ctx = TriggerContext(NOW, last_fired=NOW)
    tomorrow = NOW.date() + timedelta(days=1)
    expected = f"calendar every 1d not due yet (next due {tomorrow} 00:00 UTC)"
    assert cal.check(portfolio(), ctx).reason == expected


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({}, "exactly one"),
        ({"period": timedelta(days=1), "cron": Cron.parse("0 0 * * *")}, "exactly one"),
        ({"period": timedelta(0)}, "positive"),
        ({"period": timedelta(hours=-1)}, "positive"),
    ],
)
def test_calendar_rejects_bad_schedules(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Calendar(**kw)  # type: ignore[arg-type]


# -- combinators -------------------------------------------------------------------------------

OUT = portfolio(("BTC", "0.6", "0.5"), ("USDT", "0.4", "0.5"))  # 10 points out
IN = portfolio(("BTC", "0.52", "0.5"), ("USDT", "0.48", "0.5"))


def test_hybrid_looks_on_schedule_and_acts_only_out_of_band() -> None:
    band = Threshold(D("0.05"))
    rule = hybrid(Calendar(period=timedelta(days=1)), band)
    assert isinstance(rule, AllOf)
    (cal, thr) = rule.parts
    assert thr is band
    assert isinstance(cal, Calendar)
    assert cal.since == "check"  # the look is scheduled from the last check, not the last fire
    assert rule.describe() == "all of (every 1d, band_abs 5.00%)"
    looked_yesterday = TriggerContext(at(day=5, hour=12), last_check=at(day=4, hour=12))
    looked_today = TriggerContext(at(day=5, hour=12), last_check=at(day=5, hour=1))
    d = rule.check(OUT, looked_yesterday)
    assert d.fire
    assert d.out_of_band == ("BTC", "USDT")
    assert d.reason.startswith("calendar every 1d is due; BTC drift 10.00% beyond ±5.00%")
    d = rule.check(IN, looked_yesterday)
    assert not d.fire
    assert d.reason.startswith("all assets within band_abs 5.00%")
    d = rule.check(OUT, looked_today)
    assert not d.fire
    assert d.reason.startswith("calendar every 1d not due yet (next due ")


def test_any_of() -> None:
    rule = AnyOf((Calendar(period=timedelta(days=7)), Threshold(D("0.05"))))
    not_due = TriggerContext(NOW, last_fired=NOW)
    d = rule.check(OUT, not_due)
    assert d.fire
    assert d.reason == "BTC drift 10.00% beyond ±5.00%; USDT drift -10.00% beyond ±5.00%"
    d = rule.check(IN, TriggerContext(NOW))
    assert d.fire
    assert d.reason == "calendar every 1w (Thursdays 00:00 UTC) is due"
    assert d.out_of_band == ()
    d = rule.check(IN, not_due)
    assert not d.fire
    assert "not due yet" in d.reason
    assert "all assets within" in d.reason
    # out-of-band assets of every firing part, once each, in order
    two = AnyOf((Threshold(D("0.05")), Threshold(None, D("0.1"))))
    assert two.check(OUT, CTX).out_of_band == ("BTC", "USDT")
    assert rule.describe() == "any of (every 1w (Thursdays 00:00 UTC), band_abs 5.00%)"


def test_all_of_stops_at_first_no() -> None:
    rule = AllOf((Never(), Threshold(D("0.05"))))
    d = rule.check(OUT, CTX)
    assert not d.fire
    assert d.reason == "buy-and-hold never rebalances"


def test_never() -> None:
    assert not Never().check(OUT, CTX).fire
    assert Never().describe() == "never (buy-and-hold)"


def test_find_threshold_and_strategy() -> None:
    thr = Threshold(D("0.03"))
    nested = AnyOf((Calendar(period=timedelta(days=1)), AllOf((Never(), thr))))
    assert find_threshold(nested) is thr
    assert find_threshold(Calendar(period=timedelta(days=1))) is None
    s = Strategy("USDT", {"BTC": D("0.5"), "USDT": D("0.2"), "ETH": D("0.3")}, nested, PlanPolicy())
    assert s.assets == ("BTC", "ETH")
    assert s.threshold is thr
