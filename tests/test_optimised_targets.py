"""Optimised targets applied live: the daemon over the paper exchange and the real demo
candles, a fake optimiser (and the real one), the SQL journal.

Targets change on the 1st of the month, the change is journaled before any order, a restart
keeps the journaled targets, a config change resets them, too little history keeps them and
says why, and the backtest's schedule decides on the same dates as the live loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.model import Fill, OrderRequest, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.retarget import MONTHLY
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.daemon import Daemon, DaemonPolicy, Schedule
from rebalancer.daemon.loop import describe
from rebalancer.data.history import FrameHistory
from rebalancer.data.panel import load_demo_panel
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import Constraints, WindowOptimiser
from rebalancer.ports import TargetChange, TargetProposal
from rebalancer.service import Retarget, run_cycle

DAY = timedelta(days=1)
START = datetime(2025, 1, 20, tzinfo=UTC)
ASSETS = ["BTC", "ETH", "SOL"]
TARGETS = {"BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1")}


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    return load_demo_panel().closes[ASSETS]


@dataclass
class CandleExchange:
    """The paper exchange priced at the last daily close at or before the clock's time."""

    inner: PaperExchange
    closes: pd.DataFrame
    clock: ManualClock
    name: str = "paper"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        now = self.clock.now()
        row = self.closes[self.closes.index + DAY <= now].iloc[-1]
        self.inner.set_prices({a: D(repr(float(row[a]))) for a in self.closes.columns}, now)
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        return self.inner.create_market_order(order)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


@dataclass
class FakeOptimiser:
    """Moves 5 points from the quote to BTC (and back) at each call; remembers its inputs."""

    method: str = "fake"
    calls: list[tuple[dict[str, int], dict[str, D]]] = field(default_factory=list)

    def propose(
        self, closes: Mapping[str, Sequence[D]], current: Mapping[str, D]
    ) -> TargetProposal:
        self.calls.append(({a: len(c) for a, c in closes.items()}, dict(current)))
        shift = D("0.05") if len(self.calls) % 2 else D("-0.05")
        new = dict(current)
        new["BTC"] += shift
        new["USDT"] -= shift
        return TargetProposal(new, f"fake call {len(self.calls)}")


class LoggingJournal(SqlJournal):
    """The SQL journal, logging the order of target changes and order intents."""

    log: list[str]

    def record_target_change(self, change: TargetChange) -> None:
        self.log.append(f"targets:{change.method}")
        super().record_target_change(change)

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        self.log.append("intent")
        super().record_intent(order, at)


def logging_journal(url: str) -> LoggingJournal:
    j = open_journal(url, "paper:test")
    out = LoggingJournal(j.engine, j.account)
    out.log = []
    return out


def strategy(targets: Mapping[str, D] = TARGETS) -> Strategy:
    return Strategy("USDT", dict(targets), Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))


def daemon(
    journal: SqlJournal | MemoryJournal,
    closes: pd.DataFrame,
    start: datetime,
    days: int,
    retarget: Retarget,
    *,
    balances: dict[str, D] | None = None,
    targets: Mapping[str, D] = TARGETS,
) -> tuple[Daemon, MemoryNotifier, PaperExchange]:
    clock = ManualClock(start)
    inner = PaperExchange("USDT", balances or {"USDT": D(10000)}, D("0.001"))
    notifier = MemoryNotifier()
    d = Daemon(
        CandleExchange(inner, closes, clock),
        journal,
        notifier,
        strategy(targets),
        clock,
        DaemonPolicy(Schedule(period=DAY), max_ticks=days),
        JumpingWaiter(clock),
        keep_reports=1000,
        history=FrameHistory(closes, DAY),
        retarget=retarget,
    )
    return d, notifier, inner


def test_targets_change_on_the_first_journaled_before_orders_and_survive_a_restart(
    tmp_path: Path, closes: pd.DataFrame
) -> None:
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    fake = FakeOptimiser()
    retarget = Retarget(fake, MONTHLY, window=30)
    journal = logging_journal(url)
    d, notifier, inner = daemon(journal, closes, START, 45, retarget)  # Jan 20 .. Mar 5
    d.run(handle_signals=False)
    changes = journal.target_changes()
    assert [(c.at, c.method) for c in changes] == [
        (START, "config"),
        (datetime(2025, 2, 1, tzinfo=UTC), "fake"),
        (datetime(2025, 3, 1, tzinfo=UTC), "fake"),
    ]
    assert len(fake.calls) == 2 and fake.calls[0][0] == {a: 31 for a in ASSETS}
    assert changes[1].new["BTC"] == D("0.45") and changes[2].new["BTC"] == D("0.40")
    # journaled before the orders of the cycle that uses them
    first = journal.log.index("targets:fake")
    assert journal.log[:2] == ["targets:config", "intent"]  # the first cycle buys
    assert "intent" in journal.log[first + 1 :]
    by_day = {r.at: r for r in d.reports}
    feb1 = by_day[datetime(2025, 2, 1, tzinfo=UTC)]
    assert feb1.decision.fire and "targets changed" in feb1.decision.reason
    assert {a.asset: a.target for a in feb1.drift.assets}["BTC"] == D("0.45")
    assert "targets changed by fake" in feb1.targets_note
    assert [e.title for e in notifier.events if e.kind == "targets"] == ["targets changed"] * 2
    jan31 = by_day[datetime(2025, 1, 31, tzinfo=UTC)]
    assert {a.asset: a.target for a in jan31.drift.assets}["BTC"] == D("0.4")
    assert "next at 2025-02-01 00:00" in jan31.targets_note
    assert "targets changed by fake" in describe(feb1)  # the heartbeat's last result
    assert "next at" not in describe(jan31)

    # a restart (a new process: new journal object, same database) keeps the targets
    again = logging_journal(url)
    fake2 = FakeOptimiser()
    d2, _, _ = daemon(
        again,
        closes,
        datetime(2025, 3, 10, tzinfo=UTC),
        2,
        Retarget(fake2, MONTHLY, 30),
        balances=dict(inner.balances),
    )
    d2.run(handle_signals=False)
    assert {a.asset: a.target for a in d2.reports[0].drift.assets}["BTC"] == D("0.40")
    assert fake2.calls == [] and not any(x.startswith("targets") for x in again.log)
    assert len(again.target_changes()) == 3

    # a change of the configured targets resets to them (journaled as "config")
    edited = {**TARGETS, "BTC": D("0.35"), "USDT": D("0.15")}
    third = logging_journal(url)
    d3, notes3, _ = daemon(
        third,
        closes,
        datetime(2025, 3, 12, tzinfo=UTC),
        1,
        Retarget(FakeOptimiser(), MONTHLY, 30),
        balances=dict(inner.balances),
        targets=edited,
    )
    d3.run(handle_signals=False)
    last = third.target_changes()[-1]
    assert last.method == "config" and last.new == edited and last.old["BTC"] == D("0.40")
    assert {a.asset: a.target for a in d3.reports[0].drift.assets}["BTC"] == D("0.35")
    assert [e.title for e in notes3.events if e.kind == "targets"] == [
        "targets reset to the config"
    ]
    for j in (journal, again, third):
        j.close()


def test_a_method_change_resets_too_and_too_little_history_keeps_the_targets(
    closes: pd.DataFrame,
) -> None:
    journal = MemoryJournal()
    long = Retarget(FakeOptimiser(), MONTHLY, window=5000)  # more days than the data has
    d, _, _ = daemon(journal, closes, START, 15, long)  # Jan 20 .. Feb 3
    d.run(handle_signals=False)
    assert [c.method for c in journal.target_changes] == ["config"]
    feb1 = next(r for r in d.reports if r.at == datetime(2025, 2, 1, tzinfo=UTC))
    assert "not enough price history (5001 daily closes needed" in feb1.targets_note
    assert "keeping the current targets" in feb1.targets_note
    feb2 = next(r for r in d.reports if r.at == datetime(2025, 2, 2, tzinfo=UTC))
    assert "not enough price history" in feb2.targets_note  # asked again each cycle
    other = FakeOptimiser(method="other")
    step_journal_before = len(journal.target_changes)
    run_cycle(
        d.exchange,
        journal,
        MemoryNotifier(),
        strategy(),
        datetime(2025, 2, 4, tzinfo=UTC),
        history=FrameHistory(closes, DAY),
        retarget=Retarget(other, MONTHLY, 30),
    )
    assert len(journal.target_changes) == step_journal_before + 1
    assert journal.target_changes[-1].config_method == "other"


def test_plan_only_journals_nothing(closes: pd.DataFrame) -> None:
    journal = MemoryJournal()
    journal.record_target_change(
        TargetChange(START, "config", TARGETS, TARGETS, "", TARGETS, "fake")
    )
    clock = ManualClock(datetime(2025, 2, 1, tzinfo=UTC))
    ex = CandleExchange(PaperExchange("USDT", {"USDT": D(1000)}, D("0.001")), closes, clock)
    report = run_cycle(
        ex,
        journal,
        MemoryNotifier(),
        strategy(),
        clock.now(),
        execute=False,
        history=FrameHistory(closes, DAY),
        retarget=Retarget(FakeOptimiser(), MONTHLY, 30),
    )
    assert "targets would change by fake" in report.targets_note
    assert len(journal.target_changes) == 1


def test_the_backtest_schedule_decides_on_the_live_dates(closes: pd.DataFrame) -> None:
    """The live loop (daily checks) and ``target_schedule`` (bar closes) ask the same due
    function: the same dates, and with the real optimiser the same weights (to 1e-6)."""
    c = Constraints(min_weight=0.05, max_weight=0.6, cash_floor=0.1)
    real = WindowOptimiser("min_variance", c, "USDT")
    start = datetime(2024, 11, 10, tzinfo=UTC)  # 40 days of data: the 1st of Dec waits
    journal = MemoryJournal()
    d, _, _ = daemon(journal, closes, start, 150, Retarget(real, MONTHLY, window=70))
    d.run(handle_signals=False)
    live = [(c.at, c.new) for c in journal.target_changes if c.method != "config"]
    end = d.reports[-1].at
    backtest = target_schedule(
        closes[closes.index + DAY <= end], "min_variance", c, window=70, start=start
    )
    assert [t.to_pydatetime() for t, _ in backtest] == [t for t, _ in live]
    # on Dec 1 the data (from 2024-10-01) has 61 closes, not 71: the change waits until
    # the first check that has them
    assert live[0][0] == datetime(2024, 12, 11, tzinfo=UTC)
    assert [t.day for t, _ in live[1:]] == [1] * (len(live) - 1)
    for (_, w), (_, targets) in zip(backtest, live, strict=True):
        np.testing.assert_allclose(w, [float(targets[a]) for a in ASSETS], atol=2e-6)


def test_start_now_optimises_on_the_first_check_then_follows_the_schedule(
    tmp_path: Path, closes: pd.DataFrame
) -> None:
    """[optimise] start = "now": the configured targets are journaled, then at once the
    optimiser's (before any order), and the cycle rebalances to them; the next change is at
    the next scheduled time, not again at the next check."""
    fake = FakeOptimiser()
    retarget = Retarget(fake, MONTHLY, window=30, start_now=True)
    journal = logging_journal(f"sqlite:///{tmp_path}/journal.sqlite")
    d, _, _ = daemon(journal, closes, START, 20, retarget)  # Jan 20 .. Feb 8
    d.run(handle_signals=False)
    changes = journal.target_changes()
    assert [(c.at, c.method) for c in changes] == [
        (START, "config"),
        (START, "fake"),
        (datetime(2025, 2, 1, tzinfo=UTC), "fake"),
    ]
    assert changes[1].old == TARGETS and changes[1].new["BTC"] == D("0.45")
    assert changes[0].explanation.endswith("fake from now")
    assert journal.log[:3] == ["targets:config", "targets:fake", "intent"]
    first = d.reports[0]
    assert first.decision.fire and first.targets_note.startswith("targets changed by fake")
    btc = next(a for a in first.drift_after.assets if a.asset == "BTC")  # type: ignore[union-attr]
    assert abs(btc.weight - D("0.45")) < D("0.01")  # bought to the optimiser's weight


def test_start_now_without_enough_history_keeps_the_configured_targets(
    tmp_path: Path, closes: pd.DataFrame
) -> None:
    fake = FakeOptimiser()
    retarget = Retarget(fake, MONTHLY, window=3000, start_now=True)
    journal = logging_journal(f"sqlite:///{tmp_path}/journal.sqlite")
    d, _, _ = daemon(journal, closes, START, 1, retarget)
    d.run(handle_signals=False)
    assert [c.method for c in journal.target_changes()] == ["config"]
    assert fake.calls == []
    assert "not enough price history" in d.reports[0].targets_note
