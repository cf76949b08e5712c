"""Optimised targets: Ledoit-Wolf, the four methods under constraints, no look-ahead."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import rebalancer.optimise.weights as optimize_mod
from rebalancer.backtest.optimised import OptimisedRun, backtest_optimised
from rebalancer.data.panel import load_panel
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import (
    OPT_METHODS,
    Constraints,
    ledoit_wolf,
    optimise,
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


START = {"BTC": D("0.4"), "ETH": D("0.2"), "SOL": D("0.2"), "BNB": D("0.1"), "USDT": D("0.1")}


def test_backtest_with_scheduled_targets(closes: pd.DataFrame) -> None:
    run = backtest_optimised(closes, START, "inverse_vol", Constraints(cash_floor=0.1), window=60)
    assert run.engine == "compiled"
    assert len(run.equity) == len(closes)
    assert len(run.schedule) >= 10 and run.schedule[0][1] == START
    assert all(sum(t.values()) == 1 and t["USDT"] >= D("0.0999") for _, t in run.schedule)
    assert run.metrics.n_rebalances >= len(run.schedule)
    # every change is a full rebalance at its bar (the live meaning), one run throughout
    traded = {f.at for f in run.fills}
    assert all(t.to_pydatetime() + pd.Timedelta(days=1) in traded for t, _ in run.schedule)
    assert to_targets(["A"], np.array([0.3333333333]), "Q") == {
        "A": D("0.333333"),
        "Q": D("0.666667"),
    }


def _sharpe(w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> float:  # type: ignore[type-arg]
    return float(mu @ w) / float(np.sqrt(w @ cov @ w))


def test_max_sharpe_is_the_global_optimum_on_the_real_losing_window(
    closes: pd.DataFrame,
) -> None:
    # The daily 2024-26 panel, 90 returns to 2026-01-29: every mean is negative. One local
    # solve from inverse-vol weights stopped at ETH 0.9 (Sharpe -2.0339); BNB 0.9 is better.
    panel = load_panel(DATA, ["BTC", "ETH", "BNB", "XRP", "LTC"], "1d").closes
    rets = np.diff(np.log(panel.to_numpy(dtype=np.float64)[-91:]), axis=0)
    assert (rets.mean(axis=0) < 0).all()
    c = Constraints(cash_floor=0.1)
    w, why = optimise(rets, "max_sharpe", c)
    np.testing.assert_allclose(w, [0, 0, 0.9, 0, 0], atol=1e-12)
    assert why["sharpe"] == pytest.approx(-2.0297, abs=1e-4) and why["proven"] == 1.0
    cov, _ = ledoit_wolf(rets)
    mu = rets.mean(axis=0)
    grid = _grid_n(5, c, 0.05)
    best = max(_sharpe(x, mu, cov) for x in grid)
    assert _sharpe(w, mu, cov) >= best - 1e-12


def _grid_n(n: int, c: Constraints, step: float) -> np.ndarray:  # type: ignore[type-arg]
    import itertools

    budget = 1 - c.cash_floor
    ticks = np.arange(c.min_weight, c.max_weight + step / 2, step)
    out = [
        (*head, budget - sum(head))
        for head in itertools.product(ticks, repeat=n - 1)
        if c.min_weight - 1e-9 <= budget - sum(head) <= c.max_weight + 1e-9
    ]
    return np.array(out, dtype=float)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "c",
    [
        Constraints(cash_floor=0.1),
        Constraints(min_weight=0.05, max_weight=0.3, cash_floor=0.4),
        Constraints(min_weight=0.1, max_weight=0.6),
    ],
)
def test_max_sharpe_with_losing_means_beats_an_exhaustive_grid(seed: int, c: Constraints) -> None:
    # Every feasible mix loses on average: the optimum is a corner of the constraints, and
    # no point of a fine grid over the whole feasible set scores higher.
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.01, 0.06, 3)
    corr = np.array([[1, 0.6, 0.3], [0.6, 1, 0.5], [0.3, 0.5, 1]])
    rets = rng.multivariate_normal(-vols / 20, corr * np.outer(vols, vols), size=90)
    rets -= rets.mean(axis=0) - rng.uniform(-0.004, -0.0005, 3)  # every mean negative
    w, why = optimise(rets, "max_sharpe", c)
    cov, _ = ledoit_wolf(rets)
    mu = rets.mean(axis=0)
    grid = _grid_n(3, c, 0.005)
    scores = (grid @ mu) / np.sqrt(np.einsum("ij,jk,ik->i", grid, cov, grid))
    assert _sharpe(w, mu, cov) >= scores.max() - 1e-12
    assert why["proven"] == 1.0
    assert w.sum() == pytest.approx(1 - c.cash_floor, abs=1e-12)
    assert (w >= c.min_weight - 1e-12).all() and (w <= c.max_weight + 1e-12).all()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.05, 0.5), (0.1, 0.4)])
def test_max_sharpe_equals_pyportfolioopt_when_some_mean_is_positive(
    seed: int, bounds: tuple[float, float]
) -> None:
    ef_mod = pytest.importorskip("pypfopt.efficient_frontier")
    rng = np.random.default_rng(100 + seed)
    n = 5
    vols = rng.uniform(0.01, 0.06, n)
    rets = rng.normal(0, 1, (120, n)) * vols
    rets -= rets.mean(axis=0) - rng.uniform(-0.002, 0.003, n)
    rets[:, 0] += 0.004 - rets[:, 0].mean()  # at least one mean clearly positive
    c = Constraints(min_weight=bounds[0], max_weight=bounds[1], cash_floor=0.1)
    w, why = optimise(rets, "max_sharpe", c)
    cov, _ = ledoit_wolf(rets)
    mu = rets.mean(axis=0)
    # PyPortfolioOpt's weights sum to 1: the same problem scaled by the 0.9 budget
    ef = ef_mod.EfficientFrontier(
        pd.Series(mu), pd.DataFrame(cov), weight_bounds=(bounds[0] / 0.9, bounds[1] / 0.9)
    )
    ref = np.array(list(ef.max_sharpe(risk_free_rate=0.0).values())) * 0.9
    np.testing.assert_allclose(w, ref, atol=2e-5)
    assert _sharpe(w, mu, cov) >= _sharpe(ref, mu, cov) - 1e-9
    assert why["proven"] == 1.0 and why["sharpe"] > 0


def test_risk_parity_is_exact_and_equals_skfolio(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    w, _ = optimise(returns, "risk_parity", Constraints())
    cov, _ = ledoit_wolf(returns)
    rc = w * (cov @ w)
    assert rc.max() / rc.min() - 1 < 1e-9  # equal contributions to solver precision
    opt = pytest.importorskip("skfolio.optimization")
    prior = pytest.importorskip("skfolio.prior")
    moments = pytest.importorskip("skfolio.moments")
    ref = opt.RiskBudgeting(
        prior_estimator=prior.EmpiricalPrior(covariance_estimator=moments.LedoitWolf())
    ).fit(pd.DataFrame(returns))
    np.testing.assert_allclose(w, ref.weights_, atol=1e-4)


def test_risk_parity_within_bounds_keeps_them(returns: np.ndarray) -> None:  # type: ignore[type-arg]
    c = Constraints(min_weight=0.2, max_weight=0.3, cash_floor=0.1)
    w, _ = optimise(returns, "risk_parity", c)
    assert (w >= 0.2 - 1e-12).all() and (w <= 0.3 + 1e-12).all()
    assert w.sum() == pytest.approx(0.9, abs=1e-12)


@given(
    raw=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6),
    lo=st.sampled_from([0.0, 0.01, 0.05]),
    hi=st.sampled_from([0.3, 0.5, 1.0]),
    floor=st.sampled_from([0.0, 0.1, 0.25, 0.333333]),
)
def test_rounded_targets_keep_every_constraint(
    raw: list[float], lo: float, hi: float, floor: float
) -> None:
    # weights inside the box summing to the budget, rounded to 1e-6: the quote is exactly
    # its floor and every weight stays within [lo, hi] (nearest rounding broke the floor)
    c = Constraints(min_weight=lo, max_weight=hi, cash_floor=floor)
    assume(len(raw) * lo <= 1 - floor <= len(raw) * hi)
    w = optimize_mod._project(np.array(raw) + 1e-7 * np.arange(len(raw)) / 3, c)
    assume(abs(w.sum() - (1 - floor)) < 1e-12)
    t = to_targets([f"A{i}" for i in range(len(raw))], w, "Q", c)
    assert sum(t.values()) == 1 and t["Q"] == Decimal(repr(floor))
    assert all(Decimal(repr(lo)) <= t[f"A{i}"] <= Decimal(repr(hi)) for i in range(len(raw)))
    assert all(abs(float(t[f"A{i}"]) - w[i]) < 1.5e-6 for i in range(len(raw)))


def test_rounding_that_pushed_the_quote_under_its_floor() -> None:
    c = Constraints(cash_floor=0.1)
    t = to_targets(["A", "B", "C"], np.array([0.2999996, 0.2999996, 0.3000008]), "Q", c)
    # largest remainders: C owed 0.8 unit, A 0.6 (B ties A, comes later): each within 1e-6
    assert t == {"A": D("0.3"), "B": D("0.299999"), "C": D("0.300001"), "Q": D("0.1")}


def test_max_sharpe_says_when_the_corners_are_too_many_to_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    rets = rng.normal(-0.002, 0.03, (90, 4))
    c = Constraints(min_weight=0.05, max_weight=0.5, cash_floor=0.1)
    _, why = optimise(rets, "max_sharpe", c)
    assert why["proven"] == 1.0
    monkeypatch.setattr(optimize_mod, "MAX_CORNERS", 3)
    w, local = optimise(rets, "max_sharpe", c)
    assert local["proven"] == 0.0 and "not proven" in optimize_mod.sharpe_note(local)
    assert w.sum() == pytest.approx(0.9, abs=1e-9)
    assert local["sharpe"] <= why["sharpe"] + 1e-12  # never better than the proven optimum


@pytest.mark.parametrize("method", ["inverse_vol", "risk_parity"])
def test_optimised_backtest_compiled_equals_replay(closes: pd.DataFrame, method: str) -> None:
    """The compiled run of the target path and its audit, the Decimal replay whose live
    retarget step applies it: the same fills (time, asset, side; amounts within 1e-9), the
    same equity and metrics within 1e-9 relative, the same realised gains."""
    c = Constraints(min_weight=0.05, max_weight=0.6, cash_floor=0.1, max_turnover=0.5)
    runs = {
        engine: backtest_optimised(
            closes, START, method, c, window=60, engine=engine  # type: ignore[arg-type]
        )
        for engine in ("compiled", "replay")
    }
    fast, slow = runs["compiled"], runs["replay"]

    def fills(run: OptimisedRun) -> list[tuple[datetime, str, str, Decimal]]:
        return sorted((f.at, f.fill.asset, f.fill.side.value, f.fill.amount) for f in run.fills)

    assert [f[:3] for f in fills(fast)] == [f[:3] for f in fills(slow)]
    assert len(fast.fills) > 20
    for a, b in zip(fills(fast), fills(slow), strict=True):
        assert abs(a[3] - b[3]) <= D("1e-9") * b[3]
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-9)
    assert fast.metrics.n_rebalances == slow.metrics.n_rebalances
    for name in ("total_return", "max_drawdown", "fees", "traded", "turnover", "sharpe"):
        assert getattr(fast.metrics, name) == pytest.approx(getattr(slow.metrics, name), rel=1e-9)
    assert fast.schedule == slow.schedule and fast.path == slow.path
    for year, gain in slow.gains.items():
        assert float(fast.gains[year].net) == pytest.approx(float(gain.net), rel=1e-6, abs=1e-6)


def test_unknown_engine_is_refused(closes: pd.DataFrame) -> None:
    from rebalancer.core.errors import ConfigError

    with pytest.raises(ConfigError, match="engine must be one of compiled, replay"):
        backtest_optimised(closes, START, "inverse_vol", Constraints(), engine="numba")  # type: ignore[arg-type]


def test_hourly_schedule_reads_daily_windows() -> None:
    """On hourly bars with the daily closes beside them, a monthly schedule decides at the
    same times and on the same weights as on the daily bars (the window is daily returns,
    as live), not on hourly returns."""
    daily = load_panel(DATA, ["BTC", "ETH"], "1d", start="2025-01-01", end="2025-06-30").closes
    hourly = load_panel(
        DATA, ["BTC", "ETH"], "1h", start="2025-01-01", end="2025-06-30 23:00"
    ).closes
    c = Constraints(cash_floor=0.1)
    want = target_schedule(daily, "min_variance", c, window=30)
    got = target_schedule(hourly, "min_variance", c, window=30, bar=pd.Timedelta(hours=1),
                          daily=daily)
    assert [t for t, _ in got] == [t for t, _ in want] and len(want) >= 4
    for (_, w), (_, v) in zip(got, want, strict=True):
        np.testing.assert_allclose(w, v)
    on_hours = target_schedule(hourly, "min_variance", c, window=30, bar=pd.Timedelta(hours=1))
    assert not np.allclose(on_hours[0][1], want[0][1])
