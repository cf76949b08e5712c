"""The daemon (``rebalancer run``) in paper mode, driven by a manual clock: no test sleeps.

Prices move tick by tick along real Binance hourly closes (../shared/data); notifications
go through the real apprise code to an HTTP server on loopback.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.notify_apprise import AppriseNotifier, FanOut
from rebalancer.adapters.paper import PaperExchange
from rebalancer.cli.app import app
from rebalancer.config import parse_config
from rebalancer.core.errors import AuthError, ConfigError, RetryLater
from rebalancer.core.execution import ExecutionPolicy
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold, Trigger
from rebalancer.daemon import (
    EXIT_STOPPED_BY_ERROR,
    Daemon,
    DaemonPolicy,
    Heartbeat,
    HeartbeatFile,
    Schedule,
    SystemWaiter,
    backoff_delay,
    health,
)
from rebalancer.daemon.heartbeat import heartbeat_path
from rebalancer.data.panel import load_panel
from rebalancer.logs import reset_logging
from rebalancer.ports import Notifier

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ("BTC", "ETH", "SOL")
TARGETS = {"BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1")}
START = datetime(2025, 3, 1, tzinfo=UTC)
FOUR_H = timedelta(hours=4)
MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers() -> Iterator[None]:
    """``rebalancer run`` installs log handlers on the root logger; remove them after."""
    level = logging.getLogger().level
    yield
    reset_logging()
    logging.getLogger().setLevel(level)


# --- doubles ------------------------------------------------------------------------------


@dataclass
class ReplayExchange:
    """A paper account whose prices follow real closes at the clock's time; can be told to
    fail snapshots at chosen times or to run a hook on each order."""

    inner: PaperExchange
    closes: pd.DataFrame
    clock: ManualClock
    fail_at: dict[datetime, Exception] = field(default_factory=dict)
    on_order: Any = None
    snapshots: list[datetime] = field(default_factory=list)
    name: str = "replay"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        now = self.clock.now()
        self.snapshots.append(now)
        error = self.fail_at.get(now)
        if error is not None:
            raise error
        row = self.closes.loc[: pd.Timestamp(now)].iloc[-1]
        self.inner.set_prices({a: D(str(row[a])) for a in assets}, now)
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        if self.on_order is not None:
            self.on_order(order)
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    data = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"
    if not data.is_dir():
        pytest.skip(f"../shared/data not found at {data}")
    panel = load_panel(data, list(ASSETS), "1h", start="2025-02-20", end="2025-04-30")
    return panel.closes


def strategy(trigger: Trigger | None = None) -> Strategy:
    return Strategy("USDT", TARGETS, trigger or Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))


def journal(tmp_path: Path) -> SqlJournal:
    return open_journal(f"sqlite:///{tmp_path / 'journal.sqlite'}", "paper:test")


@dataclass
class Rig:
    clock: ManualClock
    exchange: ReplayExchange
    journal: SqlJournal
    waiter: JumpingWaiter
    beats: list[Heartbeat] = field(default_factory=list)

    def daemon(
        self,
        notifier: Notifier,
        *,
        max_ticks: int | None = None,
        trigger: Trigger | None = None,
        daily_summary: bool = False,
    ) -> Daemon:
        policy = DaemonPolicy(
            Schedule(period=FOUR_H),
            retry_after=timedelta(minutes=1),
            max_backoff=timedelta(minutes=10),
            daily_summary=daily_summary,
            max_ticks=max_ticks,
        )

        def beat(b: Heartbeat) -> None:
            self.beats.append(Heartbeat.from_dict(b.to_dict()))

        return Daemon(
            self.exchange,
            self.journal,
            notifier,
            strategy(trigger),
            self.clock,
            policy,
            self.waiter,
            beat,
        )


@pytest.fixture
def rig(tmp_path: Path, closes: pd.DataFrame) -> Iterator[Rig]:
    clock = ManualClock(START)
    inner = PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"), D("0.0005"))
    j = journal(tmp_path)
    try:
        yield Rig(clock, ReplayExchange(inner, closes, clock), j, JumpingWaiter(clock))
    finally:
        j.close()


# --- schedule, back-off, config -----------------------------------------------------------


def test_schedule_every_is_aligned_to_the_epoch_and_strictly_after() -> None:
    s = Schedule(period=FOUR_H)
    assert s.next_after(datetime(2026, 1, 1, 5, 3, tzinfo=UTC)) == datetime(
        2026, 1, 1, 8, tzinfo=UTC
    )
    assert s.next_after(datetime(2026, 1, 1, 8, tzinfo=UTC)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert s.describe() == "every 4h"


def test_schedule_cron_counts_sunday_as_day_zero_like_the_trigger() -> None:
    s = parse_config('[targets]\nBTC = 1\n[daemon]\ncron = "30 6 * * 0"\n').daemon
    sched = Schedule.from_config(s)
    thursday = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert sched.next_after(thursday) == datetime(2026, 1, 4, 6, 30, tzinfo=UTC)  # a Sunday
    assert "cron '30 6 * * 0'" in sched.describe()


def test_daemon_config_defaults_and_rules() -> None:
    d = parse_config("[targets]\nBTC = 1\n").daemon
    assert (d.every, d.cron, d.retry_after, d.max_backoff) == ("4h", None, "1m", "1h")
    assert d.notify_daily_summary is False
    policy = DaemonPolicy.from_config(d, max_ticks=3)
    assert policy.schedule == Schedule(period=FOUR_H)
    assert (policy.retry_after, policy.max_backoff, policy.max_ticks) == (
        timedelta(minutes=1),
        timedelta(hours=1),
        3,
    )
    with pytest.raises(ConfigError, match="one of every or cron"):
        parse_config('[targets]\nBTC = 1\n[daemon]\nevery = "1h"\ncron = "0 * * * *"\n')
    with pytest.raises(ConfigError, match="max_backoff must be at least retry_after"):
        parse_config('[targets]\nBTC = 1\n[daemon]\nretry_after = "2h"\nmax_backoff = "1h"\n')
    with pytest.raises(ConfigError, match=r"daemon\.every"):
        parse_config('[targets]\nBTC = 1\n[daemon]\nevery = "4 hours"\n')


def test_backoff_doubles_and_is_capped() -> None:
    first, cap = timedelta(minutes=1), timedelta(minutes=10)
    assert [backoff_delay(n, first, cap).total_seconds() / 60 for n in range(6)] == [
        0,
        1,
        2,
        4,
        8,
        10,
    ]
    assert backoff_delay(10_000, first, cap) == cap


# --- the loop over real history -------------------------------------------------------------


def test_sixty_ticks_in_paper_over_real_history_notify_a_loopback_endpoint(
    rig: Rig, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = hook
    memory = MemoryNotifier()
    notifier = FanOut([memory, AppriseNotifier([url])])
    daemon = rig.daemon(notifier, max_ticks=60, trigger=Threshold(D("0.02")))
    daemon.keep_reports = 60
    result = daemon.run(handle_signals=False)

    assert (result.exit_code, result.ticks) == (0, 60)
    # one check at start, then every 4h on the epoch-aligned grid, time never slept
    assert rig.exchange.snapshots[0] == START
    checks = sorted(set(rig.exchange.snapshots))
    assert checks == [START + i * FOUR_H for i in range(60)]
    assert rig.clock.now() == START + 59 * FOUR_H
    # every tick is journaled; the trigger's memory is the last tick
    times = rig.journal.trigger_times()
    assert times.last_check == START + 59 * FOUR_H
    assert rig.journal.unresolved_intents() == []
    # the market moved along real closes, the bot traded more than once, and each
    # rebalance reached the loopback endpoint with its orders in the body
    rebalanced = [r for r in daemon.reports if r.fills]
    assert len(rebalanced) >= 2, [r.decision.reason for r in daemon.reports]
    assert times.last_fired == rebalanced[-1].at
    titles = [m["title"] for m in received]
    assert titles[0] == "rebalancer started (paper)"
    assert titles[-1] == "rebalancer stopped (paper)"
    rebalance_msgs = [m for m in received if m["title"].startswith("rebalanced:")]
    assert len(rebalance_msgs) == len(rebalanced)
    first = rebalanced[0].fills[0]
    assert f"{first.side.value} {first.amount} {first.symbol}" in rebalance_msgs[0]["message"]
    assert all(m["type"] == "success" for m in rebalance_msgs)
    assert [e.title for e in memory.events] == titles  # same events to every target
    # the heartbeat followed every tick and ends stopped
    assert rig.beats[-1].state == "stopped" and rig.beats[-1].ticks == 60
    assert rig.beats[-1].next_tick is None
    running = [b for b in rig.beats if b.state == "running" and b.ticks == 30]
    assert running and running[-1].next_tick == START + 30 * FOUR_H


def test_retry_later_backs_off_doubling_then_resets_to_the_schedule(rig: Rig) -> None:
    busy = RetryLater("binance: 503 service unavailable")
    t1 = START + FOUR_H
    rig.exchange.fail_at = {t: busy for t in (t1, t1 + MIN, t1 + 3 * MIN)}
    notes = MemoryNotifier()
    result = rig.daemon(notes, max_ticks=7).run(handle_signals=False)

    assert (result.exit_code, result.ticks) == (0, 7)
    assert rig.exchange.snapshots[:1] == [START]
    # failed at t1, retried after 1m, 2m, 4m; the retry at +7m works, then the schedule
    attempts = list(dict.fromkeys(rig.exchange.snapshots))
    assert attempts[1:5] == [
        t1,
        t1 + MIN,
        t1 + 3 * MIN,
        t1 + 7 * MIN,
    ]
    assert attempts[5] == START + 2 * FOUR_H
    kinds = [e.kind for e in notes.events]
    assert kinds.count("error") == 1 and kinds.count("recovered") == 1
    error = next(e for e in notes.events if e.kind == "error")
    assert "503 service unavailable" in error.body and "retrying in 0:01:00" in error.body
    failing = [b for b in rig.beats if b.consecutive_failures == 3]
    assert failing and "RetryLater: binance: 503" in failing[-1].last_error
    assert failing[-1].next_tick == t1 + 7 * MIN
    assert rig.beats[-1].consecutive_failures == 0 and rig.beats[-1].state == "stopped"


def test_an_unexpected_error_fails_one_tick_only(rig: Rig) -> None:
    rig.exchange.fail_at = {START + FOUR_H: KeyError("price")}
    notes = MemoryNotifier()
    result = rig.daemon(notes, max_ticks=4).run(handle_signals=False)
    assert (result.exit_code, result.ticks) == (0, 4)
    assert [e.kind for e in notes.events].count("error") == 1
    assert rig.journal.trigger_times().last_check == rig.clock.now()


def test_stop_and_tell_halts_stops_and_tells(rig: Rig) -> None:
    rig.exchange.fail_at = {START + 2 * FOUR_H: AuthError("binance: invalid API key (code -2015)")}
    notes = MemoryNotifier()
    result = rig.daemon(notes, max_ticks=10).run(handle_signals=False)

    assert (result.exit_code, result.ticks) == (EXIT_STOPPED_BY_ERROR, 3)
    assert "invalid API key" in result.reason
    halt = notes.events[-1]
    assert halt.kind == "halt" and "invalid API key" in halt.body
    assert "rebalancer resume" in halt.body
    active = rig.journal.halt_status().active
    assert active is not None and "invalid API key" in active.reason
    assert rig.beats[-1].state == "failed" and "AuthError" in rig.beats[-1].last_error


def test_a_signal_during_a_cycle_lets_the_cycle_finish_then_stops(rig: Rig) -> None:
    orders: list[str] = []

    def on_order(order: OrderRequest) -> None:
        if not orders:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-cycle, before the first order
        orders.append(order.client_order_id)

    rig.exchange.on_order = on_order
    daemon = rig.daemon(MemoryNotifier(), max_ticks=10)
    daemon.keep_reports = 1
    previous = signal.getsignal(signal.SIGTERM)
    result = daemon.run()

    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert (result.exit_code, result.ticks, result.reason) == (0, 1, "signal SIGTERM")
    report = daemon.reports[-1]
    assert report.plan is not None and len(orders) == len(report.fills) == 3  # all legs sent
    assert rig.journal.unresolved_intents() == []
    assert rig.beats[-1].state == "stopped"


def test_a_signal_between_slices_cuts_the_wait_short_and_the_cycle_ends(rig: Rig) -> None:
    """slice_interval = 1 h between slices: a SIGTERM during the first order ends the wait,
    the remaining slices go at once (each journaled) and the daemon stops -- no hour-long
    wait after a stop request."""
    orders: list[str] = []

    def on_order(order: OrderRequest) -> None:
        if not orders:
            os.kill(os.getpid(), signal.SIGTERM)
        orders.append(order.client_order_id)

    rig.exchange.on_order = on_order
    daemon = rig.daemon(MemoryNotifier(), max_ticks=10)
    sliced = ExecutionPolicy(slice_above=D(1000), slice_interval=timedelta(hours=1))
    daemon.strategy = replace(daemon.strategy, execution=sliced)
    daemon.keep_reports = 1
    started = time.monotonic()
    result = daemon.run()
    assert time.monotonic() - started < 60
    assert (result.ticks, result.reason) == (1, "signal SIGTERM")
    report = daemon.reports[-1]
    assert report.plan is not None and len(report.plan.orders) == 3
    assert len(orders) == len(report.fills) > 3  # every leg was sliced, every slice sent
    assert all(f.cost <= D(1000) * D("1.01") for f in report.fills)
    assert rig.journal.unresolved_intents() == []


def test_restart_continues_from_the_journals_trigger_times(
    rig: Rig, tmp_path: Path, closes: pd.DataFrame
) -> None:
    daily = Calendar(period=timedelta(days=1))
    first = rig.daemon(MemoryNotifier(), max_ticks=3, trigger=daily)
    first.keep_reports = 3
    first.run(handle_signals=False)
    assert [bool(r.fills) for r in first.reports] == [True, False, False]
    rig.journal.close()

    # a new process: a new journal object on the same database, later the same day
    clock = ManualClock(START + timedelta(hours=13))
    again = Rig(
        clock, ReplayExchange(rig.exchange.inner, closes, clock), journal(tmp_path), rig.waiter
    )
    again.waiter.clock = clock
    rig.journal = again.journal  # closed by the fixture
    second = again.daemon(MemoryNotifier(), max_ticks=4, trigger=daily)
    second.keep_reports = 4
    second.run(handle_signals=False)
    fired = [r.at for r in second.reports if r.decision.fire]
    # 13:00 (start), 16:00, 20:00 not due (fired today at 00:00); 00:00 next day is
    assert [r.at.hour for r in second.reports] == [13, 16, 20, 0]
    assert fired == [START + timedelta(days=1)]


def test_daily_summary_once_a_day(rig: Rig) -> None:
    notes = MemoryNotifier()
    rig.daemon(notes, max_ticks=13, daily_summary=True).run(handle_signals=False)
    summaries = [e for e in notes.events if e.kind == "summary"]
    # ticks on day 1 (6) and day 2 (6), first tick of day 3 sends day 2's
    assert [e.data["day"] for e in summaries] == ["2025-03-01", "2025-03-02"]
    assert summaries[0].data["checks"] == 6 and summaries[0].data["orders"] >= 3
    assert "BTC:" in summaries[0].body and "target 40.0%" in summaries[0].body


def test_system_waiter_wakes_at_the_time_or_on_stop() -> None:
    clock = ManualClock(START)
    stop = threading.Event()
    naps: list[float] = []

    class Event_(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            naps.append(timeout or 0)
            clock.set(clock.now() + timedelta(seconds=timeout or 0))
            return False

    SystemWaiter(clock, max_nap=30).wait_until(START + timedelta(seconds=75), Event_())
    assert naps == [30, 30, 15]
    stop.set()
    SystemWaiter(clock).wait_until(START + timedelta(days=1), stop)  # returns at once


def test_heartbeat_tells_running_stale_and_stopped(tmp_path: Path) -> None:
    beat = Heartbeat("paper", "every 4h", 4242, START, ticks=2, last_tick=START + FOUR_H)
    beat.next_tick, beat.last_result = START + 2 * FOUR_H, "no rebalance: all within band"
    file = HeartbeatFile(tmp_path / "hb.json")
    file.write(beat)
    again = file.read()
    assert again == beat
    lines = again.lines(START + FOUR_H + MIN)
    assert lines == [
        "daemon (paper): running (pid 4242), checks every 4h",
        "last check: 2025-03-01 04:00 UTC; no rebalance: all within band",
        "next check: 2025-03-01 08:00 UTC",
    ]
    overdue = START + 2 * FOUR_H + timedelta(minutes=11)
    assert again.stale(overdue) and "NOT RESPONDING" in again.lines(overdue)[0]
    again.state, again.stopped_at = "failed", START + FOUR_H
    again.consecutive_failures, again.last_error = 2, "AuthError: invalid key"
    assert not again.stale(overdue)
    assert again.lines(overdue)[0] == "daemon (paper): failed at 2025-03-01 04:00 UTC"
    assert again.lines(overdue)[-2:] == [
        "failing: 2 checks in a row",
        "last error: AuthError: invalid key",
    ]
    assert HeartbeatFile(tmp_path / "none.json").read() is None


def test_health_check_says_alive_only_while_running_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    state = tmp_path / "state"
    assert health.main(["-c", str(cfg)]) == 1
    assert "has not run" in capsys.readouterr().out
    now = datetime.now(UTC)
    beat = Heartbeat("paper", "every 4h", 1, now, ticks=1, last_tick=now, next_tick=now + FOUR_H)
    HeartbeatFile(heartbeat_path(state, "paper")).write(beat)
    monkeypatch.setenv("REBALANCER_CONFIG", str(cfg))
    assert health.main([]) == 0
    assert capsys.readouterr().out.startswith("healthy: daemon (paper): running")
    assert health.check(state, "paper", now + FOUR_H + timedelta(minutes=11))[0] is False
    beat.state = "stopped"
    HeartbeatFile(heartbeat_path(state, "paper")).write(beat)
    assert health.main([]) == 1


# --- the real process: SIGTERM, heartbeat, restart --------------------------------------------


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(
        'state_dir = "state"\n[targets]\nBTC = 0.5\nETH = 0.3\nUSDT = 0.2\n[daemon]\nevery = "4h"\n'
    )
    return cfg


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REBALANCER_")}
    env["REBALANCER_OFFLINE"] = "1"  # paper prices "auto": no network attempt
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


def test_sigterm_stops_the_real_process_cleanly_and_a_restart_resumes(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    beat_file = HeartbeatFile(heartbeat_path(tmp_path / "state", "paper"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rebalancer", "run", "-c", str(cfg), "--max-ticks", "5"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        beat = None
        while time.monotonic() < deadline:
            beat = beat_file.read()
            if beat is not None and beat.ticks == 1 and beat.next_tick is not None:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert beat is not None and beat.state == "running", beat
        assert beat.next_tick is not None and beat.next_tick > beat.last_tick  # type: ignore[operator]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after 1 check: signal SIGTERM" in out
    stopped = beat_file.read()
    assert stopped is not None and stopped.state == "stopped" and stopped.ticks == 1
    j = open_journal(f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}", "paper:binance")
    try:
        assert j.unresolved_intents() == []
        first = j.trigger_times()
        assert first.last_fired is not None and first.last_fired == stopped.last_tick
    finally:
        j.close()
    log_text = (tmp_path / "state" / "logs" / "rebalancer.log").read_text()
    assert "2 orders filled" in log_text and "signal SIGTERM" in log_text

    # restart: the paper account and the trigger's memory are where they were
    again = subprocess.run(
        [sys.executable, "-m", "rebalancer", "run", "-c", str(cfg), "--once"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    beat2 = beat_file.read()
    assert beat2 is not None and beat2.ticks == 1 and "no rebalance" in beat2.last_result
    j = open_journal(f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}", "paper:binance")
    try:
        times = j.trigger_times()
        assert times.last_fired == first.last_fired and times.last_check == beat2.last_tick
    finally:
        j.close()


def test_run_cli_once_and_help(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["run", "--help"]).output
    assert "Example:" in help_text and "--max-ticks" in help_text and "--live" in help_text
    result = runner.invoke(app, ["run", "-c", str(_config(tmp_path)), "--once"])
    assert result.exit_code == 0, result.output
    assert "stopped after 1 check: done (--once)" in result.output
    beat = HeartbeatFile(heartbeat_path(tmp_path / "state", "paper")).read()
    assert beat is not None and beat.ticks == 1 and "2 orders filled" in beat.last_result


def test_run_cli_refuses_live_without_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", "k")  # the keys are checked first, then the flag
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    cfg = _config(tmp_path)
    cfg.write_text('mode = "live"\n' + cfg.read_text())
    result = CliRunner().invoke(app, ["run", "-c", str(cfg), "--once"])
    assert result.exit_code == 1
    assert "--live" in result.output


def test_run_cli_rejects_a_bad_notify_url_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBALANCER_NOTIFY_URLS", "json://127.0.0.1:9/ok, nosuch://SECRETTOKEN42")
    result = CliRunner().invoke(app, ["run", "-c", str(_config(tmp_path)), "--once"])
    assert result.exit_code == 2
    assert "nosuch #2" in result.output and "SECRETTOKEN42" not in result.output


# --- a halted daemon does not hammer the exchange ------------------------------------------


@dataclass
class CountingExchange:
    """Counts every call that reaches the exchange (reads and orders)."""

    inner: ReplayExchange
    calls: list[str] = field(default_factory=list)
    name: str = "counting"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        self.calls.append("snapshot")
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.calls.append("order")
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        self.calls.append(f"fetch_order {client_order_id}")
        return self.inner.fetch_order(client_order_id, symbol)


def test_a_halted_daemon_reads_nothing_from_the_exchange(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingExchange(rig.exchange)
    rig.journal.record_halt("drawdown 16% beyond 15% in 24h", START - FOUR_H)
    daemon = rig.daemon(MemoryNotifier(), max_ticks=6)
    daemon.exchange = counting
    with caplog.at_level(logging.INFO, logger="rebalancer.daemon"):
        result = daemon.run(handle_signals=False)
    assert (result.exit_code, result.ticks) == (0, 6)
    assert counting.calls == []  # no balance, no price, no order in six ticks
    assert rig.clock.now() == START + 5 * FOUR_H  # the schedule went on
    assert sum("halted since" in r.getMessage() for r in caplog.records) == 6
    assert rig.beats[-1].last_result.startswith("halted since")
    # once resumed, the next tick reads and trades again
    rig.journal.record_resume(rig.clock.now(), "checked")
    again = rig.daemon(MemoryNotifier(), max_ticks=1)
    again.exchange = counting
    again.run(handle_signals=False)
    assert counting.calls[0] == "snapshot" and "order" in counting.calls


def test_a_halted_daemon_still_resolves_unresolved_intents(rig: Rig) -> None:
    counting = CountingExchange(rig.exchange)
    # an order sent just before the halt whose reply was lost: it filled on the exchange
    snap = rig.exchange.snapshot(list(ASSETS), "USDT")  # sets the prices at START
    price = snap.buy_price("BTC")
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.BUY, D("0.01"), price, D("0.01") * price, D(0), "rb-lost-0"
    )
    rig.journal.record_intent(order, START - FOUR_H)
    rig.exchange.inner.create_market_order(order)
    rig.journal.record_halt("exchange ban (418)", START - FOUR_H)
    daemon = rig.daemon(MemoryNotifier(), max_ticks=3)
    daemon.exchange = counting
    daemon.run(handle_signals=False)
    # looked up once, on the first tick; never a balance or price read
    assert counting.calls == ["fetch_order rb-lost-0"]
    assert rig.journal.unresolved_intents() == []
    results = [b.last_result for b in rig.beats if b.last_result]
    assert "reconciled 1 order(s)" in results[0]
    assert all(r.startswith("halted since") for r in results)
