"""Key safety at the command line: `keys check`, and what a live start demands.

The CCXT client the live wiring builds gets the Binance double (with its apiRestrictions
endpoint) mounted, so nothing touches the network.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from doubles.permissions import BinancePermissions
from rebalancer import bootstrap
from rebalancer.adapters import live
from rebalancer.adapters.ccxt.permissions import KeyRefused
from rebalancer.cli.app import app
from rebalancer.config import load_config

KEY, SECRET = "cli-binance-key-4b7e", "cli-binance-secret-c3d9"
runner = CliRunner()


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> Iterator[BinancePermissions]:
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    fake = BinancePermissions(KEY, SECRET, books={"BTCUSDT": ("60000", "60000.01")})
    real = live.make_client

    def make_client(*args: Any, **kw: Any) -> Any:
        client = real(*args, **kw)
        fake.mount(client)
        return client

    monkeypatch.setattr(live, "make_client", make_client)
    yield fake


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        f'mode = "live"\nstate_dir = "{tmp_path / "state"}"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n'
    )
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_keys_check_passes_a_trade_only_key(double: BinancePermissions, config: Path) -> None:
    code, out = run("keys", "check", "-c", str(config))
    assert code == 0, out
    assert "keys OK: trade-only" in out and KEY not in out and SECRET not in out
    code, out = run("keys", "check", "-c", str(config), "--json")
    data = json.loads(out)
    assert data["ok"] and data["keys"][0]["can_withdraw"] is False


def test_keys_check_refuses_a_key_that_can_withdraw(
    double: BinancePermissions, config: Path
) -> None:
    double.restrictions |= {"enableWithdrawals": True, "ipRestrict": False}
    code, out = run("keys", "check", "-c", str(config))
    assert code == 1 and "can WITHDRAW" in out and "--allow-withdrawals" in out
    assert "no IP whitelist" in out
    code, out = run("keys", "check", "-c", str(config), "--allow-withdrawals")
    assert code == 0 and "move funds" in out


def test_keys_check_without_keys_names_the_variables(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    code, out = run("keys", "check", "-c", str(config))
    assert code == 1 and "BINANCE_API_KEY" in out


def test_first_live_start_needs_an_explicit_confirmation_once(
    double: BinancePermissions, config: Path
) -> None:
    settings = load_config(config)
    with pytest.raises(bootstrap.LiveNotConfirmed, match="--i-understand"):
        bootstrap.build(settings, confirm_live=True)
    assert double.log == []  # nothing asked of the exchange before the confirmation
    rt = bootstrap.build(settings, confirm_live=True, first_live=True)
    rt.close()
    assert bootstrap.live_confirmed(settings)
    rt = bootstrap.build(settings, confirm_live=True)  # later starts need only --live
    rt.close()
    with pytest.raises(bootstrap.LiveNotConfirmed, match="--live to confirm"):
        bootstrap.build(settings)


def test_live_start_checks_the_keys(double: BinancePermissions, config: Path) -> None:
    settings = load_config(config)
    double.restrictions["enableInternalTransfer"] = True
    with pytest.raises(KeyRefused, match="TRANSFER"):
        bootstrap.build(settings, confirm_live=True, first_live=True)
    assert not bootstrap.live_confirmed(settings)  # refused: nothing remembered
    assert [r.path for r in double.log] == ["/sapi/v1/account/apiRestrictions"]
    rt = bootstrap.build(settings, confirm_live=True, first_live=True, allow_withdrawals=True)
    rt.close()


def test_rebalance_cli_asks_for_the_first_live_confirmation(
    double: BinancePermissions, config: Path
) -> None:
    code, out = run("rebalance", "-c", str(config), "--live")
    assert code == 1 and "first live start" in out and "--i-understand" in out
    code, out = run("keys", "check", "-c", str(config), "--i-understand")
    assert code == 0 and "first live start confirmed for live:binance" in out
    assert bootstrap.live_confirmed(load_config(config))


def test_status_and_plan_are_read_only_views_of_a_live_account(
    double: BinancePermissions, config: Path
) -> None:
    double.balances = {"BTC": Decimal("0.1"), "USDT": Decimal("1000")}
    code, out = run("status", "-c", str(config))
    assert code == 0, out
    assert "live" in out and "read-only" in out and "BTC" in out
    code, out = run("plan", "-c", str(config), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["mode"] == "live" and data["plan"] is not None  # BTC 86 % against 50 %
    assert double.placed() == []  # nothing sent
    assert not bootstrap.live_confirmed(load_config(config))  # a view confirms nothing


def test_a_read_only_runtime_refuses_to_trade(double: BinancePermissions, config: Path) -> None:
    rt = bootstrap.build(load_config(config), read_only=True)
    with pytest.raises(bootstrap.LiveNotConfirmed, match="read-only"):
        rt.cycle(force=True)
    rt.close()
    assert double.placed() == []


def test_live_without_keys_names_the_missing_keys_before_asking_to_confirm(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    for args in ([], ["--live"]):
        code, out = run("rebalance", "-c", str(config), *args)
        assert code == 1 and "BINANCE_API_KEY" in out, out
        assert "--i-understand" not in out and "Re-run with" not in out
    code, out = run("status", "-c", str(config))
    assert code == 1 and "BINANCE_API_KEY" in out


def test_live_flag_with_a_paper_config_is_refused(tmp_path: Path) -> None:
    paper = tmp_path / "paper.toml"
    paper.write_text(f'state_dir = "{tmp_path / "state"}"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n')
    for command in ("rebalance", "run"):
        code, out = run(command, "-c", str(paper), "--live")
        assert code == 1, out
        assert "--live was given" in out and 'mode = "paper"' in out and "drop --live" in out
    assert not (tmp_path / "state" / "journal.sqlite").exists()  # nothing ran
    # `run` set up its log handlers first: refused, it leaves none behind
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_rebalancer", False)]
