"""Every file or JSON text meant for another program writes Decimals without an exponent
(``str(Decimal("0.0000001"))`` is ``1E-7``, which tax tools and spreadsheets misread), and the
Koinly export dates rows as its importer documents (``YYYY-MM-DD HH:MM UTC``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from rebalancer.adapters.state_file import StateFile
from rebalancer.cli.flows_cmd import flow_rows
from rebalancer.cli.render import to_json
from rebalancer.cli.safety_cmd import _text
from rebalancer.core.lots import Disposal, TimedFill
from rebalancer.core.model import Fill, Side
from rebalancer.core.numbers import plain
from rebalancer.core.tax_export import disposal_rows, koinly_rows
from rebalancer.service import report

EXPONENT = re.compile(r"\d[eE][+-]?\d")
AT = datetime(2025, 3, 5, 14, 7, 42, tzinfo=UTC)
# 0.0005 BTC bought at 60000 with a 0.1 % fee taken in BTC: 5E-7 BTC
TINY = Fill(
    "c1", "BTC", "BTC/USDT", Side.BUY, D("0.0005"), D("60000"), D("30.0000"), D("5E-7"), "BTC"
)


def test_plain_writes_every_digit_without_an_exponent() -> None:
    assert str(D("1E-7")) == "1E-7"  # what the writers used to produce
    assert plain(D("1E-7")) == "0.0000001"
    assert plain(D("1.23E-12")) == "0.00000000000123"
    assert plain(D("1E+3")) == "1000"
    assert plain(D("0.100")) == "0.100"
    assert D(plain(D("12345.6789E-20"))) == D("12345.6789E-20")


def test_koinly_rows_plain_amounts_and_the_documented_date() -> None:
    sell = Fill(
        "c2", "BTC", "BTC/USDT", Side.SELL, D("1E-7"), D("60000"), D("0.006"), D("0.000006"), "USDT"
    )
    rows = koinly_rows([TimedFill(AT, TINY, "USDT"), TimedFill(AT, sell, "USDT")])
    assert rows[0]["Fee Amount"] == "0.0000005" and rows[0]["Received Amount"] == "0.0005"
    assert rows[1]["Sent Amount"] == "0.0000001" and rows[1]["Fee Amount"] == "0.000006"
    assert all(not EXPONENT.search(v) for r in rows for v in r.values())
    assert rows[0]["Date"] == "2025-03-05 14:07 UTC"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", rows[1]["Date"])


def test_disposal_rows_plain_amounts() -> None:
    d = Disposal("b1", "BTC", D("1E-8"), D("0.0006"), D("0.0005"), AT, AT)
    (row,) = disposal_rows([d])
    assert row["Amount"] == "0.00000001"


def test_json_and_csv_writers_of_the_cli_and_service() -> None:
    assert json.loads(to_json({"fee": D("5E-7")})) == {"fee": "0.0000005"}
    assert report.fill_dict(TINY)["fee"] == "0.0000005"
    assert _text(D("1E-9")) == "0.000000001"
    rows = flow_rows(
        [{"at": AT, "asset": "BTC", "amount": D("1E-7"), "value": D("6E-3"), "quote": "USDT"}]
    )
    assert rows[0]["amount"] == "0.0000001" and rows[0]["value"] == "0.006"


def test_state_file_writes_plain_decimals_and_reads_them_back(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    state.save_account({"BTC": D("1E-7"), "USDT": D("1E+2")}, {"c1": TINY})
    text = (tmp_path / "state.json").read_text()
    assert not EXPONENT.search(text)
    assert state.balances() == {"BTC": D("1E-7"), "USDT": D("100")}
    assert state.orders() == {"c1": TINY}
