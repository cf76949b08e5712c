"""`config check` checks the target assets against the venue's market list (issue 14): the
cached whole list decides (a problem), the shipped excerpt warns, an unknown venue/quote is
"could not check"; the shipped snapshots hold what a README/demo/init user names. No network:
the online read goes through a keyless client double."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rebalancer import bootstrap
from rebalancer.cli.app import app
from rebalancer.config import parse_config
from rebalancer.config.assets import cache_path, check_assets, from_list, listing, shipped

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def check(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "rebalancer.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{text}')
    result = runner.invoke(app, ["config", "check", "-c", str(path), *args], env={"COLUMNS": "300"})
    return result.exit_code, re.sub(r"\s+", " ", result.output)


def market(base: str, quote: str) -> dict[str, Any]:
    """A CCXT spot market as ``load_markets`` gives it (only what the cache keeps)."""
    return {
        "symbol": f"{base}/{quote}", "base": base, "quote": quote, "spot": True,
        "active": True, "precision": {"amount": 1e-8, "price": 0.01}, "taker": 0.001,
        "maker": 0.001, "limits": {"amount": {"min": 0.0001}, "cost": {"min": 5}}, "info": {},
    }  # fmt: skip


class PublicDouble:
    """A keyless CCXT client that answers ``load_markets`` from memory."""

    precisionMode = 4  # TICK_SIZE

    def __init__(self, symbols: list[str]) -> None:
        self.markets = {s: market(*s.split("/")) for s in symbols}

    def load_markets(self) -> dict[str, Any]:
        return self.markets


def write_cache(tmp_path: Path, venue: str, symbols: list[str]) -> None:
    settings = parse_config(
        f'exchange = "{venue}"\nstate_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.5\nUSDT = 0.5\n"
    )
    listed = bootstrap.refresh_market_list(settings, lambda _: PublicDouble(symbols))
    assert listed is not None and "read_at" in listed
    assert cache_path(settings.state_dir, venue).is_file()


# --- the shipped snapshots ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "quote", "named", "absent"),
    [
        ("binance", "USDT", {"BTC", "ETH", "SOL", "BNB", "XRP"}, set()),
        ("kraken", "USD", {"BTC", "ETH", "SOL", "XRP"}, {"BNB"}),
        ("kraken", "USDT", {"BTC", "ETH", "SOL"}, {"BNB"}),
        ("coinbase", "USD", {"BTC", "ETH", "SOL", "XRP"}, {"BNB"}),
        ("coinbase", "USDT", {"BTC", "ETH", "SOL"}, {"BNB"}),
    ],
)
def test_each_snapshot_holds_the_assets_users_name_there(
    venue: str, quote: str, named: set[str], absent: set[str], tmp_path: Path
) -> None:
    found = listing(venue, quote, tmp_path)
    assert found is not None and not found.complete
    assert named <= found.bases and not absent & found.bases
    data = shipped(venue)
    assert data["listed_source"] and data["listed_read_on"] == "2026-12-04"


def test_the_demo_and_example_assets_are_in_the_binance_snapshot(tmp_path: Path) -> None:
    demo = {p.name.split("_")[0] for p in (ROOT / "src/rebalancer/demo_data").glob("*_USDT-1d.csv")}
    example = tomllib.loads((ROOT / "config.example.toml").read_text())["targets"]
    found = listing("binance", "USDT", tmp_path)
    assert found is not None and demo and demo | (set(example) - {"USDT"}) <= found.bases


def test_a_quote_the_snapshot_does_not_know_cannot_be_checked(tmp_path: Path) -> None:
    assert listing("kraken", "EUR", tmp_path) is None
    assert listing("binance", "USD", tmp_path) is None  # the snapshot holds no USD markets
    [note] = check_assets({"BTC": 1}, "EUR", "kraken", None)
    assert note.level == "note" and "could not check that kraken lists BTC/EUR" in note.rule


# --- config check -------------------------------------------------------------------------------


def test_the_readme_and_demo_configs_raise_no_alarm(tmp_path: Path) -> None:
    demo = "[targets]\nBTC = 0.4\nETH = 0.2\nSOL = 0.1\nBNB = 0.1\nXRP = 0.1\nUSDT = 0.1\n"
    code, out = check(tmp_path, demo)
    assert code == 0 and "config OK" in out and "warning" not in out, out
    assert "assets checked against the shipped binance snapshot (read 2026-12-04)" in out
    init = 'exchange = "kraken"\nquote = "USD"\n[targets]\nBTC = 0.6\nETH = 0.3\nUSD = 0.1\n'
    code, out = check(tmp_path, init)
    assert code == 0 and "warning" not in out and "could not check" not in out, out


def test_an_unknown_asset_is_warned_about_with_field_value_and_fix(tmp_path: Path) -> None:
    code, out = check(tmp_path, "[targets]\nBTC = 0.5\nFOO = 0.10\nSOLL = 0.1\nUSDT = 0.3\n")
    assert code == 0, out  # the shipped list is an excerpt: a warning, not an error
    assert "warning: targets.FOO: FOO/USDT is not among the 11 USDT markets" in out
    assert "found FOO = 0.10" in out and "`rebalancer config check --online`" in out
    assert 'targets.SOLL' in out and 'did you mean "SOL"?' in out
    assert "targets.BTC" not in out


def test_an_unchecked_quote_says_so_instead_of_a_false_alarm(tmp_path: Path) -> None:
    code, out = check(tmp_path, 'exchange = "kraken"\nquote = "EUR"\n[targets]\nBTC = 1\n')
    assert code == 0 and "assets not checked" in out and "warning" not in out, out
    assert "could not check that kraken lists BTC/EUR" in out


def test_the_cached_whole_list_decides_an_unknown_asset_is_a_problem(tmp_path: Path) -> None:
    write_cache(tmp_path, "binance", ["BTC/USDT", "ETH/USDT", "SOL/USDT", "WBTC/BTC"])
    code, out = check(tmp_path, "[targets]\nBTC = 0.5\nFOO = 0.10\nWBTC = 0.1\nUSDT = 0.3\n")
    assert code == 2, out
    assert "targets.FOO: binance lists no FOO/USDT market" in out
    assert "found FOO = 0.10" in out and "`rebalancer markets --list`" in out
    assert "targets.WBTC: binance lists no WBTC/USDT market (it trades WBTC against BTC)" in out
    assert "targets.BTC" not in out
    code, out = check(tmp_path, "[targets]\nBTC = 0.5\nSOL = 0.2\nUSDT = 0.3\n")
    assert code == 0 and "checked against binance's market list (cached, read" in out, out


def test_the_online_read_fills_the_cache_through_the_keyless_client(tmp_path: Path) -> None:
    write_cache(tmp_path, "kraken", ["BTC/USD", "ETH/USD"])
    found = listing("kraken", "USD", tmp_path / "state")
    assert found is not None and found.complete and found.bases == {"BTC", "ETH"}
    # the shipped excerpt knew SOL/USD: the whole list now decides instead
    [problem] = check_assets({"SOL": 1}, "USD", "kraken", found)
    assert problem.level == "problem" and problem.found == "SOL = 1"


def test_markets_list_shows_what_config_check_checks_against(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    path.write_text('exchange = "kraken"\nquote = "USD"\n[targets]\nBTC = 0.5\nUSD = 0.5\n')
    result = runner.invoke(app, ["markets", "--list", "--json", "-c", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["assets"] == ["BTC", "ETH", "SOL", "XRP"] and out["complete"] is False
    assert "shipped kraken snapshot" in out["source"]


def test_a_complete_list_without_the_quote_decides_too() -> None:
    data = {"read_at": "x", "read_on": "d", "markets": {"BTC/USDT": {}}}
    found = from_list("binance", "USD", data)
    assert found is not None and found.complete and not found.bases
    [problem] = check_assets({"BTC": 1}, "USD", "binance", found)
    assert "it trades BTC against USDT" in problem.rule
