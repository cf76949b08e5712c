"""Numbers from the command line, the API and the config stay in range: each out-of-range
value is a clear error naming the option, the value and the fix (never a traceback, never a
run that "succeeds" on nonsense)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.config import bounds, parse_config
from rebalancer.core.errors import ConfigError, DataError

runner = CliRunner()
DEMO = Path(bounds.__file__).resolve().parents[1] / "demo_data"
NOW = datetime(2026, 1, 31, tzinfo=UTC)


def refused(args: list[str], *words: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "Traceback" not in text
    for word in words:
        assert word in text, text
    return text


@pytest.mark.parametrize(("fee", "hint"), [("1", "1 % is 0.01"), ("5", "5 % is 0.05")])
def test_backtest_refuses_a_fee_of_100_percent_or_more(tmp_path: Path, fee: str, hint: str) -> None:
    refused(["backtest", "--fee", fee, "--out", str(tmp_path)], "--fee must lie in [0, 1)", hint)


def test_walk_forward_refuses_a_percent_fee_and_an_absurd_capital(tmp_path: Path) -> None:
    refused(["walk-forward", "--fee", "5", "--out", str(tmp_path)], "--fee must lie in [0, 1)")
    refused(
        ["walk-forward", "--capital", "1e308", "--out", str(tmp_path)],
        "--capital must be more than 0 and at most 1e+15",
        "not 1e+308",
    )
    refused(["backtest", "--capital", "0", "--out", str(tmp_path)], "--capital must be more")


def test_sweep_checks_every_fee_of_its_list(tmp_path: Path) -> None:
    refused(["sweep", "--fee", "0.001,2", "--out", str(tmp_path)], "--fee must lie in [0, 1)")


def test_a_subnormal_price_in_the_candles_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.read_csv(DEMO / "BTC_USDT-1d.csv")
    frame.loc[100, ["open", "high", "low", "close"]] = 5e-324
    frame.to_csv(data / "BTC_USDT-1d.csv", index=False)
    config = tmp_path / "c.toml"
    config.write_text("[targets]\nBTC = 0.5\nUSDT = 0.5\n")
    args = ["backtest", "-c", str(config), "--data-dir", str(data), "--timeframe", "1d"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in text, text
    assert "BTC: close 5e-324" in text and "outside [1e-12, 1e+12]" in text
    with pytest.raises(DataError, match="mis-scaled"):
        bounds.check_prices({"ETH": [3000.0, 1e13]})
    bounds.check_prices({"PEPE": [1e-6, 2e-6]})  # a tiny real price is fine


def test_min_trade_beyond_any_real_amount_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rebalance\.min_trade: must be at most 1e"):
        parse_config("[targets]\nBTC = 0.5\nUSDT = 0.5\n[rebalance]\nmin_trade = 1e400\n")
    assert parse_config("[targets]\nBTC = 1\n[rebalance]\nmin_trade = 25\n")


def test_since_too_far_back_is_refused_in_history_and_report(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reaches back before the year 1"):
        bounds.since_time("99999999999d", NOW)
    assert bounds.since_time("3650d", NOW) == NOW - timedelta(days=3650)
    refused(["history", "--since", "99999999999d"], "--since: 99999999999d reaches back")
    refused(["report", "--since", "99999999999d", "--out", str(tmp_path)], "reaches back")
