"""A cycle that traded is recorded and told whatever step fails after it (issue 12, item 4),
and a spread deposit is invested whatever the style (issue 12, item 6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import ExchangeBanned, RetryLater
from rebalancer.core.flows import expected_balances
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold
from rebalancer.daemon import Daemon, DaemonPolicy, Schedule
from rebalancer.ports import CycleRecord
from rebalancer.service import run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}
MONTHLY = Calendar(period=timedelta(days=30))


@dataclass
class FlakyReads:
    """A paper account whose n-th snapshots (1-based) fail with ``error``."""

    inner: PaperExchange
    fail_on: set[int]
    error: Exception = field(default_factory=lambda: RetryLater("binance: 502 bad gateway"))
    reads: int = 0
    orders: list[OrderRequest] = field(default_factory=list)
    name: str = "flaky"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        self.reads += 1
        if self.reads in self.fail_on:
            raise self.error
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.orders.append(order)
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.cancel_order(client_order_id, symbol)


def _drifted(fail_on: set[int]) -> FlakyReads:
    """BTC 70 % against 50 %: a rebalance sells BTC and buys ETH. Reads: 1 the cycle's
    snapshot, 2 after the sells, 3 the final one after the buys."""
    ex = PaperExchange("USDT", {"BTC": D("0.7"), "ETH": D(2), "USDT": D(12000)}, D("0.001"))
    ex.set_prices({"BTC": D(40000), "ETH": D(2000)}, T0)
    return FlakyReads(ex, fail_on)


def _monthly() -> Strategy:
    return Strategy("USDT", TARGETS, MONTHLY, PlanPolicy(min_trade=D(10)))


def test_a_failed_read_after_the_buys_still_records_the_cycle_as_fired() -> None:
    ex, journal, notes = _drifted({3}), MemoryJournal(), MemoryNotifier()
    report = run_cycle(ex, journal, notes, _monthly(), T0)

    sides = [o.side for o in ex.orders]
    assert Side.SELL in sides and Side.BUY in sides  # it traded
    assert report.fills and report.executed and report.decision.fire
    assert "502 bad gateway" in report.stopped and report.drift_after is None
    assert journal.cycles == [report]
    assert journal.trigger_times().last_fired == T0
    assert [e.kind for e in notes.events] == ["rebalance"]
    # five minutes later the monthly rule is not due again: nothing is traded twice
    again = run_cycle(ex, journal, notes, _monthly(), T0 + timedelta(minutes=5))
    assert not again.decision.fire and not again.fills
    assert len(ex.orders) == len(sides)


def test_an_unexpected_error_after_the_sells_records_the_cycle_then_raises() -> None:
    ex = _drifted({2})
    ex.error = KeyError("price")  # a bug or a surprise, not a transient read failure
    journal, notes = MemoryJournal(), MemoryNotifier()
    with pytest.raises(KeyError):
        run_cycle(ex, journal, notes, _monthly(), T0)
    assert [o.side for o in ex.orders] and {o.side for o in ex.orders} == {Side.SELL}
    [cycle] = journal.cycles
    assert cycle.executed and cycle.fills and "KeyError" in cycle.stopped
    assert journal.trigger_times().last_fired == T0
    assert [e.kind for e in notes.events] == ["rebalance"]


def test_a_ban_after_the_buys_halts_and_the_cycle_is_still_recorded() -> None:
    ex = _drifted({3})
    ex.error = ExchangeBanned("binance: 418 IP banned", retry_after=120)
    journal, notes = MemoryJournal(), MemoryNotifier()
    report = run_cycle(ex, journal, notes, _monthly(), T0)
    assert report.fills and report.stopped.startswith("halted: binance: 418")
    halt = journal.halt_status().active
    assert halt is not None and "418" in halt.reason
    assert journal.cycles == [report] and journal.trigger_times().last_fired == T0
    assert [e.kind for e in notes.events] == ["halt", "rebalance"]


class BrokenJournal(MemoryJournal):
    """A journal that cannot record cycles (a dropped database connection, say)."""

    def record_cycle(self, report: CycleRecord) -> None:
        raise RuntimeError("journal: connection lost")


def test_a_journal_that_cannot_record_does_not_hide_the_steps_failure() -> None:
    ex = _drifted({2})
    ex.error = KeyError("price")
    notes = MemoryNotifier()
    with pytest.raises(KeyError):
        run_cycle(ex, BrokenJournal(), notes, _monthly(), T0)
    assert [e.kind for e in notes.events] == ["rebalance"]  # the sells were still told


def test_a_cycle_that_cannot_be_recorded_fails_but_is_told() -> None:
    ex, notes = _drifted(set()), MemoryNotifier()
    with pytest.raises(RuntimeError, match="connection lost"):
        run_cycle(ex, BrokenJournal(), notes, _monthly(), T0)
    assert [e.kind for e in notes.events] == ["rebalance"]


def test_a_failed_first_read_records_nothing_and_raises() -> None:
    ex, journal = _drifted({1}), MemoryJournal()
    with pytest.raises(RetryLater):
        run_cycle(ex, journal, MemoryNotifier(), _monthly(), T0)
    assert journal.cycles == [] and ex.orders == []


def test_the_daemon_counts_a_cycle_that_traded_as_a_check_that_worked() -> None:
    clock = ManualClock(T0)
    ex, journal, notes = _drifted({3}), MemoryJournal(), MemoryNotifier()
    daemon = Daemon(
        ex,
        journal,
        notes,
        _monthly(),
        clock,
        DaemonPolicy(Schedule(period=timedelta(minutes=5)), max_ticks=3),
        JumpingWaiter(clock),
    )
    result = daemon.run(handle_signals=False)
    assert result.exit_code == 0 and daemon.failures == 0
    assert "error" not in [e.kind for e in notes.events]
    fired = [c for c in journal.cycles if c.decision.fire]
    assert len(journal.cycles) == 3 and len(fired) == 1  # traded once, never again


# --- a spread deposit is invested with either style (item 6) ------------------------------


def _spread(style: str) -> tuple[PaperExchange, MemoryJournal, Strategy]:
    policy = PlanPolicy(min_trade=D(1), cash_flows="spread", style=style)  # type: ignore[arg-type]
    strategy = Strategy(
        "USDT", {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")}, Threshold(D("0.10")), policy
    )
    ex = PaperExchange("USDT", {"BTC": D(40), "ETH": D(340), "USDT": D(2600)}, D("0.001"), D(0), {})
    ex.set_prices({"BTC": D(100), "ETH": D(10)}, T0)
    return ex, MemoryJournal(), strategy


@pytest.mark.parametrize("style", ["target", "band_edge"])
def test_a_spread_deposit_is_invested_with_either_style(style: str) -> None:
    ex, journal, strategy = _spread(style)
    first = run_cycle(ex, journal, MemoryNotifier(), strategy, T0)
    assert not first.decision.fire
    expected = expected_balances(first.snapshot.balances, first.fills, "USDT")
    ex.balances = {**ex.balances, "USDT": ex.balances["USDT"] + D(500)}
    report = run_cycle(
        ex, journal, MemoryNotifier(), strategy, T0 + timedelta(hours=4), expected=expected
    )
    assert report.decision.fire and "deposit of 500 USDT" in report.decision.reason
    assert report.plan is not None and report.buy_plan is not None
    assert [o.asset for o in report.buy_plan.buys] == [o.asset for o in report.plan.buys]
    costs = {f.asset: f.cost for f in report.fills if f.side is Side.BUY}
    assert set(costs) == {"BTC", "ETH"} and not [f for f in report.fills if f.side is Side.SELL]
    assert abs(costs["ETH"] - D(400)) < D(1) and abs(costs["BTC"] - D(100)) <= D(1)


def test_the_drift_after_a_spread_deposit_is_against_the_real_targets() -> None:
    ex, journal, strategy = _spread("target")
    expected = dict(ex.balances)
    ex.balances = {**ex.balances, "USDT": ex.balances["USDT"] + D(500)}
    report = run_cycle(ex, journal, MemoryNotifier(), replace(strategy), T0, expected=expected)
    assert report.drift_after is not None
    assert {a.asset: a.target for a in report.drift_after.assets} == dict(strategy.targets)
