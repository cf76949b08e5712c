"""`backtest`, `sweep` and `walk-forward` find the config like every other command:
-c, else REBALANCER_CONFIG, else ./rebalancer.toml, else the built-in default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rebalancer.backtest.grid import DEFAULT_FEES
from rebalancer.cli import backtest_cmd
from rebalancer.cli.app import app

runner = CliRunner()


def write(path: Path, asset: str) -> Path:
    path.write_text(f"[targets]\n{asset} = 0.5\nUSDT = 0.5\n")
    return path


def assets_backtested(out: Path) -> set[str]:
    result = runner.invoke(app, ["backtest", "--json", "--no-report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return set(json.loads(result.stdout)["data"]["files"])


def test_backtest_reads_the_config_of_the_folder_and_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REBALANCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "rebalancer.toml", "SOL")
    assert assets_backtested(tmp_path / "out") == {"SOL"}
    monkeypatch.setenv("REBALANCER_CONFIG", str(write(tmp_path / "env.toml", "ETH")))
    assert assets_backtested(tmp_path / "out") == {"ETH"}


def test_sweep_and_walk_forward_take_the_shared_config_option() -> None:
    for command in ("sweep", "walk-forward"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "REBALANCER_CONFIG" in result.output and "./rebalancer.toml" in result.output


def test_the_default_fees_option_matches_the_grid() -> None:
    assert [float(f) for f in backtest_cmd.DEFAULT_FEES_TEXT.split(",")] == list(DEFAULT_FEES)
