"""The CLI says which prices paper uses: `status` and `plan` before a run, `run` at start
(log and notification), `report` after; frozen candles come with a warning and its fix.

Offline throughout (the conftest sets REBALANCER_OFFLINE and guards the network): the
default ``prices = "auto"`` takes the embedded candles without any network attempt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()
FROZEN = "paper prices are frozen candles from the embedded Binance daily candles"


def config(tmp_path: Path, paper: str = "") -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n{paper}\n'
        "[targets]\nBTC = 0.5\nETH = 0.3\nUSDT = 0.2\n"
        "[paper]\ninitial_balances = { USDT = 10000 }\n"
    )
    return path


def flat(text: str) -> str:
    """The output on one line (rich wraps long lines at the terminal's width)."""
    return re.sub(r"\s+", " ", text)


def test_status_names_the_source_and_warns_about_frozen_prices(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    out = runner.invoke(app, ["status", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    text = flat(out.output)
    assert "prices: auto: frozen candles from the embedded Binance daily candles" in text
    assert f"WARNING: {FROZEN}" in text and "the bot is not seeing the market" in text
    assert "REBALANCER_OFFLINE is set" in text
    data = json.loads(runner.invoke(app, ["status", "-c", str(cfg), "--json"]).output)
    assert data["price_source"]["kind"] == "candles"
    assert data["price_source"]["setting"] == "auto"
    assert data["warnings"] and data["warnings"][0].startswith(FROZEN)


def test_plan_warns_too(tmp_path: Path) -> None:
    out = runner.invoke(app, ["plan", "-c", str(config(tmp_path))])
    assert out.exit_code == 0, out.output
    assert f"WARNING: {FROZEN}" in flat(out.output)


def test_run_warns_at_start_in_its_log(tmp_path: Path) -> None:
    out = runner.invoke(app, ["run", "-c", str(config(tmp_path)), "--once"])
    assert out.exit_code == 0, out.output
    log = (tmp_path / "state" / "logs" / "rebalancer.log").read_text()
    assert re.search(rf"WARNING .*{FROZEN}", log), log
    assert "warning: rebalancer started with a warning (paper)" in log  # the event, logged
    assert "paper · paper account" in log and "prices: auto: frozen candles" in log


def test_report_says_which_prices_the_run_traded_on(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert runner.invoke(app, ["rebalance", "-c", str(cfg), "--json"]).exit_code == 0
    argv = ["report", "-c", str(cfg), "--out", str(tmp_path / "report")]
    out = runner.invoke(app, argv, env={"COLUMNS": "250"})  # the table's cells unwrapped
    assert out.exit_code == 0, out.output
    text = flat(out.output)
    assert "paper prices" in text and "auto: frozen candles from the embedded" in text
    assert f"WARNING: {FROZEN}" in text
    html = (tmp_path / "report" / "report.html").read_text()
    assert "paper prices" in html and "frozen, the bot was not seeing the market" in html


def test_report_help_no_longer_advises_frozen_prices() -> None:
    text = flat(runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"}).output)
    assert "two weeks of paper trading before going live: on the market's live prices" in text
    assert 'prices = "auto"' in text


def test_the_demo_makes_no_network_attempt_even_when_allowed(
    monkeypatch: pytest.MonkeyPatch, _no_network: list[str]
) -> None:
    """The demo replays history: nothing on its path probes, with or without
    REBALANCER_OFFLINE (the conftest's guard records any attempt)."""
    monkeypatch.delenv("REBALANCER_OFFLINE")
    made: list[str] = []
    monkeypatch.setattr(
        "rebalancer.adapters.ccxt.public.public_client", lambda x: made.append(x)
    )
    out = runner.invoke(app, ["demo", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["bars"] > 400
    assert made == [] and _no_network == []
