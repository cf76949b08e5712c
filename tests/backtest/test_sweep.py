"""The compiled sweep kernel against the pure reference, on random and real prices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.metrics import compute_metrics, run_metrics
from rebalancer.backtest.reference import simulate
from rebalancer.backtest.sweep import sweep, sweep_grid

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Case:
    prices: np.ndarray
    targets: np.ndarray
    capital: float
    fee_rate: float
    band: float  # inf: buy-and-hold; -1: no band (fire on every due bar)
    every: int | None


def _random_case(seed: int) -> Case:
    """Random-walk prices and a random rule: assets, cash leg, band, fee, calendar gate."""
    rng = np.random.default_rng(seed)
    bars, n = int(rng.integers(2, 700)), int(rng.integers(1, 7))
    vol = rng.uniform(0.005, 0.08)
    prices = rng.uniform(0.01, 5e4, n) * np.exp(np.cumsum(rng.normal(0, vol, (bars, n)), 0))
    raw = rng.uniform(0.05, 1.0, n)
    cash = 0.0 if rng.random() < 0.5 else rng.uniform(0.0, 0.5)
    return Case(
        prices=prices,
        targets=raw / raw.sum() * (1 - cash),
        capital=float(rng.uniform(1.0, 1e6)),
        fee_rate=[0.0, 0.0005, 0.001, 0.0025, 0.05][int(rng.integers(0, 5))],
        band=[math.inf, -1.0, *rng.uniform(0.0, 0.2, 4)][int(rng.integers(0, 6))],
        every=None if rng.random() < 0.6 else int(rng.integers(1, 10)),
    )


def _assert_kernel_matches(case: Case) -> None:
    pure = simulate(
        case.prices,
        case.targets,
        capital=case.capital,
        fee_rate=case.fee_rate,
        band_abs=None if case.band < 0 else case.band,
        every=case.every,
    )
    fast = sweep(
        case.prices,
        case.targets,
        [case.band],
        [case.fee_rate],
        capital=case.capital,
        every=case.every,
        record=True,
    )
    np.testing.assert_array_equal(fast.rebalance_bars(0), pure.rebalance_bars)
    assert fast.n_rebalances[0] == pure.n_rebalances
    assert fast.final_value[0] == pytest.approx(pure.final_value, rel=1e-9)
    assert fast.fees[0] == pytest.approx(pure.total_fees, rel=1e-9, abs=1e-12)
    assert fast.traded[0] == pytest.approx(pure.total_traded, rel=1e-9, abs=1e-12)
    assert fast.turnover[0] == pytest.approx(pure.turnover, rel=1e-9, abs=1e-12)
    assert fast.equity is not None
    np.testing.assert_allclose(fast.equity[0], pure.equity, rtol=1e-9)


@pytest.mark.parametrize("seed", range(60))
def test_kernel_equals_pure_on_random_walks(seed: int) -> None:
    _assert_kernel_matches(_random_case(seed))


def test_random_cases_cover_the_rules() -> None:
    # the random cases above exercise rebalancing with fees, cash legs and calendar gates
    cases = [_random_case(s) for s in range(60)]
    assert sum(c.every is not None for c in cases) >= 10
    assert sum(c.fee_rate != 0 for c in cases) >= 30
    assert sum(c.band < 0 for c in cases) >= 5
    assert sum(math.isinf(c.band) for c in cases) >= 5
    assert sum(bool(c.targets.sum() < 1 - 1e-9) for c in cases) >= 10  # with a cash leg


def test_sweep_statistics_agree_with_metrics_of_the_pure_curve() -> None:
    rng = np.random.default_rng(11)
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.04, (900, 4)), 0))
    w = np.array([0.3, 0.3, 0.2, 0.15])
    grid = sweep_grid(prices, w, [0.01, 0.05, math.inf], [0.0, 0.001], capital=100.0)
    assert grid.band_abs.tolist() == [0.01, 0.01, 0.05, 0.05, math.inf, math.inf]
    assert grid.fee_rate.tolist() == [0.0, 0.001] * 3
    table = grid.to_frame(DAY)
    for k in range(6):
        run = simulate(
            prices, w, capital=100.0, fee_rate=grid.fee_rate[k], band_abs=grid.band_abs[k]
        )
        m = run_metrics(run, DAY, 100.0)
        row = table.iloc[k]
        for name in ("final_value", "cagr", "volatility", "sharpe", "sortino", "max_drawdown"):
            assert row[name] == pytest.approx(getattr(m, name), rel=1e-9), name
        assert row["max_drawdown_bars"] == m.max_drawdown_bars
        assert row["n_rebalances"] == m.n_rebalances
        assert row["fees"] == pytest.approx(m.fees, rel=1e-9, abs=1e-15)
        assert row["turnover"] == pytest.approx(m.turnover, rel=1e-9, abs=1e-15)
    # tighter bands trade more; fees lower the final value
    assert table["n_rebalances"].iloc[0] > table["n_rebalances"].iloc[2] > 0
    assert table["n_rebalances"].iloc[4] == 0
    assert table["final_value"].iloc[1] < table["final_value"].iloc[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"band_rel": 0.2}, "band_rel"),
        ({"slippage": 0.001}, "slippage"),
        ({"min_trade": 10.0}, "min_trade"),
        ({"style": "band_edge"}, "style"),
        ({"band_abs": [-0.5]}, "band_abs"),
        ({"band_abs": [math.nan]}, "band_abs"),
        ({"fee_rate": [1.0]}, "fee_rate"),
        ({"fee_rate": [0.0, 0.1]}, "differ in length"),
        ({"prices": [[1.0, math.nan]]}, "finite and > 0"),
        ({"every": 0}, "every"),
    ],
)
def test_sweep_refuses_what_the_kernel_does_not_do(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "prices": [[1.0, 2.0], [1.5, 2.0]],
        "targets": [0.5, 0.5],
        "band_abs": [0.05],
        "fee_rate": [0.001],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sweep(**args)  # type: ignore[arg-type]


def test_rebalance_bars_need_recording() -> None:
    result = sweep([[1.0], [2.0]], [0.5], [0.05], [0.0])
    assert result.equity is None
    with pytest.raises(ValueError, match="record=True"):
        result.rebalance_bars(0)


def _daily_closes(assets: list[str], start: str, end: str) -> pd.DataFrame:
    columns = {}
    for asset in assets:
        df = pd.read_csv(DATA / f"{asset}_USDT-1d.csv")
        df.index = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
        columns[asset] = df["close"]
    closes = pd.DataFrame(columns).loc[start:end]
    assert not closes.isna().any().any()
    return closes


@pytest.mark.skipif(not DATA.exists(), reason=f"no shared data at {DATA}")
def test_real_daily_panel_five_assets_and_cash() -> None:
    closes = _daily_closes(["BTC", "ETH", "BNB", "XRP", "LTC"], "2018-05-04", "2022-10-10")
    assert len(closes) == 1621  # 2018-05-04 .. 2022-10-10, no gaps
    w = np.full(5, 0.19)  # cash (USDT) 5 %
    prices = closes.to_numpy()
    pure = simulate(prices, w, capital=10_000.0, fee_rate=0.001, band_abs=0.05)
    m = run_metrics(pure, DAY, 10_000.0)
    assert math.isfinite(m.final_value) and m.final_value > 0
    assert math.isfinite(m.sharpe) and 0 < m.max_drawdown < 1
    assert 5 < pure.n_rebalances < 500
    # kernel == pure on real prices (bars and values)
    _assert_kernel_matches(Case(prices, w, 10_000.0, 0.001, 0.05, None))
    # buy-and-hold of the same panel: the equity is the held units at the closes
    hold = simulate(prices, w, capital=10_000.0, fee_rate=0.001)
    np.testing.assert_allclose(hold.equity, prices @ hold.holdings + hold.cash, rtol=1e-12)
    assert compute_metrics(hold.equity, DAY).max_drawdown > 0.5  # the 2018 and 2022 bears
