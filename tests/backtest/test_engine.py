"""The backtest engine: hand-checked cases, skip == bar by bar, parity with the planner."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.backtest.engine import BacktestResult, FirstBar, Run, run_backtest
from rebalancer.core.cron import Cron
from rebalancer.core.errors import ConfigError
from rebalancer.core.fills import apply_fill
from rebalancer.core.model import MarketRules
from rebalancer.core.planner import PlanPolicy, plan
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import AnyOf, Calendar, Never, Threshold, Trigger, hybrid
from rebalancer.data.panel import load_panel
from rebalancer.service import evaluate

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
DAY = timedelta(days=1)
D = Decimal


def _free_rules(fee: Decimal) -> dict[str, MarketRules]:
    """No step, no minimum: the hand-checkable market."""
    return {"BTC": MarketRules("BTC/USDT", "BTC", "USDT", taker_fee=fee)}


def _two_assets(trigger: Trigger, prices: list[float]) -> tuple[pd.DataFrame, Strategy]:
    index = pd.date_range("2024-01-01", periods=len(prices), freq="D", tz="UTC")
    closes = pd.DataFrame({"BTC": prices}, index=index)
    strategy = Strategy(
        "USDT", {"BTC": D("0.5"), "USDT": D("0.5")}, trigger, PlanPolicy(min_trade=D(0))
    )
    return closes, strategy


def test_hand_checked_no_fee() -> None:
    """1000 USDT, 50/50, band 10 points; BTC 100 -> 100 -> 200 -> 100."""
    closes, strategy = _two_assets(Threshold(D("0.1")), [100, 100, 200, 100])
    res = run_backtest(
        closes, strategy, capital=D(1000), taker_fee=D(0), bar=DAY, rules=_free_rules(D(0))
    )
    run = res.run
    # bar 0 buys 5 BTC; bar 2 (weight 2/3) sells 1.25; bar 3 (weight 1/3) buys 1.875
    assert run.rebalance_bars == [0, 2, 3]
    amounts = [(t.bar, t.side, t.amount) for t in res.trades]
    assert amounts == [(0, "buy", D(5)), (2, "sell", D("1.25")), (3, "buy", D("1.875"))]
    assert run.final_value == D(1125)
    assert run.final_balances == {"USDT": D("562.5"), "BTC": D("5.625")}
    assert run.fees == 0
    np.testing.assert_allclose(run.equity, [1000, 1000, 1500, 1125])
    # buy-and-hold: 5 BTC + 500 USDT; monthly calendar: only the first bar in January
    assert res.benchmarks["buy_and_hold"].final_value == D(1000)
    assert res.benchmarks["buy_and_hold"].rebalance_bars == [0]
    assert res.benchmarks["calendar"].rebalance_bars == [0]
    assert res.premium is not None
    assert res.premium.total == pytest.approx(0.125)
    assert run.metrics.n_rebalances == 3
    assert run.metrics.max_drawdown == pytest.approx(1 - 1125 / 1500)


def test_hand_checked_with_fee() -> None:
    """Fee f on what is traded: buys pay in BTC, sells in USDT; V' solved exactly."""
    f = D("0.001")
    closes, strategy = _two_assets(Threshold(D("0.1")), [100, 200])
    res = run_backtest(
        closes, strategy, capital=D(1000), taker_fee=f, bar=DAY, rules=_free_rules(f)
    )
    # bar 0: buy c with c (1 - f) = V'/2 and V' = 1000 - f c  ->  V' = 1000 / (1 + f / (2 (1 - f)))
    v0 = D(1000) / (1 + f / (2 * (1 - f)))
    spend = v0 / 2 / (1 - f)
    btc = v0 / 2 / 100
    cash = 1000 - spend
    # bar 1: BTC worth 2x; sell s of value with V' = V - f s and s = v - V'/2
    total, v = btc * 200 + cash, btc * 200
    v1 = (total - f * v) / (1 - f / 2)
    sold = v - v1 / 2
    assert res.run.rebalance_bars == [0, 1]
    trades = res.trades
    assert trades[0].cost == pytest.approx(spend, rel=D("1e-20"))
    assert trades[1].cost == pytest.approx(sold, rel=D("1e-20"))
    assert res.run.fees == pytest.approx(f * (spend + sold), rel=D("1e-20"))
    assert res.run.final_value == pytest.approx(v1, rel=D("1e-20"))
    assert res.run.metrics.fees == pytest.approx(float(f * (spend + sold)))


def test_never_trades_nothing_and_from_holdings() -> None:
    closes, strategy = _two_assets(Never(), [100, 150, 50])
    res = run_backtest(
        closes,
        strategy,
        initial={"BTC": D(2), "USDT": D(100)},
        taker_fee=D("0.001"),
        bar=DAY,
        rules=_free_rules(D("0.001")),
    )
    assert res.run.rebalance_bars == []
    assert res.run.final_value == D(200)
    np.testing.assert_allclose(res.benchmarks["hold_start"].equity, [300, 400, 200])
    assert res.trades_frame().empty


def test_bad_inputs_are_refused() -> None:
    closes, strategy = _two_assets(Threshold(), [100, 100])
    with pytest.raises(ConfigError, match="either capital"):
        run_backtest(closes, strategy, taker_fee=D(0), bar=DAY)
    with pytest.raises(ConfigError, match="no close prices"):
        run_backtest(
            closes.rename(columns={"BTC": "ETH"}), strategy, capital=D(1), taker_fee=D(0), bar=DAY
        )
    with pytest.raises(ConfigError, match="capital"):
        run_backtest(closes, strategy, capital=D(-1), taker_fee=D(0), bar=DAY)


# -- real history ------------------------------------------------------------------------------

TARGETS = {
    "BTC": D("0.25"),
    "ETH": D("0.2"),
    "BNB": D("0.2"),
    "XRP": D("0.15"),
    "LTC": D("0.1"),
    "USDT": D("0.1"),
}


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    panel = load_panel(DATA, ["BTC", "ETH", "BNB", "XRP", "LTC"], "1d", start="2018-05-04")
    return panel.closes


def _strategy(trigger: Trigger, style: str = "target") -> Strategy:
    policy = PlanPolicy(min_trade=D(10), slippage=D("0.001"), style=style)  # type: ignore[arg-type]
    return Strategy("USDT", TARGETS, trigger, policy)


TRIGGERS: list[tuple[str, Trigger, str]] = [
    ("abs 5%", Threshold(D("0.05")), "target"),
    ("abs 2% band edge", Threshold(D("0.02")), "band_edge"),
    ("rel 25%", Threshold(None, D("0.25")), "target"),
    ("abs or rel", Threshold(D("0.08"), D("0.3")), "band_edge"),
    ("hybrid weekly", hybrid(Calendar(period=timedelta(days=7)), Threshold(D("0.03"))), "target"),
    ("any of", AnyOf((Calendar(period=timedelta(days=30)), Threshold(D("0.1")))), "target"),
    ("first bar", FirstBar(), "target"),
    ("monthly cron", Calendar(cron=Cron.parse("0 0 1 * *")), "target"),
    (
        "hybrid cron mondays",
        hybrid(Calendar(cron=Cron.parse("0 0 * * 1")), Threshold(D("0.02"))),
        "band_edge",
    ),
    (
        "weekly look or band",
        AnyOf((Calendar(period=timedelta(days=7), since="check"), Threshold(D("0.05")))),
        "target",
    ),
]


@pytest.mark.parametrize(("name", "trigger", "style"), TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_skipping_equals_bar_by_bar(
    closes: pd.DataFrame, name: str, trigger: Trigger, style: str
) -> None:
    """Same decisions, same fills, same final balances, exactly, on 4.4 years of real data."""
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "slippage": D("0.0005"), "bar": DAY}
    strategy = _strategy(trigger, style)
    fast = run_backtest(closes, strategy, fast=True, benchmarks=False, **kw)  # type: ignore[arg-type]
    slow = run_backtest(closes, strategy, fast=False, benchmarks=False, **kw)  # type: ignore[arg-type]
    assert fast.run.fired_bars == slow.run.fired_bars
    assert [r.decision for _, r in fast.run.cycles] == [r.decision for _, r in slow.run.cycles]
    assert len(fast.run.rebalance_bars) > 0
    assert [r.fills for _, r in fast.run.cycles] == [r.fills for _, r in slow.run.cycles]
    assert fast.run.final_balances == slow.run.final_balances
    assert fast.run.final_value == slow.run.final_value
    np.testing.assert_array_equal(fast.run.equity, slow.run.equity)


def test_calendar_benchmark_is_monthly(closes: pd.DataFrame) -> None:
    res = run_backtest(
        closes, _strategy(Threshold(D("0.05"))), capital=D(10000), taker_fee=D("0.001"), bar=DAY
    )
    cal = res.benchmarks["calendar"]
    times = [cal.times[i] for i in cal.rebalance_bars]
    assert times[0] == cal.times[0]
    assert all(t.day == 1 for t in times[1:])
    assert len(times) == 1 + len({(t.year, t.month) for t in cal.times[1:] if t.day == 1})
    bh = res.benchmarks["buy_and_hold"]
    assert bh.rebalance_bars == [0]
    # the strategy and both benchmarks start with the same bar-0 purchase
    assert res.run.cycles[0][1].fills == bh.cycles[0][1].fills == cal.cycles[0][1].fills
    s = res.summary()
    assert s["strategy"]["final_value"] == float(res.run.final_value)
    assert s["benchmarks"]["buy_and_hold"]["rebalances"] == 1


def _balances_before(run: Run, bar: int) -> dict[str, Decimal]:
    balances = dict(run.initial)
    for i, report in run.cycles:
        if i >= bar:
            break
        for f in report.fills:
            balances = apply_fill(balances, f, run.strategy.quote)
    return balances


def test_parity_with_the_planner(closes: pd.DataFrame) -> None:
    """On every bar, a fresh account with the backtest's balances and that bar's prices gets
    the same decision from ``evaluate``, and on firing bars the same plan from ``plan``."""
    strategy = _strategy(Threshold(D("0.04")), "band_edge")
    res: BacktestResult = run_backtest(
        closes, strategy, capital=D(10000), taker_fee=D("0.001"), bar=DAY, benchmarks=False
    )
    run = res.run
    reports = dict(run.cycles)
    assets = list(strategy.assets)
    first = {a: Decimal(repr(float(closes[a].iloc[0]))) for a in assets}
    checked_fire = 0
    for bar in range(0, len(closes), 7):
        prices = {a: Decimal(repr(float(closes[a].iloc[bar]))) for a in assets}
        exchange = PaperExchange("USDT", _balances_before(run, bar), D("0.001"), D(0))
        exchange.set_prices(first, run.times[0])  # same default market rules as the run
        exchange.set_prices(prices, run.times[bar])
        snapshot, _, decision = evaluate(exchange, MemoryJournal(), strategy, run.times[bar])
        assert decision.fire == (bar in reports), bar
        if decision.fire:
            checked_fire += 1
            expected = plan(snapshot, strategy.targets, strategy.policy, strategy.threshold)
            assert reports[bar].plan == expected
    assert checked_fire >= 1
    # and every bar where the run fired, checked directly
    for bar, report in run.cycles:
        prices = {a: Decimal(repr(float(closes[a].iloc[bar]))) for a in assets}
        exchange = PaperExchange("USDT", _balances_before(run, bar), D("0.001"), D(0))
        exchange.set_prices(first, run.times[0])
        exchange.set_prices(prices, run.times[bar])
        snapshot, _, decision = evaluate(exchange, MemoryJournal(), strategy, run.times[bar])
        assert decision == report.decision
        assert plan(snapshot, strategy.targets, strategy.policy, strategy.threshold) == report.plan


def test_trades_frame_and_fees(closes: pd.DataFrame) -> None:
    res = run_backtest(
        closes, _strategy(Threshold(D("0.05"))), capital=D(10000), taker_fee=D("0.001"), bar=DAY
    )
    frame = res.trades_frame()
    assert len(frame) == sum(len(r.fills) for _, r in res.run.cycles)
    assert frame["fee_quote"].sum() == pytest.approx(float(res.run.fees))
    # fees are on what is traded (0.1 % of the turnover), not total x fee x assets
    assert float(res.run.fees) == pytest.approx(0.001 * frame["cost"].sum(), rel=1e-3)
    assert res.run.metrics.n_rebalances == len(res.run.rebalance_bars)


def test_replace_keeps_strategy_frozen() -> None:
    _, strategy = _two_assets(Threshold(D("0.1")), [100, 100])
    other = replace(strategy, trigger=FirstBar())
    assert strategy.trigger != other.trigger
