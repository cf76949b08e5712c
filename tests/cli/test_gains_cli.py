"""`rebalancer gains`: realised gains per year from the journal's fills, and the CSV export."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.bootstrap import journal
from rebalancer.cli.app import app
from rebalancer.config import load_config
from rebalancer.core.model import Fill, OrderRequest, Side
from rebalancer.ports import OrderOutcome

runner = CliRunner()
D = Decimal


def _record(config: Path, trades: list[tuple[datetime, str, Side, str, str]]) -> None:
    jr = journal(load_config(config))
    try:
        for at, cid, side, amount, price in trades:
            a, p = D(amount), D(price)
            order = OrderRequest("BTC", "BTC/USDT", side, a, p, a * p, a * p / 1000, cid)
            jr.record_intent(order, at)
            fill = Fill(cid, "BTC", "BTC/USDT", side, a, p, a * p, a * p / 1000, "USDT")
            jr.record_outcome(cid, OrderOutcome("filled", "exchange reply", fill), at)
    finally:
        jr.close()


def test_gains_per_year_and_exports(tmp_path: Path) -> None:
    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n'
        '[tax]\nmethod = "hifo"\n'
    )
    _record(
        config,
        [
            (datetime(2024, 1, 5, tzinfo=UTC), "b1", Side.BUY, "1", "100"),
            (datetime(2024, 2, 5, tzinfo=UTC), "b2", Side.BUY, "1", "300"),
            (datetime(2025, 3, 5, tzinfo=UTC), "s1", Side.SELL, "1", "250"),
        ],
    )
    koinly, lots = tmp_path / "koinly.csv", tmp_path / "lots.csv"
    args = ["gains", "-c", str(config), "--year", "2025", "--json"]
    result = runner.invoke(app, [*args, "--csv", str(koinly), "--disposals-csv", str(lots)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # HIFO closes the 300 lot (cost 300.3 with its fee): proceeds 250 - 0.25 fee
    assert data["method"] == "hifo"
    assert D(data["years"]["2025"]["net"]) == D("249.75") - D("300.3")
    rows = list(csv.DictReader(koinly.open()))
    assert [r["Sent Currency"] for r in rows] == ["BTC"]  # only 2025's fills: the sell
    assert rows[0]["Received Amount"] == "250" and rows[0]["Fee Currency"] == "USDT"
    assert list(rows[0])[:3] == ["Date", "Sent Amount", "Sent Currency"]
    disposals = list(csv.DictReader(lots.open()))
    assert [(r["Lot"], r["Gain"]) for r in disposals] == [("b2", "-50.55")]
    fifo = runner.invoke(app, ["gains", "-c", str(config), "--method", "fifo", "--json"])
    assert D(json.loads(fifo.output)["years"]["2025"]["net"]) == D("249.75") - D("100.1")
    bad = runner.invoke(app, ["gains", "-c", str(config), "--method", "avg"])
    assert bad.exit_code == 2 and "fifo, lifo, hifo" in bad.output


def test_tiny_amounts_are_written_without_an_exponent(tmp_path: Path) -> None:
    config = tmp_path / "rebalancer.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n')
    _record(
        config,
        [
            (datetime(2025, 1, 5, 9, 30, tzinfo=UTC), "b1", Side.BUY, "0.0000001", "60000"),
            (datetime(2025, 3, 5, 14, 7, tzinfo=UTC), "s1", Side.SELL, "0.0000001", "90000"),
        ],
    )
    koinly, lots = tmp_path / "koinly.csv", tmp_path / "lots.csv"
    args = ["gains", "-c", str(config), "--year", "2025", "--json"]
    result = runner.invoke(app, [*args, "--csv", str(koinly), "--disposals-csv", str(lots)])
    assert result.exit_code == 0, result.output
    exponent = re.compile(r"\d[eE][+-]?\d")
    for text in (result.output, koinly.read_text(), lots.read_text()):
        assert not exponent.search(text), text
    rows = list(csv.DictReader(koinly.open()))
    assert rows[0]["Received Amount"] == "0.0000001" and rows[0]["Date"] == "2025-01-05 09:30 UTC"
    assert D(rows[0]["Fee Amount"]) == D("0.0000001") * 60000 / 1000
    net = json.loads(result.output)["years"]["2025"]["net"]
    assert D(net) == D("0.009") - D("0.000009") - D("0.006") - D("0.000006")
