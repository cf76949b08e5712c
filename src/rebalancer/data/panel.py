"""Historical candles for backtests: load, check, align, and the embedded demo data.

* :func:`load_candles` -- one asset's checked OHLCV frame (index ``time``, UTC open times).
* :func:`load_panel` -- the close prices of several assets on their common time axis, with
  the files' paths and sha256 and a :class:`DataReport` of gaps and alignment losses.
* :func:`load_demo_panel` -- the same on the daily Binance candles shipped in the package.

Files are named ``{BASE}_{QUOTE}-{timeframe}.csv``, ``.csv.gz`` or ``.parquet`` (freqtrade's
naming); see :mod:`.candle_file` for the layout and the checks. Nothing is ever filled or
resampled: a missing candle stays missing and is reported. ``align="inner"`` keeps the
candles every asset has (the intersection); ``align="strict"`` refuses any gap or loss.
``start`` and ``end`` bound candle open times and are both inclusive; naive times are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from rebalancer.core.errors import ConfigError, DataError
from rebalancer.data.candle_file import CandleFile, read_candle_file
from rebalancer.data.files import find_candle_file
from rebalancer.data.gaps import Coverage, DataReport, Gap, find_gaps
from rebalancer.data.timeframes import parse_timeframe

__all__ = [
    "DEMO_ASSETS",
    "DEMO_TIMEFRAME",
    "Align",
    "CandleFile",
    "CandlePanel",
    "Coverage",
    "DataReport",
    "Gap",
    "TimeLike",
    "embedded_dataset_dir",
    "find_candle_file",
    "find_gaps",
    "load_candles",
    "load_demo_panel",
    "load_panel",
    "load_ranges",
    "read_candle_file",
]

Align = Literal["inner", "strict"]
TimeLike = str | datetime | date | pd.Timestamp

DEMO_PACKAGE = "rebalancer.demo_data"
DEMO_ASSETS = ("BTC", "ETH", "SOL", "BNB", "XRP")
DEMO_TIMEFRAME = "1d"
DEMO_QUOTE = "USDT"


def load_candles(directory: Path, asset: str, timeframe: str, quote: str = "USDT") -> pd.DataFrame:
    """The checked candles of ``asset``/``quote``: index ``time`` (UTC), float64 columns
    ``open high low close volume``. Gaps are kept as they are (see :func:`find_gaps`)."""
    path = find_candle_file(Path(directory), asset, timeframe, quote)
    return read_candle_file(path, timeframe).candles


@dataclass(frozen=True, eq=False)
class CandlePanel:
    """Close prices of several assets on one time axis, and where they came from.

    ``closes``: index ``time`` (UTC candle open times), one float64 column per asset in the
    requested order. ``files`` / ``sha256``: the file read for each asset and the hash of its
    bytes. ``report``: gaps and alignment losses. ``unaligned``: each asset's closes within
    the requested bounds before alignment (what :meth:`window` re-aligns).
    """

    closes: pd.DataFrame
    timeframe: str
    quote: str
    files: dict[str, Path]
    sha256: dict[str, str]
    report: DataReport
    align: Align = "inner"
    unaligned: dict[str, pd.Series[float]] = field(default_factory=dict, repr=False)

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.closes.columns)

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.closes.index[0])

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.closes.index[-1])

    @property
    def step(self) -> pd.Timedelta:
        return parse_timeframe(self.timeframe)

    def window(self, start: TimeLike | None = None, end: TimeLike | None = None) -> CandlePanel:
        """The part of this panel between ``start`` and ``end`` (inclusive), re-checked.

        Never wider than this panel. The report describes the window alone.
        """
        want_lo, want_hi = _utc(start, "start"), _utc(end, "end")
        lo = self.start if want_lo is None else max(want_lo, self.start)
        hi = self.end if want_hi is None else min(want_hi, self.end)
        if lo > hi:
            raise DataError(
                f"window start={start} end={end} does not overlap this panel, which runs "
                f"{self.start} .. {self.end}. Fix: pick bounds inside that range."
            )
        series = self.unaligned or {a: self.closes[a] for a in self.assets}
        return _assemble(
            {a: s.loc[lo:hi] for a, s in series.items()},
            self.timeframe,
            self.quote,
            self.files,
            self.sha256,
            (want_lo, want_hi),
            self.align,
        )


def load_panel(
    directory: Path,
    assets: Sequence[str],
    timeframe: str,
    quote: str = "USDT",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    align: Align = "inner",
) -> CandlePanel:
    """Load ``assets`` from ``directory`` and align their closes on the common time axis.

    Raises :class:`DataError` for a missing or bad file, for an asset with no candle between
    ``start`` and ``end``, for assets that never overlap, and (``align="strict"``) for any gap
    or dropped candle; :class:`ConfigError` for a bad timeframe, align, asset list or bound.
    """
    parse_timeframe(timeframe)
    if align not in ("inner", "strict"):
        raise ConfigError(f"align must be 'inner' or 'strict', not {align!r}.")
    names = _check_assets(assets)
    lo, hi = _utc(start, "start"), _utc(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"start {lo} is after end {hi}. Fix: swap them.")
    loaded = {
        a: read_candle_file(find_candle_file(directory, a, timeframe, quote), timeframe)
        for a in names
    }
    series: dict[str, pd.Series[float]] = {}
    for asset, file in loaded.items():
        closes = file.candles["close"]
        series[asset] = closes.loc[lo:hi]
        if series[asset].empty:
            raise DataError(
                f"{file.path} has no candle between {lo or 'the start'} and {hi or 'the end'}: "
                f"it covers {closes.index[0]} .. {closes.index[-1]}. "
                f"Fix: widen start/end or leave {asset} out."
            )
    files = {a: f.path for a, f in loaded.items()}
    hashes = {a: f.sha256 for a, f in loaded.items()}
    return _assemble(series, timeframe, quote, files, hashes, (lo, hi), align)


def load_ranges(
    panel: CandlePanel, fine: str | None = None, wait: timedelta | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each bar's low and high of ``panel``'s assets, on its closes' index (frames like
    ``panel.closes``), read again from the same files. Only limit-order backtests
    (``order_type = "limit_inside"``) need them, so :func:`load_panel` keeps to closes.

    With ``fine`` (a shorter timeframe, e.g. ``"1h"``, whose files sit beside the panel's)
    and ``wait``, a bar's range is that of the fine candles opening in its first ``wait``
    instead of the whole bar: what a limit placed at the previous bar's close could have
    met while it rested ``wait`` (the replay hands bar ``i + 1``'s range to a limit placed
    at bar ``i``). A bar without such candles has no range (its limits fill nothing).
    """
    lows: dict[str, np.ndarray] = {}
    highs: dict[str, np.ndarray] = {}
    index = panel.closes.index
    for asset in panel.assets:
        if fine is None or wait is None:
            candles = read_candle_file(panel.files[asset], panel.timeframe).candles
            low, high = candles["low"], candles["high"]
        else:
            low, high = _first_part(panel, asset, fine, wait)
        lows[asset] = low.reindex(index).to_numpy(dtype="float64")
        highs[asset] = high.reindex(index).to_numpy(dtype="float64")
    return pd.DataFrame(lows, index=index), pd.DataFrame(highs, index=index)


def _first_part(
    panel: CandlePanel, asset: str, fine: str, wait: timedelta
) -> tuple[pd.Series[float], pd.Series[float]]:
    """Per bar of ``panel`` (by open time), the low and high of ``asset``'s ``fine`` candles
    that open within its first ``wait``."""
    step = parse_timeframe(fine)
    if not timedelta(0) < step <= wait <= parse_timeframe(panel.timeframe):
        raise ConfigError(
            f"limit ranges from {fine} candles over a wait of {wait}: need {fine} <= wait <= "
            f"the bar ({panel.timeframe}); e.g. fine = 1h, wait = 1h on daily bars"
        )
    path = find_candle_file(panel.files[asset].parent, asset, fine, panel.quote)
    candles = read_candle_file(path, fine).candles
    bar = pd.Timedelta(parse_timeframe(panel.timeframe))
    opens = pd.DatetimeIndex(candles.index)
    starts = opens.floor(bar)
    inside = opens - starts < pd.Timedelta(wait)
    part = candles[inside]
    grouped = part.groupby(starts[inside])
    return grouped["low"].min(), grouped["high"].max()


def embedded_dataset_dir() -> Traversable:
    """The folder of demo candles shipped inside the package (see its PROVENANCE.md)."""
    return resources.files(DEMO_PACKAGE)


def load_demo_panel(
    assets: Sequence[str] = DEMO_ASSETS,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    align: Align = "inner",
) -> CandlePanel:
    """Daily Binance closes of the embedded demo assets (2024-10-01 .. 2026-01-29)."""
    root = embedded_dataset_dir()
    if isinstance(root, Path):
        return load_panel(root, assets, DEMO_TIMEFRAME, DEMO_QUOTE, start, end, align)
    with resources.as_file(root) as folder:  # zipped install: files are read eagerly
        return load_panel(folder, assets, DEMO_TIMEFRAME, DEMO_QUOTE, start, end, align)


# -- alignment -------------------------------------------------------------------------------


def _assemble(
    series: Mapping[str, pd.Series[float]],
    timeframe: str,
    quote: str,
    files: dict[str, Path],
    hashes: dict[str, str],
    requested: tuple[pd.Timestamp | None, pd.Timestamp | None],
    align: Align,
) -> CandlePanel:
    step = parse_timeframe(timeframe)
    common = _common_axis(series, timeframe)
    first, last = pd.Timestamp(common[0]), pd.Timestamp(common[-1])
    coverage: list[Coverage] = []
    gaps: list[Gap] = []
    for asset, s in series.items():
        idx = pd.DatetimeIndex(s.index)
        before = int(idx.searchsorted(first))
        after = len(idx) - int(idx.searchsorted(last, side="right"))
        inside = len(idx) - before - after - len(common)
        coverage.append(
            Coverage(
                asset, pd.Timestamp(idx[0]), pd.Timestamp(idx[-1]), len(idx), before, after, inside
            )
        )
        gaps.extend(find_gaps(idx[before : len(idx) - after], step, asset))
    report = DataReport(
        timeframe, first, last, len(common), tuple(gaps), tuple(coverage), *requested
    )
    if align == "strict" and not report.ok:
        raise DataError(_strict_message(report, common, step))
    closes = pd.DataFrame(
        {a: s.reindex(common).to_numpy(dtype="float64") for a, s in series.items()}, index=common
    )
    return CandlePanel(
        closes, timeframe, quote, dict(files), dict(hashes), report, align, dict(series)
    )


def _common_axis(series: Mapping[str, pd.Series[float]], timeframe: str) -> pd.DatetimeIndex:
    indexes = [pd.DatetimeIndex(s.index) for s in series.values()]
    common = reduce(lambda a, b: a.intersection(b), indexes)
    if common.empty:
        spans = "; ".join(
            f"{a} {s.index[0]} .. {s.index[-1]}" if len(s) else f"{a} none"
            for a, s in series.items()
        )
        raise DataError(
            f"no {timeframe} candle is common to all assets ({spans}). Fix: choose assets "
            "whose histories overlap, or bounds where they all trade."
        )
    if not common.is_monotonic_increasing:
        common = common.sort_values()
    # rebuilt from the integers so that no regular frequency is ever claimed: it may have holes
    ns = pd.to_datetime(common.as_unit("ns").asi8, unit="ns", utc=True)
    return pd.DatetimeIndex(ns, name="time").as_unit("ns")


def _strict_message(report: DataReport, common: pd.DatetimeIndex, step: pd.Timedelta) -> str:
    issues = report.issues
    lines = [f"  - {line}" for line in issues[:10]]
    if len(issues) > 10:
        lines.append(f"  ... and {len(issues) - 10} more")
    a, b, n = _longest_regular_run(common, step)
    return "\n".join(
        [
            f"align='strict': the {report.timeframe} candles of "
            f"{', '.join(c.asset for c in report.coverage)} are not gap-free and aligned "
            f"({len(issues)} issue(s)):",
            *lines,
            "Fix: use align='inner' to keep only the candles all assets have (the issues stay "
            "listed in panel.report), or pick start/end inside a clean stretch; the longest "
            f"is start={a.isoformat()} end={b.isoformat()} ({n} candles).",
        ]
    )


def _longest_regular_run(
    index: pd.DatetimeIndex, step: pd.Timedelta
) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """The longest stretch of ``index`` with no hole (at least one candle)."""
    ns = index.as_unit("ns").asi8
    breaks = np.flatnonzero(np.diff(ns) != int(step / pd.Timedelta(nanoseconds=1))) + 1
    bounds = np.concatenate(([0], breaks, [len(ns)]))
    k = int(np.argmax(np.diff(bounds)))
    lo, hi = int(bounds[k]), int(bounds[k + 1])
    return pd.Timestamp(index[lo]), pd.Timestamp(index[hi - 1]), hi - lo


def _check_assets(assets: Sequence[str]) -> list[str]:
    if isinstance(assets, str):
        raise ConfigError(
            f"assets must be a list of names like ['BTC', 'ETH'], not the string {assets!r}."
        )
    names = list(assets)
    if not names:
        raise ConfigError("assets is empty: name at least one asset, e.g. ['BTC', 'ETH'].")
    repeated = sorted({a for a in names if names.count(a) > 1})
    if repeated:
        raise ConfigError(f"assets lists {', '.join(repeated)} more than once: {names}.")
    return names


def _utc(value: TimeLike | None, name: str) -> pd.Timestamp | None:
    """``value`` as an aware UTC timestamp; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name} {value!r} is not a date or time ({exc}); write e.g. '2021-01-01' "
            "or '2021-01-01T12:00Z'."
        ) from exc
    if pd.isna(ts):
        raise ConfigError(f"{name} {value!r} is not a date or time; write e.g. '2021-01-01'.")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
