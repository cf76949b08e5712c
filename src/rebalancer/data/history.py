"""Price history over a closes panel, for triggers that look back (no look-ahead).

:class:`FrameHistory` answers ``PriceHistory.closes`` from the backtest's own closes: only
bars whose close time is at or before the decision time, so the decision at a bar sees that
bar's close (the price it trades at) and nothing later.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd


class FrameHistory:
    """``closes`` (UTC index = candle open times, one column per asset); ``bar`` its length."""

    def __init__(self, closes: pd.DataFrame, bar: timedelta) -> None:
        self._cols = {c: i for i, c in enumerate(closes.columns)}
        self._prices: np.ndarray[Any, np.dtype[np.float64]] = closes.to_numpy(dtype=np.float64)
        self._index = closes.index
        self._bar = bar
        self._times: list[datetime] | None = None  # built on first use (threshold runs never ask)

    @property
    def _close_times(self) -> list[datetime]:
        if self._times is None:
            index, bar = self._index, self._bar
            if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
                # one vectorised conversion (same objects as the per-element form below)
                self._times = list((index + bar).to_pydatetime())
            else:
                self._times = [t.to_pydatetime() + bar for t in index]
        return self._times

    def closes(
        self, assets: Sequence[str], until: datetime, bars: int
    ) -> Mapping[str, Sequence[Decimal]]:
        end = bisect_right(self._close_times, until)
        start = max(0, end - bars)
        return {
            a: [Decimal(repr(float(v))) for v in self._prices[start:end, self._cols[a]]]
            for a in assets
        }
