"""Words for research output: bar lengths, data windows, signed and unsigned percentages.

One convention everywhere a window is printed (terminal tables, HTML reports, titles of
charts): a window is named by the **candle open times** of its first and last bar, the
bounds ``--start`` and ``--end`` select (both inclusive). Equity is measured at bar close
times, one bar later; those are what ``summary.json`` lists as ``start`` / ``end``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

_NAMED = {
    timedelta(days=1): "daily",
    timedelta(hours=1): "hourly",
    timedelta(weeks=1): "weekly",
}
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def bar_label(bar: timedelta) -> str:
    """``daily``, ``hourly``, ``weekly``, else ``4-hour``, ``5-minute``, ``2-day``, ..."""
    if bar in _NAMED:
        return _NAMED[bar]
    seconds = int(bar.total_seconds())
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return str(bar)


def bars_text(n: int, bar: timedelta) -> str:
    """``791 daily bars``, ``1 hourly bar``, ``2,000 5-minute bars``."""
    return f"{n:,} {bar_label(bar)} bar{'' if n == 1 else 's'}"


def stamp(t: datetime | pd.Timestamp, bar: timedelta) -> str:
    """A candle time: the date for bars of a day or more, else date and time (UTC)."""
    return f"{t:%Y-%m-%d}" if bar >= timedelta(days=1) else f"{t:%Y-%m-%d %H:%M}"


def window_text(
    first: datetime | pd.Timestamp, last: datetime | pd.Timestamp, n: int, bar: timedelta
) -> str:
    """``2024-10-01 → 2026-01-29 (486 daily bars)``: first and last candle open times."""
    return f"{stamp(first, bar)} → {stamp(last, bar)} ({bars_text(n, bar)})"


def pct(x: float | None, signed: bool = True) -> str:
    """``+25.48%`` (a return), or unsigned ``51.09%`` (a volatility); None/NaN -> ``n/a``."""
    if x is None or x != x:
        return "n/a"
    return f"{x * 100:+.2f}%" if signed else f"{x * 100:.2f}%"


def drawdown(x: float | None) -> str:
    """A drawdown (a fraction lost from the peak, >= 0) shown as a loss: ``-41.47%``."""
    if x is None or x != x:
        return "n/a"
    return f"{-abs(x) * 100:.2f}%" if x else "0.00%"
