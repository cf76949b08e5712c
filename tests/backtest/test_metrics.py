"""Metrics: hand-computed returns, ratios, drawdowns, annualisation on 365-day years."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.metrics import (
    compute_metrics,
    drawdown,
    rebalancing_premium,
    run_metrics,
)
from rebalancer.backtest.reference import buy_and_hold, simulate

DAY = timedelta(days=1)


def test_daily_curve_by_hand() -> None:
    # returns: 120/100-1 = 0.2, 90/120-1 = -0.25, 108/90-1 = 0.2, 135/108-1 = 0.25
    # mean 0.1; deviations 0.1, -0.35, 0.1, 0.15 -> squares sum 0.165 -> var (ddof 1) 0.055
    # downside: only -0.25 -> mean of squares 0.0625 / 4 = 0.015625 -> deviation 0.125
    m = compute_metrics([100.0, 120.0, 90.0, 108.0, 135.0], DAY)
    assert m.final_value == 135.0
    assert m.total_return == pytest.approx(0.35, rel=1e-15)
    assert m.years == pytest.approx(4 / 365, rel=1e-15)
    assert m.cagr == pytest.approx(1.35 ** (365 / 4) - 1, rel=1e-12)
    assert m.volatility == pytest.approx(math.sqrt(0.055 * 365), rel=1e-12)
    assert m.sharpe == pytest.approx(0.1 / math.sqrt(0.055) * math.sqrt(365), rel=1e-12)
    assert m.sortino == pytest.approx(0.8 * math.sqrt(365), rel=1e-12)
    # peak 120 at bar 1, trough 90: 25 %; under water bars 2 and 3, new high at bar 4
    assert m.max_drawdown == pytest.approx(0.25, rel=1e-15)
    assert m.max_drawdown_bars == 2
    assert m.max_drawdown_duration == timedelta(days=2)
    assert m.calmar == pytest.approx(m.cagr / 0.25, rel=1e-15)


def test_cagr_uses_365_day_years_for_any_bar_period() -> None:
    # doubling over exactly one 365-day year gives CAGR 100 %, daily or hourly bars
    daily = 100 * 2 ** (np.arange(366) / 365)
    assert compute_metrics(daily, DAY).cagr == pytest.approx(1.0, rel=1e-12)
    hourly = 100 * 2 ** (np.arange(8761) / 8760)
    m = compute_metrics(hourly, timedelta(hours=1))
    assert m.years == pytest.approx(1.0, rel=1e-15)
    assert m.cagr == pytest.approx(1.0, rel=1e-12)
    # constant growth: zero volatility, Sharpe undefined, no drawdown, Calmar undefined
    assert m.volatility == pytest.approx(0.0, abs=1e-12)
    assert m.max_drawdown == 0.0
    assert math.isnan(m.calmar)
    # the bar period may be given in seconds
    assert compute_metrics(hourly, 3600).cagr == m.cagr


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    # peak 100 at bar 0, 80 then 90: drawdown 20 %, still under water 2 bars later
    dd, bars = drawdown([100.0, 80.0, 90.0])
    assert dd == pytest.approx(0.2, rel=1e-15)
    assert bars == 2
    # two drawdowns: 10 % lasting 3 bars, then 50 % lasting 1 bar
    dd, bars = drawdown([10.0, 9.0, 9.5, 9.9, 10.0, 12.0, 6.0, 12.5])
    assert dd == pytest.approx(0.5)
    assert bars == 3
    # a flat curve re-touches its peak: no drawdown, no duration
    assert drawdown([5.0, 5.0, 5.0]) == (0.0, 0)


def test_initial_capital_counts_the_first_fee() -> None:
    m = compute_metrics([99.0, 99.0], DAY, initial=100.0)
    assert m.total_return == pytest.approx(-0.01, rel=1e-12)
    assert m.cagr == pytest.approx(0.99**365 - 1, rel=1e-12)


def test_run_metrics_and_premium_on_the_two_asset_example() -> None:
    # see test_reference: rebalanced 1117.5125 (fees 18.7375), held 50 A + 50 B = 1000
    prices = np.array([[10.0, 10.0], [20.0, 10.0], [10.0, 10.0]])
    half = np.array([0.5, 0.5])
    reb = run_metrics(
        simulate(prices, half, capital=1010.0, fee_rate=0.01, band_abs=0.05), DAY, 1010.0
    )
    hold = run_metrics(buy_and_hold(prices, half, capital=1010.0, fee_rate=0.01), DAY, 1010.0)
    assert reb.n_rebalances == 2
    assert reb.fees == pytest.approx(18.7375, rel=1e-12)
    assert reb.traded == pytest.approx(873.75, rel=1e-12)
    assert reb.total_return == pytest.approx(1117.5125 / 1010 - 1, rel=1e-12)
    assert hold.final_value == pytest.approx(1000.0, rel=1e-12)
    assert hold.n_rebalances == 0
    premium = rebalancing_premium(reb, hold)
    assert premium.total == pytest.approx(0.1175125, rel=1e-9)
    assert premium.annualised == pytest.approx(1.1175125 ** (365 / 2) - 1, rel=1e-9)


@pytest.mark.parametrize(
    ("equity", "period", "message"),
    [
        ([], DAY, "non-empty"),
        ([1.0, -1.0], DAY, "> 0"),
        ([1.0, math.nan], DAY, "finite"),
        ([1.0, 2.0], timedelta(0), "bar_period"),
        ([1.0, 2.0], -5.0, "bar_period"),
    ],
)
def test_refuses_bad_inputs(equity: list[float], period: timedelta | float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(equity, period)


def test_single_bar_has_undefined_ratios() -> None:
    m = compute_metrics([100.0], DAY)
    assert m.years == 0.0
    assert math.isnan(m.cagr)
    assert math.isnan(m.sharpe)
    assert m.max_drawdown == 0.0


HOUR = timedelta(hours=1)


def _gapped_year() -> tuple[np.ndarray, pd.DatetimeIndex]:  # type: ignore[type-arg]
    """Hourly equity doubling over exactly one 365-day year, 87 of its hours missing (an
    exchange outage of 33 hours and 54 single hours), as the hourly 2018-22 panel has."""
    hours = pd.date_range("2021-01-01", periods=8761, freq="h", tz="UTC")
    drop = set(range(1000, 1033)) | set(range(2000, 2000 + 54 * 100, 100))
    keep = np.array([i for i in range(8761) if i not in drop])
    assert len(drop) == 87 and keep[0] == 0 and keep[-1] == 8760
    return 100 * 2 ** (keep / 8760), hours[keep]


def test_years_and_cagr_come_from_the_timestamps_on_a_gapped_panel() -> None:
    equity, times = _gapped_year()
    m = compute_metrics(equity, HOUR, times=times)
    assert m.years == pytest.approx(1.0, rel=1e-15)
    assert m.cagr == pytest.approx(1.0, rel=1e-12)  # doubled in one calendar year
    # counted in bars, the year looked 87 hours shorter and the CAGR higher
    bars = compute_metrics(equity, HOUR)
    assert bars.years == pytest.approx((8761 - 87 - 1) / 8760, rel=1e-15)
    assert bars.cagr > m.cagr + 0.01
    # the ratios annualise per-bar returns with P = 365 days / bar length either way
    assert m.volatility == bars.volatility and m.sharpe == bars.sharpe


def test_the_premium_and_the_drawdown_duration_use_calendar_time() -> None:
    equity, times = _gapped_year()
    reb = compute_metrics(
        equity * 1.1 ** (np.arange(len(equity)) / (len(equity) - 1)), HOUR, times=times
    )
    hold = compute_metrics(equity, HOUR, times=times)
    assert rebalancing_premium(reb, hold).annualised == pytest.approx(0.1, rel=1e-12)
    # under water from the peak at bar 1 to the end: 3 bars spanning 3 days
    days = pd.DatetimeIndex(["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-05"], tz="UTC")
    m = compute_metrics([100.0, 110.0, 90.0, 95.0], DAY, times=days)
    assert m.max_drawdown_bars == 2 and m.max_drawdown_duration == timedelta(days=3)


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (pd.date_range("2021-01-01", periods=2, freq="D", tz="UTC"), "one per equity value"),
        (pd.DatetimeIndex(["2021-01-02", "2021-01-01", "2021-01-03"], tz="UTC"), "increasing"),
    ],
)
def test_refuses_bad_times(times: pd.DatetimeIndex, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics([1.0, 2.0, 3.0], DAY, times=times)


def test_backtest_grid_and_sweep_agree_on_calendar_years_of_a_real_gapped_panel() -> None:
    from decimal import Decimal
    from pathlib import Path

    from rebalancer.backtest.engine import run_backtest
    from rebalancer.backtest.grid import run_grid
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold
    from rebalancer.data.panel import load_panel

    root = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
    panel = load_panel(
        root.parent / "shared" / "data" / "binance_spot_2017_2022", ["BTC", "ETH"], "1h"
    )
    closes = panel.closes.loc["2018-02-01":"2018-03-31"]  # the 33-hour outage of 2018-02-08
    span = closes.index[-1] - closes.index[0]
    assert span > (len(closes) - 1) * HOUR  # hours are missing
    years = span.total_seconds() / (365 * 86400)
    targets = {"BTC": Decimal("0.5"), "ETH": Decimal("0.4"), "USDT": Decimal("0.1")}
    strategy = Strategy("USDT", targets, Threshold(Decimal("0.05")), PlanPolicy())
    res = run_backtest(
        closes, strategy, capital=Decimal(10000), taker_fee=Decimal("0.001"), bar=HOUR
    )
    m = res.run.metrics
    assert m.years == pytest.approx(years, rel=1e-12)
    assert m.cagr == pytest.approx((1 + m.total_return) ** (1 / years) - 1, rel=1e-12)
    grid = run_grid(closes, strategy, bands=[0.05], fee_rates=[0.001], bar=HOUR, workers=1)
    row = grid.rows.iloc[0]
    assert row["cagr"] == pytest.approx((1 + row["total_return"]) ** (1 / years) - 1, rel=1e-12)
