"""Bad input: a corrupt or locked journal, malformed configs, unknown symbols, NaN / zero /
negative prices, a ticker without a timestamp. Each is refused with a clear error before any
order is sent; where the account is usable afterwards, the next cycle trades normally. The
matrix's invariants are checked after every case."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faults.harness import (
    ACCOUNT,
    KEY,
    SECRET,
    TALLY,
    FaultDouble,
    World,
    exchange_for,
    finish,
    make_world,
    strategy,
)
from rebalancer.adapters.journal import AlreadyRunning, open_journal
from rebalancer.config import load_config
from rebalancer.core.errors import ConfigError, DataError, RebalancerError, RetryLater

SRC = Path(__file__).resolve().parents[2] / "src"


def refused(world: World, error: type[Exception], match: str) -> None:
    """The next cycle fails with ``error`` (message matching ``match``) and sends nothing."""
    with pytest.raises(error, match=match):
        world.cycle(0)
    assert world.double.placed() == []


# -- the journal --------------------------------------------------------------------------------


def test_corrupt_journal_is_refused_before_any_request(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite"
    db.write_bytes(b"this is not a database\x00" * 64)
    double = FaultDouble()
    exchange_for(double, [])
    with pytest.raises(DataError, match="cannot open the journal") as info:
        open_journal(f"sqlite:///{db}", ACCOUNT, lock=True)
    assert str(db) in str(info.value)
    # the bot stops at start-up: the exchange was never asked anything, the key never shown
    assert double.log == [] and double.orders == []
    assert KEY not in str(info.value) and SECRET not in str(info.value)
    TALLY.cases += 1
    TALLY.invariants += 3  # no order sent, ledger untouched, no secret in the error
    TALLY.names["corrupt journal"] += 1


def test_account_locked_by_another_process(tmp_path: Path) -> None:
    """Another live process holds the account: refused; its death frees the lock."""
    url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    holder = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(SRC)!r})
        from rebalancer.adapters.journal import open_journal
        j = open_journal({url!r}, {ACCOUNT!r}, lock=True)
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match="one instance per account"):
            open_journal(url, ACCOUNT, lock=True)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    world = make_world(tmp_path)  # the lock went with the process
    world.cycle(0)
    finish(world, "account locked by another process")


# -- the config --------------------------------------------------------------------------------

CONFIGS = {
    "not TOML": ("[targets\nBTC = 0.5\n", "TOML"),
    "targets not summing to 1": ("[targets]\nBTC = 0.5\nUSDT = 0.3\n", "targets"),
    "negative target": ("[targets]\nBTC = 1.2\nUSDT = -0.2\n", "USDT"),
    "unknown mode": ('mode = "yolo"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n', "mode"),
    "API key in the TOML": (f'api_key = "{KEY}"\nsecret = "{SECRET}"\n', "api_key"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_malformed_config_is_refused_naming_the_field(case: str, tmp_path: Path) -> None:
    text, field = CONFIGS[case]
    path = tmp_path / "rebalancer.toml"
    path.write_text(text)
    world = make_world(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = "\n".join(info.value.problems)
    world.outputs.append(message)
    assert field in message
    finish(world, f"config: {case}")


# -- market data -------------------------------------------------------------------------------

PRICES = {
    "NaN price": (("NaN", "NaN"), RetryLater, "could not be parsed"),
    "NaN ask": (("150.00", "NaN"), RetryLater, "could not be parsed"),
    "infinite price": (("Infinity", "Infinity"), RetryLater, "could not be parsed"),
    "zero price": (("0", "0"), DataError, "expected a positive number"),
    "negative price": (("-150.00", "-149.99"), DataError, "expected a positive number"),
}


@pytest.mark.parametrize("case", list(PRICES))
def test_bad_prices_are_never_traded_on(case: str, tmp_path: Path) -> None:
    book, error, match = PRICES[case]
    world = make_world(tmp_path)
    world.double.set_book("SOLUSDT", *book)
    refused(world, error, match)
    world.double.set_book("SOLUSDT", "150.00", "150.01")
    world.cycle(10)  # sane prices again: trades
    assert world.double.placed()
    finish(world, case)


def test_ticker_without_a_timestamp_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.double.no_timestamp.add("ETHUSDT")
    refused(world, RetryLater, "no timestamp")
    world.double.no_timestamp.clear()
    world.cycle(10)
    finish(world, "ticker without a timestamp")


def test_unknown_symbol_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.strategy = strategy(["BTC", "ETH", "NOPE"])
    refused(world, RebalancerError, "NOPE")
    finish(world, "unknown symbol")
