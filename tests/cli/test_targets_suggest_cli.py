"""``targets suggest --json``: per-asset volatilities kept, targets rounded within the
constraints (the quote never below its floor)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.data.panel import load_demo_panel
from rebalancer.optimise.weights import ledoit_wolf

runner = CliRunner()


def test_suggest_json_keeps_each_asset_vol_and_the_cash_floor(tmp_path: Path) -> None:
    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
    )
    # inverse_vol over 60 days of the demo candles: rounding each weight to the nearest
    # 1e-6 gave 0.900001 to the risky assets and USDT 0.099999, under its 0.1 floor
    args = ["targets", "suggest", "-c", str(config), "--method", "inverse_vol"]
    result = runner.invoke(app, [*args, "--window", "60", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    suggested = {a: Decimal(v) for a, v in data["suggested"].items()}
    assert suggested["USDT"] == Decimal("0.1") and sum(suggested.values()) == 1
    closes = load_demo_panel().closes[["BTC", "ETH", "SOL"]].to_numpy(dtype=np.float64)
    cov, _ = ledoit_wolf(np.diff(np.log(closes[-61:]), axis=0))
    vols = np.sqrt(np.diag(cov) * 365)
    assert data["annual_vol"] == {
        a: float(v) for a, v in zip(["BTC", "ETH", "SOL"], vols, strict=True)
    }
    assert 0 < data["portfolio_annual_vol"] < max(vols)


def test_suggest_says_when_every_mix_loses(tmp_path: Path) -> None:
    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
    )
    # the demo candles' last 90 days: every asset lost on average
    closes = load_demo_panel().closes[["BTC", "ETH", "SOL"]].to_numpy(dtype=np.float64)
    assert (np.diff(np.log(closes[-91:]), axis=0).mean(axis=0) < 0).all()
    args = ["targets", "suggest", "-c", str(config), "--method", "max_sharpe"]
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert data["sharpe"] < 0 and data["proven"] == 1.0
    assert Decimal(data["suggested"]["ETH"]) == Decimal("0.9")  # the best single asset
    text = " ".join(runner.invoke(app, args).output.split())
    assert f"Sharpe ratio {data['sharpe']:.2f} a year" in text and "least bad" in text
