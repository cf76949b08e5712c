"""One cycle through the service, against the paper exchange and small fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import InsufficientFunds, OrderOutcomeUnknown
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold, hybrid
from rebalancer.service import client_order_id, id_time, part_order_id, run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}


def strategy(trigger: object = None, slippage: str = "0") -> Strategy:
    return Strategy(
        "USDT",
        TARGETS,
        trigger or Threshold(D("0.05")),  # type: ignore[arg-type]
        PlanPolicy(min_trade=D(10), slippage=D(slippage)),
    )


@dataclass
class RecordingExchange:
    """Paper exchange that records calls and can fail chosen orders."""

    inner: PaperExchange
    fail: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    name: str = "recording"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        self.calls.append("snapshot")
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.calls.append(f"{order.side.value} {order.asset}")
        if order.asset in self.fail:
            raise self.fail[order.asset]
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


def paper(balances: dict[str, str], slippage: str = "0") -> PaperExchange:
    ex = PaperExchange("USDT", {k: D(v) for k, v in balances.items()}, D("0.001"), D(slippage))
    ex.set_prices({"BTC": D(40000), "ETH": D(2000)}, T0)
    return ex


def test_sells_go_first_and_balances_are_read_again_before_buys() -> None:
    ex = RecordingExchange(paper({"BTC": "0.2", "USDT": "0"}))
    report = run_cycle(ex, MemoryJournal(), MemoryNotifier(), strategy(), T0)
    assert report.decision.fire
    assert ex.calls[:3] == ["snapshot", "sell BTC", "snapshot"]
    assert ex.calls[3] == "buy ETH"
    assert report.drift_after is not None
    for a in report.drift_after.assets:
        assert abs(a.drift) < D("0.01"), a


def test_buys_are_sized_from_real_proceeds_when_fills_are_worse_than_planned() -> None:
    # the exchange slips 2 % while the plan allows none: the buy must shrink, not overdraw
    inner = paper({"BTC": "0.2", "USDT": "0"}, slippage="0.02")
    ex = RecordingExchange(inner)
    report = run_cycle(ex, MemoryJournal(), MemoryNotifier(), strategy(), T0)
    assert report.plan is not None and report.buy_plan is not None
    planned = report.plan.buys[0].expected_cost
    sent = report.buy_plan.buys[0].expected_cost
    assert sent < planned
    assert inner.balances["USDT"] >= 0
    assert all(v >= 0 for v in inner.balances.values())


def test_a_failed_leg_is_reported_and_the_rest_goes_on() -> None:
    ex = RecordingExchange(paper({"USDT": "10000"}), fail={"BTC": InsufficientFunds("no")})
    notifier = MemoryNotifier()
    report = run_cycle(ex, MemoryJournal(), notifier, strategy(), T0)
    assert [f.asset for f in report.fills] == ["ETH"]
    assert [(x.order.asset, x.kind) for x in report.failed] == [("BTC", "InsufficientFunds")]
    assert any(e.kind == "skip" for e in notifier.events)


def test_unknown_outcome_stops_the_cycle_before_the_buys() -> None:
    ex = RecordingExchange(
        paper({"BTC": "0.2", "USDT": "0"}), fail={"BTC": OrderOutcomeUnknown("timeout", "x")}
    )
    report = run_cycle(ex, MemoryJournal(), MemoryNotifier(), strategy(), T0)
    assert report.stopped and "look it up" in report.stopped
    assert not any(c.startswith("buy") for c in ex.calls)


def test_client_order_ids_are_deterministic_and_unique_per_leg() -> None:
    ex = RecordingExchange(paper({"BTC": "0.2", "USDT": "0"}))
    report = run_cycle(ex, MemoryJournal(), MemoryNotifier(), strategy(), T0)
    ids = [f.client_order_id for f in report.fills]
    assert ids[0] == client_order_id(T0, Side.SELL, 0) == "rbagy8t1c0s0"
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= 18 and i.isalnum() and i.islower() for i in ids)  # Kraken's limit
    assert {id_time(i) for i in ids} == {T0}


def test_cycles_a_millisecond_apart_never_share_a_client_order_id() -> None:
    """Two runs within one second (a double-clicked rebalance, a reset and a re-run) get
    different ids: the journal would refuse a reused one."""
    later = T0 + timedelta(milliseconds=1)
    assert client_order_id(T0, Side.SELL, 0) != client_order_id(later, Side.SELL, 0)
    assert part_order_id(T0, Side.BUY, 3, 7, True) != part_order_id(later, Side.BUY, 3, 7, True)
    stamp = T0 + timedelta(days=20000, milliseconds=123)  # 2080
    assert id_time(part_order_id(stamp, Side.BUY, 35, 299, True)) == stamp
    assert len(part_order_id(stamp, Side.BUY, 35, 299, True)) == 14
    with pytest.raises(ValueError, match="2000-01-01"):
        client_order_id(T0.replace(year=1999), Side.SELL, 0)


def test_plan_only_sends_nothing_and_records_nothing() -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    journal = MemoryJournal()
    report = run_cycle(inner, journal, MemoryNotifier(), strategy(), T0, execute=False)
    assert report.plan is not None and report.plan.orders
    assert inner.balances == {"BTC": D("0.2"), "USDT": D(0)}
    assert journal.cycles == []


def test_hybrid_checks_on_the_calendar_and_acts_only_out_of_band() -> None:
    rule = hybrid(Calendar(period=timedelta(days=7)), Threshold(D("0.05")))
    inner = paper({"BTC": "0.2", "USDT": "0"})
    journal = MemoryJournal()
    first = run_cycle(inner, journal, MemoryNotifier(), strategy(rule), T0)
    assert first.decision.fire and first.fills
    # a day later: the calendar is not due, even after a big move
    inner.set_prices({"BTC": D(80000), "ETH": D(2000)}, T0 + timedelta(days=1))
    later = run_cycle(inner, journal, MemoryNotifier(), strategy(rule), T0 + timedelta(days=1))
    assert not later.decision.fire and "not due" in later.decision.reason
    # the next week: due and out of band
    week = T0 + timedelta(days=8)
    due = run_cycle(inner, journal, MemoryNotifier(), strategy(rule), week)
    assert due.decision.fire and due.fills


def test_realised_slippage_is_recorded_against_the_expected_price() -> None:
    # the plan allows 0.1 % but the exchange fills 2 % worse: +200 bps on the sell (sold
    # cheaper); the buy is re-planned after the sells at the same allowance, so also ~+190 bps
    inner = paper({"BTC": "0.2", "USDT": "0"}, slippage="0.02")
    report = run_cycle(inner, MemoryJournal(), MemoryNotifier(), strategy(slippage="0.001"), T0)
    sell = next(f for f in report.fills if f.side is Side.SELL)
    expected = report.sent[sell.client_order_id].expected_price
    assert expected == D(40000) * D("0.999") and sell.price == D(40000) * D("0.98")
    bps = report.slippage_bps(sell)
    assert bps is not None and abs(bps - (1 - D("0.98") / D("0.999")) * 10000) < D("1e-20")
    row = report.summary()["fills"][0]
    assert row["expected_price"] == str(expected) and D(row["slippage_bps"]) > 180
    buy = next(f for f in report.fills if f.side is Side.BUY)
    assert report.slippage_bps(buy) is not None and report.slippage_bps(buy) > 0
