"""Candle loading on the real Binance files of ../shared/data, and on small broken files.

The facts asserted on real data (row counts, first/last candles, gaps, alignment, landmarks)
come from shared/data/README.md. The shared folder must be present: these tests fail, they
do not skip, when it is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import tomllib
from datetime import timedelta
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rebalancer.core.errors import ConfigError, DataError
from rebalancer.data.gaps import Gap
from rebalancer.data.panel import (
    DEMO_ASSETS,
    CandlePanel,
    embedded_dataset_dir,
    load_candles,
    load_demo_panel,
    load_panel,
    load_ranges,
)
from rebalancer.data.timeframes import bars_per_year, parse_timeframe


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError(f"no pyproject.toml above {__file__}")


ROOT = _repo_root()
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_DIR = ROOT / "src" / "rebalancer" / "demo_data"
DEMO_BUDGET_BYTES = 300_000
TEN = ["BTC", "ETH", "BNB", "ADA", "XRP", "LTC", "TRX", "DOGE", "LINK", "MATIC"]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="session")
def data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"the real candle data is missing: expected the folder {SHARED_DATA} (the team's "
            "shared/data, next to the repository; see shared/data/README.md). These tests "
            "check the loader against real Binance candles and do not skip without them."
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def old(data: Path) -> Path:
    return data / "binance_spot_2017_2022"


@pytest.fixture(scope="session")
def new(data: Path) -> Path:
    return data / "binance_spot_2024_2026"


# -- real data: the README inventory ---------------------------------------------------------

# asset, rows, first candle, missing hours, gaps, longest hole (hours); all end 2022-10-11 09:00
OLD_1H = [
    ("BTC", 45023, "2017-08-17 04:00", 127, 27, 33),
    ("ETH", 45023, "2017-08-17 04:00", 127, 27, 33),
    ("BNB", 43086, "2017-11-06 03:00", 121, 26, 33),
    ("SOL", 18969, "2020-08-11 06:00", 19, 9, 4),
    ("ADA", 39231, "2018-04-17 04:00", 87, 24, 10),
    ("XRP", 38819, "2018-05-04 08:00", 87, 24, 10),
    ("DOGE", 28611, "2019-07-05 12:00", 43, 17, 8),
    ("LTC", 42198, "2017-12-13 03:00", 121, 26, 33),
    ("TRX", 37904, "2018-06-11 11:00", 87, 24, 10),
    ("LINK", 32677, "2019-01-16 10:00", 59, 19, 10),
    ("MATIC", 30278, "2019-04-26 15:00", 53, 18, 10),
    ("DOT", 18784, "2020-08-18 23:00", 19, 9, 4),
    ("AVAX", 17961, "2020-09-22 06:00", 19, 9, 4),
]

# asset, rows, first day; all end 2022-10-10, none has a gap
OLD_1D = [
    ("BTC", 1881, "2017-08-17"),
    ("ETH", 1881, "2017-08-17"),
    ("BNB", 1800, "2017-11-06"),
    ("SOL", 791, "2020-08-11"),
    ("ADA", 1638, "2018-04-17"),
    ("XRP", 1621, "2018-05-04"),
    ("DOGE", 1194, "2019-07-05"),
    ("LTC", 1763, "2017-12-13"),
    ("TRX", 1583, "2018-06-11"),
    ("LINK", 1364, "2019-01-16"),
    ("MATIC", 1264, "2019-04-26"),
    ("DOT", 784, "2020-08-18"),
    ("AVAX", 749, "2020-09-22"),
]


@pytest.mark.parametrize(("asset", "rows", "first", "missing", "holes", "longest"), OLD_1H)
def test_old_1h_inventory_and_gaps_match_the_readme(
    old: Path, asset: str, rows: int, first: str, missing: int, holes: int, longest: int
) -> None:
    frame = load_candles(old, asset, "1h")
    assert len(frame) == rows
    assert frame.index[0] == ts(first)
    assert frame.index[-1] == ts("2022-10-11 09:00")
    gaps = load_panel(old, [asset], "1h").report.gaps_of(asset)
    assert len(gaps) == holes
    assert sum(g.missing for g in gaps) == missing
    assert max(g.missing for g in gaps) == longest
    # nothing was filled: present + missing candles = every hour from first to last
    assert rows + missing == (frame.index[-1] - frame.index[0]) / pd.Timedelta(hours=1) + 1


@pytest.mark.parametrize(("asset", "rows", "first"), OLD_1D)
def test_old_1d_inventory_matches_the_readme_and_has_no_gap(
    old: Path, asset: str, rows: int, first: str
) -> None:
    panel = load_panel(old, [asset], "1d", align="strict")
    assert len(panel.closes) == rows
    assert (panel.start, panel.end) == (ts(first), ts("2022-10-10"))
    assert panel.report.gaps == ()


def test_loaded_frame_has_the_documented_shape(old: Path) -> None:
    frame = load_candles(old, "BTC", "1h")
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(str(dtype) == "float64" for dtype in frame.dtypes)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    # the first row of the file, read as text, is the first row of the frame
    with gzip.open(old / "BTC_USDT-1h.csv.gz", "rt") as fh:
        fh.readline()
        first = fh.readline().strip().split(",")
    assert frame.index[0] == pd.Timestamp(int(first[0]), unit="ms", tz="UTC")
    assert frame.iloc[0].tolist() == [float(v) for v in first[1:]]


def test_btc_1h_2018_02_08_maintenance_is_a_33_hour_gap_never_filled(old: Path) -> None:
    panel = load_panel(old, ["BTC"], "1h")
    gaps = panel.report.gaps_of("BTC")
    longest = max(gaps, key=lambda g: g.missing)
    # the last candle before the hole opens 2018-02-08 00:00, the next 2018-02-09 10:00
    assert longest == Gap("BTC", ts("2018-02-08 01:00"), ts("2018-02-09 10:00"), 33)
    assert longest.last_missing == ts("2018-02-09 09:00")
    assert longest.duration == pd.Timedelta(hours=33)
    hole = pd.date_range(longest.start, longest.last_missing, freq="h")
    assert len(hole) == 33
    assert not panel.closes.index.isin(hole).any()
    assert {ts("2018-02-08 00:00"), ts("2018-02-09 10:00")} <= set(panel.closes.index)
    # the README's other examples of outages are among the gaps
    days = {g.start.strftime("%Y-%m-%d") for g in gaps}
    assert {"2018-06-26", "2019-05-15", "2019-08-15", "2020-02-19", "2020-12-21"} <= days
    assert "2021-08-13" in days
    assert any("gap of 33 candles, 2018-02-08 01:00 UTC" in line for line in panel.report.issues)


def test_zero_volume_candles_are_kept(old: Path) -> None:
    frame = load_candles(old, "BTC", "1h")
    assert int((frame["volume"] == 0).sum()) == 3  # README: "BTC: 3"


def test_btc_1d_high_of_69000_on_2021_11_10(old: Path, data: Path) -> None:
    for folder in (old, data / "binance_spot_btc_2017_2026"):
        frame = load_candles(folder, "BTC", "1d")
        assert frame.loc[ts("2021-11-10"), "high"] == 69000.0
    old_btc = load_candles(old, "BTC", "1d")
    assert old_btc["high"].idxmax() == ts("2021-11-10")


def test_btc_2017_2026_daily_series(data: Path) -> None:
    panel = load_panel(data / "binance_spot_btc_2017_2026", ["BTC"], "1d", align="strict")
    assert len(panel.closes) == 3078
    assert (panel.start, panel.end) == (ts("2017-08-17"), ts("2026-01-19"))


def test_ten_assets_1h_from_2019_07_05_align_on_doge_start(old: Path) -> None:
    panel = load_panel(old, TEN, "1h", start="2019-07-05")
    report = panel.report
    assert list(panel.closes.columns) == TEN
    assert all(str(dtype) == "float64" for dtype in panel.closes.dtypes)
    assert (panel.start, panel.end) == (ts("2019-07-05 12:00"), ts("2022-10-11 09:00"))
    assert len(panel.closes) == 28611  # DOGE's whole 1h history
    assert not panel.closes.isna().any().any()
    by_asset = {c.asset: c for c in report.coverage}
    assert by_asset["DOGE"].dropped == 0
    for asset in set(TEN) - {"DOGE"}:
        c = by_asset[asset]
        assert (c.first, c.dropped_before, c.dropped_after) == (ts("2019-07-05"), 12, 0)
        assert c.dropped_inside == 0  # every outage after July 2019 hit all ten pairs
    for asset in TEN:
        assert len(report.gaps_of(asset)) == 17
        assert report.missing_bars(asset) == 43
    assert report.misaligned == tuple(by_asset[a] for a in TEN if a != "DOGE")
    assert sum(line.startswith("all assets: ") for line in report.issues) == 17
    assert any("BTC: starts 2019-07-05 00:00 UTC" in line for line in report.issues)
    assert panel.report.requested_start == ts("2019-07-05")


def test_ten_assets_panel_records_files_and_hashes(old: Path) -> None:
    panel = load_panel(old, TEN, "1h")
    for asset in TEN:
        path = old / f"{asset}_USDT-1h.csv.gz"
        assert panel.files[asset] == path
        assert panel.sha256[asset] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ten_assets_1h_2017_2022_align_on_common_hours(old: Path) -> None:
    panel = load_panel(old, TEN, "1h")
    assert len(panel.closes) == 28611


@pytest.mark.parametrize(
    ("extra", "first", "days"),
    [
        ([], "2018-06-11", 1583),
        (["DOGE", "LINK", "MATIC"], "2019-07-05", 1194),
        (["DOGE", "LINK", "MATIC", "SOL", "DOT", "AVAX"], "2020-09-22", 749),
    ],
)
def test_old_1d_common_windows_match_the_readme(
    old: Path, extra: list[str], first: str, days: int
) -> None:
    assets = ["BTC", "ETH", "BNB", "ADA", "XRP", "LTC", "TRX", *extra]
    panel = load_panel(old, assets, "1d")
    assert (panel.start, panel.end, len(panel.closes)) == (ts(first), ts("2022-10-10"), days)
    assert panel.report.gaps == ()
    with pytest.raises(DataError, match=r"align='strict'.*not gap-free and aligned"):
        load_panel(old, assets, "1d", align="strict")
    strict = load_panel(old, assets, "1d", start=first, align="strict")
    pd.testing.assert_frame_equal(strict.closes, panel.closes)
    assert strict.report.ok


def test_strict_error_lists_the_issues_and_the_longest_clean_stretch(old: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_panel(old, ["BTC", "SOL"], "1d", align="strict")
    message = str(caught.value)
    assert "BTC: starts 2017-08-17 00:00 UTC" in message
    assert "1090 candle(s) dropped to align" in message  # 1881 BTC days - 791 SOL days
    assert "start=2020-08-11T00:00:00+00:00 end=2022-10-10T00:00:00+00:00 (791 candles)" in message


def test_new_era_panels(new: Path) -> None:
    daily = load_panel(new, ["BTC", "ETH", "LINK"], "1d")
    assert (daily.start, daily.end, len(daily.closes)) == (
        ts("2024-10-26"),
        ts("2026-01-29"),
        461,
    )
    assert {c.asset: c.dropped_before for c in daily.report.coverage} == {
        "BTC": 25,
        "ETH": 25,
        "LINK": 0,
    }
    hourly = load_panel(new, ["BTC", "AVAX"], "1h")
    assert (hourly.start, hourly.end, len(hourly.closes)) == (
        ts("2024-10-01"),
        ts("2026-02-19 00:00"),
        12145,
    )
    assert hourly.report.coverage[0].rows == 12553
    assert hourly.report.coverage[0].dropped_before == 408


def test_new_era_5m_files_share_identical_timestamps(new: Path) -> None:
    eight = ["BTC", "ETH", "BNB", "SOL", "ADA", "XRP", "DOGE", "LTC"]
    panel = load_panel(new, eight, "5m", align="strict")
    assert len(panel.closes) == 119751
    assert (panel.start, panel.end) == (ts("2024-12-31 00:00"), ts("2026-02-19 19:10"))
    assert panel.report.ok


# -- window and bounds -----------------------------------------------------------------------


def test_window_restricts_and_re_reports(old: Path) -> None:
    panel = load_panel(old, ["BTC", "ETH"], "1h")
    week = panel.window("2018-02-05", "2018-02-12 23:00")
    pd.testing.assert_frame_equal(
        week.closes, panel.closes.loc[ts("2018-02-05") : ts("2018-02-12 23:00")]
    )
    assert week.files == panel.files and week.sha256 == panel.sha256
    assert [(g.asset, g.start, g.missing) for g in week.report.gaps] == [
        ("BTC", ts("2018-02-08 01:00"), 33),
        ("ETH", ts("2018-02-08 01:00"), 33),
    ]
    assert week.report.issues == (
        "all assets: gap of 33 candles, 2018-02-08 01:00 UTC .. 2018-02-09 09:00 UTC "
        "missing (data resumes 2018-02-09 10:00 UTC)",
    )
    clean = panel.window("2018-03-01", "2018-03-31 23:00")
    assert clean.report.ok and len(clean.closes) == 31 * 24
    wider = panel.window(None, "2030-01-01")
    assert wider.end == panel.end and len(wider.closes) == len(panel.closes)
    with pytest.raises(DataError, match="does not overlap"):
        panel.window("2030-01-01", "2031-01-01")


def test_bounds_are_inclusive_and_naive_means_utc(new: Path) -> None:
    naive = load_panel(new, ["BTC"], "1d", start="2025-01-01", end="2025-01-31")
    aware = load_panel(
        new, ["BTC"], "1d", start=ts("2025-01-01"), end=pd.Timestamp("2025-01-31 01:00+01:00")
    )
    assert len(naive.closes) == 31
    pd.testing.assert_frame_equal(naive.closes, aware.closes)


def test_uncovered_requested_start_is_an_issue(new: Path) -> None:
    panel = load_panel(new, ["BTC"], "1d", start="2024-01-01")
    assert panel.start == ts("2024-10-01")
    assert any(
        "requested start 2024-01-01 00:00 UTC is not covered" in i for i in panel.report.issues
    )
    with pytest.raises(DataError, match="requested start"):
        load_panel(new, ["BTC"], "1d", start="2024-01-01", align="strict")


def test_bounds_outside_a_file_name_the_file(new: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_panel(new, ["BTC"], "1d", start="2030-01-01")
    assert str(new / "BTC_USDT-1d.csv") in str(caught.value)
    assert "covers 2024-10-01" in str(caught.value)


def test_bad_arguments_are_config_errors(new: Path) -> None:
    with pytest.raises(ConfigError, match="'1M' is not understood"):
        load_panel(new, ["BTC"], "1M")
    with pytest.raises(ConfigError, match="align must be"):
        load_panel(new, ["BTC"], "1d", align="outer")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="BTC more than once"):
        load_panel(new, ["BTC", "ETH", "BTC"], "1d")
    with pytest.raises(ConfigError, match="not the string"):
        load_panel(new, "BTC", "1d")
    with pytest.raises(ConfigError, match="is after end"):
        load_panel(new, ["BTC"], "1d", start="2025-02-01", end="2025-01-01")
    with pytest.raises(ConfigError, match="not a date"):
        load_panel(new, ["BTC"], "1d", start="someday")


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("1m", pd.Timedelta(minutes=1)),
        ("5m", pd.Timedelta(minutes=5)),
        ("15m", pd.Timedelta(minutes=15)),
        ("1h", pd.Timedelta(hours=1)),
        ("4h", pd.Timedelta(hours=4)),
        ("1d", pd.Timedelta(days=1)),
        ("1w", pd.Timedelta(days=7)),
    ],
)
def test_timeframes(text: str, length: pd.Timedelta) -> None:
    assert parse_timeframe(text) == length


@pytest.mark.parametrize("text", ["", "1M", "h", "0h", "1.5h", "1 h", "1y", "60s"])
def test_bad_timeframes(text: str) -> None:
    with pytest.raises(ConfigError, match="timeframe"):
        parse_timeframe(text)


def test_bars_per_year() -> None:
    assert bars_per_year("1d") == 365.0
    assert bars_per_year("1h") == 365.0 * 24


# -- small broken files ----------------------------------------------------------------------

HEADER = "timestamp,open,high,low,close,volume"
HOUR_MS = 3_600_000
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
T0 = ts("2024-01-01")


def candle_rows(hours: list[int] | range) -> list[list[object]]:
    return [[T0_MS + h * HOUR_MS, 10.0 + h, 12.0 + h, 9.0 + h, 11.0 + h, 100.0] for h in hours]


def write_csv(
    folder: Path, rows: list[list[object]], asset: str = "BTC", header: str = HEADER
) -> Path:
    path = folder / f"{asset}_USDT-1h.csv"
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def load_error(folder: Path, asset: str = "BTC", timeframe: str = "1h") -> str:
    with pytest.raises(DataError) as caught:
        load_candles(folder, asset, timeframe)
    return str(caught.value)


def test_small_good_file(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows(range(5)))
    frame = load_candles(tmp_path, "BTC", "1h")
    assert list(frame.index) == list(pd.date_range(T0, periods=5, freq="h"))
    assert frame["close"].tolist() == [11.0, 12.0, 13.0, 14.0, 15.0]


@pytest.mark.parametrize("cell", ["", "nan", "NaN"])
def test_nan_price_names_file_line_time_and_fix(tmp_path: Path, cell: str) -> None:
    rows = candle_rows(range(5))
    rows[2][4] = cell  # close of the third candle: line 4 (line 1 is the header)
    path = write_csv(tmp_path, rows)
    message = load_error(tmp_path)
    assert str(path) in message
    assert "line 4 (2024-01-01 02:00 UTC): close is NaN/missing" in message
    assert "Fix:" in message


@pytest.mark.parametrize(("column", "value"), [("open", 0), ("low", -5.0), ("high", -0.01)])
def test_non_positive_price_is_refused(tmp_path: Path, column: str, value: float) -> None:
    rows = candle_rows(range(5))
    rows[3][["open", "high", "low", "close"].index(column) + 1] = value
    write_csv(tmp_path, rows)
    message = load_error(tmp_path)
    assert f"line 5 (2024-01-01 03:00 UTC): {column} = {float(value)!r}" in message
    assert "must be a number > 0" in message


def test_negative_volume_is_refused_zero_volume_is_not(tmp_path: Path) -> None:
    rows = candle_rows(range(4))
    rows[1][5] = 0
    write_csv(tmp_path, rows)
    assert load_candles(tmp_path, "BTC", "1h")["volume"].iloc[1] == 0.0
    rows[2][5] = -1
    write_csv(tmp_path, rows)
    assert "line 4 (2024-01-01 02:00 UTC): volume = -1.0" in load_error(tmp_path)


def test_candle_with_high_below_close_is_refused(tmp_path: Path) -> None:
    rows = candle_rows(range(4))
    rows[1][2] = 10.5  # high below open 11 and close 12
    write_csv(tmp_path, rows)
    message = load_error(tmp_path)
    assert "line 3" in message and "is not a candle" in message


def test_duplicate_timestamp_names_both_lines(tmp_path: Path) -> None:
    rows = candle_rows([0, 1, 2, 2, 3])
    write_csv(tmp_path, rows)
    message = load_error(tmp_path)
    assert f"timestamp {T0_MS + 2 * HOUR_MS} (2024-01-01 02:00 UTC) appears twice" in message
    assert "at line 4 and line 5" in message


def test_unsorted_rows_are_refused(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows([0, 1, 3, 2, 4]))
    message = load_error(tmp_path)
    assert "not sorted by time: line 5 (2024-01-01 02:00 UTC) comes after line 4" in message
    assert "sort the file by timestamp" in message


def test_missing_column_lists_what_was_found(tmp_path: Path) -> None:
    rows = [row[:5] for row in candle_rows(range(3))]
    path = write_csv(tmp_path, rows, header="timestamp,open,high,low,close")
    message = load_error(tmp_path)
    assert str(path) in message
    assert "lacks column(s) volume" in message
    assert "found timestamp, open, high, low, close" in message


def test_text_in_a_number_column(tmp_path: Path) -> None:
    rows = candle_rows(range(4))
    rows[2][4] = "abc"
    write_csv(tmp_path, rows)
    assert "line 4: close = 'abc' is not a number" in load_error(tmp_path)


def test_missing_timestamp_cell(tmp_path: Path) -> None:
    rows = candle_rows(range(4))
    rows[1][0] = ""
    write_csv(tmp_path, rows)
    assert "line 3: timestamp = '' is not an integer" in load_error(tmp_path)


def test_timestamps_in_seconds_are_recognised(tmp_path: Path) -> None:
    rows = candle_rows(range(3))
    for row in rows:
        row[0] = int(row[0]) // 1000  # type: ignore[call-overload]
    write_csv(tmp_path, rows)
    assert "looks like seconds" in load_error(tmp_path)


def test_candle_off_the_timeframe_grid(tmp_path: Path) -> None:
    rows = candle_rows(range(4))
    rows[2][0] = T0_MS + 2 * HOUR_MS + 30 * 60_000
    write_csv(tmp_path, rows)
    message = load_error(tmp_path)
    assert "line 4 (2024-01-01 02:30 UTC)" in message
    assert "not a whole number of 1h candles" in message


def test_daily_candles_in_a_file_named_hourly(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows([0, 24, 48, 72]))
    assert "the name says 1h candles but only 0 of 3" in load_error(tmp_path)


def test_header_only_file(tmp_path: Path) -> None:
    write_csv(tmp_path, [])
    assert "has no candles" in load_error(tmp_path)


def test_missing_file_lists_the_folder_and_near_matches(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows(range(3)), asset="ETH")
    (tmp_path / "BTC_USDT-1d.csv").write_text(HEADER + "\n")
    message = load_error(tmp_path, "BTC", "1h")
    assert f"no candle file for BTC/USDT 1h in {tmp_path}" in message
    assert "BTC_USDT-1h.csv, BTC_USDT-1h.csv.gz, BTC_USDT-1h.parquet" in message
    assert "Near matches: BTC_USDT-1d.csv" in message
    assert "Candle files in the folder (2): BTC_USDT-1d.csv, ETH_USDT-1h.csv" in message
    # the fix names this product's own command, with the missing series' options
    assert "rebalancer data download --exchange binance --assets BTC --quote USDT" in message
    assert "--timeframe 1h" in message and "freqtrade" not in message
    assert "Near matches: ETH_USDT-1h.csv" in load_error(tmp_path, "ETH", "4h")
    assert "Near matches: BTC_USDT-1d.csv" in load_error(tmp_path, "btc", "1d")


def test_missing_file_points_to_the_sub_folder_that_has_it(data: Path) -> None:
    message = load_error(data, "BTC", "1h")
    assert "Found in sub-folders: binance_spot_2017_2022/BTC_USDT-1h.csv.gz" in message
    assert "binance_spot_2024_2026/BTC_USDT-1h.csv.gz" in message


def test_missing_folder(tmp_path: Path) -> None:
    assert "does not exist" in load_error(tmp_path / "nowhere")


def test_two_formats_of_one_series_are_ambiguous(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows(range(3)))
    pd.read_csv(tmp_path / "BTC_USDT-1h.csv").to_parquet(tmp_path / "BTC_USDT-1h.parquet")
    assert "several files (BTC_USDT-1h.csv, BTC_USDT-1h.parquet)" in load_error(tmp_path)


def test_gap_is_reported_never_filled(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows([0, 1, 2, 5, 6]))
    assert len(load_candles(tmp_path, "BTC", "1h")) == 5
    panel = load_panel(tmp_path, ["BTC"], "1h")
    assert panel.report.gaps == (
        Gap("BTC", T0 + pd.Timedelta(hours=3), T0 + pd.Timedelta(hours=5), 2),
    )
    assert panel.closes["BTC"].tolist() == [11.0, 12.0, 13.0, 16.0, 17.0]
    assert not panel.report.ok
    with pytest.raises(DataError) as caught:
        load_panel(tmp_path, ["BTC"], "1h", align="strict")
    message = str(caught.value)
    assert "BTC: gap of 2 candles, 2024-01-01 03:00 UTC .. 2024-01-01 04:00 UTC" in message
    assert "start=2024-01-01T00:00:00+00:00 end=2024-01-01T02:00:00+00:00 (3 candles)" in message
    after = load_panel(tmp_path, ["BTC"], "1h", start=T0 + pd.Timedelta(hours=5), align="strict")
    assert len(after.closes) == 2 and after.report.ok


def test_misaligned_assets_are_cut_to_the_common_axis(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows(range(10)), asset="BTC")
    write_csv(tmp_path, candle_rows([3, 4, 6, 7]), asset="ETH")  # starts late, ends early, hole
    panel = load_panel(tmp_path, ["ETH", "BTC"], "1h")
    assert list(panel.closes.columns) == ["ETH", "BTC"]
    hours = [3, 4, 6, 7]
    assert list(panel.closes.index) == [T0 + pd.Timedelta(hours=h) for h in hours]
    btc = panel.report.coverage[1]
    assert (btc.rows, btc.dropped_before, btc.dropped_inside, btc.dropped_after) == (10, 3, 1, 2)
    assert panel.report.coverage[0].dropped == 0
    assert [(g.asset, g.missing) for g in panel.report.gaps] == [("ETH", 1)]
    assert "BTC: 1 candle(s) inside the common range dropped" in "\n".join(panel.report.issues)
    with pytest.raises(DataError, match="BTC: starts 2024-01-01 00:00 UTC"):
        load_panel(tmp_path, ["ETH", "BTC"], "1h", align="strict")


def test_assets_that_never_overlap(tmp_path: Path) -> None:
    write_csv(tmp_path, candle_rows(range(3)), asset="BTC")
    write_csv(tmp_path, candle_rows(range(5, 8)), asset="ETH")
    with pytest.raises(DataError, match="no 1h candle is common to all assets"):
        load_panel(tmp_path, ["BTC", "ETH"], "1h")


# -- formats ---------------------------------------------------------------------------------


def test_parquet_and_csv_give_identical_frames(old: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(old / "BTC_USDT-1h.csv.gz")
    pq.write_table(
        pa.Table.from_pandas(raw, preserve_index=False), tmp_path / "BTC_USDT-1h.parquet"
    )
    from_csv = load_candles(old, "BTC", "1h")
    from_parquet = load_candles(tmp_path, "BTC", "1h")
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_exact=True)
    panel = load_panel(tmp_path, ["BTC"], "1h")
    parquet_bytes = (tmp_path / "BTC_USDT-1h.parquet").read_bytes()
    assert panel.sha256["BTC"] == hashlib.sha256(parquet_bytes).hexdigest()
    assert len(panel.report.gaps) == 27


def test_parquet_with_a_timestamp_column(old: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(old / "ETH_USDT-1d.csv")
    table = pa.Table.from_pandas(raw, preserve_index=False)
    stamps = pa.array(raw["timestamp"].to_numpy(), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    table = table.set_column(0, "timestamp", stamps)
    pq.write_table(table, tmp_path / "ETH_USDT-1d.parquet")
    pd.testing.assert_frame_equal(
        load_candles(tmp_path, "ETH", "1d"), load_candles(old, "ETH", "1d"), check_exact=True
    )


def test_parquet_errors_name_the_problem(tmp_path: Path) -> None:
    frame = pd.DataFrame(candle_rows(range(3)), columns=HEADER.split(","))
    frame.drop(columns="volume").to_parquet(tmp_path / "BTC_USDT-1h.parquet")
    assert "lacks column(s) volume" in load_error(tmp_path)
    frame.loc[1, "close"] = float("nan")
    frame.to_parquet(tmp_path / "BTC_USDT-1h.parquet")
    assert "row 2 (2024-01-01 01:00 UTC): close is NaN/missing" in load_error(tmp_path)


def test_gzip_and_plain_csv_give_identical_frames(old: Path, tmp_path: Path) -> None:
    (tmp_path / "SOL_USDT-1d.csv.gz").write_bytes(
        gzip.compress((old / "SOL_USDT-1d.csv").read_bytes())
    )
    pd.testing.assert_frame_equal(
        load_candles(tmp_path, "SOL", "1d"), load_candles(old, "SOL", "1d"), check_exact=True
    )


# -- embedded demo data ----------------------------------------------------------------------


def test_demo_panel_loads() -> None:
    panel = load_demo_panel()
    assert isinstance(panel, CandlePanel)
    assert panel.assets == DEMO_ASSETS == ("BTC", "ETH", "SOL", "BNB", "XRP")
    assert (panel.start, panel.end, len(panel.closes)) == (ts("2024-10-01"), ts("2026-01-29"), 486)
    assert panel.timeframe == "1d" and panel.quote == "USDT"
    assert panel.report.ok
    assert all(str(dtype) == "float64" for dtype in panel.closes.dtypes)
    two = load_demo_panel(["ETH", "BTC"], start="2025-01-01", end="2025-01-10", align="strict")
    assert two.assets == ("ETH", "BTC") and len(two.closes) == 10


def test_demo_files_are_byte_copies_of_the_shared_data(new: Path) -> None:
    panel = load_demo_panel()
    for asset in DEMO_ASSETS:
        shared = new / f"{asset}_USDT-1d.csv"
        assert panel.sha256[asset] == hashlib.sha256(shared.read_bytes()).hexdigest()
        assert panel.files[asset].read_bytes() == shared.read_bytes()
    pd.testing.assert_frame_equal(
        panel.closes, load_panel(new, DEMO_ASSETS, "1d").closes, check_exact=True
    )


def test_demo_provenance_hashes_and_rows_match_the_files() -> None:
    text = (DEMO_DIR / "PROVENANCE.md").read_text()
    rows = re.findall(
        r"^\| `(\w+_USDT-1d\.csv)` \| (\d+) \| (\d+) \| `([0-9a-f]{64})` \|$", text, re.M
    )
    shipped = sorted(p.name for p in DEMO_DIR.glob("*.csv"))
    assert sorted(name for name, *_ in rows) == shipped
    for name, count, size, digest in rows:
        body = (DEMO_DIR / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest
        assert len(body) == int(size)
        assert body.count(b"\n") - 1 == int(count)
    assert "6135a753162dd7dfe1c4d7fd282c1c8b65c5bede" in text and "Binance" in text


def test_demo_data_is_under_budget_and_packaged() -> None:
    shipped = [p for p in DEMO_DIR.iterdir() if p.is_file()]
    total = sum(p.stat().st_size for p in shipped)
    assert total < DEMO_BUDGET_BYTES, f"demo data is {total} bytes"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["rebalancer"]
    for path in shipped:
        if path.suffix != ".py":
            rel = f"demo_data/{path.name}"
            assert any(fnmatch(rel, pattern) for pattern in patterns), f"{rel} not in package-data"
    names = {entry.name for entry in embedded_dataset_dir().iterdir()}
    assert {f"{a}_USDT-1d.csv" for a in DEMO_ASSETS} | {"PROVENANCE.md"} <= names


def test_limit_ranges_from_the_first_hours_of_each_bar() -> None:
    """load_ranges(panel, "1h", wait): each daily bar's range is that of its first ``wait``
    of hourly candles (what a limit placed at the previous close met while it rested),
    checked against the hourly file read directly; inside the whole day's range."""
    data = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
    panel = load_panel(data, ["BTC", "ETH"], "1d", start="2021-03-01", end="2021-03-20")
    day_lo, day_hi = load_ranges(panel)
    lo, hi = load_ranges(panel, "1h", timedelta(hours=3))
    hourly = load_candles(data, "BTC", "1h")
    for day in panel.closes.index:
        first = hourly.loc[day : day + pd.Timedelta(hours=3) - pd.Timedelta(seconds=1)]
        assert 1 <= len(first) <= 3  # the 1h files have real outages (2021-03-06: 2)
        assert lo.loc[day, "BTC"] == first["low"].min()
        assert hi.loc[day, "BTC"] == first["high"].max()
    assert (lo >= day_lo).all().all() and (hi <= day_hi).all().all()
    assert (hi - lo < day_hi - day_lo).any().any()  # narrower than the whole day somewhere
    with pytest.raises(ConfigError, match="wait"):
        load_ranges(panel, "1h", timedelta(minutes=30))
