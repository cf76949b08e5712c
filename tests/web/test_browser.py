"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

The app runs under uvicorn on 127.0.0.1 (a free port) in a thread; the page is opened with
the token, must show the journal's numbers, and the API must refuse a request without the
token. A screenshot goes to docs/dashboard.png when that file is missing or when
REBALANCER_UPDATE_SCREENSHOT=1 (always to the test's own folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from rebalancer.adapters.journal import open_journal
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.ports import TargetChange
from rebalancer.service import run_cycle
from rebalancer.web import view
from rebalancer.web.server import (
    StandaloneControls,
    create_app,
    dashboard_for,
    open_reader,
    serve_in_thread,
)
from web.paper_run import FOUR_H, ROOT, START, PaperRun

CHROMIUM = Path(os.environ.get("REBALANCER_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-test-token-42"
SCREENSHOT = ROOT / "docs" / "dashboard.png"


def money(x: Any) -> str:
    return f"{float(x):,.2f}"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/browser.sh (Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,  # Playwright gives it a new, empty profile (user data dir) itself
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def served(paper_run: PaperRun) -> Iterator[str]:
    reader = open_reader(paper_run.settings)
    server = serve_in_thread(
        create_app(dashboard_for(paper_run.settings, reader), TOKEN), "127.0.0.1", 0
    )
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        reader.close()


def test_the_page_shows_the_journals_numbers_and_the_api_wants_the_token(
    browser: Any, served: str, paper_run: PaperRun, tmp_path: Path
) -> None:
    j = open_journal(paper_run.journal_url, "paper:binance")
    try:
        rows = view.load_rows(j)
    finally:
        j.close()
    weights = view.weights(rows, paper_run.settings.strategy(), "USDT")
    summary = view.summary(rows, "USDT")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{served}/?token={TOKEN}")
    assert response.status == 200
    page.wait_for_selector("body[data-loaded]", timeout=15000)
    assert page.get_attribute("body", "data-loaded") == "yes", page.inner_text("#error")
    assert errors == []
    assert "token" not in page.url  # taken off the address bar, kept for the tab

    # the numbers are the journal's
    assert page.inner_text("#total-value") == f"{money(weights.total_value)} USDT"
    assert (
        page.inner_text("#counts") == f"{summary.checks} / {summary.rebalances} / {summary.fills}"
    )
    assert page.inner_text("#fees") == f"{money(summary.fees)} USDT"
    assert page.inner_text("#return") == f"{summary.total_return * 100:+.2f}%"
    assert page.inner_text("#hold-return") == f"{summary.hold_return * 100:+.2f}%"
    shown = {
        el.get_attribute("data-asset"): el.inner_text() for el in page.query_selector_all(".weight")
    }
    assert shown == {a.asset: f"{a.weight * 100:.2f}%" for a in weights.assets}
    assert page.inner_text("#last-tick") == f"{summary.end:%Y-%m-%d %H:%M} UTC"
    assert page.inner_text("#daemon-state") == "stopped"
    assert page.inner_text("#halt-badge") == "trading allowed"
    fills_shown = page.query_selector_all("#fills tbody tr")
    assert len(fills_shown) == min(20, len(rows["fills"]))
    # charts drawn as inline SVG: equity and buy-and-hold, one drift line per asset
    assert page.locator("#equity-chart polyline.series").count() == 2
    assert page.locator("#drift-chart polyline.series").count() == 4
    assert not page.is_visible("#controls")  # read-only
    # no [optimise] and no deposit or withdrawal in this run: both panels say so
    assert not page.is_visible("#targets")
    assert page.inner_text("#targets-empty") == "configured targets; no optimiser"
    assert not page.is_visible("#flows")
    assert page.inner_text("#flows-empty") == "none found"

    # without the token: the API refuses, from the page and from a fresh tab
    status = page.evaluate("fetch('/api/weights').then(r => r.status)")
    assert status == 401
    other = browser.new_page()
    assert other.goto(f"{served}/api/status").status == 401
    assert other.goto(f"{served}/").status == 401

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if not SCREENSHOT.exists() or os.environ.get("REBALANCER_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_control_mode_lifts_a_halt_from_the_page(
    browser: Any, paper_run: PaperRun, tmp_path: Path
) -> None:
    run = paper_run.copy(tmp_path / "run")
    j = open_journal(run.journal_url, "paper:binance")
    j.record_halt("drawdown 16% beyond 15% in 24h", START + 200 * FOUR_H)
    j.close()
    reader = open_reader(run.settings)
    controls = StandaloneControls(run.settings, reader, False)
    app = create_app(dashboard_for(run.settings, reader), TOKEN, controls)
    server = serve_in_thread(app, "127.0.0.1", 0)
    try:
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded]", timeout=15000)
        assert page.inner_text("#halt-badge") == "HALTED: drawdown 16% beyond 15% in 24h"
        assert page.is_visible("#controls")
        page.click("#btn-resume")
        page.wait_for_function(
            "document.getElementById('halt-badge').textContent === 'trading allowed'",
            timeout=15000,
        )
        assert dialogs == ["resumed; the halt was: drawdown 16% beyond 15% in 24h"]
        assert page.inner_text("#halts tbody tr:first-child").split("\t")[1] == "resume"
    finally:
        server.stop()
        reader.close()
    j = open_journal(run.journal_url, "paper:binance")
    try:
        assert j.halt_status().active is None
    finally:
        j.close()


def test_the_page_shows_the_journals_target_changes_and_flows(
    browser: Any, paper_run: PaperRun, tmp_path: Path
) -> None:
    """A target change and a check that found a deposit and a withdrawal, written through
    the journal after the paper run, are the rows of their panels."""
    run = paper_run.copy(tmp_path / "run")
    j = open_journal(run.journal_url, "paper:binance")
    try:
        rows = view.load_rows(j)
        last = rows["cycles"][-1]
        held = view.holdings_after(last, rows["fills"])  # what the next check should find
        at = last["at"] + FOUR_H
        configured = run.settings.strategy().targets
        new = {"BTC": D("0.35"), "ETH": D("0.35"), "SOL": D("0.2"), "USDT": D("0.1")}
        j.record_target_change(
            TargetChange(at, "config", configured, configured, "configured", configured, "mv")
        )
        j.record_target_change(
            TargetChange(at, "min_variance", configured, new, "lower variance", configured, "mv")
        )
        found = dict(held)
        found["BTC"] += D("0.01")  # a deposit
        found["USDT"] -= D("200")  # a withdrawal
        exchange = PaperExchange("USDT", found, D("0.001"), D("0.0005"))
        prices = {a: D(str(p)) for a, p in last["snapshot"]["prices"].items()}
        exchange.set_prices(prices, at)
        report = run_cycle(
            exchange, j, MemoryNotifier(), run.settings.strategy(), at, expected=held
        )
        assert report.flows  # the check found both
    finally:
        j.close()

    reader = open_reader(run.settings)
    server = serve_in_thread(create_app(dashboard_for(run.settings, reader), TOKEN), "127.0.0.1", 0)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded]", timeout=15000)
        assert page.get_attribute("body", "data-loaded") == "yes", page.inner_text("#error")
        assert errors == []

        when = f"{at:%Y-%m-%d %H:%M} UTC"
        assert page.is_visible("#targets") and not page.is_visible("#targets-empty")
        changes = [r.split("\t") for r in _rows(page, "#targets")]
        assert changes == [  # newest first
            [
                when,
                "min_variance",
                "BTC 35.0 %, ETH 35.0 %, SOL 20.0 %, USDT 10.0 %",
                "lower variance",
            ],
            [when, "config", "BTC 40.0 %, ETH 30.0 %, SOL 20.0 %, USDT 10.0 %", "configured"],
        ]
        assert page.get_attribute("#targets tbody tr:first-child td:nth-child(3)", "title") == (
            "was: BTC 40.0 %, ETH 30.0 %, SOL 20.0 %, USDT 10.0 %"
        )

        assert page.is_visible("#flows") and not page.is_visible("#flows-empty")
        flows = sorted(r.split("\t") for r in _rows(page, "#flows"))
        btc = D("0.01") * prices["BTC"]
        assert flows == [
            [when, "BTC", "+0.01", f"+{money(btc)} USDT", "deposit"],
            [when, "USDT", "-200", "-200.00 USDT", "withdrawal"],
        ]
    finally:
        server.stop()
        reader.close()


def _rows(page: Any, table: str) -> list[str]:
    return [r.inner_text() for r in page.query_selector_all(f"{table} tbody tr")]


def test_a_fresh_paper_account_minutes_old(browser: Any, tmp_path: Path) -> None:
    """After the first check (a purchase from cash), the return and buy-and-hold's are the
    same loss, the first rebalance's fees; with checks minutes apart the time axis reads
    times of day, not the same date five times."""
    from rebalancer.config import load_config
    from web.paper_run import CONFIG

    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(CONFIG)
    settings = load_config(cfg)
    url = f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}"
    (tmp_path / "state").mkdir()
    exchange = PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"), D("0.0005"))
    prices = {"BTC": D(90000), "ETH": D(3000), "SOL": D(150)}
    t0 = START

    def check(minutes: int, move: D) -> None:
        j = open_journal(url, "paper:binance")
        try:
            at = t0 + minutes * (FOUR_H / 240)  # minutes
            exchange.set_prices({a: p * move for a, p in prices.items()}, at)
            run_cycle(exchange, j, MemoryNotifier(), settings.strategy(), at)
        finally:
            j.close()

    def load(page: Any, port: int) -> None:
        page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded]", timeout=15000)
        assert page.get_attribute("body", "data-loaded") == "yes", page.inner_text("#error")

    check(0, D(1))
    reader = open_reader(settings)
    server = serve_in_thread(create_app(dashboard_for(settings, reader), TOKEN), "127.0.0.1", 0)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        load(page, server.port)
        assert page.inner_text("#return") == page.inner_text("#hold-return")
        assert page.inner_text("#return").startswith("-0.")
        for minutes, move in ((5, D("1.01")), (10, D("0.99")), (15, D("1.02"))):
            check(minutes, move)
        load(page, server.port)
        labels = [t.text_content() for t in page.query_selector_all("#equity-chart text.xlabel")]
        assert len(labels) == 5 and len(set(labels)) == 5, labels
        assert labels[0] == f"{t0:%Y-%m-%d %H:%M} UTC"
        assert labels[-1] == f"{t0 + FOUR_H / 16:%H:%M}"  # 15 minutes later
    finally:
        server.stop()
        reader.close()


def test_frozen_paper_prices_show_a_banner_until_live_prices_return(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paper run offline trades on the candles: the page says so in a banner, with the
    candles' dates; after a run on live prices (the probe reached the Binance double) the
    banner is gone and the header names the live source."""
    from web.test_prices_banner import binance_double, paper_settings, trade_once

    settings = paper_settings(tmp_path)
    trade_once(settings)  # offline (the conftest's REBALANCER_OFFLINE): frozen candles
    reader = open_reader(settings)
    server = serve_in_thread(create_app(dashboard_for(settings, reader), TOKEN), "127.0.0.1", 0)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def load() -> None:
            page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")
            page.wait_for_selector("body[data-loaded]", timeout=15000)
            assert page.get_attribute("body", "data-loaded") == "yes", page.inner_text("#error")

        load()
        assert page.is_visible("#prices-banner")
        banner = page.inner_text("#prices-banner")
        assert banner.startswith(
            "paper prices are frozen candles from the embedded Binance daily candles, "
        )
        assert "the bot is not seeing the market" in banner
        assert page.inner_text("#prices").startswith("prices: auto: frozen candles")
        page.screenshot(path=str(tmp_path / "banner.png"))

        monkeypatch.delenv("REBALANCER_OFFLINE")
        trade_once(settings, binance_double())
        load()
        assert not page.is_visible("#prices-banner")
        assert page.inner_text("#prices") == "prices: auto: binance public tickers (live, no keys)"
    finally:
        server.stop()
        reader.close()
