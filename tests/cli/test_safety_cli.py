"""`rebalancer history` and `rebalancer resume`, and `rebalance` through the SQL journal."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rebalancer.bootstrap import build, journal
from rebalancer.cli.app import app
from rebalancer.config import load_config

runner = CliRunner()

CONFIG = """
[targets]
BTC = 0.40
ETH = 0.30
SOL = 0.20
USDT = 0.10

[paper]
initial_balances = { BTC = 0.05, USDT = 1000 }
"""


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{CONFIG}')
    return path


def test_rebalance_journals_the_cycle_and_history_exports_it_as_csv(
    config: Path, tmp_path: Path
) -> None:
    code, out = run("rebalance", "-c", str(config), "--force", "--json")
    assert code == 0, out
    fills = json.loads(out)["fills"]
    assert fills
    assert (tmp_path / "state" / "journal.sqlite").exists()

    target = tmp_path / "out.csv"
    code, out = run("history", "-c", str(config), "--csv", str(target))
    assert code == 0, out
    rows = list(csv.DictReader(target.open()))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("cycles") == 1 and kinds.count("orders") == len(fills)
    assert kinds.count("fills") == len(fills)
    csv_fills = [r for r in rows if r["kind"] == "fills"]
    assert {r["client_order_id"] for r in csv_fills} == {f["client_order_id"] for f in fills}
    assert sum(Decimal(r["fee"]) for r in csv_fills) == sum(Decimal(f["fee"]) for f in fills)
    assert all(r["source"] == "exchange reply" for r in csv_fills)
    assert "fees:" in run("history", "-c", str(config))[1]


def test_history_json_filters_by_kind_and_time(config: Path) -> None:
    assert run("rebalance", "-c", str(config), "--force")[0] == 0
    code, out = run("history", "-c", str(config), "--kind", "fills", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"account", "fills"} and data["account"] == "paper:binance"
    assert data["fills"] and all(Decimal(f["cost"]) > 0 for f in data["fills"])
    code, out = run("history", "-c", str(config), "--since", "2999-01-01", "--json")
    assert code == 0 and all(json.loads(out)[k] == [] for k in ("cycles", "orders", "fills"))


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--kind", "trades"), "--kind: must be one of"), (("--since", "yesterday"), "--since:")],
)
def test_history_reports_bad_options_clearly(
    config: Path, args: tuple[str, str], message: str
) -> None:
    code, out = run("history", "-c", str(config), *args)
    assert code == 2 and message in out and "Traceback" not in out


def test_a_halt_blocks_rebalance_until_resume_lifts_it(config: Path) -> None:
    settings = load_config(config)
    j = journal(settings)
    j.record_halt("portfolio value fell 20 % within 24 h", datetime.now(UTC))
    j.close()

    code, out = run("rebalance", "-c", str(config), "--force", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["fills"] == [] and "halted since" in data["stopped"]

    code, out = run("resume", "-c", str(config), "--note", "checked")
    assert code == 0 and "resumed" in out and "fell 20 %" in out
    code, out = run("resume", "-c", str(config))
    assert code == 0 and "not halted" in out

    code, out = run("rebalance", "-c", str(config), "--force", "--json")
    assert code == 0 and json.loads(out)["fills"]
    halts = json.loads(run("history", "-c", str(config), "--kind", "halts", "--json")[1])["halts"]
    assert [(h["kind"], h["reason"]) for h in halts][-1] == ("resume", "checked")


def test_rebalance_refuses_while_another_instance_holds_the_account(config: Path) -> None:
    held = build(load_config(config), lock=True)
    try:
        code, out = run("rebalance", "-c", str(config), "--force")
        assert code == 1 and "one instance per account" in out
        assert run("status", "-c", str(config))[0] == 0  # reading needs no lock
    finally:
        held.close()
    assert run("rebalance", "-c", str(config), "--force")[0] == 0


@pytest.mark.parametrize("command", ["history", "resume"])
def test_help_has_an_example(command: str) -> None:
    code, out = run(command, "--help")
    assert code == 0 and "Example:" in out


def test_status_shows_whether_trading_is_halted(config: Path) -> None:
    code, out = run("status", "-c", str(config), "--json")
    assert code == 0 and json.loads(out)["halted"] is None
    assert "not halted" in run("status", "-c", str(config))[1]
    j = journal(load_config(config))
    j.record_halt("portfolio value fell 20 % within 24 h", datetime(2026, 3, 1, tzinfo=UTC))
    j.close()
    code, out = run("status", "-c", str(config), "--json")
    halted = json.loads(out)["halted"]
    assert code == 0 and halted["reason"].startswith("portfolio value fell 20 %")
    assert halted["at"].startswith("2026-03-01")
    code, out = run("status", "-c", str(config))
    assert code == 0 and "HALTED" in out and "rebalancer resume" in out
    assert run("resume", "-c", str(config))[0] == 0
    assert json.loads(run("status", "-c", str(config), "--json")[1])["halted"] is None


def test_paper_orders_survive_a_crash_and_are_reconciled(config: Path) -> None:
    """The paper account keeps its orders in its state file: after a crash between the fill
    and the journal's outcome, the next start finds the order by its client id."""
    from rebalancer.core.model import OrderRequest, Side
    from rebalancer.service import reconcile

    settings = load_config(config)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.SELL, Decimal("0.01"), Decimal(1), Decimal(1), Decimal(0), "rb-x1"
    )
    rt = build(settings, lock=True)
    rt.journal.record_intent(order, now)
    fill = rt.exchange.create_market_order(order)
    rt.close()  # the process dies here: the outcome never reached the journal

    rt = build(settings, lock=True)
    try:
        assert [o.client_order_id for o in rt.journal.unresolved_intents()] == ["rb-x1"]
        report = reconcile(rt.exchange, rt.journal, now)
        assert report.clear and report.resolved["rb-x1"].source == "reconciled: filled"
        assert report.resolved["rb-x1"].fill == fill
        assert rt.journal.unresolved_intents() == []
    finally:
        rt.close()
