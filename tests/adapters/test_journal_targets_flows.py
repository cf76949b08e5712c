"""The journal's target changes and cash flows (revision 0002), on SQLite and PostgreSQL.

PostgreSQL: set REBALANCER_TEST_PG_URL (``scripts/dev test`` does); without it those skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.journal.schema import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    schema_differences,
)
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.flows import expected_balances
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.ports import TargetChange
from rebalancer.service import run_cycle
from rebalancer.web import view

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}
PG_URL = os.environ.get("REBALANCER_TEST_PG_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlJournal]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/journal.sqlite"
    elif not PG_URL:
        pytest.skip("REBALANCER_TEST_PG_URL is not set: run `scripts/dev test`")
    else:
        url = PG_URL
    j = open_journal(url, f"test:{uuid.uuid4().hex[:12]}")
    yield j
    j.close()


def test_upgrade_from_the_previous_head_keeps_the_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite"
    engine = make_engine(url)
    cfg = alembic_config()
    with engine.begin() as connection:  # a journal written before revision 0002
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
        connection.exec_driver_sql(
            "INSERT INTO halts (account, at, kind, reason) "
            "VALUES ('a', '2026-01-01 00:00:00', 'halt', 'old')"
        )
    assert current_revision(engine) == "0001"
    assert "flows" not in inspect(engine).get_table_names()
    engine.dispose()
    j = open_journal(url, "a")
    assert current_revision(j.engine) == head_revision() == "0005"
    assert j.history(kinds=["commands"]) == {"commands": []}  # revision 0004
    assert schema_differences(j.engine) == []
    assert j.halt_status().active is not None  # the old row survived
    assert j.latest_target_change() is None and j.history(kinds=["flows"]) == {"flows": []}
    with j.engine.begin() as connection:  # and it goes back down cleanly
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
    tables = inspect(j.engine).get_table_names()
    assert {"flows", "target_changes", "commands"}.isdisjoint(tables)
    j.close()


def test_target_changes_round_trip(journal: SqlJournal) -> None:
    assert journal.latest_target_change() is None
    new = {"BTC": D("0.45"), "ETH": D("0.35"), "USDT": D("0.20")}
    base = TargetChange(T0, "config", TARGETS, TARGETS, "configured", TARGETS, "risk_parity")
    change = TargetChange(
        T0 + timedelta(days=31), "risk_parity", TARGETS, new, "why", TARGETS, "risk_parity"
    )
    journal.record_target_change(base)
    journal.record_target_change(change)
    assert journal.latest_target_change() == change
    assert journal.target_changes() == [base, change]
    assert list(journal.latest_target_change().new) == ["BTC", "ETH", "USDT"]  # type: ignore[union-attr]
    assert journal.target_changes(since=T0 + timedelta(days=1)) == [change]
    [row] = journal.history(T0 + timedelta(days=1), ["targets"])["targets"]
    assert row["method"] == "risk_parity" and row["new"]["BTC"] == "0.45"


def test_flows_are_journaled_with_their_cycle_and_agree_with_the_performance(
    journal: SqlJournal,
) -> None:
    """A deposit and a withdrawal between cycles (the daemon's expected balances): each
    cycle journals its flows, and ``core.flows.performance`` over the journal finds the
    same ones (time, asset, amount, value)."""
    ex = PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"))
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))
    prices = [(D(40000), D(2000)), (D(42000), D(1900)), (D(41000), D(2100))]
    moves = [{}, {"USDT": D(1000)}, {"ETH": D("-0.5"), "USDT": D(-200)}]
    expected = None
    for i, ((btc, eth), move) in enumerate(zip(prices, moves, strict=True)):
        at = T0 + timedelta(days=i)
        ex.set_prices({"BTC": btc, "ETH": eth}, at)
        for asset, amount in move.items():
            ex.balances[asset] = ex.balances.get(asset, D(0)) + amount
        report = run_cycle(ex, journal, MemoryNotifier(), strategy, at, expected=expected)
        expected = expected_balances(report.snapshot.balances, report.fills, "USDT")
    rows = journal.history(kinds=["flows"])["flows"]
    got = [(r["at"], r["asset"], r["amount"], r["value"], r["quote"]) for r in rows]
    assert got == [
        (T0 + timedelta(days=1), "USDT", D(1000), D(1000), "USDT"),
        (T0 + timedelta(days=2), "ETH", D("-0.5"), D("-1050.0"), "USDT"),
        (T0 + timedelta(days=2), "USDT", D(-200), D(-200), "USDT"),
    ]
    loaded = view.load_rows(journal)
    perf = view.performance(loaded)
    assert sorted(perf.flows) == sorted(view.journaled_flows(loaded))
    assert view.unjournaled_flows(loaded, perf) == []
    assert perf.net_flows == sum((r["value"] for r in rows), D(0))


def test_the_memory_journal_keeps_flows_and_target_changes() -> None:
    journal = MemoryJournal()
    ex = PaperExchange("USDT", {"USDT": D(1000)}, D("0.001"))
    ex.set_prices({"BTC": D(100), "ETH": D(10)}, T0)
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(min_trade=D(1)))
    run_cycle(ex, journal, MemoryNotifier(), strategy, T0, expected={"USDT": D(900)})
    [flow] = journal.flows()
    assert (flow.at, flow.asset, flow.amount, flow.value) == (T0, "USDT", D(100), D(100))
    change = TargetChange(T0, "config", TARGETS, TARGETS, "", TARGETS, "min_variance")
    journal.record_target_change(change)
    assert journal.latest_target_change() == change


def test_the_dashboard_api_serves_the_journaled_flows_and_target_changes(tmp_path: Path) -> None:
    """/api/flows and /api/targets: the journal's rows, newest first, typed in the OpenAPI."""
    from fastapi.testclient import TestClient

    from rebalancer.web.app import Dashboard, create_app

    journal = open_journal(f"sqlite:///{tmp_path}/journal.sqlite", "paper:binance")
    ex = PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"))
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))
    ex.set_prices({"BTC": D(40000), "ETH": D(2000)}, T0)
    first = run_cycle(ex, journal, MemoryNotifier(), strategy, T0)
    ex.balances["USDT"] += D(500)  # a deposit the journal cannot explain
    expected = expected_balances(first.snapshot.balances, first.fills, "USDT")
    run_cycle(ex, journal, MemoryNotifier(), strategy, T0 + timedelta(days=1), expected=expected)
    new = {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")}
    for change in (
        TargetChange(T0, "config", TARGETS, TARGETS, "configured", TARGETS, "min_variance"),
        TargetChange(T0 + timedelta(days=2), "min_variance", TARGETS, new, "why", TARGETS, "mv"),
    ):
        journal.record_target_change(change)
    dash = Dashboard(journal, strategy, "paper", "paper:binance", lambda: None, lambda: T0)
    api = TestClient(create_app(dash, "t" * 32))
    auth = {"Authorization": "Bearer " + "t" * 32}
    assert api.get("/api/flows").status_code == 401
    [flow] = api.get("/api/flows", headers=auth).json()
    assert (flow["asset"], D(flow["amount"]), D(flow["value"])) == ("USDT", D(500), D(500))
    changes = api.get("/api/targets", headers=auth).json()
    assert [c["method"] for c in changes] == ["min_variance", "config"]  # newest first
    assert {a: D(w) for a, w in changes[0]["new"].items()} == new
    since = api.get("/api/targets", headers=auth, params={"since": "2026-01-02"}).json()
    assert len(since) == 1
    schema = api.get("/openapi.json").json()
    assert {"/api/flows", "/api/targets"} <= set(schema["paths"])
    assert {"FlowOut", "TargetChangeOut"} <= set(schema["components"]["schemas"])
    journal.close()
