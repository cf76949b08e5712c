"""The paper state file: wrong values are clear errors, an unwritable folder too, and the
temp files of writers killed mid-write are cleaned up (issue 12, minors)."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rebalancer.adapters.state_file import StateFile
from rebalancer.bootstrap import build_paper, paper_state
from rebalancer.cli.app import app
from rebalancer.config import load_config
from rebalancer.core.errors import DataError

CONFIG = """
[targets]
BTC = 0.5
USDT = 0.5

[paper]
initial_balances = { BTC = 0.05, USDT = 1000 }
"""
FILL = {
    "client_order_id": "rb1",
    "asset": "BTC",
    "symbol": "BTC/USDT",
    "side": "buy",
    "amount": "0.01",
    "price": "40000",
    "cost": "400",
    "fee": "0.4",
    "fee_asset": "USDT",
    "status": "closed",
    "exchange_order_id": "",
}


def config_at(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(f'state_dir = "{state_dir}"\n{CONFIG}')
    return path


def without(data: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in data.items() if k != key}


WRONG: list[tuple[dict[str, Any], str]] = [
    ({"balances": {"BTC": "abc"}}, "balances.BTC = \"abc\": should be a valid decimal"),
    ({"balances": {"BTC": "NaN"}}, "balances.BTC = \"NaN\": should be a finite number"),
    ({"balances": {"BTC": "-5"}}, "balances.BTC = \"-5\": should be greater than or equal to 0"),
    ({"balances": ["BTC", "1"]}, "balances = [\"BTC\", \"1\"]: should be a valid dictionary"),
    ({"orders": {"rb1": without(FILL, "price")}}, "orders.rb1.price: missing"),
    ({"orders": {"rb1": {**FILL, "side": "hold"}}}, "orders.rb1.side = \"hold\""),
    ({"orders": {"rb1": {**FILL, "fee": "inf"}}}, "orders.rb1.fee = \"inf\""),
]


@pytest.mark.parametrize(("content", "says"), WRONG)
def test_a_state_file_with_wrong_values_is_a_clear_error(
    tmp_path: Path, content: dict[str, Any], says: str
) -> None:
    state = StateFile(tmp_path / "paper-binance.json")
    state.path.write_text(json.dumps(content))
    with pytest.raises(DataError) as caught:
        state.balances()
        state.orders()
    text = str(caught.value)
    assert str(state.path) in text and says in text, text
    assert "rebalancer paper reset" in text


def test_a_wrong_state_file_is_a_clear_error_from_the_cli(tmp_path: Path) -> None:
    config = config_at(tmp_path, tmp_path / "state")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "paper-binance.json").write_text('{"balances": {"BTC": "abc"}}')
    result = CliRunner().invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 1 and "balances.BTC" in result.output
    assert isinstance(result.exception, SystemExit)  # a clear error, not a traceback


def test_a_good_state_file_reads_back_what_was_written(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "paper-binance.json")
    content = {"balances": {"BTC": "0.5", "USDT": "0"}, "orders": {"rb1": FILL}}
    state.path.write_text(json.dumps(content))
    assert state.balances() == {"BTC": Decimal("0.5"), "USDT": Decimal(0)}
    (fill,) = state.orders().values()
    assert (fill.client_order_id, fill.amount, fill.fee) == ("rb1", Decimal("0.01"), Decimal("0.4"))


def test_an_unwritable_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be\n")
    config = config_at(tmp_path, blocker / "state")
    result = CliRunner().invoke(app, ["rebalance", "-c", str(config)])
    assert result.exit_code == 1, result.output
    assert "cannot write to the state folder" in result.output and "state_dir" in result.output
    assert not isinstance(result.exception, OSError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only folder anyway")
def test_a_read_only_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DataError, match="cannot write the state file"):
            StateFile(folder / "paper-binance.json").write({})
    finally:
        folder.chmod(0o700)


def test_orphaned_temp_files_are_removed_when_the_account_is_opened(tmp_path: Path) -> None:
    settings = load_config(config_at(tmp_path, tmp_path / "state"))
    folder = settings.state_dir
    folder.mkdir(parents=True)
    mine = [folder / ".paper-binance.json.tmp-k1ll3d", folder / ".paper-binance.json.tmp-x"]
    old_legacy = folder / ".state-abc123"
    fresh_legacy = folder / ".state-now"  # maybe another file's write in progress: kept
    others = folder / ".paper-kraken.json.tmp-busy"  # another account's: not ours to touch
    for path in [*mine, old_legacy, fresh_legacy, others]:
        path.write_text("{")
    an_hour_ago = time.time() - 3600
    os.utime(old_legacy, (an_hour_ago, an_hour_ago))

    build_paper(settings, lock=True).close()
    left = {p.name for p in folder.iterdir() if p.name.startswith(".")}
    assert left == {fresh_legacy.name, others.name}
    assert paper_state(settings).balances() == settings.paper.initial_balances


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "paper-binance.json")
    with pytest.raises(TypeError):
        state.write({"balances": object()})  # not JSON
    assert list(tmp_path.iterdir()) == []


def test_a_state_file_that_cannot_be_replaced_is_a_clear_error(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "paper-binance.json")
    state.path.mkdir()  # a folder where the file should be: the rename fails
    with pytest.raises(DataError, match=r"cannot write the state file .*paper-binance\.json"):
        state.write({"balances": {}})
    assert [p.name for p in tmp_path.iterdir()] == ["paper-binance.json"]
