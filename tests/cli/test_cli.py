"""The CLI through typer's test runner: every command, its JSON, its errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()

CONFIG = """
mode = "paper"
exchange = "binance"
quote = "USDT"

[targets]
BTC = 0.40
ETH = 0.30
SOL = 0.20
USDT = 0.10

[trigger]
kind = "threshold"
band_abs = 0.05

[rebalance]
min_trade = 10
slippage = 0.001

[fees]
taker = 0.001

[paper]
initial_balances = { BTC = 0.05, USDT = 1000 }
"""


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(CONFIG)
    return path


def test_status_json_reports_drift_and_decision(config: Path) -> None:
    code, out = run("status", "-c", str(config), "--json")
    assert code == 0, out
    data = json.loads(out)
    assets = {a["asset"]: a for a in data["assets"]}
    assert list(assets) == ["BTC", "ETH", "SOL", "USDT"]
    total = Decimal(data["total_value"])
    btc = assets["BTC"]
    assert Decimal(btc["value"]) == Decimal(btc["amount"]) * Decimal(btc["price"])
    assert Decimal(btc["weight"]) == Decimal(btc["value"]) / total
    assert Decimal(btc["drift"]) == Decimal(btc["weight"]) - Decimal("0.40")
    # ETH and SOL are held at zero: always out of band
    assert data["decision"]["fire"] is True
    assert {"ETH", "SOL"} <= set(data["decision"]["out_of_band"])
    assert "ETH held at 0" in data["decision"]["reason"]


def test_status_table(config: Path) -> None:
    code, out = run("status", "-c", str(config))
    assert code == 0, out
    assert "BTC" in out and "drift" in out and "fires" in out


def test_plan_sells_first_and_sends_nothing(config: Path) -> None:
    code, out = run("plan", "-c", str(config), "--json")
    assert code == 0, out
    orders = json.loads(out)["plan"]["orders"]
    sides = [o["side"] for o in orders]
    assert sides == sorted(sides, key=lambda s: s != "sell") and "buy" in sides
    # planning twice gives the same plan: nothing was executed
    _, out2 = run("plan", "-c", str(config), "--json")
    assert json.loads(out2)["plan"] == json.loads(out)["plan"]


def test_rebalance_then_status_is_in_band_and_persists(config: Path) -> None:
    code, out = run("rebalance", "-c", str(config), "--json")
    assert code == 0, out
    cycle = json.loads(out)
    assert cycle["fills"], "the drifted account must trade"
    after = {a["asset"]: Decimal(a["weight"]) for a in cycle["drift_after"]["assets"]}
    for asset, target in {"BTC": "0.4", "ETH": "0.3", "SOL": "0.2", "USDT": "0.1"}.items():
        assert abs(after[asset] - Decimal(target)) < Decimal("0.01"), (asset, after)
    code, out = run("status", "-c", str(config), "--json")
    status = json.loads(out)
    assert status["decision"]["fire"] is False
    code, out = run("rebalance", "-c", str(config), "--json")
    assert json.loads(out)["fills"] == []


def test_paper_reset_restores_initial_balances(config: Path) -> None:
    run("rebalance", "-c", str(config))
    code, out = run("paper", "reset", "-c", str(config))
    assert code == 0 and "reset" in out
    data = json.loads(run("status", "-c", str(config), "--json")[1])
    amounts = {a["asset"]: Decimal(a["amount"]) for a in data["assets"]}
    assert amounts == {"BTC": Decimal("0.05"), "ETH": 0, "SOL": 0, "USDT": Decimal(1000)}


def test_live_mode_needs_confirmation(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", "k")  # the keys are checked first, then the flag
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    config.write_text(CONFIG.replace('mode = "paper"', 'mode = "live"'))
    code, out = run("rebalance", "-c", str(config))
    assert code != 0
    assert "--live" in out
    assert "Traceback" not in out


def test_bad_config_names_field_value_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        CONFIG.replace("BTC = 0.40", "BTC = 0.35").replace("band_abs = 0.05", "band_abs = 1.5")
    )
    code, out = run("config", "check", "-c", str(bad))
    assert code == 2
    assert "targets" in out and "0.95" in out
    assert "band_abs" in out and "1.5" in out
    assert "Traceback" not in out


def test_config_check_and_show(config: Path) -> None:
    code, out = run("config", "check", "-c", str(config))
    assert code == 0 and "OK" in out
    code, out = run("config", "show", "-c", str(config))
    assert code == 0 and "BTC" in out


def test_demo_json_summary() -> None:
    code, out = run("demo", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["bars"] > 400
    assert s["rebalances"] >= 1 and s["orders"] >= 3
    assert 0 < s["fees"] < s["traded_value"]
    assert s["initial_value"] == pytest.approx(10000, rel=1e-6)
    assert s["final_value"] > 0 and s["buy_and_hold_final_value"] > 0


def test_every_command_has_help_with_an_example() -> None:
    for cmd in (
        ["status"],
        ["plan"],
        ["rebalance"],
        ["demo"],
        ["config", "check"],
        ["config", "show"],
        ["paper", "reset"],
    ):
        code, out = run(*cmd, "--help")
        assert code == 0, cmd
        assert "Example" in out, cmd


def test_status_shows_the_daemons_last_and_next_check(config: Path) -> None:
    data = json.loads(run("status", "-c", str(config), "--json")[1])
    assert data["daemon"] is None
    code, out = run("run", "-c", str(config), "--once")
    assert code == 0, out
    code, out = run("status", "-c", str(config), "--json")
    assert code == 0, out
    beat = json.loads(out)["daemon"]
    assert beat["ticks"] == 1 and beat["state"] == "stopped"
    assert beat["last_tick"] is not None
    code, out = run("status", "-c", str(config))
    assert "last check:" in out and "daemon (paper)" in out


def test_rebalance_with_limits_and_slices_shows_what_became_of_each(tmp_path: Path) -> None:
    """Paper trading learns no price range while a limit rests, so every post-only limit
    fills nothing and its rest goes at market under a new id; legs above slice_above are
    cut into slices of at most that notional."""
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        CONFIG
        + '\n[execution]\norder_type = "limit_inside"\nlimit_timeout = "5s"\nslice_above = 400\n'
    )
    code, out = run("rebalance", "-c", str(path), "--json")
    assert code == 0, out
    cycle = json.loads(out)
    limits = cycle["limits"]
    assert limits and all(Decimal(x["filled_as_maker"]) == 0 for x in limits)
    fills = {f["client_order_id"]: f for f in cycle["fills"]}
    for limit in limits:
        kind, fallback_id = limit["fallback"].split()
        assert kind == "market" and fallback_id in fills
        assert Decimal(fills[fallback_id]["amount"]) == Decimal(limit["amount"])
    assert len(limits) > len({x["symbol"] for x in limits})  # some legs were sliced
    for f in cycle["fills"]:
        assert Decimal(f["cost"]) <= 400 * Decimal("1.01"), f  # the cap at the planned price
    code, out = run("rebalance", "-c", str(path))
    assert code == 0, out  # in band now: nothing to describe, no error
    path.write_text(path.read_text().replace("slice_above = 400\n", ""))
    run("paper", "reset", "-c", str(path))
    code, out = run("rebalance", "-c", str(path))
    assert code == 0, out
    assert "filled as maker; the rest at market" in out


def test_an_asset_the_demo_data_lacks_names_the_user_side_fix(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        + CONFIG.replace("SOL = 0.20", "ADA = 0.20").replace("BTC = 0.05,", "")
    )
    code, out = run("status", "-c", str(path))
    assert code == 1, out
    assert "the embedded demo data has no ADA" in out
    assert "rebalancer data download --assets BTC,ETH,ADA --dir DIR" in " ".join(out.split())
    assert "shared" not in out  # no path of the repository's development layout


def test_config_check_names_defaults_that_matter_and_implausible_fees(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    path.write_text("[targets]\nBTC = 0.5\nUSDT = 0.5\n[fees]\ntaker = 0.1\n")
    code, out = run("config", "check", "-c", str(path))
    flat = " ".join(out.split())
    assert code == 0, out
    assert 'exchange is not set: the default "binance" is used' in flat
    assert 'quote is not set: the default "USDT"' in flat
    assert "fees.taker = 0.1 is 10 % per trade" in flat and "write 0.001" in flat
    assert "fees.maker" not in flat  # not written: it follows the taker's
    path.write_text('exchange = "kraken"\nquote = "USD"\n[targets]\nBTC = 0.5\nUSD = 0.5\n')
    code, out = run("config", "check", "-c", str(path))
    assert code == 0 and "note:" not in out and "warning:" not in out
