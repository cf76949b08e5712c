"""Walk-forward: windows, the in-sample choice, the stitched out-of-sample account."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.engine import run_backtest
from rebalancer.backtest.grid import Combo
from rebalancer.backtest.metrics import run_metrics
from rebalancer.backtest.reference import simulate
from rebalancer.backtest.walk_forward import Window, walk_forward, windows
from rebalancer.core.errors import ConfigError
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.data.panel import load_panel

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
DAY = timedelta(days=1)
D = Decimal
TARGETS = {"BTC": D("0.3"), "ETH": D("0.3"), "LTC": D("0.3"), "USDT": D("0.1")}
BANDS = [0.02, 0.05, 0.1, 0.2]


def test_windows_rolling_and_anchored() -> None:
    assert windows(10, 4, 3, anchored=False) == [Window((0, 4), (4, 7)), Window((3, 7), (7, 10))]
    assert windows(10, 4, 3, anchored=True) == [Window((0, 4), (4, 7)), Window((0, 7), (7, 10))]
    # a short last test window is kept when it has 2 bars, dropped with 1
    assert windows(12, 4, 3, anchored=False)[-1].test == (10, 12)
    assert windows(11, 4, 3, anchored=False)[-1].test == (7, 10)
    with pytest.raises(ConfigError, match="exceed"):
        windows(10, 8, 3, anchored=False)


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    panel = load_panel(DATA, ["BTC", "ETH", "LTC"], "1d", start="2019-01-01", end="2021-12-31")
    return panel.closes


def test_walk_forward_on_real_history(closes: pd.DataFrame) -> None:
    strategy = Strategy("USDT", TARGETS, Threshold(), PlanPolicy(min_trade=D(10)))
    fee = D("0.001")
    res = walk_forward(closes, strategy, bands=BANDS, fee_rate=fee, train=365, test=120, bar=DAY)
    wins = windows(len(closes), 365, 120, anchored=False)
    assert len(res.windows) == len(wins)
    assert len(res.equity) == sum(w.test[1] - w.test[0] for w in wins)
    prices = closes.to_numpy()
    targets = np.array([0.3, 0.3, 0.3])
    for w, row in zip(wins, res.windows.to_dict("records"), strict=True):
        # the chosen band is the in-sample Sharpe maximiser of the reference rule
        a, b = w.train
        scores = [
            run_metrics(
                simulate(prices[a:b], targets, capital=10000.0, fee_rate=0.001, band_abs=band),
                DAY,
                10000.0,
            ).sharpe
            for band in BANDS
        ]
        assert row["band"] == BANDS[int(np.argmax(scores))]
        assert row["in_sample_sharpe"] == pytest.approx(max(scores), rel=1e-9)
    # the second window continues the first one's account: no fresh purchase from cash
    first = run_backtest(
        closes.iloc[wins[0].test[0] : wins[0].test[1]],
        Strategy(
            "USDT", TARGETS, Threshold(D(repr(float(res.windows["band"][0])))), strategy.policy
        ),
        capital=D(10000),
        taker_fee=fee,
        bar=DAY,
        benchmarks=False,
    )
    n0 = wins[0].test[1] - wins[0].test[0]
    np.testing.assert_array_equal(res.equity.to_numpy()[:n0], first.run.equity)
    second = run_backtest(
        closes.iloc[wins[1].test[0] : wins[1].test[1]],
        Strategy(
            "USDT", TARGETS, Threshold(D(repr(float(res.windows["band"][1])))), strategy.policy
        ),
        initial=first.run.final_balances,
        taker_fee=fee,
        bar=DAY,
        benchmarks=False,
    )
    n1 = wins[1].test[1] - wins[1].test[0]
    np.testing.assert_array_equal(res.equity.to_numpy()[n0 : n0 + n1], second.run.equity)
    # hindsight: every band, best first by the objective
    assert sorted(res.hindsight["band"]) == BANDS
    assert res.hindsight["score"].is_monotonic_decreasing
    assert res.summary()["walk_forward"]["final_value"] == pytest.approx(res.equity.iloc[-1])


def test_bad_objective_is_refused(closes: pd.DataFrame) -> None:
    strategy = Strategy("USDT", TARGETS, Threshold(), PlanPolicy())
    with pytest.raises(ConfigError, match="objective"):
        walk_forward(
            closes,
            strategy,
            bands=BANDS,
            fee_rate=D(0),
            train=100,
            test=50,
            bar=DAY,
            objective="luck",
        )


def test_walk_forward_of_the_vol_rule_chooses_by_the_full_engine(closes: pd.DataFrame) -> None:
    """kind vol: each window's band is the in-sample best of the volatility-scaled rule run by
    the bot's own loop, and the out-of-sample windows trade that rule."""
    strategy = Strategy("USDT", TARGETS, Threshold(), PlanPolicy(min_trade=D(10)))
    fee = D("0.001")
    res = walk_forward(
        closes, strategy, kind="vol", bands=BANDS, fee_rate=fee, train=365, test=120, bar=DAY
    )
    assert res.summary()["kind"] == "vol"
    wins = windows(len(closes), 365, 120, anchored=False)
    for w, row in zip(wins[:2], res.windows.to_dict("records"), strict=False):
        a, b = w.train
        scores = []
        for band in BANDS:
            rule = Combo("vol", "target", band, 0.001)
            one = run_backtest(
                closes.iloc[a:b],
                Strategy("USDT", TARGETS, rule.trigger(), strategy.policy),
                capital=D(10000),
                taker_fee=fee,
                bar=DAY,
                benchmarks=False,
            )
            scores.append(one.run.metrics.sharpe)
        assert row["band"] == BANDS[int(np.argmax(scores))]
        assert row["in_sample_sharpe"] == pytest.approx(max(scores), rel=1e-12)
    first = run_backtest(
        closes.iloc[wins[0].test[0] : wins[0].test[1]],
        Strategy(
            "USDT",
            TARGETS,
            Combo("vol", "target", float(res.windows["band"][0]), 0.001).trigger(),
            strategy.policy,
        ),
        capital=D(10000),
        taker_fee=fee,
        bar=DAY,
        benchmarks=False,
    )
    n0 = wins[0].test[1] - wins[0].test[0]
    np.testing.assert_array_equal(res.equity.to_numpy()[:n0], first.run.equity)
    with pytest.raises(ConfigError, match="kind must be one of"):
        walk_forward(
            closes, strategy, kind="rel", bands=BANDS, fee_rate=fee, train=365, test=120, bar=DAY
        )


def _random_walk(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.04, size=(n, 2))
    index = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="time")
    return pd.DataFrame(np.exp(np.cumsum(steps, axis=0)) * [100.0, 20.0], index, ["BTC", "ETH"])


@pytest.mark.parametrize("anchored", [False, True])
def test_window_returns_compound_to_the_final_value(anchored: bool) -> None:
    """Every bar's move belongs to exactly one window: the move over the bar where two
    windows meet (the previous window's last close to this window's first close) is in
    the later window's return, so the returns compound to final / capital."""
    closes = _random_walk(400, seed=7)
    targets = {"BTC": D("0.5"), "ETH": D("0.4"), "USDT": D("0.1")}
    strategy = Strategy("USDT", targets, Threshold(), PlanPolicy(min_trade=D(10)))
    res = walk_forward(
        closes,
        strategy,
        bands=[0.02, 0.05, 0.1],
        fee_rate=D("0.001"),
        train=90,
        test=45,
        bar=DAY,
        anchored=anchored,
    )
    final = res.summary()["walk_forward"]["final_value"]
    growth = float(np.prod(1 + res.windows["out_of_sample_return"].to_numpy()))
    assert len(res.windows) > 3
    assert growth == pytest.approx(final / 10000, rel=1e-9)
    # each window starts from the value the previous one ended with
    starts = res.windows["start_value"].to_numpy()
    ends = res.windows["end_value"].to_numpy()
    np.testing.assert_array_equal(starts[1:], ends[:-1])
    assert starts[0] == 10000
