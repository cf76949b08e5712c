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
    fast: bool = True,
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
        fast=fast,
        ranges=lows_highs if ranges else None,
    )


def test_filled_limits_pay_the_maker_fee_at_their_limit_price(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    closes, (lows, highs) = data
    run = backtest(data).run
    makers = 0
    for i, report in run.cycles:
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
        r.slippage_bps(f) for _, r in limit.cycles for f in r.fills if f.price != 0
    ]  # against the planner's expected price (the slippage allowance included)
    assert all(b is not None and b <= 0 for b in bps)


def test_skipping_quiet_bars_equals_bar_by_bar_with_limits(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    fast, plain = backtest(data).run, backtest(data, fast=False).run
    assert [i for i, _ in fast.cycles if _.fills] == [i for i, _ in plain.cycles if _.fills]
    assert fast.final_balances == plain.final_balances


def test_without_ranges_every_limit_falls_back_to_market(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    run = backtest(data, ranges=False).run
    limits = [x for _, r in run.cycles for x in r.limits]
    assert limits and all(x.filled == 0 and x.fallback.startswith("market") for x in limits)


def test_the_default_market_path_ignores_ranges_and_plans_without_a_book(
    data: tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    closes, _ = data
    strategy = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(D(10), slippage=SLIP))
    kw = {"capital": D(10000), "taker_fee": TAKER, "slippage": SLIP, "bar": DAY}
    plain = run_backtest(closes, strategy, benchmarks=False, **kw).run  # type: ignore[arg-type]
    with_extras = backtest(data, ExecutionPolicy()).run
    assert with_extras.final_balances == plain.final_balances
    assert [r.fills for _, r in with_extras.cycles] == [r.fills for _, r in plain.cycles]
    for _, r in plain.cycles:
        assert r.snapshot.bids == {} and r.limits == []
        assert all(f.client_order_id[-2] in "sb" for f in r.fills)  # plain ids: rb...s0
    explicit = replace(strategy, execution=ExecutionPolicy())
    assert explicit == strategy
