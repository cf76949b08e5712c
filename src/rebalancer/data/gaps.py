"""What a loaded panel is missing: gaps inside series and bars dropped to align assets.

Nothing here fills anything. A gap is a hole between two candles of one series; the panel's
common axis simply has no row there (for any asset). Times are UTC candle open times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalancer.data.timeframes import parse_timeframe


def _fmt(time: pd.Timestamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Gap:
    """``missing`` candles of ``asset`` absent from ``start`` (first missing open time)
    up to ``end`` (exclusive: the open time of the candle where the series resumes)."""

    asset: str
    start: pd.Timestamp
    end: pd.Timestamp
    missing: int

    @property
    def last_missing(self) -> pd.Timestamp:
        """Open time of the last missing candle."""
        return self.end - (self.end - self.start) / self.missing

    @property
    def duration(self) -> pd.Timedelta:
        return self.end - self.start

    def __str__(self) -> str:
        return _describe_gap(self.asset, self.start, self.last_missing, self.end, self.missing)


def _describe_gap(
    who: str, start: pd.Timestamp, last: pd.Timestamp, end: pd.Timestamp, missing: int
) -> str:
    if missing == 1:
        return f"{who}: 1 candle missing at {_fmt(start)}"
    return (
        f"{who}: gap of {missing} candles, {_fmt(start)} .. {_fmt(last)} missing "
        f"(data resumes {_fmt(end)})"
    )


def find_gaps(index: pd.DatetimeIndex, step: pd.Timedelta, asset: str) -> tuple[Gap, ...]:
    """Every hole in a sorted, unique ``index`` whose candles are ``step`` apart."""
    if len(index) < 2:
        return ()
    ns = index.as_unit("ns").asi8
    step_ns = int(step / pd.Timedelta(nanoseconds=1))
    diffs = np.diff(ns)
    holes = np.flatnonzero(diffs > step_ns)
    return tuple(
        Gap(
            asset=asset,
            start=index[i] + step,
            end=index[i + 1],
            missing=int(diffs[i] // step_ns) - 1,
        )
        for i in holes.tolist()
    )


@dataclass(frozen=True)
class Coverage:
    """One asset's series within the requested window, and what aligning it cost.

    ``dropped_before`` / ``dropped_after``: candles before the common start / after the common
    end. ``dropped_inside``: candles inside the common range dropped because another asset has
    no candle at that time (a gap elsewhere).
    """

    asset: str
    first: pd.Timestamp
    last: pd.Timestamp
    rows: int
    dropped_before: int
    dropped_after: int
    dropped_inside: int

    @property
    def dropped(self) -> int:
        return self.dropped_before + self.dropped_after + self.dropped_inside


@dataclass(frozen=True)
class DataReport:
    """Issues found while building a panel on the common axis ``start`` .. ``end``.

    ``requested_start`` / ``requested_end`` are the caller's bounds (None: unbounded).
    """

    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    gaps: tuple[Gap, ...]
    coverage: tuple[Coverage, ...]
    requested_start: pd.Timestamp | None = None
    requested_end: pd.Timestamp | None = None

    @property
    def ok(self) -> bool:
        """True when every asset is gap-free and nothing was dropped to align."""
        return not self.issues

    def gaps_of(self, asset: str) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if g.asset == asset)

    def missing_bars(self, asset: str) -> int:
        return sum(g.missing for g in self.gaps_of(asset))

    @property
    def misaligned(self) -> tuple[Coverage, ...]:
        """The assets that lost candles to alignment."""
        return tuple(c for c in self.coverage if c.dropped)

    @property
    def issues(self) -> tuple[str, ...]:
        """One readable line per issue: gaps first (a hole shared by several assets, like an
        exchange outage, is one line), then alignment losses, then uncovered bounds."""
        lines = self._gap_lines()
        for c in self.coverage:
            if c.dropped_before:
                lines.append(
                    f"{c.asset}: starts {_fmt(c.first)}, before the common start "
                    f"{_fmt(self.start)}; {c.dropped_before} candle(s) dropped to align"
                )
            if c.dropped_after:
                lines.append(
                    f"{c.asset}: ends {_fmt(c.last)}, after the common end {_fmt(self.end)}; "
                    f"{c.dropped_after} candle(s) dropped to align"
                )
            if c.dropped_inside:
                lines.append(
                    f"{c.asset}: {c.dropped_inside} candle(s) inside the common range dropped "
                    "because another asset has no candle at those times (see its gaps)"
                )
        lines.extend(self._uncovered())
        return tuple(lines)

    def _gap_lines(self) -> list[str]:
        shared: dict[tuple[pd.Timestamp, pd.Timestamp], list[Gap]] = {}
        for gap in self.gaps:
            shared.setdefault((gap.start, gap.end), []).append(gap)
        lines = []
        for (start, end), group in sorted(shared.items()):
            if len(group) == len(self.coverage) > 1:
                who = "all assets"
            else:
                who = ", ".join(g.asset for g in group)
            lines.append(_describe_gap(who, start, group[0].last_missing, end, group[0].missing))
        return lines

    def _uncovered(self) -> list[str]:
        step = parse_timeframe(self.timeframe)
        lines = []
        if self.requested_start is not None and self.start - self.requested_start >= step:
            lines.append(
                f"requested start {_fmt(self.requested_start)} is not covered: the first "
                f"candle common to all assets opens {_fmt(self.start)}"
            )
        if self.requested_end is not None and self.requested_end - self.end >= step:
            lines.append(
                f"requested end {_fmt(self.requested_end)} is not covered: the last "
                f"candle common to all assets opens {_fmt(self.end)}"
            )
        return lines

    def summary(self, max_lines: int = 20) -> str:
        """A short text for logs and reports."""
        assets = ", ".join(c.asset for c in self.coverage)
        head = (
            f"{assets} {self.timeframe}: {self.rows} common candle(s), "
            f"{_fmt(self.start)} .. {_fmt(self.end)}"
        )
        issues = self.issues
        if not issues:
            return head + "; no gaps, aligned."
        shown = [f"  - {line}" for line in issues[:max_lines]]
        if len(issues) > max_lines:
            shown.append(f"  ... and {len(issues) - max_lines} more issue(s)")
        return "\n".join([f"{head}; {len(issues)} issue(s):", *shown])

    def __str__(self) -> str:
        return self.summary()
