"""``[paper] prices``: "auto" (the default) decides once at start between the exchange's live
public prices and the frozen candles; "live" and "candles" stay explicit.

Online is the real ``ccxt.binance`` class over the Binance double; offline is the same
class with a transport that refuses every request as a machine without a network does.
Nothing here reaches the network (tests/conftest.py guards it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from tests.adapters.test_paper_live import CutTheNetworkOnce

from doubles.binance import BinanceDouble
from rebalancer import bootstrap
from rebalancer.adapters.ccxt.public import PROBE_TIMEOUT_S, PublicTickers, reach
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.paper_prices import PriceSource, PriceSourceFile
from rebalancer.config import Settings, parse_config
from rebalancer.core.errors import RetryLater
from rebalancer.daemon import Daemon, DaemonPolicy, Schedule

TIME = ("GET", "/api/v3/time")
MARKETS = ("GET", "/api/v3/exchangeInfo")
TICKERS = ("GET", "/api/v3/ticker/24hr")
TARGETS = "[targets]\nBTC = 0.5\nUSDT = 0.5\n"


@dataclass
class Refusing(BaseAdapter):
    """The transport of a machine without a network: no name resolves. Records each
    request's URL and the timeout it was sent with (seconds)."""

    seen: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append((str(request.url), kwargs.get("timeout")))
        raise requests.exceptions.ConnectionError(
            f"Failed to resolve '{request.url}' ([Errno -3] Temporary failure in name resolution)"
        )

    def close(self) -> None:
        pass


def settings_in(tmp_path: Path, paper: str = "") -> Settings:
    return parse_config(f'state_dir = "{tmp_path / "state"}"\n{paper}\n{TARGETS}')


def online() -> tuple[BinanceDouble, Any]:
    client = make_client("binance", "", "", rateLimit=1)  # the double answers at once
    double = BinanceDouble("unused", "unused", books={"BTCUSDT": ("59999", "60000")})
    return double.mount(client), client


def offline() -> tuple[Refusing, Any]:
    client = make_client("binance", "", "")
    transport = Refusing()
    client.session.mount("https://", transport)
    return transport, client


@pytest.fixture
def network_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets "auto" try its probe (the conftest sets REBALANCER_OFFLINE for every test); the
    test hands it a double or a refusing transport, never the network."""
    monkeypatch.delenv("REBALANCER_OFFLINE")


def test_the_default_is_auto() -> None:
    assert parse_config(TARGETS).paper.prices == "auto"


@pytest.mark.usefixtures("network_allowed")
def test_auto_online_trades_on_live_prices_after_one_short_probe(tmp_path: Path) -> None:
    double, client = online()
    made: list[str] = []

    def factory(exchange_id: str) -> Any:
        made.append(exchange_id)
        return client

    rt = bootstrap.build_paper(settings_in(tmp_path), lock=True, public_client=factory)
    try:
        assert made == ["binance"]
        assert isinstance(rt.exchange, PaperExchange)
        assert isinstance(rt.exchange.feed, PublicTickers)
        assert rt.exchange.prices == {"BTC": D(60000)}  # the double's tickers, not a candle
        source = rt.price_source
        assert source is not None and (source.kind, source.setting) == ("live", "auto")
        assert not source.frozen and rt.warnings == ()
        assert "auto: binance public tickers (live, no keys)" in rt.prices_note
        assert double.calls[TIME] == 1  # the probe: one server-time call
        assert client.timeout == 10000  # the probe's 2 s was for the probe only
        # later snapshots read fresh tickers, as with prices = "live"
        double.serve_books("BTCUSDT", [("60999", "61000")])
        assert rt.exchange.snapshot(["BTC"], "USDT").prices["BTC"] == D(61000)
    finally:
        rt.close()
    recorded = bootstrap.paper_price_source(settings_in(tmp_path))
    assert recorded is not None and recorded.kind == "live" and recorded.warning == ""


@pytest.mark.usefixtures("network_allowed")
def test_auto_offline_takes_the_candles_and_says_so_loudly(tmp_path: Path) -> None:
    transport, client = offline()
    rt = bootstrap.build_paper(settings_in(tmp_path), lock=True, public_client=lambda _: client)
    try:
        assert isinstance(rt.exchange, PaperExchange) and rt.exchange.feed is None
        source = rt.price_source
        assert source is not None and source.frozen and source.setting == "auto"
        assert source.first is not None and source.last is not None and source.first < source.last
        assert rt.exchange.prices_at == source.last  # the last candle's close is the price
        assert "binance could not be reached (https://api.binance.com" in source.reason
        (warning,) = rt.warnings
        assert warning.startswith(
            "paper prices are frozen candles from the embedded Binance daily candles, "
            f"{source.first:%Y-%m-%d} to {source.last:%Y-%m-%d}: the bot is not seeing the market"
        )
        assert 'prices = "live"' in warning  # the fix: how to pin it
        assert "prices: auto: frozen candles from the embedded Binance daily" in rt.prices_note
    finally:
        rt.close()
    # one request, the probe, sent with its short timeout; then no more tries
    assert [(url.split("?")[0], t) for url, t in transport.seen] == [
        ("https://api.binance.com/api/v3/time", PROBE_TIMEOUT_S)
    ]
    assert bootstrap.paper_price_source(settings_in(tmp_path)) == source


def test_rebalancer_offline_means_no_attempt_at_all(tmp_path: Path) -> None:
    """REBALANCER_OFFLINE (set for every test by the conftest): "auto" takes the candles
    without even making a client."""
    made: list[str] = []
    rt = bootstrap.build_paper(
        settings_in(tmp_path), public_client=lambda x: made.append(x) or offline()[1]
    )
    try:
        assert made == [] and rt.price_source is not None and rt.price_source.frozen
        assert "REBALANCER_OFFLINE is set" in rt.warnings[0]
    finally:
        rt.close()


@pytest.mark.usefixtures("network_allowed")
def test_candles_pinned_never_touch_the_exchange_and_are_still_called_frozen(
    tmp_path: Path,
) -> None:
    made: list[str] = []
    settings = settings_in(tmp_path, '[paper]\nprices = "candles"')
    rt = bootstrap.build_paper(settings, public_client=lambda x: made.append(x) or offline()[1])
    try:
        assert made == []
        source = rt.price_source
        assert source is not None and (source.kind, source.setting) == ("candles", "candles")
        assert source.reason == "" and 'set [paper] prices = "auto"' in rt.warnings[0]
    finally:
        rt.close()


@pytest.mark.usefixtures("network_allowed")
def test_live_pinned_does_not_probe_and_fails_fast_offline(tmp_path: Path) -> None:
    transport, client = offline()
    settings = settings_in(tmp_path, '[paper]\nprices = "live"')
    with pytest.raises(RetryLater, match="no network, or binance cannot be reached"):
        bootstrap.build_paper(settings, public_client=lambda _: client)
    # the feed's own first read failed (markets); no probe before it
    assert [url for url, _ in transport.seen] == [
        "https://api.binance.com/api/v3/exchangeInfo"
    ]


@pytest.mark.usefixtures("network_allowed")
def test_the_probe_is_injectable(tmp_path: Path) -> None:
    _, client = online()
    asked: list[Any] = []

    def refuse(c: Any) -> str:
        asked.append(c)
        return "refused by the test"

    rt = bootstrap.build_paper(settings_in(tmp_path), public_client=lambda _: client, probe=refuse)
    try:
        assert asked == [client]
        assert rt.price_source is not None and rt.price_source.reason == (
            "no network: refused by the test"
        )
    finally:
        rt.close()


def test_reach_says_why_and_restores_the_timeout() -> None:
    double, client = online()
    assert reach(client) is None and double.calls[TIME] == 1
    _, dead = offline()
    why = reach(dead, timeout_s=0.5)
    assert why is not None and why.startswith("binance could not be reached (")
    assert "NetworkError" in why or "ExchangeNotAvailable" in why
    assert client.timeout == dead.timeout == 10000


def test_only_a_trading_run_records_its_prices(tmp_path: Path) -> None:
    """status and plan (unlocked) only read the record; rebalance and run write it."""
    settings = settings_in(tmp_path)
    bootstrap.build_paper(settings).close()
    assert bootstrap.paper_price_source(settings) is None
    bootstrap.build_paper(settings, lock=True).close()
    recorded = bootstrap.paper_price_source(settings)
    assert recorded is not None and recorded.frozen


def test_an_unreadable_record_is_no_record(tmp_path: Path) -> None:
    path = tmp_path / "paper-prices-binance.json"
    path.write_text('{"kind": "sideways"}')
    assert PriceSourceFile(path).read() is None
    path.write_text("not json")
    assert PriceSourceFile(path).read() is None


def test_a_record_round_trips() -> None:
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    candles = PriceSource("candles", "auto", "candles in /x", at, at - timedelta(days=9), at, "why")
    live = PriceSource("live", "live", "binance public tickers", at)
    for source in (candles, live):
        assert PriceSource.from_dict(source.to_dict()) == source
    assert candles.describe() == "auto: frozen candles from candles in /x, 2025-12-24 to 2026-01-02"
    assert live.describe() == "binance public tickers" and live.warning == ""


# --- a daemon run keeps its choice ---------------------------------------------------------


@pytest.mark.usefixtures("network_allowed")
def test_auto_that_went_live_reports_a_lost_network_and_never_falls_back(
    tmp_path: Path,
) -> None:
    """Decided live at start: a failed read mid-run is a failed check (notified, retried),
    not a quiet switch to frozen candles; the next good read trades on fresh prices."""
    double, client = online()
    rt = bootstrap.build_paper(settings_in(tmp_path), lock=True, public_client=lambda _: client)
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    notifier = MemoryNotifier()
    daemon = Daemon(
        rt.exchange,
        rt.journal,
        notifier,
        rt.strategy,
        clock,
        DaemonPolicy(Schedule(period=timedelta(hours=4)), max_ticks=3),
        CutTheNetworkOnce(clock, double),
        warnings=rt.warnings,
    )
    try:
        double.serve_books("BTCUSDT", [("59999", "60000"), ("64999", "65000")])
        result = daemon.run(handle_signals=False)
    finally:
        rt.close()
    assert (result.exit_code, result.ticks) == (0, 3)
    kinds = [e.kind for e in notifier.events]
    assert "warning" not in kinds  # live prices: nothing to warn about at start
    errors = [e.body for e in notifier.events if e.kind == "error"]
    assert len(errors) == 1 and "no network, or binance cannot be reached" in errors[0]
    assert "recovered" in kinds
    assert isinstance(rt.exchange, PaperExchange) and rt.exchange.feed is not None
    assert rt.exchange.prices["BTC"] == D(65000)  # fresh again, never a candle's close
    assert double.calls[TIME] == 1  # probed once, at start


def test_the_daemon_warns_at_start_in_the_log_and_as_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = bootstrap.build_paper(settings_in(tmp_path), lock=True)  # offline: the candles
    notifier = MemoryNotifier()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    daemon = Daemon(
        rt.exchange,
        rt.journal,
        notifier,
        rt.strategy,
        clock,
        DaemonPolicy(Schedule(period=timedelta(hours=4)), max_ticks=1),
        CutTheNetworkOnce(clock, BinanceDouble("unused", "unused")),
        warnings=rt.warnings,
    )
    try:
        with caplog.at_level("WARNING", logger="rebalancer.daemon"):
            daemon.run(handle_signals=False)
    finally:
        rt.close()
    assert [e.kind for e in notifier.events][:2] == ["start", "warning"]
    warning = notifier.events[1]
    assert warning.body == rt.warnings[0] and "the bot is not seeing the market" in warning.body
    assert any("paper prices are frozen candles" in r.getMessage() for r in caplog.records)


# --- look-back rules get history on live prices too ---------------------------------------

SHARED_DAILY = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance_spot_2024_2026"
VOL = '[trigger]\nkind = "vol_threshold"\nhalf_life = 5\nbase_band = 0.05\n'


@pytest.mark.usefixtures("network_allowed")
def test_a_vol_band_on_live_paper_prices_reads_the_exchanges_daily_closes(
    tmp_path: Path,
) -> None:
    """Before, paper on live prices had no history (the bands stayed at their base); now the
    exchange's public daily candles answer, as in live mode."""
    double, client = online()
    double.add_klines("BTCUSDT", "1d", SHARED_DAILY / "BTC_USDT-1d.csv")
    settings = parse_config(f'state_dir = "{tmp_path / "state"}"\n{TARGETS}{VOL}')
    rt = bootstrap.build_paper(settings, public_client=lambda _: client)
    try:
        assert rt.history is not None and rt.price_source is not None
        assert not rt.price_source.frozen
        until = datetime(2026, 1, 20, 12, tzinfo=UTC)
        closes = rt.history.closes(["BTC", "USDT"], until, 5)
    finally:
        rt.close()
    assert list(closes) == ["BTC"] and len(closes["BTC"]) == 5
    assert len(double.kline_requests) == 1  # public candles, one request
    assert not any(r.signed for r in double.log)


def test_a_vol_band_on_frozen_prices_reads_the_candles(tmp_path: Path) -> None:
    settings = parse_config(f'state_dir = "{tmp_path / "state"}"\n{TARGETS}{VOL}')
    rt = bootstrap.build_paper(settings)
    try:
        assert rt.history is not None and rt.price_source is not None and rt.price_source.frozen
        last = rt.price_source.last
        assert last is not None
        assert len(rt.history.closes(["BTC"], last + timedelta(days=1), 5)["BTC"]) == 5
    finally:
        rt.close()


def test_paper_reset_forgets_the_last_runs_prices(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    bootstrap.build_paper(settings, lock=True).close()
    assert bootstrap.paper_price_source(settings) is not None
    bootstrap.reset_paper(settings)
    assert bootstrap.paper_price_source(settings) is None
