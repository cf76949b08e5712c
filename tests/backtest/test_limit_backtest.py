"""Backtests with limits inside the spread, on the embedded daily Binance candles."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest

from rebalancer.backtest.engine import BacktestResult, run_backtest
from rebalancer.core.execution import ExecutionPolicy, book, limit_price
from rebalancer.core.model import Side
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.data.panel import load_demo_panel, load_ranges

D = Decimal
DAY = timedelta(days=1)
TAKER, MAKER, SLIP = D("0.001"), D("0.0002"), D("0.0005")
TARGETS = {"BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1")}
LIMIT = ExecutionPolicy(order_type="limit_inside", limit_offset=D("0.25"))


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]]:
    panel = load_demo_panel(["BTC", "ETH", "SOL"])
    return panel.closes, load_ranges(panel)


def backtest(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
    execution: ExecutionPolicy = LIMIT,
    *,
    engine: str = "replay",
    ranges: bool = True,
) -> BacktestResult:
    closes, lows_highs = data
    strategy = Strategy(
        "USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(D(10), slippage=SLIP), execution
    )
    return run_backtest(
        closes,
        strategy,
        capital=D(10000),
        taker_fee=TAKER,
        maker_fee=MAKER,
        slippage=SLIP,
        bar=DAY,
        benchmarks=False,
        engine=engine,
        ranges=lows_highs if ranges else None,
    )


def test_filled_limits_pay_the_maker_fee_at_their_limit_price(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    closes, (lows, highs) = data
    run = backtest(data).run
    makers = 0
    for fire in run.fires:
        i, report = fire.bar, fire.report
        assert report is not None
        fills = {f.client_order_id: f for f in report.fills}
        for limit in report.limits:
            if limit.filled == 0:
                assert limit.client_order_id not in fills
                continue
            makers += 1
            f = fills[limit.client_order_id]
            assert f.amount == limit.amount  # the simulated limit fills completely or not
            assert f.price == limit.price
            assert f.fee == (f.amount if f.side is Side.BUY else f.cost) * MAKER
            # the price sits inside the simulated book, a quarter of the spread from our side
            bid, ask = book(report.snapshot, f.asset) or (D(0), D(0))
            assert f.price == limit_price(f.side, bid, ask, LIMIT.limit_offset)
            # ... and the next bar traded through it
            nxt = closes.index[i + 1]
            if f.side is Side.BUY:
                assert float(f.price) >= lows.at[nxt, f.asset]
            else:
                assert float(f.price) <= highs.at[nxt, f.asset]
        for f in report.fills:  # everything else went at market, paying the taker fee
            if f.client_order_id not in {x.client_order_id for x in report.limits}:
                assert f.fee == (f.amount if f.side is Side.BUY else f.cost) * TAKER
    assert makers > 10


def test_limits_cost_less_than_market_orders(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    limit = backtest(data).run
    market = backtest(data, ExecutionPolicy()).run
    assert limit.fees < market.fees
    bps = [
        c.report.slippage_bps(f) for c in limit.fires if c.report for f in c.fills if f.price != 0
    ]  # against the planner's expected price (the slippage allowance included)
    assert all(b is not None and b <= 0 for b in bps)


def test_limits_are_refused_by_the_compiled_engine_by_name(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    """Not approximated (no silent fall-back to market orders): the compiled engine names
    the setting and the engine that runs it."""
    from rebalancer.backtest.compiled.program import UnsupportedRule

    with pytest.raises(UnsupportedRule, match=r'order_type = "limit_inside".*--engine replay'):
        backtest(data, engine="compiled")


def test_without_ranges_every_limit_falls_back_to_market(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    run = backtest(data, ranges=False).run
    limits = [x for c in run.fires if c.report for x in c.report.limits]
    assert limits and all(x.filled == 0 and x.fallback.startswith("market") for x in limits)


def test_the_default_market_path_ignores_ranges_and_plans_without_a_book(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    closes, _ = data
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(D(10), slippage=SLIP))
    kw = {"capital": D(10000), "taker_fee": TAKER, "slippage": SLIP, "bar": DAY}
    plain = run_backtest(closes, strategy, benchmarks=False, engine="replay", **kw).run  # type: ignore[arg-type]
    with_extras = backtest(data, ExecutionPolicy()).run
    assert with_extras.final_balances == plain.final_balances
    assert [c.fills for c in with_extras.fires] == [c.fills for c in plain.fires]
    compiled = backtest(data, ExecutionPolicy(), engine="compiled").run  # ranges ignored too
    assert compiled.rebalance_bars == plain.rebalance_bars
    for c in plain.fires:
        r = c.report
        assert r is not None
        assert r.snapshot.bids == {} and r.limits == []
        assert all(f.client_order_id[-2] in "sb" for f in r.fills)  # plain ids: rb...s0
    explicit = replace(strategy, execution=ExecutionPolicy())
    assert explicit == strategy
