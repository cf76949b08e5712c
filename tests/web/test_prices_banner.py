"""The dashboard tells which prices the paper account trades on: ``/api/status`` carries the
last trading run's price source, and the page shows a banner while they are frozen candles.

Runtimes are built by ``bootstrap.build_paper`` as ``rebalancer run`` builds them: offline
(the conftest's REBALANCER_OFFLINE) on the candles, online on the Binance double.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from doubles.binance import BinanceDouble
from rebalancer import bootstrap
from rebalancer.adapters.ccxt.venues import make_client
from rebalancer.config import Settings, load_config
from rebalancer.web.app import create_app
from rebalancer.web.page import PAGE
from rebalancer.web.server import dashboard_for, open_reader

TOKEN = "banner-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = 'state_dir = "state"\n[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n'
FROZEN = "paper prices are frozen candles from the embedded Binance daily candles, "


def paper_settings(folder: Path) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "rebalancer.toml"
    cfg.write_text(CONFIG)
    return load_config(cfg)


def trade_once(settings: Settings, public_client: Any = None) -> None:
    """One trading paper run (it records its prices), one cycle."""
    rt = bootstrap.build_paper(settings, lock=True, public_client=public_client)
    try:
        rt.cycle()
    finally:
        rt.close()


def binance_double() -> Any:
    client = make_client("binance", "", "", rateLimit=1)
    books = {
        "BTCUSDT": ("59999", "60000"),
        "ETHUSDT": ("2999", "3000"),
        "SOLUSDT": ("149.9", "150"),
    }
    BinanceDouble("unused", "unused", books=books).mount(client)
    return lambda _: client


def status(settings: Settings) -> dict[str, Any]:
    reader = open_reader(settings)
    try:
        api = TestClient(create_app(dashboard_for(settings, reader), TOKEN))
        return dict(api.get("/api/status", headers=AUTH).json())
    finally:
        reader.close()


def test_no_trading_run_yet_means_no_price_source(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    bootstrap.build_paper(settings).close()  # a view (status, plan) records nothing
    assert status(settings)["prices"] is None


def test_frozen_candles_are_in_the_status_with_the_banner_text(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    trade_once(settings)
    prices = status(settings)["prices"]
    assert prices["kind"] == "candles" and prices["setting"] == "auto" and prices["frozen"]
    assert prices["warning"].startswith(FROZEN)
    assert f"{prices['first'][:10]} to {prices['last'][:10]}: " in prices["warning"]
    assert "the bot is not seeing the market" in prices["warning"]
    assert prices["reason"] == "REBALANCER_OFFLINE is set: no network attempt"
    assert prices["description"].startswith("auto: frozen candles from the embedded")


def test_live_prices_clear_the_banner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = paper_settings(tmp_path)
    trade_once(settings)
    monkeypatch.delenv("REBALANCER_OFFLINE")  # the probe reaches the double, not the network
    trade_once(settings, binance_double())
    prices = status(settings)["prices"]
    assert prices["kind"] == "live" and not prices["frozen"] and prices["warning"] == ""
    assert prices["description"] == "auto: binance public tickers (live, no keys)"


def test_a_live_account_has_no_paper_price_source(tmp_path: Path) -> None:
    settings = paper_settings(tmp_path)
    trade_once(settings)
    live = settings.model_copy(update={"mode": "live"})
    assert bootstrap.paper_price_source(live) is None


def test_the_page_has_the_banner_and_fills_it_from_the_status() -> None:
    assert 'id="prices-banner"' in PAGE and 'role="alert"' in PAGE
    assert "banner.textContent = pr && pr.frozen ? pr.warning" in PAGE  # text, never HTML
