"""The backtest: hand-checked cases on both engines, compiled == replay on real history,
parity with the planner, refusals that name ``--engine replay``."""

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
from rebalancer.backtest.compiled.program import UnsupportedRule
from rebalancer.backtest.engine import BacktestResult, FirstBar, Run, run_backtest
from rebalancer.core.cron import Cron
from rebalancer.core.errors import ConfigError
from rebalancer.core.execution import ExecutionPolicy
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


ENGINES = ["compiled", "replay"]


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_checked_no_fee(engine: str) -> None:
    """1000 USDT, 50/50, band 10 points; BTC 100 -> 100 -> 200 -> 100."""
    closes, strategy = _two_assets(Threshold(D("0.1")), [100, 100, 200, 100])
    res = run_backtest(
        closes, strategy, capital=D(1000), taker_fee=D(0), bar=DAY, rules=_free_rules(D(0)),
        engine=engine,
    )
    assert res.engine == engine and res.summary()["engine"] == engine
    assert all(b.engine == engine for b in res.benchmarks.values())
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


@pytest.mark.parametrize(("engine", "rel"), [("compiled", D("1e-13")), ("replay", D("1e-20"))])
def test_hand_checked_with_fee(engine: str, rel: Decimal) -> None:
    """Fee f on what is traded: buys pay in BTC, sells in USDT; V' solved exactly (the
    replay in Decimal to 1e-20, the compiled engine in floats to 1e-13)."""
    f = D("0.001")
    closes, strategy = _two_assets(Threshold(D("0.1")), [100, 200])
    res = run_backtest(
        closes, strategy, capital=D(1000), taker_fee=f, bar=DAY, rules=_free_rules(f),
        engine=engine,
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
    assert trades[0].cost == pytest.approx(spend, rel=rel)
    assert trades[1].cost == pytest.approx(sold, rel=rel)
    assert (trades[0].fee_asset, trades[1].fee_asset) == ("BTC", "USDT")
    assert trades[0].fee == pytest.approx(f * btc / (1 - f), rel=rel)  # f of the BTC bought
    assert res.run.fees == pytest.approx(f * (spend + sold), rel=rel)
    assert res.run.final_value == pytest.approx(v1, rel=rel)
    assert res.run.metrics.fees == pytest.approx(float(f * (spend + sold)))


@pytest.mark.parametrize("engine", ENGINES)
def test_never_trades_nothing_and_from_holdings(engine: str) -> None:
    closes, strategy = _two_assets(Never(), [100, 150, 50])
    res = run_backtest(
        closes,
        strategy,
        initial={"BTC": D(2), "USDT": D(100)},
        taker_fee=D("0.001"),
        bar=DAY,
        rules=_free_rules(D("0.001")),
        engine=engine,
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
    with pytest.raises(ConfigError, match="--engine must be one of compiled, replay, not 'fast'"):
        run_backtest(closes, strategy, capital=D(1), taker_fee=D(0), bar=DAY, engine="fast")


LIMIT = ExecutionPolicy(order_type="limit_inside")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"execution": LIMIT}, 'order_type = "limit_inside"'),
        ({"execution": ExecutionPolicy(slice_above=D(100))}, "slice_above = 100"),
        ({"slippage": D("0.002")}, r"fill slippage \(0.002\)"),
        ({"initial": {"USDT": D(100), "DOGE": D(5)}}, r"outside the targets \(DOGE\)"),
    ],
)
def test_what_the_compiled_engine_does_not_model_is_refused(
    change: dict[str, object], named: str
) -> None:
    """Never approximated: refused by name, pointing at ``--engine replay``, which runs it."""
    closes, strategy = _two_assets(Threshold(D("0.1")), [100, 120, 90])
    if "execution" in change:
        strategy = replace(strategy, execution=change["execution"])  # type: ignore[arg-type]
    start = change.get("initial") or {"USDT": D(1000)}
    kw = {"taker_fee": D("0.001"), "bar": DAY, "initial": start}
    if "slippage" in change:
        kw["slippage"] = change["slippage"]
    with pytest.raises(UnsupportedRule, match=named) as err:
        run_backtest(closes, strategy, **kw)  # type: ignore[arg-type]
    assert "--engine replay" in str(err.value)
    if "DOGE" in str(start):
        closes["DOGE"] = [1.0, 1.0, 1.0]
    replayed = run_backtest(closes, strategy, engine="replay", **kw)  # type: ignore[arg-type]
    assert replayed.engine == "replay"


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
def test_compiled_equals_replay_on_real_history(
    closes: pd.DataFrame, name: str, trigger: Trigger, style: str
) -> None:
    """Same firing bars and reasons, same trades, final values within 1e-9 relative, on a
    year of real daily data; every amount equal (no step tie on this data)."""
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    year = closes.loc["2021-01-01":"2021-12-31"]  # type: ignore[misc]
    strategy = _strategy(trigger, style)
    fast = run_backtest(year, strategy, engine="compiled", **kw)  # type: ignore[arg-type]
    slow = run_backtest(year, strategy, engine="replay", **kw)  # type: ignore[arg-type]
    assert fast.run.fired_bars == slow.run.fired_bars
    assert len(fast.run.rebalance_bars) > 0
    assert [c.reason for c in fast.run.fires] == [c.reason for c in slow.run.fires]
    mine, theirs = fast.trades, slow.trades
    assert [(t.bar, t.asset, t.side, t.fee_asset) for t in mine] == [
        (t.bar, t.asset, t.side, t.fee_asset) for t in theirs
    ]
    assert [t.amount for t in mine] == [t.amount for t in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert float(a.cost) == pytest.approx(float(b.cost), rel=1e-9)
        assert float(a.fee_quote) == pytest.approx(float(b.fee_quote), rel=1e-9)
    assert float(fast.run.final_value) == pytest.approx(float(slow.run.final_value), rel=1e-9)
    for asset, amount in slow.run.final_balances.items():
        assert float(fast.run.final_balances[asset]) == pytest.approx(float(amount), rel=1e-9)
    np.testing.assert_allclose(fast.run.equity, slow.run.equity, rtol=1e-9)
    np.testing.assert_allclose(fast.run.weights, slow.run.weights, rtol=1e-9, atol=1e-12)
    assert fast.run.metrics.turnover == pytest.approx(slow.run.metrics.turnover, rel=1e-9)
    assert fast.run.metrics.fees == pytest.approx(slow.run.metrics.fees, rel=1e-9)


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
    assert res.run.fires[0].fills == bh.fires[0].fills == cal.fires[0].fills
    s = res.summary()
    assert s["strategy"]["final_value"] == float(res.run.final_value)
    assert s["benchmarks"]["buy_and_hold"]["rebalances"] == 1


def _balances_before(run: Run, bar: int) -> dict[str, Decimal]:
    balances = dict(run.initial)
    for fire in run.fires:
        if fire.bar >= bar:
            break
        for f in fire.fills:
            balances = apply_fill(balances, f, run.strategy.quote)
    return balances


def test_parity_with_the_planner(closes: pd.DataFrame) -> None:
    """On every bar, a fresh account with the replay's balances and that bar's prices gets
    the same decision from ``evaluate``, and on firing bars the same plan from ``plan``."""
    strategy = _strategy(Threshold(D("0.04")), "band_edge")
    res: BacktestResult = run_backtest(
        closes, strategy, capital=D(10000), taker_fee=D("0.001"), bar=DAY, benchmarks=False,
        engine="replay",
    )
    run = res.run
    reports = {c.bar: c.report for c in run.fires}
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
            assert reports[bar].plan == expected  # type: ignore[union-attr]
    assert checked_fire >= 1
    # and every bar where the run fired, checked directly
    for fire in run.fires:
        bar, report = fire.bar, fire.report
        assert report is not None
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
    assert len(frame) == sum(len(c.fills) for c in res.run.fires)
    assert frame["fee_quote"].sum() == pytest.approx(float(res.run.fees))
    # fees are on what is traded (0.1 % of the turnover), not total x fee x assets
    assert float(res.run.fees) == pytest.approx(0.001 * frame["cost"].sum(), rel=1e-3)
    assert res.run.metrics.n_rebalances == len(res.run.rebalance_bars)


def test_replace_keeps_strategy_frozen() -> None:
    _, strategy = _two_assets(Threshold(D("0.1")), [100, 100])
    other = replace(strategy, trigger=FirstBar())
    assert strategy.trigger != other.trigger
