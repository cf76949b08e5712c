"""`rebalancer markets`: the venue's rules for the configured assets, and the smallest leg."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.cli.markets_cmd import smallest_leg
from rebalancer.core.model import MarketRules

runner = CliRunner()


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{text}')
    return path


def test_kraken_markets_come_from_the_shipped_list_with_the_fee_in_the_quote(
    tmp_path: Path,
) -> None:
    path = _config(
        tmp_path, 'exchange = "kraken"\nquote = "USD"\n[targets]\nBTC = 0.6\nETH = 0.3\nUSD = 0.1\n'
    )
    result = runner.invoke(app, ["markets", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    btc = out["markets"]["BTC"]
    assert btc["symbol"] == "BTC/USD" and btc["fee_paid_in"] == "USD"
    assert D(btc["min_amount"]) > 0 and D(btc["taker_fee"]) > 0
    assert "shipped snapshot" in out["source"]
    text = runner.invoke(app, ["markets", "-c", str(path)])
    assert text.exit_code == 0 and "BTC/USD" in text.stdout and "smallest leg" in text.stdout


def test_binance_pays_fees_in_the_asset_and_a_made_up_market_is_labelled(tmp_path: Path) -> None:
    path = _config(tmp_path, "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n")
    result = runner.invoke(app, ["markets", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {m["fee_paid_in"] for m in out["markets"].values()} == {"BTC", "ETH", "SOL"}
    assert "MADE-UP fallback rules for SOL" in out["source"]


def test_the_smallest_leg_is_the_largest_floor() -> None:
    rules = MarketRules("X/USDT", "X", "USDT", D("0.1"), D("0.5"), D(5))
    assert smallest_leg(rules, D(100), D(10)) == D(50)  # 0.5 X at 100
    assert smallest_leg(rules, D(2), D(10)) == D(10)  # min_trade
    assert smallest_leg(rules, D(2), D(1)) == D(5)  # min notional
