"""Live wiring: one account, or several ``[accounts.NAME]`` joined into one portfolio."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer import bootstrap
from rebalancer.adapters.ccxt import CcxtExchange
from rebalancer.adapters.live import build_live, key_prefixes
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.config import parse_config
from rebalancer.core.errors import AuthError, ConfigError

BASE = """
mode = "live"
quote = "USDT"
[targets]
BTC = 0.5
USDT = 0.5
"""
ACCOUNTS = """
[accounts.main]
exchange = "binance"
[accounts.savings]
exchange = "binance"
sandbox = true
[accounts.kraken]
exchange = "kraken"
"""
NO_DOTENV = Path("no-such.env")


def test_one_account_without_accounts_table() -> None:
    settings = parse_config(BASE)
    env = {"BINANCE_API_KEY": "k-123456", "BINANCE_API_SECRET": "s-123456"}
    exchange, note = build_live(settings, env, NO_DOTENV)
    assert isinstance(exchange, CcxtExchange)
    assert exchange.client.apiKey == "k-123456"
    assert note.startswith("binance LIVE account")


def test_accounts_become_one_portfolio_with_keys_per_account() -> None:
    settings = parse_config(BASE + ACCOUNTS)
    assert key_prefixes(settings.accounts) == {
        "main": "main",  # two accounts on binance: named after the account
        "savings": "savings",
        "kraken": "kraken",  # the only kraken account: named after the exchange
    }
    env = {
        "MAIN_API_KEY": "main-key-1",
        "MAIN_API_SECRET": "main-secret-1",
        "SAVINGS_API_KEY": "save-key-1",
        "SAVINGS_API_SECRET": "save-secret-1",
        "KRAKEN_API_KEY": "kr-key-1",
        "KRAKEN_API_SECRET": "a3Jha2VuLXNlY3JldA==",
    }
    exchange, note = build_live(settings, env, NO_DOTENV)
    assert isinstance(exchange, MultiAccountExchange)
    assert list(exchange.accounts) == ["main", "savings", "kraken"]
    keys = {n: a.client.apiKey for n, a in exchange.accounts.items()}  # type: ignore[attr-defined]
    assert keys == {"main": "main-key-1", "savings": "save-key-1", "kraken": "kr-key-1"}
    savings = exchange.accounts["savings"]
    assert "testnet" in savings.client.urls["api"]["public"]  # type: ignore[attr-defined]
    assert "3 accounts as one portfolio" in note and "savings (binance sandbox)" in note


def test_missing_account_keys_name_the_variables() -> None:
    settings = parse_config(BASE + ACCOUNTS)
    with pytest.raises(AuthError, match="MAIN_API_KEY and MAIN_API_SECRET"):
        build_live(settings, {}, NO_DOTENV)


def test_bad_account_table_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + '[accounts."Main Account"]\nexchange = "binanse"\n')
    text = "\n".join(caught.value.problems)
    assert "account name" in text and "did you mean" in text


def test_execution_settings_reach_every_account() -> None:
    text = BASE + '[execution]\norder_type = "limit_ioc"\nmax_slippage = 0.005\n'
    settings = parse_config(text + ACCOUNTS)
    env = {
        f"{p}_{s}": f"{p.lower()}-{s.lower()}-1"
        for p in ("MAIN", "SAVINGS", "KRAKEN")
        for s in ("API_KEY", "API_SECRET")
    }
    exchange, _ = build_live(settings, env, NO_DOTENV)
    assert isinstance(exchange, MultiAccountExchange)
    for account in exchange.accounts.values():
        assert isinstance(account, CcxtExchange)
        assert (account.order_type, account.max_slippage) == ("limit_ioc", Decimal("0.005"))


def test_book_check_is_on_by_default_and_zero_turns_it_off() -> None:
    env = {"BINANCE_API_KEY": "k-123456", "BINANCE_API_SECRET": "s-123456"}
    default, _ = build_live(parse_config(BASE), env, NO_DOTENV)
    off, _ = build_live(parse_config(BASE + "[execution]\nmax_slippage = 0\n"), env, NO_DOTENV)
    assert isinstance(default, CcxtExchange) and isinstance(off, CcxtExchange)
    assert (default.max_slippage, off.max_slippage) == (Decimal("0.01"), None)


def test_limit_ioc_without_a_cap_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="limit_ioc"):
        parse_config(BASE + '[execution]\norder_type = "limit_ioc"\nmax_slippage = 0\n')


def test_several_accounts_share_one_journal_account_and_lock() -> None:
    settings = parse_config(BASE + ACCOUNTS)
    assert bootstrap.account_name(settings) == "live:accounts:kraken+main+savings"
    assert bootstrap.account_name(parse_config(BASE)) == "live:binance"
