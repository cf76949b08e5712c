"""``rebalancer data download`` against the Binance double, through the real ``ccxt.binance``.

The double serves the real candles of ``../shared/data`` from ``GET /api/v3/klines`` with
Binance's array format, ``limit``/``startTime``/``endTime`` rules, request weights and 429s;
its clock (``clock_offset_ms``) puts "now" inside the history, so the candle containing now
is served still open, as Binance does.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import requests.adapters
from typer.testing import CliRunner

from doubles.binance import BinanceDouble, Fault
from rebalancer.adapters.ccxt.ohlcv import Retry, download_client
from rebalancer.cli.app import app
from rebalancer.core.errors import (
    ConfigError,
    DataError,
    ExchangeBanned,
    RetryLater,
    UnknownSymbol,
)
from rebalancer.data import download as dl
from rebalancer.data.download import download_candles
from rebalancer.data.gaps import find_gaps
from rebalancer.data.panel import load_panel

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
RECENT = DATA / "binance_spot_2024_2026"
OLD = DATA / "binance_spot_2017_2022"
HOUR = 3_600_000
NOW = "2026-02-19 00:30"  # the BTC/ETH 1h files' last candle opens at 00:00: still open


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def source(folder: Path, asset: str, tf: str = "1h") -> pd.DataFrame:
    return pd.read_csv(folder / f"{asset}_USDT-{tf}.csv.gz")


def exchange(
    now: str = NOW, folder: Path = RECENT, assets: tuple[str, ...] = ("BTC", "ETH")
) -> tuple[Any, BinanceDouble]:
    client = download_client("binance")
    double = BinanceDouble("unused", "unused").mount(client)
    for asset in assets:
        double.add_klines(f"{asset}USDT", "1h", folder / f"{asset}_USDT-1h.csv.gz")
    double.clock_offset_ms = ms(now) - int(time.time() * 1000)
    return client, double


def starts(double: BinanceDouble, symbol: str = "BTCUSDT") -> list[int]:
    return [int(p["startTime"]) for _, _, p in double.kline_requests if p["symbol"] == symbol]


def no_sleep(_: float) -> None:
    pass


def test_download_equals_the_source_candles_and_drops_the_open_one(tmp_path: Path) -> None:
    client, double = exchange()
    summary = download_candles(
        "binance", ["BTC", "ETH"], "USDT", "1h", "2024-01-01", tmp_path, client=client
    )
    for asset in ("BTC", "ETH"):
        src = source(RECENT, asset)
        assert int(src["timestamp"].iloc[-1]) == ms("2026-02-19 00:00")  # open at NOW
        got = pd.read_parquet(tmp_path / f"{asset}_USDT-1h.parquet")
        assert list(got.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
        assert got["timestamp"].dtype == np.int64
        # every closed candle, bit for bit; the still-open one is not stored
        pd.testing.assert_frame_equal(got, src.iloc[:-1].reset_index(drop=True))
    # the open candle was served (the last page asked from before it) but dropped
    assert max(starts(double)) < ms("2026-02-19 00:00") < ms(NOW)
    assert summary.added == 2 * (len(source(RECENT, "BTC")) - 1)
    assert summary.gaps == ()
    assert all(s.last == pd.Timestamp("2026-02-18 23:00", tz="UTC") for s in summary.series)
    # the backtest reads the cache as it is
    panel = load_panel(tmp_path, ["BTC", "ETH"], "1h")
    assert panel.files["BTC"].name == "BTC_USDT-1h.parquet"
    assert len(panel.closes) == summary.series[0].rows and panel.report.ok


@pytest.mark.parametrize("n", [1, 999, 1000, 1001, 2000, 2500])
def test_pagination_boundaries(tmp_path: Path, n: int) -> None:
    client, double = exchange()
    first = ms("2025-01-01")
    until = pd.Timestamp(first + (n - 1) * HOUR, unit="ms", tz="UTC")
    summary = download_candles(
        "binance", ["BTC"], "USDT", "1h", "2025-01-01", tmp_path, until=until, client=client
    )
    pages = math.ceil(n / 1000)
    # one page per 1000 candles, each starting right after the previous one's last candle
    assert starts(double) == [first + i * 1000 * HOUR for i in range(pages)]
    assert [p["limit"] for _, _, p in double.kline_requests] == ["1000"] * pages
    got = pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet")
    src = source(RECENT, "BTC")
    want = src[(src["timestamp"] >= first) & (src["timestamp"] <= first + (n - 1) * HOUR)]
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    assert len(got) == n and summary.requests == pages + 2  # + markets + server time
    assert dict(double.calls)[("GET", "/api/v3/klines")] == pages


def test_resume_after_an_interruption_has_no_duplicate_and_no_hole(tmp_path: Path) -> None:
    client, double = exchange()
    # page 4 fails twice: more than the retries allow, so the run stops
    double.inject("GET", "/api/v3/klines", Fault.HTTP_503, after=3)
    double.inject("GET", "/api/v3/klines", Fault.HTTP_503)
    with pytest.raises(RetryLater, match="run the same command again to resume") as caught:
        download_candles(
            "binance",
            ["BTC"],
            "USDT",
            "1h",
            "2024-01-01",
            tmp_path,
            client=client,
            retry=Retry(attempts=2, base=0.0),
            sleep=no_sleep,
        )
    assert "3000 BTC candles are saved" in str(caught.value)
    path = tmp_path / "BTC_USDT-1h.parquet"
    partial = pd.read_parquet(path)
    assert len(partial) == 3000  # the three pages received before the failure
    double.kline_requests.clear()
    summary = download_candles(
        "binance", ["BTC"], "USDT", "1h", "2024-01-01", tmp_path, client=client
    )
    # the second run asks only for what is missing
    assert starts(double)[0] == int(partial["timestamp"].iloc[-1]) + HOUR
    got = pd.read_parquet(path)
    assert got["timestamp"].is_unique and got["timestamp"].is_monotonic_increasing
    assert np.all(np.diff(got["timestamp"].to_numpy()) == HOUR)  # no hole
    pd.testing.assert_frame_equal(got, source(RECENT, "BTC").iloc[:-1].reset_index(drop=True))
    (series,) = summary.series
    assert (series.stored_before, series.added) == (3000, len(got) - 3000)


def test_an_interrupt_keeps_the_pages_received(tmp_path: Path) -> None:
    client, _ = exchange()

    def stop_after_two_pages(asset: str, done: int, total: int) -> None:
        if done >= 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_candles(
            "binance",
            ["BTC"],
            "USDT",
            "1h",
            "2024-01-01",
            tmp_path,
            client=client,
            progress=stop_after_two_pages,
        )
    assert len(pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet")) == 2000
    assert not list(tmp_path.glob("*.part"))  # written atomically


def test_an_earlier_since_fetches_the_missing_head(tmp_path: Path) -> None:
    client, double = exchange()
    download_candles("binance", ["BTC"], "USDT", "1h", "2025-06-01", tmp_path, client=client)
    double.kline_requests.clear()
    summary = download_candles(
        "binance", ["BTC"], "USDT", "1h", "2025-01-01", tmp_path, client=client
    )
    assert starts(double)[0] == ms("2025-01-01")
    got = pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet")
    src = source(RECENT, "BTC").iloc[:-1]
    want = src[src["timestamp"] >= ms("2025-01-01")].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert summary.series[0].added == ms("2025-06-01") // HOUR - ms("2025-01-01") // HOUR


def test_gaps_are_reported_never_filled(tmp_path: Path) -> None:
    client, _ = exchange(now="2022-10-12", folder=OLD, assets=("BTC",))
    summary = download_candles(
        "binance",
        ["BTC"],
        "USDT",
        "1h",
        "2018-01-01",
        tmp_path,
        until="2018-07-31 23:00",
        client=client,
    )
    src = source(OLD, "BTC")
    src = src[(src["timestamp"] >= ms("2018-01-01")) & (src["timestamp"] <= ms("2018-07-31 23:00"))]
    got = pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet")
    pd.testing.assert_frame_equal(got, src.reset_index(drop=True))  # no candle invented
    expected = find_gaps(
        pd.DatetimeIndex(pd.to_datetime(src["timestamp"], unit="ms", utc=True)),
        pd.Timedelta(hours=1),
        "BTC",
    )
    assert summary.gaps == expected
    assert [g.missing for g in summary.gaps] == [1, 33, 10, 1, 7]
    assert "gap of 33 candles, 2018-02-08 01:00 UTC" in " ".join(summary.as_dict()["gaps"])


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    client, double = exchange()
    double.inject("GET", "/api/v3/klines", Fault.HTTP_500, after=1)
    double.inject("GET", "/api/v3/klines", Fault.TRUNCATED)
    double.inject("GET", "/api/v3/klines", Fault.TIMEOUT_BEFORE)
    slept: list[float] = []
    summary = download_candles(
        "binance",
        ["BTC"],
        "USDT",
        "1h",
        "2025-01-01",
        tmp_path,
        until="2025-06-01",
        client=client,
        retry=Retry(attempts=4, base=0.5, cap=10),
        sleep=slept.append,
    )
    assert summary.retries == 3 and len(slept) == 3
    assert 0.5 <= slept[0] <= 0.55 and 1.0 <= slept[1] <= 1.1 and 2.0 <= slept[2] <= 2.2
    src = source(RECENT, "BTC")
    want = src[(src["timestamp"] >= ms("2025-01-01")) & (src["timestamp"] <= ms("2025-06-01"))]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet"), want.reset_index(drop=True)
    )


def test_the_client_rate_limiter_paces_requests_under_binance_weight_limit(
    tmp_path: Path,
) -> None:
    client, double = exchange()
    double.weight_limit = 6000  # Binance's REQUEST_WEIGHT per minute
    assert client.enableRateLimit
    download_candles("binance", ["BTC", "ETH"], "USDT", "1h", "2024-09-14", tmp_path, client=client)
    walls = [w for _, w, _ in double.kline_requests]
    assert len(walls) == 26 and set(double.kline_statuses) == {200}
    # CCXT spends 0.4 x rateLimit (50 ms) per klines call: weight 2 at 100 weight / second;
    # its token bucket lets one call come early, so any 10 calls span at least 9 costs
    cost = 0.4 * client.rateLimit / 1000
    spans = np.asarray(walls[9:]) - np.asarray(walls[:-9])
    assert spans.min() >= 8 * cost
    per_second = 2 * len(walls) / (walls[-1] - walls[0])
    assert per_second <= 6000 / 60 * 1.1


def test_429_is_waited_out_before_asking_again(tmp_path: Path) -> None:
    client, double = exchange()
    double.weight_limit = 30  # exchangeInfo (20) + time (1) + 4 klines pages (8) per minute
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the double's clock moves instead of ours
        slept.append(seconds)
        double.clock_offset_ms += int(seconds * 1000)

    summary = download_candles(
        "binance",
        ["BTC"],
        "USDT",
        "1h",
        "2025-01-01",
        tmp_path,
        until="2025-12-31 23:00",
        client=client,
        retry=Retry(attempts=4, base=0.01),
        sleep=sleep,
    )
    assert double.kline_statuses[429] >= 1
    assert double.kline_statuses[418] == 0  # never asked again while limited
    assert summary.retries == double.kline_statuses[429]
    assert all(s >= 1 for s in slept)  # Retry-After honoured, not the 10 ms backoff
    got = pd.read_parquet(tmp_path / "BTC_USDT-1h.parquet")
    assert len(got) == 8760 and np.all(np.diff(got["timestamp"].to_numpy()) == HOUR)


def test_unknown_market_and_ambiguous_folder_are_refused(tmp_path: Path) -> None:
    client, _ = exchange()
    with pytest.raises(UnknownSymbol, match="NOPE/USDT"):
        download_candles("binance", ["NOPE"], "USDT", "1h", "2025-01-01", tmp_path, client=client)
    (tmp_path / "BTC_USDT-1h.csv").write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(DataError, match=r"already holds BTC_USDT-1h.csv"):
        download_candles("binance", ["BTC"], "USDT", "1h", "2025-01-01", tmp_path, client=client)


def test_cli_data_download_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = exchange()
    monkeypatch.setattr(dl, "download_client", lambda exchange_id: client)
    args = ["data", "download", "--exchange", "binance", "--assets", "BTC,ETH"]
    args += ["--quote", "USDT", "--timeframe", "1h", "--since", "2026-01-01"]
    args += ["--dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["added"] == 2 * (ms("2026-02-18 23:00") - ms("2026-01-01")) // HOUR + 2
    assert [s["path"] for s in data["series"]] == [
        str(tmp_path / "BTC_USDT-1h.parquet"),
        str(tmp_path / "ETH_USDT-1h.parquet"),
    ]
    assert data["gaps"] == [] and data["requests"] == 2 + 2 * 2


def test_cli_data_download_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["data", "download", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--since" in result.output


def test_bad_options_name_the_fix(tmp_path: Path) -> None:
    client, double = exchange()
    with pytest.raises(ConfigError, match="'7m' is not offered by binance"):
        download_candles("binance", ["BTC"], "USDT", "7m", "2025-01-01", tmp_path, client=client)
    with pytest.raises(ConfigError, match="before since"):
        download_candles(
            "binance", ["BTC"], "USDT", "1h", "2025-02-01", tmp_path, until="2025-01-01"
        )
    with pytest.raises(ConfigError, match="not a CCXT exchange id"):
        download_client("binanse")
    assert double.kline_requests == []


def test_cli_data_download_table_lists_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = exchange(now="2022-10-12", folder=OLD, assets=("BTC",))
    monkeypatch.setattr(dl, "download_client", lambda exchange_id: client)
    args = ["data", "download", "--assets", "BTC", "--since", "2018-02-01"]
    args += ["--until", "2018-02-28", "--dir", str(tmp_path)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "candles in" in text and "requests (0 retried)" in text
    assert "gap: BTC: gap of 33 candles, 2018-02-08 01:00 UTC" in text
    assert "(not filled)" in text


def test_a_ban_is_never_retried_and_says_how_long_to_wait(tmp_path: Path) -> None:
    client, double = exchange()
    double.weight_limit = 10**9
    double._banned_until_ms = double.now_ms() + 60_000  # banned: the next request earns a 418
    slept: list[float] = []
    with pytest.raises(ExchangeBanned) as caught:
        download_candles(
            "binance",
            ["BTC"],
            "USDT",
            "1h",
            "2025-01-01",
            tmp_path,
            client=client,
            retry=Retry(attempts=6, base=0.01),
            sleep=slept.append,
        )
    assert slept == []  # not retried: asking again lengthens a ban
    assert double.calls[("GET", "/api/v3/exchangeInfo")] == 1  # the first request, once
    msg = str(caught.value)
    assert "HTTP 418" in msg and "Wait 120 s" in msg and caught.value.retry_after == 120
    assert "rebalancer resume" not in msg  # a download halts no trading


def test_a_ban_in_the_middle_keeps_the_pages_and_is_not_retried(tmp_path: Path) -> None:
    client, double = exchange()
    double.inject("GET", "/api/v3/klines", Fault.HTTP_418, after=2)
    slept: list[float] = []
    with pytest.raises(ExchangeBanned, match="resumes from the 2000 BTC candles") as caught:
        download_candles(
            "binance",
            ["BTC"],
            "USDT",
            "1h",
            "2025-01-01",
            tmp_path,
            client=client,
            retry=Retry(attempts=6, base=0.01),
            sleep=slept.append,
            flush_every=1,
        )
    assert slept == [] and double.calls[("GET", "/api/v3/klines")] == 3  # 2 pages, 1 ban
    assert "until the ban ends" in str(caught.value)  # no Retry-After was sent


class Offline(requests.adapters.BaseAdapter):
    """A transport that fails as a machine without network does: the host name does not
    resolve (the socket error under urllib3's and requests' own, as CCXT receives it)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests += 1
        host = requests.utils.urlparse(request.url or "").hostname
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise requests.exceptions.ConnectionError(
                f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded "
                f"(Caused by NameResolutionError: Failed to resolve '{host}')"
            ) from exc

    def close(self) -> None:
        pass


def test_offline_the_download_fails_at_once_and_says_why(tmp_path: Path) -> None:
    client = download_client("binance")
    offline = Offline()
    client.session.mount("https://", offline)
    slept: list[float] = []
    with pytest.raises(RetryLater) as caught:
        download_candles(
            "binance",
            ["BTC"],
            "USDT",
            "1h",
            "2025-01-01",
            tmp_path,
            client=client,
            sleep=slept.append,
        )
    assert slept == [] and offline.requests == 1  # no 35 s of backoff before saying so
    msg = str(caught.value)
    assert "no network, or the exchange cannot be reached (api.binance.com)" in msg
    assert "check the internet connection" in msg
    assert list(tmp_path.iterdir()) == []


def test_a_connection_lost_mid_download_is_still_retried(tmp_path: Path) -> None:
    client, double = exchange()
    offline = Offline()
    real = double.send
    calls = {"n": 0}

    def flaky(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        calls["n"] += 1
        if calls["n"] == 4:  # exchangeInfo, time, one page: then the network blips once
            return offline.send(request)
        return real(request, **kwargs)

    double.send = flaky  # type: ignore[method-assign]
    slept: list[float] = []
    summary = download_candles(
        "binance",
        ["BTC"],
        "USDT",
        "1h",
        "2025-01-01",
        tmp_path,
        until="2025-03-01",
        client=client,
        retry=Retry(attempts=3, base=0.5),
        sleep=slept.append,
    )
    assert offline.requests == 1 and summary.retries == 1 and len(slept) == 1
    assert summary.series[0].rows == (ms("2025-03-01") - ms("2025-01-01")) // HOUR + 1
