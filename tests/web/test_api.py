"""The JSON API through FastAPI's TestClient, on a journal the paper daemon wrote."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rebalancer.adapters.journal import open_journal
from rebalancer.config import load_config
from rebalancer.config.secrets import DotenvExposed
from rebalancer.core.errors import ConfigError
from rebalancer.daemon import Heartbeat
from rebalancer.web import view
from rebalancer.web.app import Dashboard, create_app
from rebalancer.web.server import (
    MIN_TOKEN_CHARS,
    DaemonControls,
    StandaloneControls,
    dashboard_for,
    open_reader,
    web_token,
)
from web.paper_run import FOUR_H, START, PaperRun

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client(run: PaperRun, *, control: bool = False) -> tuple[TestClient, Any]:
    reader = open_reader(run.settings)
    controls = StandaloneControls(run.settings, reader, False) if control else None
    return TestClient(create_app(dashboard_for(run.settings, reader), TOKEN, controls)), reader


@pytest.fixture
def api(paper_run: PaperRun) -> Any:
    c, reader = client(paper_run)
    yield c
    reader.close()


def journal_rows(run: PaperRun) -> view.Rows:
    j = open_journal(run.journal_url, "paper:binance")
    try:
        return view.load_rows(j)
    finally:
        j.close()


# --- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/status", "/api/weights", "/api/equity", "/api/fills"])
def test_every_route_refuses_a_request_without_the_right_token(api: TestClient, path: str) -> None:
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get(path, params={"token": TOKEN + "x"}).status_code == 401
    refused = api.get(path, headers={"Authorization": "Basic " + TOKEN})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert api.get(path, headers=AUTH).status_code == 200
    assert api.get(path, params={"token": TOKEN}).status_code == 200


def test_a_missing_token_and_a_wrong_one_are_told_apart(api: TestClient) -> None:
    missing = api.get("/api/status").json()["detail"]
    wrong = api.get("/api/status", headers={"Authorization": "Bearer wrong"}).json()["detail"]
    assert missing.startswith("no token") and "?token=TOKEN" in missing
    assert wrong.startswith("wrong token") and "REBALANCER_WEB_TOKEN" in wrong
    assert api.get("/", params={"token": "nope"}).json()["detail"] == wrong


def test_the_page_is_self_contained(api: TestClient) -> None:
    page = api.get("/", params={"token": TOKEN}).text
    assert "<script>" in page and "<style>" in page
    assert "http://" not in page and "https://" not in page  # no CDN, nothing fetched outside
    assert "Bearer" in page  # the script sends the token as a header


def test_openapi_documents_every_route_and_needs_no_token(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/status",
        "/api/weights",
        "/api/equity",
        "/api/drift",
        "/api/summary",
        "/api/orders",
        "/api/fills",
        "/api/halts",
        "/api/resume",
        "/api/rebalance",
    } <= paths
    assert "WeightsOut" in schema["components"]["schemas"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert (schemes["APIKeyQuery"]["in"], schemes["APIKeyQuery"]["name"]) == ("query", "token")
    assert schema["paths"]["/api/weights"]["get"]["security"]
    assert api.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_token_comes_from_the_environment_or_dotenv_or_is_made(tmp_path: Path) -> None:
    assert web_token({"REBALANCER_WEB_TOKEN": TOKEN}, None) == (TOKEN, False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("REBALANCER_WEB_TOKEN=from-file-0123456789\n")
    dotenv.chmod(0o600)
    assert web_token({}, dotenv) == ("from-file-0123456789", False)
    made, fresh = web_token({}, tmp_path / "missing")
    assert fresh and len(made) >= 32
    assert web_token({}, None)[0] != made
    with pytest.raises(ValueError, match="token"):
        create_app(None, "")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [0o644, 0o620, 0o602])
def test_a_token_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("REBALANCER_WEB_TOKEN=planted-by-someone-else\n")
    dotenv.chmod(mode)
    with pytest.raises(DotenvExposed, match="chmod 600"):
        web_token({}, dotenv)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("REBALANCER_WEB_TOKEN=planted-by-someone-else\n")
    dotenv.chmod(0o600)
    os.chown(dotenv, 4242, 4242)
    with pytest.raises(DotenvExposed, match="owned by another user") as info:
        web_token({}, dotenv)
    assert "planted" not in str(info.value)


@pytest.mark.parametrize("value", ["", "   ", "x", "a" * (MIN_TOKEN_CHARS - 1)])
def test_a_blank_or_short_token_is_refused_with_a_clear_message(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"at least {MIN_TOKEN_CHARS}") as info:
        web_token({"REBALANCER_WEB_TOKEN": value}, None)
    assert "REBALANCER_WEB_TOKEN" in str(info.value)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"REBALANCER_WEB_TOKEN={value}\n")
    dotenv.chmod(0o600)
    with pytest.raises(ConfigError, match=re.escape(str(dotenv))):
        web_token({}, dotenv)
    assert web_token({"REBALANCER_WEB_TOKEN": "a" * MIN_TOKEN_CHARS}, None)[1] is False


def test_serve_reads_the_token_next_to_the_config_not_the_working_directory(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "rebalancer.toml").write_text("[targets]\nBTC = 0.5\nUSDT = 0.5\n")
    (conf / ".env").write_text("REBALANCER_WEB_TOKEN=the-owners-token-0123\n")
    (conf / ".env").chmod(0o600)
    (tmp_path / ".env").write_text("REBALANCER_WEB_TOKEN=planted-in-the-cwd-0123\n")  # cwd
    (tmp_path / ".env").chmod(0o600)
    settings = load_config(conf / "rebalancer.toml")
    assert web_token({}, settings.dotenv_path) == ("the-owners-token-0123", False)


# --- the numbers equal the journal's ---------------------------------------------------------


def test_status_shows_the_heartbeat_and_the_last_check(
    api: TestClient, paper_run: PaperRun
) -> None:
    st = api.get("/api/status", headers=AUTH).json()
    last = START + (paper_run.ticks - 1) * FOUR_H
    assert (st["mode"], st["account"], st["quote"]) == ("paper", "paper:binance", "USDT")
    assert st["checks"] == paper_run.ticks
    assert datetime.fromisoformat(st["last_check"]) == last
    assert st["halted"] is False and st["control"] is False
    hb = st["heartbeat"]
    assert hb["ticks"] == paper_run.ticks
    assert datetime.fromisoformat(hb["last_tick"]) == last
    assert hb["state"] == "stopped" and hb["next_tick"] is None
    rows = journal_rows(paper_run)
    assert D(st["total_value"]) == rows["cycles"][-1]["total_value"]


def test_weights_are_the_last_checks_holdings_at_its_prices(
    api: TestClient, paper_run: PaperRun
) -> None:
    w = api.get("/api/weights", headers=AUTH).json()
    last = journal_rows(paper_run)["cycles"][-1]
    assert datetime.fromisoformat(w["as_of"]) == last["at"]
    assert w["band"] == "band_abs 2.00%"
    by_asset = {a["asset"]: a for a in w["assets"]}
    assert set(by_asset) == {"BTC", "ETH", "SOL", "USDT"}
    for d in last["drift"]:
        a = by_asset[d["asset"]]
        assert D(a["target"]) == D(d["target"])
        if not w["after_trades"]:  # no trade at the last check: exactly its journaled drift
            assert D(a["amount"]) == D(d["amount"])
            assert D(a["weight"]) == pytest.approx(D(d["weight"]), abs=D("1e-12"))
        assert D(a["band_low"]) == D(d["target"]) - D("0.02")
        assert D(a["band_high"]) == D(d["target"]) + D("0.02")
        assert a["in_band"] == (D(a["band_low"]) <= D(a["weight"]) <= D(a["band_high"]))
    assert sum(D(a["weight"]) for a in w["assets"]) == pytest.approx(D(1), abs=D("1e-12"))
    assert D(w["total_value"]) == pytest.approx(last["total_value"], abs=D("1e-9"))


def test_holdings_after_a_trading_check_are_what_the_next_check_saw(paper_run: PaperRun) -> None:
    rows = journal_rows(paper_run)
    cycles, fills = rows["cycles"], rows["fills"]
    traded = [i for i, c in enumerate(cycles) if any(f["at"] == c["at"] for f in fills)]
    assert len(traded) >= 2, "the run should rebalance more than once"
    for i in traded:
        after = view.holdings_after(cycles[i], fills)
        seen = {a: D(v) for a, v in cycles[i + 1]["snapshot"]["balances"].items()}
        assert {a: v for a, v in after.items() if v} == {a: v for a, v in seen.items() if v}


def test_equity_and_buy_and_hold_of_the_starting_holdings(
    api: TestClient, paper_run: PaperRun
) -> None:
    eq = api.get("/api/equity", headers=AUTH).json()
    rows = journal_rows(paper_run)
    cycles = rows["cycles"]
    assert len(eq["points"]) == len(cycles) == paper_run.ticks
    # each check's value after its own trades: the journaled value less what they cost
    fills = rows["fills"]
    assert [D(p["value"]) for p in eq["points"]] == [view.value_after(c, fills) for c in cycles]
    traded = {f["at"] for f in fills}
    for p, c in zip(eq["points"], cycles, strict=True):
        assert (D(p["value"]) < c["total_value"]) == (c["at"] in traded)
    # the paper account starts in cash; its first check buys the targets: those are held
    start = {a: D(v) for a, v in eq["start_holdings"].items()}
    seen = {a: D(v) for a, v in cycles[1]["snapshot"]["balances"].items()}
    assert {a: v for a, v in start.items() if v} == {a: v for a, v in seen.items() if v}
    assert set(start) == {"BTC", "ETH", "SOL", "USDT"}
    for p, c in zip(eq["points"][1:], cycles[1:], strict=True):
        prices = {a: D(x) for a, x in c["snapshot"]["prices"].items()} | {"USDT": D(1)}
        assert D(p["hold"]) == sum(start[a] * prices[a] for a in start)
    # since: only the checks from then on, the first of them the new start
    later = api.get("/api/equity", headers=AUTH, params={"since": "2025-03-10"}).json()
    assert datetime.fromisoformat(later["start_at"]) == datetime(2025, 3, 10, tzinfo=UTC)
    assert len(later["points"]) == sum(1 for c in cycles if c["at"] >= later_start())
    assert api.get("/api/equity", headers=AUTH, params={"since": "yesterday"}).status_code == 422


def later_start() -> datetime:
    return datetime(2025, 3, 10, tzinfo=UTC)


def test_drift_history_is_each_checks_journaled_drift(api: TestClient, paper_run: PaperRun) -> None:
    dr = api.get("/api/drift", headers=AUTH).json()
    cycles = journal_rows(paper_run)["cycles"]
    assert [datetime.fromisoformat(t) for t in dr["times"]] == [c["at"] for c in cycles]
    for asset in ("BTC", "ETH", "SOL", "USDT"):
        journaled = [next(D(d["drift"]) for d in c["drift"] if d["asset"] == asset) for c in cycles]
        assert [D(x) for x in dr["drift"][asset]] == journaled
    assert D(dr["targets"]["BTC"]) == D("0.4")


def test_orders_fills_and_summary_equal_the_journal(api: TestClient, paper_run: PaperRun) -> None:
    rows = journal_rows(paper_run)
    fills = api.get("/api/fills", headers=AUTH, params={"limit": 1000}).json()
    assert len(fills) == len(rows["fills"]) >= 4
    newest = rows["fills"][-1]
    assert fills[0]["client_order_id"] == newest["client_order_id"]
    assert (D(fills[0]["cost"]), D(fills[0]["fee"])) == (newest["cost"], newest["fee"])
    orders = api.get("/api/orders", headers=AUTH, params={"limit": 2}).json()
    assert [o["client_order_id"] for o in orders] == [
        o["client_order_id"] for o in rows["orders"][::-1][:2]
    ]
    assert all(o["status"] == "filled" for o in orders)
    sm = api.get("/api/summary", headers=AUTH).json()
    assert sm["checks"] == paper_run.ticks
    assert sm["fills"] == len(rows["fills"])
    assert D(sm["fees"]) == sum(c["fees_quote"] for c in rows["cycles"])
    assert D(sm["traded"]) == sum(f["cost"] for f in rows["fills"])
    end = view.value_after(rows["cycles"][-1], rows["fills"])
    assert D(sm["end_value"]) == end
    assert D(sm["start_value"]) == rows["cycles"][0]["total_value"]
    assert sm["total_return"] == pytest.approx(float(end / rows["cycles"][0]["total_value"] - 1))
    assert sm["premium"] == pytest.approx(sm["total_return"] - sm["hold_return"])
    assert api.get("/api/halts", headers=AUTH).json() == []


# --- control -----------------------------------------------------------------------------------


def test_read_only_by_default_control_routes_are_refused(api: TestClient) -> None:
    for path in ("/api/resume", "/api/rebalance"):
        r = api.post(path, headers=AUTH)
        assert r.status_code == 403, r.text
        assert "control = true" in r.json()["detail"]
        assert api.post(path).status_code == 401  # the token is checked first


def test_control_resumes_a_halt_and_rebalances_now(paper_run: PaperRun, tmp_path: Path) -> None:
    run = paper_run.copy(tmp_path / "run")
    j = open_journal(run.journal_url, "paper:binance")
    j.record_halt("drawdown 16% beyond 15% in 24h", START + 200 * FOUR_H)
    j.close()
    c, reader = client(run, control=True)
    try:
        st = c.get("/api/status", headers=AUTH).json()
        assert st["halted"] and st["control"]
        assert st["halt"]["reason"] == "drawdown 16% beyond 15% in 24h"
        r = c.post("/api/resume", headers=AUTH, params={"note": "checked"})
        assert r.status_code == 200 and "resumed" in r.json()["detail"]
        assert c.get("/api/status", headers=AUTH).json()["halted"] is False
        halts = c.get("/api/halts", headers=AUTH).json()
        assert [(h["kind"], h["reason"]) for h in halts] == [
            ("resume", "checked"),
            ("halt", "drawdown 16% beyond 15% in 24h"),
        ]
        before = c.get("/api/status", headers=AUTH).json()["checks"]
        r = c.post("/api/rebalance", headers=AUTH)
        assert r.status_code == 200, r.text
        assert c.get("/api/status", headers=AUTH).json()["checks"] == before + 1
        # while another process holds the account (a daemon), rebalance is refused: 409
        held = open_journal(run.journal_url, "paper:binance", lock=True)
        try:
            r = c.post("/api/rebalance", headers=AUTH)
            assert r.status_code == 409 and "AlreadyRunning" in r.json()["detail"]
        finally:
            held.close()
    finally:
        reader.close()


def test_beside_the_daemon_rebalance_is_refused_and_resume_works(paper_run: PaperRun) -> None:
    reader = open_reader(paper_run.settings)
    try:
        dash: Dashboard = dashboard_for(paper_run.settings, reader)
        c = TestClient(create_app(dash, TOKEN, DaemonControls(reader)))
        r = c.post("/api/rebalance", headers=AUTH)
        assert r.status_code == 409 and "daemon in this process" in r.json()["detail"]
        r = c.post("/api/resume", headers=AUTH)
        assert r.json()["detail"] == "not halted: nothing to resume"
    finally:
        reader.close()


def test_a_stale_heartbeat_reads_not_responding(paper_run: PaperRun) -> None:
    reader = open_reader(paper_run.settings)
    try:
        beat = Heartbeat("paper", "every 4h", 1, START, ticks=3, next_tick=START + FOUR_H)
        dash = Dashboard(reader, None, "paper", "x", lambda: beat, lambda: START + 2 * FOUR_H)
        st = TestClient(create_app(dash, TOKEN)).get("/api/status", headers=AUTH).json()
        assert st["heartbeat"]["state"] == "not responding"
    finally:
        reader.close()


def test_an_empty_journal_serves_empty_answers(tmp_path: Path) -> None:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text('state_dir = "state"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n')
    from rebalancer.config import load_config

    settings = load_config(cfg)
    reader = open_reader(settings)
    try:
        c = TestClient(create_app(dashboard_for(settings, reader), TOKEN))
        st = c.get("/api/status", headers=AUTH).json()
        assert (st["checks"], st["last_check"], st["heartbeat"], st["halted"]) == (
            0,
            None,
            None,
            False,
        )
        w = c.get("/api/weights", headers=AUTH).json()
        assert (w["assets"], w["as_of"], w["band"]) == ([], None, "band_abs 5.00%")
        assert c.get("/api/equity", headers=AUTH).json()["points"] == []
        assert c.get("/api/drift", headers=AUTH).json()["times"] == []
        sm = c.get("/api/summary", headers=AUTH).json()
        assert (sm["checks"], sm["total_return"], sm["premium"]) == (0, None, None)
        assert c.get("/api/fills", headers=AUTH).json() == []
    finally:
        reader.close()


def test_the_first_rebalances_fees_show_after_the_first_check() -> None:
    """One check that bought the targets from 10,000 USDT and paid 10 USDT of fees: the
    strategy's return and buy-and-hold's are the same −0.1 %, not +0.00 % against −0.10 %."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    cycle = {
        "at": at,
        "total_value": D(10000),
        "fees_quote": D(10),
        "snapshot": {"quote": "USDT", "balances": {"USDT": "10000"}, "prices": {"BTC": "100000"}},
        "drift": [{"asset": "BTC", "target": "1", "drift": "-1", "weight": "0"}],
    }
    fill = {
        "at": at,
        "symbol": "BTC/USDT",
        "side": "buy",
        "amount": D("0.0999"),
        "cost": D("9990"),
        "fee": D(10),
        "fee_asset": "USDT",
        "price": D(100000),
    }
    sm = view.summary({"cycles": [cycle], "fills": [fill], "orders": [], "halts": []}, "USDT")
    assert sm.start_value == 10000 and sm.end_value == 9990
    assert sm.total_return == pytest.approx(-0.001) == sm.hold_return
    assert sm.premium == pytest.approx(0)


def test_a_since_too_far_back_is_a_422_naming_the_fix(api: Any) -> None:
    for path in ("/api/equity", "/api/drift", "/api/summary"):
        response = api.get(f"{path}?since=99999999999d", headers=AUTH)
        assert response.status_code == 422, (path, response.text)
        assert "before the year 1" in response.json()["detail"]


def test_serve_with_a_short_token_exits_with_the_fix_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from rebalancer.cli.app import app

    monkeypatch.setenv("REBALANCER_WEB_TOKEN", "x")
    result = CliRunner().invoke(app, ["serve"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in text
    assert "REBALANCER_WEB_TOKEN (from the environment) is 1 character long" in text
    assert f"at least {MIN_TOKEN_CHARS}" in text
