"""Optimised targets: Ledoit-Wolf, the four methods under constraints, no look-ahead."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.data import load_panel
from rebalancer.backtest.optimize import (
    OPT_METHODS,
    Constraints,
    backtest_optimised,
    ledoit_wolf,
    optimise,
    target_schedule,
    to_targets,
)

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"
D = Decimal


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    return load_panel(DATA, ["BTC", "ETH", "SOL", "BNB"], "1d").closes


@pytest.fixture(scope="module")
def returns(closes: pd.DataFrame) -> np.ndarray:  # type: ignore[type-arg]
    return np.diff(np.log(closes.to_numpy(dtype=np.float64)[-121:]), axis=0)


def test_ledoit_wolf_matches_scikit_learn(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    sk = pytest.importorskip("sklearn.covariance")
    cov, shrink = ledoit_wolf(returns)
    ref = sk.LedoitWolf().fit(returns)
    assert shrink == pytest.approx(ref.shrinkage_, rel=1e-9)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=1e-9)


@pytest.mark.parametrize("method", OPT_METHODS)
def test_constraints_hold(returns: np.ndarray, method: str) -> None:  # type: ignore[type-arg]
    c = Constraints(min_weight=0.05, max_weight=0.4, cash_floor=0.1)
    w, why = optimise(returns, method, c)  # type: ignore[arg-type]
    assert w.sum() == pytest.approx(0.9, abs=1e-9)
    assert (w >= 0.05 - 1e-9).all() and (w <= 0.4 + 1e-9).all()
    assert 0 <= why["shrinkage"] <= 1 and why["annual_vol"] > 0


def test_each_method_does_its_job(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    c = Constraints()
    cov, _ = ledoit_wolf(returns)
    w = {m: optimise(returns, m, c)[0] for m in OPT_METHODS}  # type: ignore[arg-type]
    var = {m: float(x @ cov @ x) for m, x in w.items()}
    assert var["min_variance"] <= min(var.values()) + 1e-12
    rc = w["risk_parity"] * (cov @ w["risk_parity"])
    assert rc.max() / rc.min() < 1.01  # equal risk contributions
    vol = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(w["inverse_vol"] * vol, (w["inverse_vol"] * vol)[0], rtol=1e-9)
    mu = returns.mean(axis=0)
    sharpe = {m: float(mu @ x) / np.sqrt(var[m]) for m, x in w.items()}
    assert sharpe["max_sharpe"] >= max(sharpe.values()) - 1e-6


def test_turnover_cap(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    previous = np.array([0.7, 0.1, 0.1, 0.1])
    w, why = optimise(returns, "min_variance", Constraints(max_turnover=0.2), previous)
    assert np.abs(w - previous).sum() == pytest.approx(0.2)
    assert why["turnover"] == pytest.approx(0.2)
    assert w.sum() == pytest.approx(1.0)


def test_infeasible_constraints_are_refused(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="cannot share"):
        optimise(returns, "inverse_vol", Constraints(max_weight=0.2))


def test_schedule_has_no_look_ahead(closes: pd.DataFrame) -> None:
    c = Constraints(max_weight=0.6)
    base = target_schedule(closes, "min_variance", c, window=60)
    shocked = closes.copy()
    cut = len(closes) - 100
    noise = np.exp(np.random.default_rng(1).normal(0, 0.2, len(closes) - cut))
    shocked.iloc[cut:, 0] *= noise  # BTC much more volatile after the cut
    other = target_schedule(shocked, "min_variance", c, window=60)
    decided_before = [(t, w) for t, w in base if closes.index.searchsorted(t) <= cut]
    assert len(decided_before) >= 3
    for (t, w), (t2, w2) in zip(decided_before, other, strict=False):
        assert t == t2
        np.testing.assert_allclose(w, w2)
    assert not np.allclose(base[-1][1], other[-1][1])


def test_backtest_with_scheduled_targets(closes: pd.DataFrame) -> None:
    start = {"BTC": D("0.4"), "ETH": D("0.2"), "SOL": D("0.2"), "BNB": D("0.1"), "USDT": D("0.1")}
    run = backtest_optimised(closes, start, "inverse_vol", Constraints(cash_floor=0.1), window=60)
    assert len(run.equity) == len(closes)
    assert len(run.schedule) >= 10 and run.schedule[0][1] == start
    assert all(sum(t.values()) == 1 and t["USDT"] >= D("0.0999") for _, t in run.schedule)
    assert run.metrics.n_rebalances >= len(run.schedule)
    assert to_targets(["A"], np.array([0.3333333333]), "Q") == {
        "A": D("0.333333"),
        "Q": D("0.666667"),
    }
