"""Per-regime statistics reconcile with the whole run, and bad input says what to change."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.engine import run_backtest
from rebalancer.backtest.reference import FloatArray, simulate
from rebalancer.backtest.trust.regime_stats import (
    backtest_regimes,
    durations,
    episode_drawdown,
    episodes,
    market_curve,
    reference_bars,
    regime_report,
)
from rebalancer.backtest.trust.regimes import RegimeOptions
from rebalancer.config import default_config
from rebalancer.core.errors import ConfigError


def _panel(bars: int = 400, assets: int = 3, seed: int = 7) -> FloatArray:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.03, (bars - 1, assets))
    return 100 * np.exp(np.vstack([np.zeros((1, assets)), np.cumsum(r, axis=0)]))


def _ref_report(prices: FloatArray, options: RegimeOptions, band: float = 0.02):  # type: ignore[no-untyped-def]
    targets = [0.3] * prices.shape[1]
    run = simulate(prices, targets, capital=100.0, fee_rate=0.002, band_abs=band)
    bh = simulate(prices, targets, capital=100.0, fee_rate=0.002, band_abs=math.inf)
    dt = durations(None, prices.shape[0], 86_400.0)
    rep = regime_report(
        market_curve(prices, targets),
        reference_bars(run, 100.0),
        reference_bars(bh, 100.0),
        options,
        dt,
    )
    return rep, run, bh


def _product(rows: list, names: tuple[str, ...], key: str) -> float:  # type: ignore[type-arg]
    return math.prod(1 + r.__getattribute__(key) for r in rows if r.regime in names)


TRENDS = ("warm-up", "bull", "bear", "sideways")
VOLS = ("warm-up", "high-vol", "low-vol")


def test_regime_returns_multiply_and_fees_sum_to_the_whole_reference_run() -> None:
    prices = _panel(500, 3)
    rep, run, bh = _ref_report(prices, RegimeOptions(window=30, bull=0.05, bear=-0.05))
    rows = rep.rows
    assert [r.regime for r in rows] == [*TRENDS, "high-vol", "low-vol"]
    assert all(r.bars > 0 for r in rows), rows
    for names in (TRENDS, VOLS):
        assert _product(rows, names, "rule_return") == pytest.approx(run.equity[-1] / 100.0)
        assert _product(rows, names, "bh_return") == pytest.approx(bh.equity[-1] / 100.0)
        assert _product(rows, names, "premium") == pytest.approx(run.equity[-1] / bh.equity[-1])
        sub = [r for r in rows if r.regime in names]
        assert sum(r.fees for r in sub) == pytest.approx(run.total_fees)
        assert sum(r.turnover for r in sub) == pytest.approx(run.turnover)
        assert sum(r.rebalances for r in sub) == run.n_rebalances
        assert sum(r.bars for r in sub) == 500
        assert sum(r.share for r in sub) == pytest.approx(1.0)
        assert sum(r.years for r in sub) == pytest.approx(499 / 365)
    for r in rows:
        assert r.return_difference == pytest.approx(r.rule_return - r.bh_return)
        assert (1 + r.premium_per_year) ** r.years == pytest.approx(1 + r.premium)
        assert 0 <= r.max_drawdown <= 1 and 0 <= r.bh_max_drawdown <= 1


def test_a_regime_with_no_bars_says_so_and_a_short_panel_names_the_minimum() -> None:
    prices = _panel(300, 3, seed=9)
    rep, _, _ = _ref_report(prices, RegimeOptions(window=30, bull=5.0, bear=-5.0))
    rows = {r.regime: r for r in rep.rows}
    assert rows["bull"].bars == 0 and math.isnan(rows["bull"].premium)
    assert "no bars in this regime" in rows["bull"].note and "--bull" in rows["bull"].note
    assert rows["sideways"].bars == 270 and rows["sideways"].note == ""
    short, _, _ = _ref_report(prices[:50], RegimeOptions(window=30))
    assert short.rows == []
    assert "needs at least 60" in short.note or "least 60" in short.note
    assert "--regime-window" in short.note


def test_drawdown_is_the_deepest_within_one_episode() -> None:
    # two episodes each falling 50 % then recovering: chained they would fall 75 %
    r = np.log(np.array([0.5, 2.0, 1.0, 0.5, 2.0]))
    mask = np.array([True, True, False, True, True])
    assert episodes(mask) == [(0, 2), (3, 5)]
    assert episode_drawdown(r, episodes(mask)) == pytest.approx(0.5)
    assert math.isnan(episode_drawdown(r, []))


def test_backtest_regimes_reconcile_with_the_engine_run() -> None:
    settings = default_config()
    strategy = settings.strategy()
    from rebalancer.data.panel import load_demo_panel

    panel = load_demo_panel(list(strategy.assets))
    result = run_backtest(
        panel.closes,
        strategy,
        capital=Decimal(10000),
        taker_fee=Decimal("0.001"),
        bar=timedelta(days=1),
    )
    rep = backtest_regimes(result, panel.closes, RegimeOptions(window=30))
    assert rep.note == "" and rep.spans
    m, hold = result.run.metrics, result.benchmarks["buy_and_hold"].metrics
    for names in (TRENDS, VOLS):
        sub = [r for r in rep.rows if r.regime in names and r.bars]
        assert math.prod(1 + r.rule_return for r in sub) == pytest.approx(1 + m.total_return)
        assert math.prod(1 + r.bh_return for r in sub) == pytest.approx(1 + hold.total_return)
        assert math.prod(1 + r.premium for r in sub) == pytest.approx(1 + result.premium.total)  # type: ignore[union-attr]
        assert sum(r.fees for r in sub) == pytest.approx(m.fees)
        assert sum(r.turnover for r in sub) == pytest.approx(m.turnover)
        assert sum(r.rebalances for r in sub) == m.n_rebalances
        assert sum(r.years for r in sub) == pytest.approx(m.years)
    # the spans cover every labelled bar once, in order
    covered = sum(b - a for a, b, _ in rep.spans)
    assert covered == len(result.run.equity) - 30


def test_durations_count_missing_bars() -> None:
    times = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-05"])
    assert durations(times, 3, 86_400.0).tolist() == [0.0, 86_400.0, 3 * 86_400.0]


def test_regime_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="must be below --bull"):
        RegimeOptions(window=10, bull=-0.1, bear=0.1).check(100)


def test_the_equity_chart_shades_every_regime_stretch_with_a_legend() -> None:
    import matplotlib.pyplot as plt

    from rebalancer.data.panel import load_demo_panel
    from rebalancer.reports.backtest import equity_figure

    strategy = default_config().strategy()
    panel = load_demo_panel(list(strategy.assets))
    result = run_backtest(
        panel.closes,
        strategy,
        capital=Decimal(10000),
        taker_fee=Decimal("0.001"),
        bar=timedelta(days=1),
    )
    rep = backtest_regimes(result, panel.closes, RegimeOptions(window=30))
    plain = equity_figure(result)
    fig = equity_figure(result, {"spans": rep.spans, "vol_spans": rep.vol_spans})
    ax, bare = fig.axes[0], plain.axes[0]
    shaded = len(ax.patches) - len(bare.patches)
    assert shaded == len(rep.spans) + len(rep.vol_spans) > 0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    drawn = {name for _, _, name in rep.spans}
    assert {f"{n} market" for n in drawn} <= set(legend)
    assert "high-vol (top strip)" in legend
    assert not any("market" in t.get_text() for t in bare.get_legend().get_texts())
    plt.close(fig)
    plt.close(plain)


@pytest.mark.parametrize(
    ("kinds", "styles", "engine"),
    [(("abs",), ("target",), "reference"), (("rel", "abs"), ("band_edge",), "compiled")],
)
def test_every_sweep_row_reconciles_with_its_regimes(
    kinds: tuple[str, ...], styles: tuple[str, ...], engine: str
) -> None:
    from rebalancer.backtest.grid import market_rules, run_grid
    from rebalancer.backtest.trust.sweep_regimes import sweep_regimes

    prices = _panel(260, 3, seed=3)
    closes = pd.DataFrame(
        prices,
        columns=["BTC", "ETH", "BNB"],
        index=pd.date_range("2021-01-01", periods=260, freq="D", tz="UTC"),
    )
    strategy = _three_assets(default_config().strategy())
    grid_market = None if engine == "reference" else market_rules(closes, strategy)
    grid = run_grid(
        closes,
        strategy,
        bands=[0.02, 0.1],
        fee_rates=[0.001, 0.003],
        kinds=kinds,
        styles=styles,
        capital=Decimal(10000),
        bar=timedelta(days=1),
        semantics="reference" if engine == "reference" else "full",
        market=grid_market,
    )
    assert set(grid.rows["engine"]) == {engine}
    reg = sweep_regimes(
        grid.rows,
        closes,
        strategy,
        RegimeOptions(window=20, bull=0.05, bear=-0.05),
        capital=Decimal(10000),
        bar=timedelta(days=1),
        semantics=grid.semantics,
        keep=0,
        market=grid_market,
    )
    assert len(reg.reports) == len(grid.rows) and reg.curves is not None
    for row, rep in zip(grid.rows.to_dict("records"), reg.reports, strict=True):
        for names in (TRENDS, VOLS):
            sub = [r for r in rep.rows if r.regime in names and r.bars]
            assert math.prod(1 + r.premium for r in sub) == pytest.approx(1 + row["premium"])
            assert sum(r.fees for r in sub) == pytest.approx(row["fees"])
            assert sum(r.turnover for r in sub) == pytest.approx(row["turnover"])
            assert sum(r.rebalances for r in sub) == row["n_rebalances"]


def _three_assets(strategy):  # type: ignore[no-untyped-def]
    from dataclasses import replace as dc_replace

    targets = {"BTC": Decimal("0.3"), "ETH": Decimal("0.3"), "BNB": Decimal("0.3")}
    targets[strategy.quote] = Decimal("0.1")
    return dc_replace(strategy, targets=targets)


def test_a_sweep_on_a_panel_too_short_for_the_window_says_so() -> None:
    from rebalancer.backtest.grid import market_rules, run_grid
    from rebalancer.backtest.trust.sweep_regimes import sweep_regimes

    closes = pd.DataFrame(
        _panel(50, 3),
        columns=["BTC", "ETH", "BNB"],
        index=pd.date_range("2021-01-01", periods=50, freq="D", tz="UTC"),
    )
    strategy = _three_assets(default_config().strategy())
    grid_market = market_rules(closes, strategy)
    grid = run_grid(
        closes, strategy, bands=[0.05], fee_rates=[0.001], bar=timedelta(days=1),
        market=grid_market,
    )
    reg = sweep_regimes(
        grid.rows,
        closes,
        strategy,
        RegimeOptions(window=30),
        capital=Decimal(10000),
        bar=timedelta(days=1),
        semantics=grid.semantics,
        market=grid_market,
    )
    assert reg.reports == [] and "need at least 60" in reg.note
    payload = reg.to_dict(grid.rows)
    assert payload["rows"] == [] and "--regime-window" in payload["note"]


def test_the_volatility_labels_are_the_trailing_windows_std() -> None:
    """High/low volatility from each bar's trailing ``window`` returns, as a direct numpy
    std of every window (the rolling form in ``label_bars`` must not drift from it)."""
    from rebalancer.backtest.trust.regimes import label_bars

    rng = np.random.default_rng(7)
    equity = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400) * rng.uniform(0.2, 2, 400)))
    w = 30
    labels = label_bars(equity, RegimeOptions(window=w, vol_quantile=0.6))
    r = np.diff(np.log(equity))
    direct = np.array([r[t - w : t].std(ddof=1) for t in range(w, len(equity))])
    assert labels.vol_cutoff == pytest.approx(float(np.quantile(direct, 0.6)), rel=1e-12)
    want = np.where(direct > labels.vol_cutoff, "high-vol", "low-vol")
    assert list(labels.vol[w:]) == list(want)
    assert set(labels.vol[:w]) == {"warm-up"}
