"""``rebalancer data download``: exchange candles into the Parquet cache the backtests read.

One file per asset, ``{BASE}_{QUOTE}-{timeframe}.parquet`` in ``directory`` (the layout of
:func:`rebalancer.data.panel.load_panel`: ``timestamp`` int64 UTC ms open times, then
``open high low close volume`` float64). The candles come from
:func:`rebalancer.adapters.ccxt.ohlcv.fetch_closed_candles`: paginated, rate limited,
retried on transient errors, closed candles only.

**Resume.** An existing file is extended, never re-downloaded: the next request starts one
timeframe after its last candle (and, when ``since`` is earlier than its first candle, the
missing head is fetched too). The file is rewritten atomically every ``flush_every`` pages
and when the download stops for any reason, so an interrupted run loses at most the page in
flight; running the same command again continues where it stopped, with no duplicate and
no hole of our own making.

**Gaps** (candles the exchange does not have, e.g. outages) are reported, never filled.

**Offline** the first request fails at once ("no network, or the exchange cannot be
reached"), without backing off; a connection lost later in the download is retried. An
HTTP 418 ban is never retried: the download stops and says how long to wait.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.adapters.ccxt.ohlcv import (
    DOWNLOAD,
    Candle,
    FetchStats,
    Retry,
    Sleep,
    download_client,
    exchange_now_ms,
    fetch_closed_candles,
    market_symbols,
    timeframe_ms,
)
from rebalancer.core.errors import ConfigError, DataError, ExchangeBanned, RetryLater
from rebalancer.data.candle_file import COLUMNS, read_candle_file
from rebalancer.data.files import EXTENSIONS, candle_file_stem
from rebalancer.data.gaps import Gap, find_gaps

#: ``progress(asset, candles_done, candles_expected)``
Progress = Callable[[str, int, int], None]
TimeLike = str | datetime | date | pd.Timestamp
_COVERED_KEY = b"rebalancer.covered_from_ms"


@dataclass(frozen=True)
class SeriesDownload:
    """One asset's download: what was stored before, what was added, what the file holds."""

    asset: str
    symbol: str
    path: Path
    stored_before: int
    added: int
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    requested_from: tuple[pd.Timestamp, ...]
    gaps: tuple[Gap, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "symbol": self.symbol,
            "path": str(self.path),
            "stored_before": self.stored_before,
            "added": self.added,
            "rows": self.rows,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "requested_from": [t.isoformat() for t in self.requested_from],
            "gaps": [
                {"start": g.start.isoformat(), "end": g.end.isoformat(), "missing": g.missing}
                for g in self.gaps
            ],
            "gap_messages": [str(g) for g in self.gaps],
        }


@dataclass(frozen=True)
class DownloadSummary:
    exchange: str
    timeframe: str
    quote: str
    directory: Path
    since: pd.Timestamp
    until: pd.Timestamp | None
    exchange_now: pd.Timestamp
    series: tuple[SeriesDownload, ...]
    requests: int
    retries: int
    slept: float
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def added(self) -> int:
        return sum(s.added for s in self.series)

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return tuple(g for s in self.series for g in s.gaps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "timeframe": self.timeframe,
            "quote": self.quote,
            "directory": str(self.directory),
            "since": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "exchange_now": self.exchange_now.isoformat(),
            "added": self.added,
            "requests": self.requests,
            "retries": self.retries,
            "slept_seconds": self.slept,
            "seconds": self.seconds,
            "candles_per_second": self.added / self.seconds if self.seconds > 0 else None,
            "series": [s.as_dict() for s in self.series],
            "gaps": [str(g) for g in self.gaps],
            "notes": list(self.notes),
        }


def parquet_path(directory: Path, asset: str, quote: str, timeframe: str) -> Path:
    return Path(directory) / f"{candle_file_stem(asset, quote, timeframe)}.parquet"


def utc_ms(value: TimeLike, name: str) -> int:
    """``value`` (naive = UTC) as integer ms since the epoch."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name} {value!r} is not a date or time ({exc}); e.g. 2024-01-01"
        ) from exc
    if pd.isna(ts):
        raise ConfigError(f"{name} {value!r} is not a date or time; e.g. 2024-01-01")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value) // 1_000_000


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def read_stored(path: Path, timeframe: str) -> pd.DataFrame:
    """The stored candles of ``path`` as a ``COLUMNS`` frame (empty if there is no file)."""
    if not path.exists():
        return _frame([])
    candles = read_candle_file(path, timeframe).candles
    out = candles.reset_index(drop=True)
    out.insert(0, "timestamp", pd.DatetimeIndex(candles.index).as_unit("ms").asi8)
    return out[list(COLUMNS)]


def _frame(rows: Sequence[Candle]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(
            {c: np.zeros(0, "int64" if c == "timestamp" else "float64") for c in COLUMNS}
        )
    arr = np.asarray(rows, dtype="float64")
    out = pd.DataFrame({c: arr[:, i] for i, c in enumerate(COLUMNS)})
    out["timestamp"] = np.asarray([r[0] for r in rows], dtype="int64")
    return out


def write_parquet(frame: pd.DataFrame, path: Path, covered_from_ms: int | None = None) -> None:
    """Write atomically: a reader (or a crash) never sees half a file. ``covered_from_ms``
    (kept in the file's metadata) is the earliest time the download asked for: the exchange
    has nothing between it and the first candle, so a resume need not ask again."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if covered_from_ms is not None:
        meta = dict(table.schema.metadata or {})
        meta[_COVERED_KEY] = str(covered_from_ms).encode()
        table = table.replace_schema_metadata(meta)
    tmp = path.with_name(path.name + ".part")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def covered_from(path: Path, stored: pd.DataFrame) -> int | None:
    """The earliest open time already asked for (metadata), else the first stored candle."""
    if stored.empty:
        return None
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    first = int(stored["timestamp"].iloc[0])
    value = meta.get(_COVERED_KEY)
    return min(first, int(value)) if value is not None else first


def _merge(stored: pd.DataFrame, new: list[Candle]) -> pd.DataFrame:
    if not new:
        return stored
    merged = pd.concat([stored, _frame(new)], ignore_index=True) if len(stored) else _frame(new)
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return merged.reset_index(drop=True)


def _check_directory(directory: Path, asset: str, quote: str, timeframe: str) -> None:
    stem = candle_file_stem(asset, quote, timeframe)
    others = [directory / (stem + e) for e in EXTENSIONS if e != ".parquet"]
    found = [p.name for p in others if p.exists()]
    if found:
        raise DataError(
            f"{directory} already holds {', '.join(found)}; the download writes "
            f"{stem}.parquet and two files of one series would be ambiguous for the backtest. "
            "Fix: download into another folder (--dir), or remove that file."
        )


def download_candles(
    exchange_id: str,
    assets: Sequence[str],
    quote: str,
    timeframe: str,
    since: TimeLike,
    directory: Path,
    *,
    until: TimeLike | None = None,
    client: Any = None,
    progress: Progress | None = None,
    retry: Retry | None = None,
    sleep: Sleep = time.sleep,
    flush_every: int = 20,
) -> DownloadSummary:
    """Download (or extend) the closed ``timeframe`` candles of ``assets``/``quote`` from
    ``since`` (inclusive) to ``until`` (inclusive; default: the last closed candle) into
    ``directory``. See the module docstring for resume and gaps."""
    t0 = time.perf_counter()
    names = [a.strip().upper() for a in assets if a.strip()]
    if not names:
        raise ConfigError("assets is empty: name at least one, e.g. --assets BTC,ETH")
    quote = quote.strip().upper()
    since_ms = utc_ms(since, "since")
    until_ms = None if until is None else utc_ms(until, "until")
    if until_ms is not None and until_ms < since_ms:
        raise ConfigError(f"until {until} is before since {since}. Fix: swap them.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for asset in names:
        _check_directory(directory, asset, quote, timeframe)
    client = client or download_client(exchange_id)
    retry = retry or DOWNLOAD
    stats = FetchStats()
    step = timeframe_ms(client, timeframe)
    try:  # the first contact fails fast when the exchange cannot be reached at all
        first = replace(retry, unreachable=False)
        symbols = market_symbols(client, names, quote, retry=first, stats=stats, sleep=sleep)
        now_ms = exchange_now_ms(client, retry=retry, stats=stats, sleep=sleep)
    except ExchangeBanned as exc:
        raise banned(client, exc, "nothing was downloaded yet") from exc
    series = []
    for asset in names:
        path = parquet_path(directory, asset, quote, timeframe)
        series.append(
            _download_one(
                client,
                asset,
                symbols[asset],
                timeframe,
                step,
                path,
                since_ms,
                until_ms,
                now_ms,
                progress,
                retry,
                stats,
                sleep,
                flush_every,
            )
        )
    return DownloadSummary(
        exchange_id,
        timeframe,
        quote,
        directory,
        _ts(since_ms),
        None if until_ms is None else _ts(until_ms),
        _ts(now_ms),
        tuple(series),
        stats.requests,
        stats.retries,
        stats.slept,
        time.perf_counter() - t0,
    )


def banned(client: Any, exc: ExchangeBanned, resume: str) -> ExchangeBanned:
    """A download's words for an HTTP 418 ban (never retried: asking lengthens it)."""
    wait = "until the ban ends" if exc.retry_after is None else f"{exc.retry_after:g} s"
    return ExchangeBanned(
        f"{client.id} banned this address for asking too fast (HTTP 418); asking again "
        f"before the ban ends lengthens it, so nothing was retried. Wait {wait}, then run "
        f"the same command again: {resume}",
        exc.retry_after,
    )


def _ranges(
    stored: pd.DataFrame, covered: int | None, since_ms: int, until_ms: int | None, step: int
) -> list[tuple[str, int, int | None]]:
    """The ``(kind, from, to)`` open-time ranges still to fetch (``to`` None: up to now).

    ``head``: before what the file covers (kept only once complete, so that an interrupted
    head never leaves a hole of our own); ``tail``: after its last candle (always continued
    from there: a hole of our own would pass for an outage); ``all``: nothing stored yet.
    """
    if stored.empty or covered is None:
        return [("all", since_ms, until_ms)]
    first, last = int(stored["timestamp"].iloc[0]), int(stored["timestamp"].iloc[-1])
    out: list[tuple[str, int, int | None]] = []
    if since_ms < covered:
        head_end = first - step if until_ms is None else min(until_ms, first - step)
        out.append(("head", since_ms, head_end))
    out.append(("tail", last + step, until_ms))
    return out


def _download_one(
    client: Any,
    asset: str,
    symbol: str,
    timeframe: str,
    step: int,
    path: Path,
    since_ms: int,
    until_ms: int | None,
    now_ms: int,
    progress: Progress | None,
    retry: Retry,
    stats: FetchStats,
    sleep: Sleep,
    flush_every: int,
) -> SeriesDownload:
    stored = read_stored(path, timeframe)
    before = len(stored)
    covered = covered_from(path, stored)
    ranges = _ranges(stored, covered, since_ms, until_ms, step)
    last_closed = (now_ms // step) * step - step
    expected = sum(
        max(0, ((last_closed if b is None else min(b, last_closed)) - a) // step + 1)
        for _, a, b in ranges
    )
    done = 0
    pending: list[Candle] = []
    if progress is not None:
        progress(asset, 0, expected)
    try:
        for kind, lo, hi in ranges:
            if kind == "all":
                covered = lo
            for pages, page in enumerate(
                fetch_closed_candles(
                    client,
                    symbol,
                    timeframe,
                    lo,
                    until_ms=hi,
                    now_ms=now_ms,
                    retry=retry,
                    stats=stats,
                    sleep=sleep,
                ),
                start=1,
            ):
                pending.extend(page)
                done += len(page)
                if progress is not None:
                    progress(asset, done, expected)
                if kind != "head" and pages % flush_every == 0:
                    stored, pending = _save(stored, pending, path, covered), []
            if kind == "head":
                covered = lo
                stored, pending = _save(stored, pending, path, covered, force=True), []
    except ExchangeBanned as exc:
        stored = _save(stored, pending, path, covered, ranges=ranges)
        saved = f"it resumes from the {len(stored)} {asset} candles saved in {path}"
        raise banned(client, exc, saved) from exc
    except RetryLater as exc:
        stored = _save(stored, pending, path, covered, ranges=ranges)
        raise RetryLater(
            f"{exc}. {len(stored)} {asset} candles are saved in {path}; run the same "
            "command again to resume from there"
        ) from exc
    except BaseException:
        _save(stored, pending, path, covered, ranges=ranges)
        raise
    stored = _save(stored, pending, path, covered)
    stamps = stored["timestamp"].to_numpy(dtype="int64")
    index = pd.DatetimeIndex(stamps.astype("datetime64[ms]")).tz_localize("UTC")
    return SeriesDownload(
        asset,
        symbol,
        path,
        before,
        len(stored) - before,
        len(stored),
        _ts(int(stamps[0])) if len(stamps) else None,
        _ts(int(stamps[-1])) if len(stamps) else None,
        tuple(_ts(a) for _, a, _ in ranges),
        find_gaps(index, pd.Timedelta(milliseconds=step), asset),
    )


def _save(
    stored: pd.DataFrame,
    pending: list[Candle],
    path: Path,
    covered: int | None,
    *,
    force: bool = False,
    ranges: list[tuple[str, int, int | None]] | None = None,
) -> pd.DataFrame:
    """Merge ``pending`` into the file. On an interruption (``ranges`` given) a head that
    did not complete is dropped: it would leave a hole between it and the stored candles."""
    if ranges is not None and pending and any(k == "head" for k, _, _ in ranges):
        head_end = next(b for k, _, b in ranges if k == "head")
        if head_end is not None and pending[-1][0] <= head_end:
            pending = []  # interrupted inside the head
    if pending or force:
        stored = _merge(stored, pending)
        if not stored.empty:
            write_parquet(stored, path, covered)
    return stored
