"""Volatility-scaled bands live: the daily closes come from the exchange (the Binance double
serving the real candles of ``../shared/data`` under the real ``ccxt.binance``), fetched once
per UTC day per asset and cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from doubles.binance import BinanceDouble, Fault
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.ccxt.history import ExchangeHistory
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.live import live_history
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import ExchangeBanned
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.service import evaluate

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance_spot_2024_2026"
KEY, SECRET = "history-key-01", "history-secret-01"
NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)
BOOKS = {"BTCUSDT": ("60000.00", "60000.01"), "ETHUSDT": ("3000.00", "3000.01")}
TARGETS = {"BTC": Decimal("0.45"), "ETH": Decimal("0.45"), "USDT": Decimal("0.1")}
VOL = VolScaledThreshold(half_life=5, base_band=Decimal("0.05"))


def build(now: datetime = NOW) -> tuple[BinanceDouble, CcxtExchange, ManualClock]:
    client = make_client("binance", KEY, SECRET, rateLimit=1)
    balances = {"USDT": "1000", "BTC": "0.05", "ETH": "1"}
    double = BinanceDouble(KEY, SECRET, balances=balances, books=BOOKS).mount(client)
    for asset in ("BTC", "ETH"):
        double.add_klines(f"{asset}USDT", "1d", DATA / f"{asset}_USDT-1d.csv")
    clock = ManualClock(now)
    move_to(double, clock, now)
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )
    return double, exchange, clock


def move_to(double: BinanceDouble, clock: ManualClock, when: datetime) -> None:
    """The decision time moves; the double keeps the wall clock (signed requests need it):
    the history asks for candles closed by ``when`` only, never a later one."""
    clock.set(when)


def source_closes(asset: str, until: datetime, bars: int) -> list[Decimal]:
    frame = pd.read_csv(DATA / f"{asset}_USDT-1d.csv")
    closed = frame[frame["timestamp"] + 86_400_000 <= int(until.timestamp() * 1000)]
    return [Decimal(repr(float(c))) for c in closed["close"].iloc[-bars:]]


def klines(double: BinanceDouble) -> int:
    return len(double.kline_requests)


def test_closes_are_the_exchanges_closed_daily_candles_fetched_once_a_day() -> None:
    double, exchange, clock = build()
    history = ExchangeHistory([exchange], "USDT")
    got = history.closes(["BTC", "ETH", "USDT"], NOW, 11)
    assert set(got) == {"BTC", "ETH"}
    for asset in ("BTC", "ETH"):
        assert list(got[asset]) == source_closes(asset, NOW, 11)  # last: the 19 Jan candle
    assert klines(double) == 2  # one request per asset
    # later the same day: the cache answers, no request
    for hours in (4, 8):
        later = NOW + timedelta(hours=hours)
        move_to(double, clock, later)
        assert history.closes(["BTC", "ETH"], later, 11) == got
    assert klines(double) == 2
    # the next day: one more request per asset, and the new close is there
    tomorrow = NOW + timedelta(days=1)
    move_to(double, clock, tomorrow)
    again = history.closes(["BTC", "ETH"], tomorrow, 11)
    assert klines(double) == 4
    assert list(again["BTC"]) == source_closes("BTC", tomorrow, 11)
    assert list(again["BTC"])[:-1] == list(got["BTC"])[1:]


def test_a_failed_read_keeps_the_last_closes_and_the_cycle_goes_on() -> None:
    double, exchange, clock = build()
    history = ExchangeHistory([exchange], "USDT", sleep=lambda _s: None)
    first = history.closes(["BTC"], NOW, 5)
    for _ in range(2):  # both attempts of the next read fail
        double.inject("GET", "/api/v3/klines", Fault.HTTP_503)
    tomorrow = NOW + timedelta(days=1)
    move_to(double, clock, tomorrow)
    assert history.closes(["BTC"], tomorrow, 5) == first  # yesterday's closes
    # the next cycle tries again, and gets today's
    assert list(history.closes(["BTC"], tomorrow, 5)["BTC"]) == source_closes("BTC", tomorrow, 5)


def test_a_ban_on_the_history_read_is_never_retried_nor_swallowed() -> None:
    double, exchange, _ = build()
    slept: list[float] = []
    history = ExchangeHistory([exchange], "USDT", sleep=slept.append)
    double.inject("GET", "/api/v3/klines", Fault.HTTP_418)
    with pytest.raises(ExchangeBanned, match="HTTP 418"):
        history.closes(["BTC"], NOW, 5)
    assert slept == [] and double.calls[("GET", "/api/v3/klines")] == 1
    # the authenticated client is banned: the ban reaches the cycle (which halts on it)
    strategy = Strategy("USDT", TARGETS, VOL, PlanPolicy())
    journal = MemoryJournal()
    double.inject("GET", "/api/v3/klines", Fault.HTTP_418)
    with pytest.raises(ExchangeBanned):
        evaluate(exchange, journal, strategy, NOW, history)
    assert double.calls[("GET", "/api/v3/klines")] == 2


def test_the_vol_band_uses_the_exchange_history_in_a_live_cycle() -> None:
    double, exchange, _ = build()
    strategy = Strategy("USDT", TARGETS, VOL, PlanPolicy())
    history = live_history(exchange, strategy)
    assert isinstance(history, ExchangeHistory)
    _, _, with_history = evaluate(exchange, MemoryJournal(), strategy, NOW, history)
    assert "no price history" not in with_history.reason
    assert klines(double) == 2
    _, _, without = evaluate(exchange, MemoryJournal(), strategy, NOW, None)
    assert "no price history: base band" in without.reason


def test_no_history_is_built_when_the_trigger_does_not_look_back() -> None:
    double, exchange, _ = build()
    plain = Strategy("USDT", TARGETS, Threshold(Decimal("0.05")), PlanPolicy())
    assert live_history(exchange, plain) is None
    multi = MultiAccountExchange({"a": exchange})
    vol = live_history(multi, Strategy("USDT", TARGETS, VOL, PlanPolicy()))
    assert isinstance(vol, ExchangeHistory) and vol.sources == [exchange]
    assert klines(double) == 0


def test_bootstrap_wires_the_history_for_live(monkeypatch: Any, tmp_path: Path) -> None:
    from rebalancer import bootstrap
    from rebalancer.adapters import live
    from rebalancer.adapters.ccxt import permissions
    from rebalancer.config import parse_config

    _, exchange, _ = build()
    settings = parse_config(
        'mode = "live"\nexchange = "binance"\nquote = "USDT"\n'
        f'state_dir = "{tmp_path}"\n'
        "[targets]\nBTC = 0.45\nETH = 0.45\nUSDT = 0.1\n"
        '[trigger]\nkind = "vol_threshold"\nhalf_life = 5\nbase_band = 0.05\n'
    )
    monkeypatch.setattr(live, "build_live", lambda s: (exchange, "double"))
    monkeypatch.setattr(live, "require_live_keys", lambda s: None)
    monkeypatch.setattr(permissions, "check_live_keys", lambda e, **k: [])
    rt = bootstrap.build(settings, confirm_live=True, first_live=True)
    try:
        assert isinstance(rt.history, ExchangeHistory)
    finally:
        rt.close()
