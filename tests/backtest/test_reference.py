"""Reference semantics: hand-checked numbers, the exact fee equation, invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rebalancer.backtest.reference import (
    buy_and_hold,
    calendar,
    frame_inputs,
    simulate,
    solve_post_fee_total,
)

# Two assets A, B at 50/50, no cash. Bar 0: both at 10; bar 1: A doubles; bar 2: A back to 10.
TWO = np.array([[10.0, 10.0], [20.0, 10.0], [10.0, 10.0]])
HALF = np.array([0.5, 0.5])


def test_two_assets_one_percent_fee_by_hand() -> None:
    run = simulate(TWO, HALF, capital=1010.0, fee_rate=0.01, band_abs=0.05)
    # bar 0: V' = 1010 - 0.01 * V' (all bought) -> V' = 1010 / 1.01 = 1000, fee 10;
    #        units A = B = 500 / 10 = 50
    # bar 1: A 50*20 = 1000, B 500, V = 1500, weight A 2/3, drift 1/6 > 5 %: rebalance.
    #        For 1000 < V' < 2000: V' = 1500 - 0.01 * ((1000 - V'/2) + (V'/2 - 500))
    #        = 1500 - 5 = 1495; each leg 747.5; traded 252.5 + 247.5 = 500; fee 5.
    #        units A = 747.5 / 20 = 37.375, B = 74.75
    # bar 2: A 373.75, B 747.5, V = 1121.25, drift 1/6: rebalance.
    #        V' = 1121.25 - 0.01 * (747.5 - 373.75) = 1117.5125; each leg 558.75625;
    #        traded 185.00625 + 188.74375 = 373.75; fee 3.7375.
    assert run.initial_fee == pytest.approx(10.0, rel=1e-12)
    assert run.initial_traded == pytest.approx(1000.0, rel=1e-12)
    assert run.rebalance_bars.tolist() == [1, 2]
    assert run.equity == pytest.approx([1000.0, 1495.0, 1117.5125], rel=1e-12)
    assert run.traded == pytest.approx([500.0, 373.75], rel=1e-12)
    assert run.fees == pytest.approx([5.0, 3.7375], rel=1e-12)
    assert run.value_before == pytest.approx([1500.0, 1121.25], rel=1e-12)
    assert run.total_fees == pytest.approx(18.7375, rel=1e-12)
    assert run.total_traded == pytest.approx(873.75, rel=1e-12)
    assert run.turnover == pytest.approx(500 / 1500 + 373.75 / 1121.25, rel=1e-12)
    assert run.holdings == pytest.approx([55.875625, 55.875625], rel=1e-12)
    assert run.cash == 0.0
    assert run.final_value == pytest.approx(1117.5125, rel=1e-12)


def test_within_band_does_not_trade() -> None:
    # A 10 -> 10.5: A 525, B 500, weight A 525/1025 = 0.5122, drift 1.22 % < 5 %
    prices = np.array([[10.0, 10.0], [10.5, 10.0]])
    run = simulate(prices, HALF, capital=1000.0, fee_rate=0.01, band_abs=0.05)
    assert run.n_rebalances == 0
    # bar 0: V' = 1000 / 1.01; units = V'/2/10 each; bar 1 = units * (10.5 + 10)
    units = 1000 / 1.01 / 20
    assert run.equity[1] == pytest.approx(units * 20.5, rel=1e-12)
    # a band just under the drift fires
    assert simulate(prices, HALF, capital=1000.0, band_abs=0.012).n_rebalances == 1


def test_cash_leg_and_sell_side_fee_by_hand() -> None:
    # A 50 %, cash 50 %, fee 1 % on every trade (bar 0 included)
    prices = np.array([[10.0], [20.0]])
    run = simulate(prices, [0.5], capital=1000.0, fee_rate=0.01, band_abs=0.05)
    # bar 0: V' = 1000 - 0.01 * V'/2 -> V' = 1000 / 1.005; A = cash = V'/2
    v0 = 1000 / 1.005
    assert run.equity[0] == pytest.approx(v0, rel=1e-12)
    # bar 1: A = v0/2 * 2 = v0, cash v0/2, V = 1.5 v0; weight A 2/3 -> rebalance by selling.
    #        V' = V - 0.01 * (v0 - V'/2)  ->  V' (1 - 0.005) = 1.5 v0 - 0.01 v0
    expected = (1.5 * v0 - 0.01 * v0) / 0.995
    assert run.rebalance_bars.tolist() == [1]
    assert run.final_value == pytest.approx(expected, rel=1e-12)
    assert run.cash == pytest.approx(expected / 2, rel=1e-12)
    assert run.holdings[0] * 20 == pytest.approx(expected / 2, rel=1e-12)
    # the fee really was paid from cash: value before - value after = fee
    assert run.value_before[0] - run.final_value == pytest.approx(run.fees[0], rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=8),
    raw=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    cash=st.floats(0.0, 1e6),
    cash_w=st.floats(0.0, 1.0),
    fee=st.floats(0.0, 0.5),
)
# the example that failed on a fresh clone: subnormal cash, residual one ulp (5e-324)
@example(values=[3e-320], raw=[0.0], cash=3e-320, cash_w=0.99, fee=0.3)
def test_fee_equation_solved_exactly(
    values: list[float], raw: list[float], cash: float, cash_w: float, fee: float
) -> None:
    n = min(len(values), len(raw))
    v = np.array(values[:n])
    w = np.array(raw[:n]) + 1e-3
    w = w / w.sum() * (1 - cash_w)
    total = float(v.sum()) + cash
    if total <= 0:
        return
    x = solve_post_fee_total(total, v, w, fee)
    residual = x - (total - fee * np.abs(w * x - v).sum())
    # Relative to the total, with an absolute floor of a few subnormal ulps: on a subnormal
    # total (cash 2e-313, say) 1e-12 * total underflows to 0 while the float arithmetic
    # still rounds by one ulp (5e-324) per operation.
    assert abs(residual) <= 1e-12 * total + 64 * math.ulp(0.0)
    assert 0 < x <= total * (1 + 1e-15)


def test_fee_equation_with_kinks_by_hand() -> None:
    # v = (900, 100), w = (0.5, 0.5), V = 1000, f = 0.1: for 200 < V' < 1800
    # V' = 1000 - 0.1 * ((900 - V'/2) + (V'/2 - 100)) = 1000 - 80 = 920
    assert solve_post_fee_total(1000.0, np.array([900.0, 100.0]), HALF, 0.1) == pytest.approx(
        920.0, rel=1e-15
    )
    # v = (1000, 0), w = (0.1, 0.9), f = 0.5: V' < 10000, so the A term is 1000 - 0.1 V'
    # V' = 1000 - 0.5 * ((1000 - 0.1 V') + 0.9 V') = 500 - 0.4 V' -> V' = 500 / 1.4
    x = solve_post_fee_total(1000.0, np.array([1000.0, 0.0]), np.array([0.1, 0.9]), 0.5)
    assert x == pytest.approx(500 / 1.4, rel=1e-15)


def _walk(seed: int, bars: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (bars, n)), axis=0))


def test_zero_fee_conserves_value_and_scales_with_capital() -> None:
    prices = _walk(3, 400, 4)
    w = np.array([0.3, 0.3, 0.2, 0.1])
    run = simulate(prices, w, capital=1000.0, band_abs=0.02)
    assert run.n_rebalances > 10
    assert run.total_fees == 0.0
    assert run.equity[0] == 1000.0
    # trading at zero fee changes no value: after == before at every rebalance
    np.testing.assert_allclose(run.equity[run.rebalance_bars], run.value_before, rtol=1e-13)
    doubled = simulate(prices, w, capital=2000.0, band_abs=0.02)
    np.testing.assert_array_equal(doubled.rebalance_bars, run.rebalance_bars)
    np.testing.assert_allclose(doubled.equity, 2 * run.equity, rtol=1e-12)


def test_buy_and_hold_is_holdings_times_prices() -> None:
    prices = _walk(4, 300, 3)
    w = np.array([0.5, 0.2, 0.2])  # cash 10 %
    run = buy_and_hold(prices, w, capital=500.0, fee_rate=0.001)
    assert run.n_rebalances == 0
    # bar 0: V' = 500 / (1 + 0.001 * 0.9); units = w V' / p0; cash = 0.1 V'
    v0 = 500 / (1 + 0.001 * 0.9)
    units = w * v0 / prices[0]
    np.testing.assert_allclose(run.holdings, units, rtol=1e-13)
    assert run.cash == pytest.approx(0.1 * v0, rel=1e-13)
    np.testing.assert_allclose(run.equity, prices @ units + 0.1 * v0, rtol=1e-12)
    assert run.total_fees == pytest.approx(0.001 * 0.9 * v0, rel=1e-12)


def test_calendar_rebalances_on_schedule() -> None:
    prices = _walk(5, 50, 2)
    run = calendar(prices, HALF, 7, capital=1.0, fee_rate=0.001)
    assert run.rebalance_bars.tolist() == [7, 14, 21, 28, 35, 42, 49]
    # with a band, only the scheduled bars that are out of band
    gated = calendar(prices, HALF, 7, band_abs=0.02)
    assert set(gated.rebalance_bars.tolist()) <= set(run.rebalance_bars.tolist())
    every_bar = simulate(prices, HALF, band_abs=None)
    assert every_bar.rebalance_bars.tolist() == list(range(1, 50))


def test_threshold_fires_exactly_when_drift_exceeds_band() -> None:
    prices = _walk(6, 600, 3)
    w = np.array([0.4, 0.3, 0.3])
    run = simulate(prices, w, capital=1.0, band_abs=0.03)
    assert run.n_rebalances > 5
    # replay bar by bar: the rebalance bars are exactly the bars where drift > band
    units, fired = w / prices[0], []
    for t in range(1, len(prices)):
        values = units * prices[t]
        if np.abs(values / values.sum() - w).max() > 0.03:
            fired.append(t)
            units = w * values.sum() / prices[t]
    assert run.rebalance_bars.tolist() == fired


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prices": [[1.0, math.nan]]}, "finite and > 0"),
        ({"prices": [[1.0, 0.0]]}, "finite and > 0"),
        ({"targets": [0.7, 0.7]}, "sum to"),
        ({"targets": [0.5]}, "one weight per asset"),
        ({"fee_rate": 1.0}, "fee_rate"),
        ({"capital": 0.0}, "capital"),
        ({"every": 0}, "every"),
        ({"band_abs": math.nan}, "band_abs"),
    ],
)
def test_refuses_bad_inputs(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"prices": [[1.0, 2.0]], "targets": [0.5, 0.5]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        simulate(**args)  # type: ignore[arg-type]


def test_frame_inputs_orders_columns_by_targets() -> None:
    closes = pd.DataFrame({"ETH": [2.0, 3.0], "BTC": [10.0, 11.0]})
    prices, w = frame_inputs(closes, {"BTC": 0.6, "ETH": 0.3, "USDT": 0.1})
    np.testing.assert_array_equal(prices, [[10.0, 2.0], [11.0, 3.0]])
    np.testing.assert_array_equal(w, [0.6, 0.3])
    with pytest.raises(ValueError, match="no close prices"):
        frame_inputs(closes, {"BTC": 0.5, "SOL": 0.5})
    with pytest.raises(ValueError, match="no target weight"):
        frame_inputs(closes, {"BTC": 1.0})
    with pytest.raises(ValueError, match="not 1"):
        frame_inputs(closes, {"BTC": 0.6, "ETH": 0.3, "USDT": 0.2})
