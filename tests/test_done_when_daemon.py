"""Issue 7, "Done when", as one test.

The daemon runs in paper mode as its own process (``done_when_worker.py``: ``rebalancer run``'s
wiring with a simulated clock over real Binance hourly closes) for many checks; the
notifications go through the real apprise code to an HTTP endpoint on loopback. Mid-run the
process is killed with SIGKILL right after the paper exchange filled an order and before the
journal got its outcome; the restarted daemon reconciles that order and finishes the run:
nothing is lost (every intent resolved, every paper order journaled as a fill, the balances
are the starting ones plus the journaled fills). Then the dashboard is checked in a real
headless browser and ``rebalancer report`` writes the report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rebalancer.adapters.journal import open_journal
from rebalancer.bootstrap import paper_state
from rebalancer.cli.app import app
from rebalancer.config import load_config
from rebalancer.core.flows import expected_balances
from rebalancer.logs import reset_logging
from rebalancer.web import view
from rebalancer.web.server import create_app, dashboard_for, open_reader, serve_in_thread
from web.test_browser import CHROMIUM, FLAGS

HERE = Path(__file__).resolve().parent
WORKER = HERE / "done_when_worker.py"
DATA = HERE.parents[1] / "shared" / "data" / "binance_spot_2024_2026"
CHECKS = 60  # 10 days of 4-hourly checks
PAUSE_FROM = 20  # killed on the first order from the 21st check on
TOKEN = "done-when-token-7"
CONFIG = """state_dir = "state"
[targets]
BTC = 0.4
ETH = 0.3
SOL = 0.2
USDT = 0.1
[trigger]
kind = "threshold"
band_abs = 0.01
[rebalance]
min_trade = 10
[paper]
initial_balances = { USDT = 10000 }
[daemon]
every = "4h"
"""


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers() -> Iterator[None]:
    yield
    reset_logging()


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REBALANCER_")}
    env["REBALANCER_OFFLINE"] = "1"  # paper prices "auto": no network attempt
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["REBALANCER_NOTIFY_URLS"] = url
    return env


def _worker(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), str(CHECKS), *extra],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_paper_daemon_notifies_survives_sigkill_and_reports(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not DATA.is_dir():
        pytest.skip(f"../shared/data not found at {DATA}")
    url, received = hook
    (tmp_path / "rebalancer.toml").write_text(CONFIG)
    settings = load_config(tmp_path / "rebalancer.toml")
    env = _env(tmp_path, url)

    # 1. the daemon runs; SIGKILL right after a paper fill whose outcome is not journaled yet
    first = _worker(tmp_path, env, "--pause-from", str(PAUSE_FROM))
    marker = tmp_path / "paused"
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        assert marker.exists(), "no order after the pause check"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_cid = marker.read_text().split()[1]
    url_db = f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}"
    j = open_journal(url_db, "paper:binance")
    try:
        assert [o.client_order_id for o in j.unresolved_intents()] == [killed_cid]
        cycles_before = len(j.cycle_details())
    finally:
        j.close()
    assert PAUSE_FROM <= cycles_before < CHECKS

    # 2. restart: the lock died with the process; the order is reconciled, the run finishes
    again = _worker(tmp_path, env)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert f"stopped after {CHECKS - cycles_before} checks" in out

    # nothing lost: every intent resolved, every paper order journaled once as a fill, and the
    # paper balances are the starting ones plus exactly the journaled fills
    j = open_journal(url_db, "paper:binance")
    try:
        assert j.unresolved_intents() == []
        rows = view.load_rows(j)
    finally:
        j.close()
    assert len(rows["cycles"]) == CHECKS
    fills = rows["fills"]
    paper_orders = paper_state(settings).orders()
    assert sorted(f["client_order_id"] for f in fills) == sorted(paper_orders)
    assert killed_cid in paper_orders
    [recovered] = [f for f in fills if f["client_order_id"] == killed_cid]
    assert recovered["source"].startswith("reconciled")
    replayed = expected_balances({"USDT": Decimal(10000)}, [view._fill(f) for f in fills], "USDT")
    balances = paper_state(settings).balances()
    assert balances is not None
    assert {a: v for a, v in replayed.items() if v} == {a: v for a, v in balances.items() if v}
    assert len({f["at"] for f in fills}) >= 3  # it traded more than once

    # notifications reached the loopback endpoint through apprise, from both runs
    titles = [m["title"] for m in received]
    assert titles.count("rebalancer started (paper)") == 2
    assert titles[-1] == "rebalancer stopped (paper)"
    assert sum(t.startswith("rebalanced:") for t in titles) >= 2

    # 3. `rebalancer report` from the journal
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(
        app, ["report", "-c", str(tmp_path / "rebalancer.toml"), "-o", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    summary = view.summary(rows, "USDT")
    assert summary.checks == CHECKS and summary.fills == len(fills)
    assert f"{summary.end_value:,.2f} USDT" in result.output
    page_html = (tmp_path / "report" / "report.html").read_text()
    assert f"{summary.end_value:,.2f} USDT" in page_html
    assert (tmp_path / "report" / "equity.png").read_bytes()[:4] == b"\x89PNG"

    # 4. the dashboard in a real headless browser
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: the rest passed; run scripts/browser.sh")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    weights = view.weights(rows, settings.strategy(), "USDT")
    reader = open_reader(settings)
    server = serve_in_thread(create_app(dashboard_for(settings, reader), TOKEN), "127.0.0.1", 0)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            try:
                page = browser.new_page()
                assert page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}").status == 200
                page.wait_for_selector("body[data-loaded]", timeout=15000)
                assert page.get_attribute("body", "data-loaded") == "yes"
                assert page.inner_text("#total-value") == f"{float(weights.total_value):,.2f} USDT"
                assert page.inner_text("#counts") == (
                    f"{summary.checks} / {summary.rebalances} / {summary.fills}"
                )
                assert page.inner_text("#daemon-state") == "stopped"
                other = browser.new_page()
                assert other.goto(f"http://127.0.0.1:{server.port}/api/status").status == 401
            finally:
                browser.close()
    finally:
        server.stop()
        reader.close()
