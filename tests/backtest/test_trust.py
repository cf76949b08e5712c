"""backtest/trust: each statistic against an independent computation or a published example."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rebalancer.backtest.reference import FloatArray, buy_and_hold, simulate
from rebalancer.backtest.trust.advise import AdviseOptions, _verdict, advise
from rebalancer.backtest.trust.bootstrap import bootstrap_rows, check_panel, resample_prices
from rebalancer.backtest.trust.overfit import (
    PboResult,
    deflated_sharpe,
    deflated_sharpe_of_best,
    expected_max_sharpe,
    pbo_cscv,
    robustness,
)
from rebalancer.backtest.trust.regimes import (
    RegimeOptions,
    label_bars,
    reference_flows,
    regime_table,
)
from rebalancer.backtest.trust.runner import KernelRunner, RowPaths, RowStats, Rule
from rebalancer.core.errors import ConfigError


def _panel(bars: int = 400, assets: int = 3, seed: int = 7) -> FloatArray:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.03, (bars - 1, assets))
    return 100 * np.exp(np.vstack([np.zeros((1, assets)), np.cumsum(r, axis=0)]))


class MeanReturnRunner:
    """A one-row runner whose 'premium' is the mean log return of asset 0 (an arch statistic)."""

    rules = (Rule("abs", 0.1, 0.0),)

    def stats(self, prices: FloatArray) -> RowStats:
        mean = float(np.diff(np.log(prices[:, 0])).mean())
        one = np.ones(1)
        return RowStats(one + mean, one, one * mean, one * 0.0)

    def paths(self, prices: FloatArray) -> RowPaths:  # pragma: no cover - unused
        raise NotImplementedError


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_interval_equals_arch_percentile_interval_on_a_known_series() -> None:
    from arch.bootstrap import StationaryBootstrap

    prices = _panel(300, 2)
    returns = np.diff(np.log(prices), axis=0)
    ours = bootstrap_rows(MeanReturnRunner(), prices, reps=200, seed=11, block=5, level=0.9)
    theirs = StationaryBootstrap(5, returns[:, 0], seed=11).conf_int(
        lambda x: x.mean(), reps=200, method="percentile", size=0.9
    )
    row = ours.rows[0].premium
    assert row.low == pytest.approx(float(theirs[0, 0]), abs=1e-12)
    assert row.high == pytest.approx(float(theirs[1, 0]), abs=1e-12)
    assert row.point == pytest.approx(float(returns[:, 0].mean()), abs=1e-15)


def test_resampled_panel_has_exactly_the_resampled_returns() -> None:
    prices = _panel(50, 3)
    returns = np.diff(np.log(prices), axis=0)
    index = np.array([5, 5, 0, 48, 17] * 9 + [1, 2, 3, 4], dtype=np.int64)
    out = resample_prices(prices, returns, index)
    assert out.shape == prices.shape
    np.testing.assert_allclose(out[0], prices[0])
    np.testing.assert_allclose(np.diff(np.log(out), axis=0), returns[index], atol=1e-12)


def test_bootstrap_is_deterministic_for_a_seed_and_any_worker_count() -> None:
    prices = _panel(200, 3)
    runner = KernelRunner([0.3, 0.3, 0.3], [Rule("abs", b, 0.001) for b in (0.02, 0.1)])
    one = bootstrap_rows(runner, prices, reps=30, seed=3, block=5, workers=1)
    two = bootstrap_rows(runner, prices, reps=30, seed=3, block=5, workers=2)
    other = bootstrap_rows(runner, prices, reps=30, seed=4, block=5, workers=1)
    np.testing.assert_array_equal(one.premiums, two.premiums)
    np.testing.assert_array_equal(one.sharpes, two.sharpes)
    assert not np.array_equal(one.premiums, other.premiums)
    for row in one.rows:
        assert row.premium.low <= row.premium.median <= row.premium.high
        assert 0 <= row.p_beat <= 1


def test_bootstrap_refuses_a_panel_too_short_for_its_block_length() -> None:
    with pytest.raises(ConfigError, match=r"needs at least 201 \(10 blocks\).*--block-length"):
        check_panel(150, 20)
    with pytest.raises(ConfigError, match="needs at least 21"):
        bootstrap_rows(MeanReturnRunner(), _panel(15, 2), reps=20)


def test_kernel_runner_matches_the_reference_oracle() -> None:
    prices = _panel(250, 3)
    rules = [Rule("abs", 0.03, 0.001), Rule("abs", 0.08, 0.0025)]
    stats = KernelRunner([0.3, 0.3, 0.3], rules, capital=1000).stats(prices)
    for k, rule in enumerate(rules):
        run = simulate(prices, [0.3] * 3, capital=1000, fee_rate=rule.fee_rate, band_abs=rule.band)
        bh = buy_and_hold(prices, [0.3] * 3, capital=1000, fee_rate=rule.fee_rate)
        assert stats.final_value[k] == pytest.approx(run.final_value, rel=1e-12)
        assert stats.premium[k] == pytest.approx(run.final_value / bh.final_value - 1, rel=1e-9)
    with pytest.raises(ConfigError, match="use --kinds abs"):
        KernelRunner([0.5], [Rule("rel", 0.1, 0.0)])


# -- overfitting -------------------------------------------------------------------------------


def _pbo_brute_force(returns: FloatArray, splits: int) -> float:
    """PBO written out loop by loop, straight from the paper's algorithm."""
    size = returns.shape[0] // splits
    blocks = [returns[i * size : (i + 1) * size] for i in range(splits)]
    n = returns.shape[1]
    bad = 0
    combos = list(itertools.combinations(range(splits), splits // 2))
    for c in combos:
        train = np.vstack([blocks[i] for i in c])
        test = np.vstack([blocks[i] for i in range(splits) if i not in c])
        sr_in = train.mean(axis=0) / train.std(axis=0, ddof=1)
        sr_out = test.mean(axis=0) / test.std(axis=0, ddof=1)
        best = int(np.argmax(sr_in))
        rank = 1 + np.sum(sr_out < sr_out[best]) + 0.5 * (np.sum(sr_out == sr_out[best]) - 1)
        w = rank / (n + 1)
        bad += math.log(w / (1 - w)) <= 0
    return bad / len(combos)


def test_pbo_equals_a_brute_force_computation() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0, 0.01, (123, 6))
    for splits in (4, 6, 8):
        assert pbo_cscv(returns, splits).pbo == pytest.approx(_pbo_brute_force(returns, splits))


def test_pbo_of_an_all_noise_sweep_is_near_one_half_or_above() -> None:
    rng = np.random.default_rng(1)
    result = pbo_cscv(rng.normal(0, 0.01, (1000, 50)), 16)
    assert isinstance(result, PboResult)
    assert result.combinations == 12870
    assert result.pbo >= 0.4


def test_pbo_of_a_sweep_with_a_planted_edge_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (1000, 50))
    returns[:, 7] += 0.003  # one configuration has a real edge (Sharpe ~0.3 per bar)
    assert pbo_cscv(returns, 16).pbo <= 0.02


def test_pbo_bad_input_names_the_minimum_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"1 row\(s\), at least 2.*--bands"):
        pbo_cscv(np.zeros((100, 1)), 16)
    with pytest.raises(ConfigError, match=r"needs at least 64.*fewer --splits"):
        pbo_cscv(np.zeros((40, 5)), 16)
    with pytest.raises(ConfigError, match="even number"):
        pbo_cscv(np.zeros((400, 5)), 7)


def test_deflated_sharpe_reproduces_the_papers_worked_example() -> None:
    """Bailey and López de Prado (2014), section 'a numerical example': annualised SR 2.5
    over 5 years of daily returns (T = 1250), N = 100 trials with annualised variance of
    the Sharpe ratios 1/2, skewness -3, kurtosis 10: SR0 = 0.1132 per day, DSR = 0.9004."""
    assert expected_max_sharpe(0.5 / 250, 100) == pytest.approx(0.1132, abs=5e-5)
    d = deflated_sharpe(2.5 / math.sqrt(250), 0.5 / 250, 100, 1250, -3.0, 10.0)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)


def test_deflated_sharpe_of_best_picks_the_best_row_and_deflates_it() -> None:
    rng = np.random.default_rng(2)
    returns = rng.normal(0, 0.01, (500, 20))
    best, d = deflated_sharpe_of_best(returns)
    sharpes = returns.mean(axis=0) / returns.std(axis=0, ddof=1)
    assert best == int(np.argmax(sharpes))
    from scipy import stats

    x = returns[:, best]
    again = deflated_sharpe(
        float(sharpes[best]),
        float(np.var(sharpes, ddof=1)),
        20,
        500,
        float(stats.skew(x)),
        float(stats.kurtosis(x, fisher=False)),
    )
    assert d.dsr == pytest.approx(again.dsr, rel=1e-9)
    assert d.sr0 > 0  # 20 trials: the bar the best row must clear is above zero
    with pytest.raises(ConfigError, match="at least 2 rows"):
        deflated_sharpe_of_best(returns[:, :1])


def test_robustness_tells_a_plateau_from_a_spike() -> None:
    rows = robustness([0.01, 0.02, 0.03, 0.04, 0.05], [0.0, 0.01, 0.2, 0.01, 0.015])
    shapes = {r["band"]: r["shape"] for r in rows}
    assert shapes[0.03] == "spike"
    assert shapes[0.02] == "dip" and shapes[0.05] == "plateau"
    assert robustness([0.05], [0.1])[0]["shape"].startswith("alone")


# -- regimes -----------------------------------------------------------------------------------


def test_labels_follow_the_trailing_return_and_volatility() -> None:
    up = np.exp(np.linspace(0, 1, 100))  # +1 % a bar: bull after the warm-up
    down = up[-1] * np.exp(-np.linspace(0, 1, 100)[1:])
    labels = label_bars(np.concatenate([up, down]), RegimeOptions(window=20))
    assert set(labels.trend[:20]) == {"warm-up"}
    assert set(labels.trend[20:100]) == {"bull"}
    assert set(labels.trend[125:]) == {"bear"}


def test_regime_table_adds_up_and_names_an_empty_regime() -> None:
    prices = _panel(300, 3, seed=9)
    run = simulate(prices, [0.3] * 3, capital=100, fee_rate=0.001, band_abs=0.02)
    bh = buy_and_hold(prices, [0.3] * 3, capital=100, fee_rate=0.001)
    flows = reference_flows(300, run.rebalance_bars, run.traded, run.fees, run.value_before)
    labels = label_bars(bh.equity, RegimeOptions(window=30, bull=5.0, bear=-5.0))
    rows = {r["regime"]: r for r in regime_table(run.equity, bh.equity, flows, labels, 365)}
    assert rows["bull"]["bars"] == 0 and "no bars" in rows["bull"]["note"]
    assert math.isnan(rows["bull"]["premium"])
    side = rows["sideways"]
    assert side["bars"] == 270
    # every labelled bar is sideways: its premium is the run's premium since the warm-up
    expected = (run.equity[-1] / run.equity[29]) / (bh.equity[-1] / bh.equity[29]) - 1
    assert side["premium"] == pytest.approx(expected, rel=1e-9)
    assert side["fees"] == pytest.approx(float(run.fees[run.rebalance_bars >= 30].sum()))
    assert rows["high-vol"]["bars"] + rows["low-vol"]["bars"] == 270


def test_regime_options_refuse_a_window_longer_than_half_the_panel() -> None:
    with pytest.raises(ConfigError, match=r"need at least 200.*--regime-window"):
        label_bars(np.ones(150), RegimeOptions(window=100))
    with pytest.raises(ConfigError, match="must be below --bull"):
        label_bars(np.ones(150), RegimeOptions(window=10, bull=-0.1, bear=0.1))


# -- the advice --------------------------------------------------------------------------------


def test_advise_runs_end_to_end_and_is_consistent() -> None:
    prices = _panel(400, 3)
    a = advise(
        prices,
        [0.3, 0.3, 0.3],
        [0.02, 0.05, 0.1, 0.2],
        0.001,
        options=AdviseOptions(reps=30, block=5, splits=8, regimes=RegimeOptions(window=30)),
    )
    lows = [r["premium_low"] for r in a.rows]
    assert a.candidate["premium_low"] == max(lows)
    assert a.verdict in ("recommend", "weak", "hold") and a.reasons
    assert a.pbo["combinations"] == 70
    assert [r["regime"] for r in a.regimes][:3] == ["bull", "bear", "sideways"]
    with pytest.raises(ConfigError, match="at least 2"):
        advise(prices, [0.3, 0.3, 0.3], [0.05], 0.001)


@pytest.mark.parametrize(
    ("low", "high", "pbo", "verdict", "says"),
    [
        (0.01, 0.2, 0.1, "recommend", "lies above zero"),
        (-0.05, 0.2, 0.1, "weak", "straddles zero"),
        (0.01, 0.2, 0.7, "weak", "PBO 0.70 > 0.5"),
        (-0.3, -0.01, 0.1, "hold", "lies below zero"),
    ],
)
def test_verdict_is_weak_when_the_interval_straddles_zero_or_pbo_is_high(
    low: float, high: float, pbo: float, verdict: str, says: str
) -> None:
    candidate = {"kind": "abs", "band": 0.1, "premium_low": low, "premium_high": high}
    got, reasons = _verdict(candidate, PboResult(pbo, np.zeros(1), 16, 25), 0.9)
    assert got == verdict
    assert any(says in r for r in reasons)


def test_a_sweeps_rows_run_through_the_runner_give_the_sweeps_premiums() -> None:
    from datetime import timedelta
    from decimal import Decimal

    import pandas as pd

    from rebalancer.backtest.grid import run_grid
    from rebalancer.backtest.trust.runner import rules_from_rows
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold

    prices = _panel(200, 2)
    closes = pd.DataFrame(
        prices,
        columns=["BTC", "ETH"],
        index=pd.date_range("2024-01-01", periods=200, freq="D", tz="UTC"),
    )
    strategy = Strategy(
        targets={"BTC": Decimal("0.45"), "ETH": Decimal("0.45"), "USDT": Decimal("0.1")},
        quote="USDT",
        trigger=Threshold(Decimal("0.05"), None),
        policy=PlanPolicy(),
    )
    grid = run_grid(
        closes,
        strategy,
        bands=[0.02, 0.1],
        fee_rates=[0.001, 0.0025],
        capital=Decimal(1000),
        bar=timedelta(days=1),
        semantics="reference",  # the trust runner's kernel
    )
    rules = rules_from_rows(grid.rows)
    stats = KernelRunner([0.45, 0.45], rules, capital=1000).stats(prices)
    np.testing.assert_allclose(stats.premium, grid.rows["premium"].to_numpy(), rtol=1e-12)
    with pytest.raises(ConfigError, match="--styles target"):
        rules_from_rows(grid.rows.assign(style="band_edge"))


def test_bootstrap_on_a_dask_cluster_equals_the_local_run() -> None:
    distributed = pytest.importorskip("distributed")
    prices = _panel(200, 3)
    runner = KernelRunner([0.3, 0.3, 0.3], [Rule("abs", b, 0.001) for b in (0.02, 0.1)])
    local = bootstrap_rows(runner, prices, reps=60, seed=3, block=5)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        remote = bootstrap_rows(runner, prices, reps=60, seed=3, block=5, client=client)
    np.testing.assert_array_equal(local.premiums, remote.premiums)
    np.testing.assert_array_equal(local.drawdowns, remote.drawdowns)
