"""advise on the compiled full-semantics engine: every kind and style, the bot's own rules;
the HTML report and the heatmap star."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.grid import KINDS, run_grid
from rebalancer.backtest.trust.advise import (
    AdviseOptions,
    advise_rules,
    reference_engine,
)
from rebalancer.backtest.trust.bootstrap import bootstrap_rows
from rebalancer.backtest.trust.full_runner import CompiledRunner, full_engine
from rebalancer.backtest.trust.regimes import RegimeOptions
from rebalancer.backtest.trust.runner import Rule
from rebalancer.core.errors import ConfigError
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold

DAY = timedelta(days=1)


def _closes(bars: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.04, (bars - 1, 3))
    prices = np.array([30_000.0, 2_000.0, 300.0]) * np.exp(
        np.vstack([np.zeros((1, 3)), np.cumsum(r, axis=0)])
    )
    index = pd.date_range("2023-01-01", periods=bars, freq="D", tz="UTC")
    return pd.DataFrame(prices, columns=["BTC", "ETH", "BNB"], index=index)


def _strategy() -> Strategy:
    w = Decimal("0.3")
    return Strategy(
        targets={"BTC": w, "ETH": w, "BNB": w, "USDT": Decimal("0.1")},
        quote="USDT",
        trigger=Threshold(Decimal("0.05"), None),
        policy=PlanPolicy(),
    )


BANDS = [0.03, 0.08, 0.15]


def _rules(kinds: tuple[str, ...] = KINDS, styles: tuple[str, ...] = ("target",)) -> list[Rule]:
    return [
        Rule(k, b, 0.001, s)
        for k in kinds
        for s in styles
        if not (k == "vol" and s == "band_edge")
        for b in BANDS
    ]


def _prices(closes: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(closes.to_numpy(dtype=np.float64))


def test_the_runner_gives_the_sweeps_rows_for_every_kind_and_style() -> None:
    closes, strategy = _closes(), _strategy()
    grid = run_grid(
        closes,
        strategy,
        bands=BANDS,
        fee_rates=[0.001],
        kinds=KINDS,
        styles=("target",),
        capital=Decimal(10_000),
        bar=DAY,
    )
    edge = run_grid(
        closes,
        strategy,
        bands=BANDS,
        fee_rates=[0.001],
        kinds=("abs", "rel", "cost"),
        styles=("band_edge",),
        capital=Decimal(10_000),
        bar=DAY,
    )
    rows = pd.concat([grid.rows, edge.rows]).set_index(["kind", "style", "band"])
    rules = _rules() + _rules(("abs", "rel", "cost"), ("band_edge",))
    stats = CompiledRunner(closes, strategy, rules, bar=DAY).stats(
        _prices(closes)
    )
    want = rows.loc[[(r.kind, r.style, r.band) for r in rules]]
    np.testing.assert_allclose(stats.final_value, want["final_value"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats.premium, want["premium"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats.sharpe, want["sharpe"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats.max_drawdown, want["max_drawdown"].to_numpy(), rtol=1e-12)


def test_paths_end_at_the_final_values_and_flows_add_up_to_the_runs_totals() -> None:
    from rebalancer.backtest.compiled.engine import run

    closes, strategy = _closes(), _strategy()
    rules = _rules()
    runner = CompiledRunner(closes, strategy, rules, bar=DAY)
    p = _prices(closes)
    stats, paths = runner.stats(p), runner.paths(p)
    np.testing.assert_allclose(paths.equity[:, -1], stats.final_value, rtol=1e-12)
    np.testing.assert_allclose(paths.bh_equity[:, -1], stats.bh_final_value, rtol=1e-12)
    rule = rules[4]  # rel 8%
    equity, _bh, flows = runner.profile(rule, p)
    np.testing.assert_array_equal(equity, paths.equity[4])
    # the same strategy through engine.run (its own inputs): the flows are its orders
    from rebalancer.backtest.grid import Combo, combo_strategy, market_rules

    s = combo_strategy(Combo(rule.kind, rule.style, rule.band, rule.fee_rate), strategy)
    fee = Decimal(repr(rule.fee_rate))
    markets = market_rules(closes, s).at_fee(fee)
    res = run(closes, s, {"USDT": Decimal(10_000)}, rules=markets, bar=DAY, equity=True)
    assert res.equity is not None
    np.testing.assert_allclose(equity, res.equity, rtol=1e-12)
    later = [o for o in res.orders if o.bar > 0]
    assert later, "the rule must trade after bar 0 for this test to mean anything"
    assert flows.fees.sum() == pytest.approx(sum(o.fee_quote for o in later), rel=1e-12)
    assert flows.traded.sum() == pytest.approx(sum(o.cost for o in later), rel=1e-12)
    assert np.count_nonzero(flows.traded) == len({o.bar for o in later})
    assert np.all(flows.turnover >= 0) and flows.traded[0] == 0


def test_vol_bands_see_the_resampled_history() -> None:
    closes, strategy = _closes(), _strategy()
    runner = CompiledRunner(closes, strategy, [Rule("vol", 0.08, 0.001)], bar=DAY)
    p = _prices(closes)
    calm = p.copy()
    calm[1:] = p[0] * np.exp(0.1 * np.log(p[1:] / p[0]))  # the same path, 10x less volatile
    group = next(g for g in runner._groups if g.vol is not None)
    real = runner._inputs(group, p, runner._frame(p))
    np.testing.assert_array_equal(real.vol_ratio, group.inputs.vol_ratio)  # same history
    resampled = runner._inputs(group, calm, runner._frame(calm))
    seen = np.isfinite(real.vol_ratio)
    np.testing.assert_allclose(resampled.vol_ratio[seen], 0.1 * real.vol_ratio[seen], rtol=1e-6)


def test_full_engine_resamples_are_the_same_on_one_and_two_workers() -> None:
    closes, strategy = _closes(200), _strategy()
    runner = CompiledRunner(closes, strategy, _rules(("abs", "vol", "hybrid")), bar=DAY)
    one = bootstrap_rows(runner, _prices(closes), reps=30, seed=5, block=5, workers=1)
    two = bootstrap_rows(runner, _prices(closes), reps=30, seed=5, block=5, workers=2)
    np.testing.assert_array_equal(one.premiums, two.premiums)
    np.testing.assert_array_equal(one.sharpes, two.sharpes)


def test_full_engine_resamples_on_dask_equal_the_local_run() -> None:
    distributed = pytest.importorskip("distributed")
    closes, strategy = _closes(200), _strategy()
    runner = CompiledRunner(closes, strategy, _rules(("abs", "rel")), bar=DAY)
    local = bootstrap_rows(runner, _prices(closes), reps=40, seed=3, block=5)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        remote = bootstrap_rows(runner, _prices(closes), reps=40, seed=3, block=5, client=client)
    np.testing.assert_array_equal(local.premiums, remote.premiums)


def _advice(kinds: tuple[str, ...] = ("abs", "rel", "vol")) -> dict[str, object]:
    closes = _closes()
    engine = full_engine(closes, _strategy(), _rules(kinds), capital=10_000.0, bar=DAY)
    options = AdviseOptions(reps=30, block=5, splits=8, regimes=RegimeOptions(window=30))
    return advise_rules(_prices(closes), engine, options=options).to_dict()


def test_advise_on_the_full_engine_compares_every_kind() -> None:
    a = _advice()
    assert [(r["kind"], r["band"]) for r in a["rows"]] == [  # type: ignore[attr-defined]
        (k, b) for k in ("abs", "rel", "vol") for b in BANDS
    ]
    lows = [r["premium_low"] for r in a["rows"]]  # type: ignore[attr-defined]
    assert a["candidate"]["premium_low"] == max(lows)  # type: ignore[index]
    assert a["pbo"]["configurations"] == 9  # type: ignore[index]
    assert "full semantics" in a["engine"]["label"]  # type: ignore[index]
    # neighbours are the same kind's: the first band of each kind has one neighbour
    for r in a["rows"]:  # type: ignore[attr-defined]
        if r["band"] == BANDS[0]:
            same = [x for x in a["rows"] if x["kind"] == r["kind"]]  # type: ignore[attr-defined]
            assert r["neighbours_premium"] == pytest.approx(same[1]["premium"])


def test_reference_semantics_refuses_kinds_the_kernel_lacks() -> None:
    p = _prices(_closes())
    with pytest.raises(ConfigError, match="--kinds abs"):
        reference_engine(p, [0.3, 0.3, 0.3], [Rule("rel", 0.1, 0.001)], 10_000, 86_400)
    with pytest.raises(ConfigError, match="no band_edge style"):
        CompiledRunner(_closes(), _strategy(), [Rule("vol", 0.1, 0.001, "band_edge")], bar=DAY)


def test_a_panel_too_short_for_the_splits_names_the_minimum_before_the_long_runs() -> None:
    closes = _closes(60)
    engine = full_engine(closes, _strategy(), _rules(("abs",)), capital=10_000.0, bar=DAY)
    options = AdviseOptions(reps=30, block=2, splits=16, regimes=RegimeOptions(window=10))
    with pytest.raises(ConfigError, match=r"needs at least 64 .*fewer --splits"):
        advise_rules(_prices(closes), engine, options=options)
    short = AdviseOptions(reps=30, block=8, splits=4, regimes=RegimeOptions(window=10))
    with pytest.raises(ConfigError, match=r"needs at least 81 .*--block-length"):
        advise_rules(_prices(closes), engine, options=short)


def test_one_row_is_refused_with_the_fix() -> None:
    closes = _closes()
    engine = full_engine(closes, _strategy(), [Rule("abs", 0.05, 0.001)], capital=1e4, bar=DAY)
    with pytest.raises(ConfigError, match="give at least 2"):
        advise_rules(_prices(closes), engine)


# -- the report --------------------------------------------------------------------------------


def test_the_html_report_says_why_and_escapes(tmp_path: Path) -> None:
    from rebalancer.reports.advise import write_advise_report
    from rebalancer.reports.backtest import Provenance

    a = _advice(("abs", "rel"))
    a["verdict"], a["reasons"] = "weak", ["the interval <script>alert(1)</script> straddles zero"]
    prov = Provenance(
        files={"BTC": Path("BTC_USDT-1d.csv")}, sha256={"BTC": "ab12" * 16}, command="advise"
    )
    page = write_advise_report(
        a, tmp_path, prov, window="2023-01-01 → 2023-10-27 (300 daily bars)", targets="BTC 30%"
    ).read_text()
    assert "No recommendation, because:" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "ab12" * 16 in page and "2023-01-01 → 2023-10-27" in page
    assert page.index("Data notes") < page.index("No recommendation")  # window and notes first
    for word in ("P(beat B&amp;H)", "Sharpe 90% interval", "max drawdown 90% interval", "PBO"):
        assert word in page
    assert "seed 0" in page and "30 stationary-block" in page
    assert (tmp_path / "advise_robustness.png").stat().st_size > 1000
    assert (tmp_path / "advise_heatmap.png").stat().st_size > 1000
    a["verdict"], a["reasons"] = "recommend", ["its interval lies above zero"]
    page = write_advise_report(a, tmp_path, prov, window="w", targets="t").read_text()
    assert "No recommendation" not in page and "★ " in page


def _stars(fig: object) -> list[tuple[str, float, float, bool]]:
    """The advised-band stars of a figure: (panel title, x, y, filled)."""
    out = []
    for ax in fig.axes:  # type: ignore[attr-defined]
        for line in ax.get_lines():
            if line.get_marker() == "*" and line.get_markersize() == 15:
                x, y = line.get_data()
                filled = line.get_markerfacecolor() != "none"
                out.append((ax.get_title(), float(x[0]), float(y[0]), filled))
    return out


def test_the_heatmap_stars_the_advised_cell_only_when_given() -> None:
    import matplotlib.pyplot as plt

    from rebalancer.reports.heatmaps import Mark, heatmap_figures

    grid = run_grid(
        _closes(),
        _strategy(),
        bands=BANDS,
        fee_rates=[0.0, 0.001],
        kinds=("abs", "rel"),
        capital=Decimal(10_000),
        bar=DAY,
    )
    plain = heatmap_figures(grid)
    assert all(not _stars(f) for f in plain.values())
    mark = Mark("rel", "target", 0.08, 0.001, recommended=False, why="")
    figs = heatmap_figures(grid, mark=mark)
    for f in figs.values():
        stars = _stars(f)
        assert len(stars) == 1
        title, x, y, filled = stars[0]
        # the rel panel, fee column 1 (0.1 %), band row 1 (8 %), hollow (not recommended)
        assert (title, round(x - 0.36), y, filled) == ("rel / target", 1, 1, False)
    for f in [*plain.values(), *figs.values()]:
        plt.close(f)


def test_the_sweep_report_says_in_one_sentence_why_a_band_is_starred() -> None:
    from rebalancer.reports.advise import advice_sentence
    from rebalancer.reports.backtest import Provenance
    from rebalancer.reports.research import render_sweep

    a = _advice(("abs",))
    sentence = advice_sentence(a)
    assert "best lower bound" in sentence and "PBO" in sentence and "resamples" in sentence
    grid = run_grid(
        _closes(), _strategy(), bands=BANDS, fee_rates=[0.001], capital=Decimal(10_000), bar=DAY
    )
    kw = {
        "window": "w",
        "strategy": _strategy(),
        "capital": Decimal(10_000),
        "executor": "local",
    }
    page = render_sweep(grid, {}, Provenance(), advised=sentence, **kw)  # type: ignore[arg-type]
    assert "Advised band:" in page
    assert "Advised band:" not in render_sweep(grid, {}, Provenance(), **kw)  # type: ignore[arg-type]
    assert math.isfinite(a["candidate"]["premium_low"])  # type: ignore[index]


