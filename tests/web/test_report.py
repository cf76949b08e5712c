"""``rebalancer report`` and ``serve`` / ``run --serve`` through the CLI.

The end-to-end case of the daemon issue: the paper daemon ran for 120 checks over real
history (the ``paper_run`` fixture), then ``rebalancer report`` writes the report, and the
dashboard's API serves the same numbers (the browser test checks the page itself).
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rebalancer.adapters.journal import open_journal
from rebalancer.cli.app import app
from rebalancer.logs import reset_logging
from rebalancer.web import view
from rebalancer.web.report import build_report, summary_rows
from rebalancer.web.server import create_app, dashboard_for, open_reader
from web.paper_run import START, PaperRun, run_paper_daemon

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("REBALANCER_") and key != "REBALANCER_OFFLINE":  # keep: no probe
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")


def test_since_periods_and_dates() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert view.parse_since("14d", now) == now - timedelta(days=14)
    assert view.parse_since("24h", now) == now - timedelta(hours=24)
    assert view.parse_since("2w", now) == now - timedelta(weeks=2)
    assert view.parse_since("2026-01-02", now) == datetime(2026, 1, 2, tzinfo=UTC)
    assert view.parse_since(None, now) is None
    with pytest.raises(Exception, match="period back from now such as 24h"):
        view.parse_since("two weeks", now)


def test_report_after_a_paper_daemon_run(paper_run: PaperRun, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["report", "-c", str(paper_run.config), "--since", "2025-03-01", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    j = open_journal(paper_run.journal_url, "paper:binance")
    try:
        rows = view.load_rows(j, START)
    finally:
        j.close()
    report = build_report(
        rows, paper_run.settings.strategy(), account="paper:binance", mode="paper", since=START
    )
    s = report.summary
    assert s.checks == paper_run.ticks and s.fills >= 4 and s.rebalances >= 2
    # printed: every headline number, as the report computes it from the journal
    for label, text in summary_rows(report):
        assert label in result.output
        assert text.split(" (")[0] in result.output, (label, text)
    assert f"{s.end_value:,.2f} USDT" in result.output
    assert "in band" not in result.output  # weights table: numbers, not page words
    assert re.search(r"BTC\s+│\s+\d+\.\d\d%\s+│\s+40\.00%", result.output)
    # written: the HTML (charts embedded) and the PNGs
    page = (out / "report.html").read_text()
    assert (out / "equity.png").read_bytes()[:8] == PNG
    assert (out / "drift.png").read_bytes()[:8] == PNG
    assert page.count("data:image/png;base64,") == 2
    assert f"{s.end_value:,.2f} USDT" in page and f"{s.hold_end_value:,.2f} USDT" in page
    assert page.count("<tr>") >= s.fills  # one row per trade
    # the dashboard serves the same numbers
    reader = open_reader(paper_run.settings)
    try:
        api = TestClient(create_app(dashboard_for(paper_run.settings, reader), "t"))
        served = api.get("/api/summary", params={"since": "2025-03-01", "token": "t"}).json()
    finally:
        reader.close()
    assert served["checks"] == s.checks and served["fills"] == s.fills
    assert served["end_value"] == str(s.end_value)
    assert served["hold_end_value"] == str(s.hold_end_value)
    assert served["total_return"] == pytest.approx(s.total_return)


def test_report_since_a_period_with_no_checks_says_so(paper_run: PaperRun, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "-c", str(paper_run.config), "--since", "14d", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output  # the run's checks are in 2025: none since
    assert "no checks journaled in this period" in result.output
    assert (tmp_path / "report.html").is_file()
    bad = CliRunner().invoke(app, ["report", "-c", str(paper_run.config), "--since", "soon"])
    assert bad.exit_code == 2 and "since" in bad.output


def test_report_shows_halts(tmp_path: Path) -> None:
    run = run_paper_daemon(tmp_path / "run", ticks=8)
    j = open_journal(run.journal_url, "paper:binance")
    j.record_halt("drawdown 16% beyond 15% in 24h", START + timedelta(hours=30))
    j.close()
    result = CliRunner().invoke(app, ["report", "-c", str(run.config), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "drawdown 16% beyond 15% in 24h" in result.output
    assert "drawdown 16% beyond 15% in 24h" in (tmp_path / "r" / "report.html").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_serve_starts_the_dashboard_beside_the_daemon(tmp_path: Path) -> None:
    cfg = tmp_path / "rebalancer.toml"
    port = free_port()
    cfg.write_text(
        f'state_dir = "state"\n[targets]\nBTC = 0.5\nETH = 0.3\nUSDT = 0.2\n[web]\nport = {port}\n'
    )
    try:
        result = CliRunner().invoke(app, ["run", "-c", str(cfg), "--once", "--serve"])
    finally:
        reset_logging()
    assert result.exit_code == 0, result.output
    assert re.search(rf"dashboard: http://127\.0\.0\.1:{port}/\?token=\S{{20,}}", result.output)
    assert "read-only" in result.output
    with socket.socket() as s:  # stopped with the daemon: the port is free again
        s.bind(("127.0.0.1", port))


def test_serve_help_and_config_section() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "REBALANCER_WEB_TOKEN" in result.output
    from rebalancer.config import parse_config

    web = parse_config("[targets]\nBTC = 1\n").web
    assert (web.host, web.port, web.control) == ("127.0.0.1", 8765, False)
    with pytest.raises(Exception, match="port"):
        parse_config("[targets]\nBTC = 1\n[web]\nport = 0\n")
    with pytest.raises(Exception, match="contrl"):
        parse_config("[targets]\nBTC = 1\n[web]\ncontrl = true\n")


def _cycle(at: datetime, balances: dict[str, str], btc: str) -> dict[str, object]:
    return {
        "at": at,
        "total_value": "0",
        "fees_quote": "0",
        "snapshot": {"quote": "USDT", "balances": balances, "prices": {"BTC": btc}},
        "drift": [{"asset": "BTC", "target": "0.5", "drift": "0", "weight": "0.5"}],
    }


def test_the_report_separates_a_deposit_from_performance(tmp_path: Path) -> None:
    """1000 USDT + 0.01 BTC at 100000 (2000); BTC +10 % (2100); then 1000 USDT deposited and
    BTC back to 100000 (3000 with the deposit): the deposit is a flow, not a gain."""
    from rebalancer.web.report import render_html

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows: view.Rows = {
        "cycles": [
            _cycle(t0, {"USDT": "1000", "BTC": "0.01"}, "100000"),
            _cycle(t0 + timedelta(days=1), {"USDT": "1000", "BTC": "0.01"}, "110000"),
            _cycle(t0 + timedelta(days=2), {"USDT": "2000", "BTC": "0.01"}, "100000"),
        ],
        "fills": [],
        "orders": [],
        "halts": [],
    }
    report = build_report(rows, None, account="paper:binance", mode="paper", since=None)
    p = report.performance
    assert (p.start_value, p.end_value, p.net_flows) == (2000, 3000, 1000)
    assert p.pnl == 0  # what is left once the deposit is taken out
    # 2000 -> 2100 (+5 %), then (3000 - 1000) / 2100 - 1 = -4.76 %: about -0.0 % in all
    assert float(p.twr) == pytest.approx(2100 / 2000 * 2000 / 2100 - 1)
    [(at, asset, amount, value)] = p.flows
    assert (at, asset, amount, value) == (t0 + timedelta(days=2), "USDT", 1000, 1000)
    rows_text = dict(summary_rows(report))
    assert rows_text["deposits − withdrawals"] == "+1,000.00 USDT (1 flows)"
    assert rows_text["gain excluding flows"] == "+0.00 USDT"
    assert rows_text["time-weighted return (flows taken out)"] == "+0.00%"
    page = render_html(report, {})
    assert "Deposits and withdrawals (1)" in page and "deposit" in page and "+1,000.00" in page


def test_the_printed_report_has_the_time_weighted_return(
    paper_run: PaperRun, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["report", "-c", str(paper_run.config), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "time-weighted return (flows taken out)" in result.output
    assert "deposits − withdrawals" in result.output and "(0 flows)" in result.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert (
        "time-weighted return (flows taken out)" in page and "Deposits and withdrawals (0)" in page
    )


def test_the_journal_report_escapes_markup_in_names_and_reasons() -> None:
    """The report is rendered by the template engine with autoescape on: an account name,
    an asset and a halt reason carrying a <script> are shown as text."""
    from rebalancer.web.report import render_html

    evil = "<script>alert(1)</script>"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cycle = _cycle(t0, {"USDT": "1000", f"BTC{evil}": "0.01"}, "100000")
    cycle["drift"] = [{"asset": f"BTC{evil}", "target": "0.5", "drift": "0", "weight": "0.5"}]
    rows: view.Rows = {
        "cycles": [cycle],
        "fills": [],
        "orders": [],
        "halts": [{"at": t0, "kind": "halt", "reason": f"drawdown {evil}"}],
    }
    report = build_report(rows, None, account=f"paper{evil}", mode="paper", since=None)
    page = render_html(report, {f"equity{evil}": PNG})
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
