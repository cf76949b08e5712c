"""A deposit the journal cannot explain is spread over the underweight assets by the service,
without a full rebalance; the daemon feeds the expected balances from cycle to cycle."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.flows import expected_balances
from rebalancer.core.model import Side
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.service import run_cycle

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")}


def _setup(cash_flows: str) -> tuple[PaperExchange, MemoryJournal, Strategy]:
    policy = PlanPolicy(min_trade=D(1), cash_flows=cash_flows)  # type: ignore[arg-type]
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.10")), policy)
    # BTC 4000 (target), ETH 3400 (6 points under, inside the 10-point band), USDT 2600
    ex = PaperExchange("USDT", {"BTC": D(40), "ETH": D(340), "USDT": D(2600)}, D("0.001"), D(0), {})
    ex.set_prices({"BTC": D(100), "ETH": D(10)}, T0)
    return ex, MemoryJournal(), strategy


def test_deposit_is_spread_over_the_underweight_assets() -> None:
    ex, journal, strategy = _setup("spread")
    first = run_cycle(ex, journal, MemoryNotifier(), strategy, T0)
    assert not first.decision.fire
    expected = expected_balances(first.snapshot.balances, first.fills, "USDT")
    ex.balances = {**ex.balances, "USDT": ex.balances["USDT"] + D(500)}  # a deposit
    second = run_cycle(
        ex, journal, MemoryNotifier(), strategy, T0 + timedelta(hours=4), expected=expected
    )
    assert second.flows == {"USDT": D(500)}
    assert second.decision.fire and "deposit of 500 USDT" in second.decision.reason
    # at the new total 10500 (cash 29.5 %, in band): ETH lacks 800, BTC 200; the 500 are
    # split by gap: 400 to ETH, 100 to BTC; nothing is sold
    costs = {f.asset: f.cost for f in second.fills if f.side is Side.BUY}
    assert len(second.fills) == 2
    assert abs(costs["ETH"] - D(400)) < D(1) and abs(costs["BTC"] - D(100)) <= D(1)  # amount steps
    # the next cycle finds what it expected: no flow, no trade
    expected = expected_balances(second.snapshot.balances, second.fills, "USDT")
    third = run_cycle(
        ex, journal, MemoryNotifier(), strategy, T0 + timedelta(hours=8), expected=expected
    )
    assert third.flows == {} and not third.decision.fire and not third.fills


def test_ignore_reports_the_flow_but_does_not_trade() -> None:
    ex, journal, strategy = _setup("ignore")
    first = run_cycle(ex, journal, MemoryNotifier(), strategy, T0)
    expected = expected_balances(first.snapshot.balances, first.fills, "USDT")
    ex.balances = {**ex.balances, "USDT": ex.balances["USDT"] + D(500)}
    second = run_cycle(
        ex, journal, MemoryNotifier(), strategy, T0 + timedelta(hours=1), expected=expected
    )
    assert second.flows == {"USDT": D(500)} and not second.decision.fire and not second.fills


def test_a_firing_rule_rebalances_fully_as_before() -> None:
    ex, journal, strategy = _setup("spread")
    strategy = replace(strategy, trigger=Threshold(D("0.05")))  # ETH 6 points out: fires
    expected = dict(ex.balances)
    ex.balances = {**ex.balances, "USDT": ex.balances["USDT"] + D(500)}
    report = run_cycle(ex, journal, MemoryNotifier(), strategy, T0, expected=expected)
    assert report.flows == {"USDT": D(500)}
    assert "deposit" not in report.decision.reason
    assert {f.asset for f in report.fills} == {"BTC", "ETH"}
