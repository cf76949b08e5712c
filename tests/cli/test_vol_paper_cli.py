"""Paper mode feeds the candles' daily closes to a volatility-scaled band."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()


def test_status_uses_the_price_history(tmp_path: Path) -> None:
    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.5\nETH = 0.4\nUSDT = 0.1\n"
        '[trigger]\nkind = "vol_threshold"\nhalf_life = 10\nfloor = 0.01\ncap = 0.3\n'
        "[rebalance]\ncost_aware = true\nrisk_aversion = 0.5\n"
        "[paper]\ninitial_balances = { USDT = 1000, BTC = 0.001 }\n"
    )
    result = runner.invoke(app, ["status", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert "vol-scaled band" in data["trigger"]
    assert data["decision"]["fire"]  # ETH held at 0
    assert "no price history" not in data["decision"]["reason"]


def test_targets_suggest_respects_the_constraints(tmp_path: Path) -> None:
    from decimal import Decimal

    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
    )
    args = ["targets", "suggest", "-c", str(config), "--method", "min_variance"]
    result = runner.invoke(app, [*args, "--max-weight", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    suggested = {a: Decimal(v) for a, v in data["suggested"].items()}
    assert sum(suggested.values()) == 1 and suggested["USDT"] == Decimal("0.1")
    assert all(v <= Decimal("0.5") for v in suggested.values())
    assert data["current"]["BTC"] == "0.4" and 0 <= data["shrinkage"] <= 1
    capped = runner.invoke(app, [*args, "--max-turnover", "0.05", "--json"])
    assert json.loads(capped.output)["turnover"] <= 0.05 + 1e-9
    bad = runner.invoke(app, ["targets", "suggest", "-c", str(config), "--max-weight", "0.2"])
    assert bad.exit_code == 2 and "cannot share" in bad.output


def test_new_commands_have_help_with_an_example() -> None:
    for cmd in (["gains"], ["targets", "suggest"]):
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, cmd
        assert "Example" in result.output, cmd
