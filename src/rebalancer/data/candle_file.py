"""Reading and checking one candle file (CSV, gzip CSV or Parquet).

Layout: columns ``timestamp,open,high,low,close,volume`` (extra columns are ignored);
``timestamp`` = candle open time, integer milliseconds since the Unix epoch, UTC. The file is
read once: the same bytes are hashed (for reproducible reports) and parsed (pandas' C parser
with fixed dtypes). Every refusal is a :class:`DataError` naming the file, the line or row,
the time, the value found and the fix. Gaps are not errors here; see :mod:`.data_report`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rebalancer.core.errors import DataError
from rebalancer.data.timeframes import parse_timeframe

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
VALUES = (*PRICES, "volume")
_DTYPES = {"timestamp": "int64", **{c: "float64" for c in VALUES}}
_NA_SPELLINGS = {"", "nan", "-nan", "na", "n/a", "null", "none", "<na>", "#n/a", "#na"}
_MS_MIN = 100_000_000_000  # 1973-03-03: smaller values look like seconds
_MS_MAX = 4_102_444_800_000  # 2100-01-01: larger values look like micro/nanoseconds
_FIX_REDOWNLOAD = "Fix: re-download the series; do not patch prices by hand."

Where = Callable[[int], str]
Compression = Literal["gzip"] | None


@dataclass(frozen=True, eq=False)
class CandleFile:
    """One loaded file: its path, the sha256 of its bytes, and the checked candles.

    ``candles``: index ``time`` (UTC candle open times, sorted, unique), float64 columns
    ``open high low close volume``.
    """

    path: Path
    sha256: str
    candles: pd.DataFrame


def read_candle_file(path: Path, timeframe: str) -> CandleFile:
    """Read, hash and check ``path``, whose candles are ``timeframe`` apart."""
    step_ms = int(parse_timeframe(timeframe) / pd.Timedelta(milliseconds=1))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read candle file {path}: {exc}") from exc
    if path.name.endswith(".parquet"):
        raw, where = _parse_parquet(data, path), _row
    else:
        raw, where = _parse_csv(data, path), _line
    check_rows(raw, path, timeframe, step_ms, where)
    return CandleFile(Path(path), hashlib.sha256(data).hexdigest(), _to_candles(raw))


def _line(i: int) -> str:
    return f"line {i + 2}"  # line 1 is the header


def _row(i: int) -> str:
    return f"row {i + 1}"


def _when(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def _to_candles(raw: pd.DataFrame) -> pd.DataFrame:
    stamps = raw["timestamp"].to_numpy(dtype="int64").astype("datetime64[ms]")
    index = pd.DatetimeIndex(stamps, name="time").tz_localize("UTC").as_unit("ns")
    return pd.DataFrame({c: raw[c].to_numpy(dtype="float64") for c in VALUES}, index=index)


# -- parsing ---------------------------------------------------------------------------------


def _parse_csv(data: bytes, path: Path) -> pd.DataFrame:
    compression: Compression = "gzip" if path.name.endswith(".gz") else None
    try:
        return pd.read_csv(
            io.BytesIO(data),
            compression=compression,
            usecols=list(COLUMNS),
            dtype=_DTYPES,
            engine="c",
        )
    except (ValueError, TypeError, OSError, EOFError) as exc:
        raise DataError(_diagnose_csv(data, path, compression, exc)) from exc


def _diagnose_csv(data: bytes, path: Path, compression: Compression, exc: Exception) -> str:
    """Explain why the fast typed read failed (slow path, runs only on bad files)."""
    if not data:
        return f"{path} is empty. Fix: re-download the series."
    try:
        head = pd.read_csv(io.BytesIO(data), compression=compression, nrows=0)
        header = [str(c) for c in head.columns]
        if any(c not in header for c in COLUMNS):
            return _missing_columns(path, header)
        text = pd.read_csv(
            io.BytesIO(data),
            compression=compression,
            usecols=list(COLUMNS),
            dtype=str,
            keep_default_na=False,
        )
    except (ValueError, TypeError, OSError, EOFError) as inner:
        exc = inner
    else:
        for col in COLUMNS:
            for i, value in enumerate(text[col]):
                if not _parses(col, value):
                    kind = "an integer count of ms since 1970-01-01 UTC"
                    return (
                        f"{path}, {_line(i)}: {col} = {value!r} is not "
                        f"{kind if col == 'timestamp' else 'a number'}. Fix: correct or "
                        "re-download the file (timestamps are integer ms, prices and volume "
                        "plain decimal numbers)."
                    )
    return f"{path} cannot be read as a candle CSV ({exc}). Fix: check the file is intact."


def _parses(col: str, value: str) -> bool:
    if col == "timestamp":
        return value.strip().lstrip("-").isdigit()
    try:
        float(value)
    except ValueError:
        return value.strip().lower() in _NA_SPELLINGS
    return True


def _missing_columns(path: Path, found: list[str]) -> str:
    missing = [c for c in COLUMNS if c not in found]
    return (
        f"{path} lacks column(s) {', '.join(missing)}: found {', '.join(found) or 'none'}, "
        f"need {','.join(COLUMNS)} (timestamp = candle open time in UTC ms). "
        "Fix: rename the columns or re-export the file in that layout."
    )


def _parse_parquet(data: bytes, path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (ValueError, TypeError, OSError, KeyError) as exc:
        raise DataError(
            f"{path} cannot be read as Parquet ({exc}). Fix: check the file is intact."
        ) from exc
    found = [str(c) for c in frame.columns]
    if any(c not in found for c in COLUMNS):
        raise DataError(_missing_columns(path, found))
    out = {"timestamp": _parquet_ms(frame["timestamp"], path)}
    for col in VALUES:
        if not pd.api.types.is_numeric_dtype(frame[col].dtype):
            raise DataError(
                f"{path}: column {col} has type {frame[col].dtype}, not numbers. "
                "Fix: store prices and volume as floating-point numbers."
            )
        out[col] = frame[col].to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(out)


def _parquet_ms(stamps: pd.Series, path: Path) -> NDArray[np.int64]:
    """Timestamps as int64 ms: integer ms as-is; datetimes converted (naive taken as UTC)."""
    missing = np.flatnonzero(stamps.isna().to_numpy())
    if missing.size:
        raise DataError(
            f"{path}, {_row(int(missing[0]))}: timestamp is missing; {missing.size} row(s) have "
            "no timestamp. Fix: drop those rows or re-export the file."
        )
    if pd.api.types.is_integer_dtype(stamps.dtype):
        return stamps.to_numpy(dtype="int64")
    if pd.api.types.is_datetime64_any_dtype(stamps.dtype):
        times = pd.DatetimeIndex(stamps)
        times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
        return times.as_unit("ms").asi8
    raise DataError(
        f"{path}: column timestamp has type {stamps.dtype}; expected integer milliseconds "
        "since 1970-01-01 UTC (or a timestamp type). Fix: re-export the file."
    )


# -- row checks ------------------------------------------------------------------------------


def check_rows(raw: pd.DataFrame, path: Path, timeframe: str, step_ms: int, where: Where) -> None:
    """Refuse what a backtest must not run on; ``raw`` has int64 ``timestamp`` (ms)."""
    if raw.empty:
        raise DataError(f"{path} has no candles (only a header). Fix: re-download the series.")
    ms = raw["timestamp"].to_numpy(dtype="int64")
    _check_time_unit(ms, path, where)
    _check_values(raw, ms, path, where)
    _check_order(ms, path, where)
    _check_spacing(ms, path, timeframe, step_ms, where)


def _check_time_unit(ms: NDArray[np.int64], path: Path, where: Where) -> None:
    bad = np.flatnonzero((ms < _MS_MIN) | (ms > _MS_MAX))
    if bad.size:
        value = int(ms[bad[0]])
        hint = "seconds" if 0 <= value < _MS_MIN else "micro- or nanoseconds"
        if value < 0:
            hint = "a time before 1970"
        raise DataError(
            f"{path}, {where(int(bad[0]))}: timestamp {value} looks like {hint}, not "
            "milliseconds since 1970-01-01 UTC (expected values between 1e11 and 4.1e12). "
            "Fix: convert the timestamp column to integer milliseconds."
        )


def _check_values(raw: pd.DataFrame, ms: NDArray[np.int64], path: Path, where: Where) -> None:
    for col in VALUES:
        values = raw[col].to_numpy(dtype="float64")
        nan = np.isnan(values)
        bad = nan | (values < 0 if col == "volume" else values <= 0)
        rows = np.flatnonzero(bad)
        if not rows.size:
            continue
        i = int(rows[0])
        rule = "must be >= 0 (0 is allowed)" if col == "volume" else "must be a number > 0"
        what = "is NaN/missing" if nan[i] else f"= {float(values[i])!r}"
        raise DataError(
            f"{path}, {where(i)} ({_when(int(ms[i]))}): {col} {what}, but {col} {rule}; "
            f"{rows.size} row(s) of this file break that rule. {_FIX_REDOWNLOAD} A candle "
            "that cannot be trusted is better removed: gaps are reported, never filled."
        )
    o, h, low, c = (raw[p].to_numpy(dtype="float64") for p in PRICES)
    broken = np.flatnonzero((h < np.maximum(o, c)) | (low > np.minimum(o, c)) | (low > h))
    if broken.size:
        i = int(broken[0])
        raise DataError(
            f"{path}, {where(i)} ({_when(int(ms[i]))}): open {float(o[i])!r} high "
            f"{float(h[i])!r} low {float(low[i])!r} close {float(c[i])!r} is not a candle "
            f"(need low <= open, close <= high); {broken.size} such row(s). The columns may "
            f"be in the wrong order. {_FIX_REDOWNLOAD}"
        )


def _check_order(ms: NDArray[np.int64], path: Path, where: Where) -> None:
    dup = pd.Series(ms).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        j = int(np.flatnonzero(ms[:i] == ms[i])[0])
        raise DataError(
            f"{path}: timestamp {int(ms[i])} ({_when(int(ms[i]))}) appears twice, at "
            f"{where(j)} and {where(i)}; {int(dup.sum())} duplicate row(s) in total. "
            "Fix: keep one candle per open time (was the file appended twice?)."
        )
    back = np.flatnonzero(np.diff(ms) < 0)
    if back.size:
        i = int(back[0])
        raise DataError(
            f"{path}: rows are not sorted by time: {where(i + 1)} ({_when(int(ms[i + 1]))}) "
            f"comes after {where(i)} ({_when(int(ms[i]))}); {back.size} place(s) go back in "
            "time. Fix: sort the file by timestamp, ascending."
        )


def _check_spacing(
    ms: NDArray[np.int64],
    path: Path,
    timeframe: str,
    step_ms: int,
    where: Where,
) -> None:
    steps = np.diff(ms)
    off = np.flatnonzero(steps % step_ms != 0)
    if off.size:
        i = int(off[0]) + 1
        raise DataError(
            f"{path}, {where(i)} ({_when(int(ms[i]))}): this candle opens "
            f"{pd.Timedelta(milliseconds=int(steps[i - 1]))} after the previous one, not a "
            f"whole number of {timeframe} candles; {off.size} such place(s). Fix: check that "
            f"the file holds {timeframe} candles and that timestamps are open times in ms."
        )
    regular = int(np.count_nonzero(steps == step_ms))
    if steps.size >= 2 and regular * 2 < steps.size:
        common = pd.Timedelta(milliseconds=int(pd.Series(steps).mode().iloc[0]))
        raise DataError(
            f"{path}: the name says {timeframe} candles but only {regular} of {steps.size} "
            f"consecutive candles are {timeframe} apart (most are {common} apart). "
            "Fix: load it with the timeframe it holds, or rename the file."
        )
