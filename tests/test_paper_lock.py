"""Two paper runs that overlap never lose a trade (issue 12, item 2): the account's lock is
taken before the paper state is read, and only its holder writes the state file --
``paper reset`` included."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rebalancer import bootstrap
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import AlreadyRunning, LockLost, SqlJournal
from rebalancer.adapters.journal.lock import FileLock
from rebalancer.bootstrap import Runtime, build_paper, paper_state
from rebalancer.cli.app import app
from rebalancer.config import Settings, load_config
from rebalancer.core.fills import apply_fill
from rebalancer.core.model import Fill
from rebalancer.service import CycleReport

CONFIG = """
[targets]
BTC = 0.40
ETH = 0.30
SOL = 0.20
USDT = 0.10

[paper]
initial_balances = { BTC = 0.05, USDT = 1000 }
"""
T1 = datetime(2026, 3, 1, 12, tzinfo=UTC)
BOUND = 60  # seconds: a bound on waits for the other thread, never a timing assumption


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "rebalancer.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{CONFIG}')
    return load_config(path)


def trade(rt: Runtime, at: datetime) -> CycleReport:
    rt.clock = ManualClock(at)
    try:
        return rt.cycle(force=True)
    finally:
        rt.close()


def replayed(settings: Settings, orders: dict[str, Fill]) -> dict[str, Decimal]:
    """The initial balances with every order of the state file applied, in order."""
    balances = dict(settings.paper.initial_balances)
    for fill in orders.values():
        balances = apply_fill(balances, fill, settings.quote)
    return {a: b for a, b in balances.items() if b != 0}


def test_a_run_overlapping_a_slow_one_is_refused_and_no_fill_is_lost(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A is held in its (slow) price read; run B starts meanwhile. Before the fix A had
    read the state before taking the lock, B traded and wrote its fills, and A then wrote
    its own over them from the stale state: B's fills vanished."""
    real_prices = bootstrap._paper_prices
    in_read, go_on = threading.Event(), threading.Event()

    def slow_prices(*args: Any, **kw: Any) -> Any:
        if threading.current_thread().name == "run-A":
            in_read.set()
            assert go_on.wait(BOUND), "the test never let run A go on"
        return real_prices(*args, **kw)

    monkeypatch.setattr(bootstrap, "_paper_prices", slow_prices)
    results: dict[str, Any] = {}

    def run_a() -> None:
        try:
            results["A"] = trade(build_paper(settings, lock=True), T1)
        except BaseException as exc:  # handed to the test thread
            results["A"] = exc

    a = threading.Thread(target=run_a, name="run-A")
    a.start()
    try:
        assert in_read.wait(BOUND), "run A never reached its price read"
        try:
            results["B"] = trade(build_paper(settings, lock=True), T1 + timedelta(minutes=1))
        except AlreadyRunning as exc:
            results["B"] = exc
    finally:
        go_on.set()
        a.join(BOUND)
    assert not a.is_alive()
    first = results["A"]
    assert isinstance(first, CycleReport), first
    assert first.fills, "run A traded"
    state = paper_state(settings)
    orders = state.orders()
    reports = [r for r in results.values() if isinstance(r, CycleReport)]
    sent = {f.client_order_id for r in reports for f in r.fills}
    assert sent <= set(orders), "every fill of every run is in the paper account"
    assert state.balances() == replayed(settings, orders)
    second = results["B"]  # it could not read the state while A held the account
    assert isinstance(second, AlreadyRunning) and "one instance per account" in str(second)


def test_a_run_after_another_sees_its_fills(settings: Settings) -> None:
    first = trade(build_paper(settings, lock=True), T1)
    assert first.fills
    after_first = paper_state(settings).balances()
    second = build_paper(settings, lock=True)
    try:
        assert second.exchange.snapshot(second.strategy.assets, "USDT").balances == {
            a: b for a, b in (after_first or {}).items() if b != 0
        }
    finally:
        second.close()


def test_a_reading_runtime_never_writes_the_paper_state(settings: Settings) -> None:
    rt = build_paper(settings)  # status, plan: no lock
    try:
        assert not paper_state(settings).path.exists()
        rt.cycle(execute=False, force=True)
        assert not paper_state(settings).path.exists()
    finally:
        rt.close()


def test_paper_reset_refuses_while_another_process_holds_the_account(
    settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "rebalancer.toml"
    held = build_paper(settings, lock=True)
    try:
        assert paper_state(settings).path.exists()
        result = CliRunner().invoke(app, ["paper", "reset", "-c", str(config)])
        assert result.exit_code == 1
        assert "in use by another rebalancer process" in result.output
        assert "rebalancer paper reset" in result.output and "Traceback" not in result.output
        assert paper_state(settings).path.exists(), "the running account was not touched"
    finally:
        held.close()
    result = CliRunner().invoke(app, ["paper", "reset", "-c", str(config)])
    assert result.exit_code == 0 and not paper_state(settings).path.exists()


def test_a_cycle_starts_only_while_the_account_lock_is_held(settings: Settings) -> None:
    trade(build_paper(settings, lock=True), T1)  # balanced now: the next check trades nothing
    rt = build_paper(settings, lock=True)
    try:
        assert isinstance(rt.journal, SqlJournal)
        lock = rt.journal._lock
        assert isinstance(lock, FileLock)
        lock.path.unlink()  # another process could now lock a new file and trade
        rt.clock = ManualClock(T1 + timedelta(hours=1))
        with pytest.raises(LockLost, match=r"lock file .* was removed"):
            rt.cycle()
        assert len(rt.journal.history()["cycles"]) == 1, "the check ran no cycle at all"
    finally:
        rt.close()
