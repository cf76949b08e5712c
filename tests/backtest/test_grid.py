"""Grids: each row equals its own single run, whichever engine produced it."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.adapters.market_list import shipped
from rebalancer.backtest.engine import FirstBar, run_backtest
from rebalancer.backtest.grid import (
    STYLES,
    Combo,
    break_even,
    combos,
    fill_model,
    market_rules,
    run_grid,
)
from rebalancer.backtest.reference import simulate
from rebalancer.core.errors import ConfigError
from rebalancer.core.model import MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold, Trigger
from rebalancer.core.venue import BINANCE, KRAKEN
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.panel import load_panel
from rebalancer.reports.heatmaps import write_outputs

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
DAY = timedelta(days=1)
D = Decimal
TARGETS = {"BTC": D("0.3"), "ETH": D("0.3"), "XRP": D("0.2"), "USDT": D("0.2")}


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    panel = load_panel(DATA, ["BTC", "ETH", "XRP"], "1d", start="2020-01-01", end="2021-06-30")
    return panel.closes


def _strategy() -> Strategy:
    return Strategy("USDT", TARGETS, Threshold(), PlanPolicy(min_trade=D(10), slippage=D("0.001")))


def test_reference_rows_equal_reference_runs(closes: pd.DataFrame) -> None:
    bands, fees = [0.02, 0.05, 0.1], [0.0, 0.001, 0.0025]
    grid = run_grid(
        closes, _strategy(), bands=bands, fee_rates=fees, bar=DAY, capital=D(1000),
        semantics="reference",
    )
    assert grid.engines() == {"reference": 9}
    assert set(grid.rows["semantics"]) == {"reference"}
    prices = closes.to_numpy()
    targets = np.array([0.3, 0.3, 0.2])
    for row in grid.rows.to_dict("records"):
        ref = simulate(
            prices, targets, capital=1000.0, fee_rate=row["fee_rate"], band_abs=row["band"]
        )
        assert row["final_value"] == pytest.approx(ref.final_value, rel=1e-9)
        assert row["n_rebalances"] == ref.n_rebalances
        hold = simulate(prices, targets, capital=1000.0, fee_rate=row["fee_rate"])
        assert row["bh_final_value"] == pytest.approx(hold.final_value, rel=1e-9)
        assert row["beats_bh"] == (row["final_value"] >= row["bh_final_value"])


@pytest.mark.parametrize(
    ("kinds", "styles", "engine", "named"),
    [
        (["abs", "rel"], ["target"], "compiled", "rel"),
        (["abs"], ["target", "band_edge"], "compiled", "band_edge"),
        (["abs"], ["target"], "replay", "--engine replay"),
    ],
)
def test_reference_semantics_refuse_what_the_reference_kernel_lacks(
    closes: pd.DataFrame, kinds: list[str], styles: list[str], engine: str, named: str
) -> None:
    """Never a reference row beside a full one: the option, what it lacks and the fix."""
    with pytest.raises(ConfigError, match="--semantics reference") as err:
        run_grid(
            closes, _strategy(), bands=[0.05], fee_rates=[0.001], kinds=kinds, styles=styles,
            bar=DAY, semantics="reference", engine=engine,  # type: ignore[arg-type]
        )
    assert named in str(err.value)
    assert "drop --semantics reference" in str(err.value) or "drop --engine" in str(err.value)


def _one(
    closes: pd.DataFrame, row: dict[str, object], rules: dict[str, MarketRules] | None = None
) -> tuple[float, int, float]:
    """Final value, rebalances and buy-and-hold of ``row`` run alone by the replay."""
    combo = Combo(str(row["kind"]), str(row["style"]), float(row["band"]),  # type: ignore[arg-type]
                  float(row["fee_rate"]))  # type: ignore[arg-type]
    fee = D(repr(combo.fee_rate))
    policy = combo.policy(_strategy().policy)
    runs = [
        run_backtest(
            closes, Strategy("USDT", TARGETS, trigger, policy), capital=D(1000), taker_fee=fee,
            slippage=D("0.001"), bar=DAY, rules=rules, benchmarks=False, engine="replay",
        ).run
        for trigger in (combo.trigger(), FirstBar())
    ]
    return float(runs[0].final_value), len(runs[0].rebalance_bars), float(runs[1].final_value)


def test_replay_rows_equal_full_runs(closes: pd.DataFrame) -> None:
    """Every row, whatever its kind and style, is the strategy's own backtest (its
    min_trade and slippage, made-up Binance-like rules by default) with the row's rule."""
    grid = run_grid(
        closes,
        _strategy(),
        bands=[0.03, 0.08],
        fee_rates=[0.001],
        kinds=["abs", "rel"],
        styles=["target", "band_edge"],
        bar=DAY,
        capital=D(1000),
        workers=1,
        engine="replay",
    )
    assert grid.engines() == {"replay": 8}
    assert grid.semantics == "full" and set(grid.rows["semantics"]) == {"full"}
    for row in grid.rows.to_dict("records"):
        final, n_reb, hold = _one(closes, row)
        assert row["final_value"] == final
        assert row["n_rebalances"] == n_reb
        assert row["bh_final_value"] == hold


def test_full_is_the_default_and_every_row_is_compiled(closes: pd.DataFrame) -> None:
    """The default sweep: every kind and style in the compiled engine, one semantics, the
    same rows as the replay's (final values within 1e-9, rebalances exactly)."""
    kw = {
        "bands": [0.03, 0.08],
        "fee_rates": [0.001],
        "kinds": ["abs", "rel", "hybrid", "cost"],
        "styles": ["target", "band_edge"],
        "bar": DAY,
        "capital": D(1000),
    }
    grid = run_grid(closes, _strategy(), **kw)  # type: ignore[arg-type]
    assert grid.engines() == {"compiled": 16}
    assert grid.semantics == "full" and set(grid.rows["semantics"]) == {"full"}
    replayed = run_grid(closes, _strategy(), workers=1, engine="replay", **kw)  # type: ignore[arg-type]
    for col in ("final_value", "fees", "traded", "bh_final_value", "sharpe"):
        assert np.allclose(grid.rows[col], replayed.rows[col], rtol=1e-9, atol=1e-12), col
    assert list(grid.rows["n_rebalances"]) == list(replayed.rows["n_rebalances"])


def test_a_venue_sweeps_under_its_rules_and_fee_side(closes: pd.DataFrame) -> None:
    """Kraken: the shipped Kraken market list (real steps and minimums) and the fee in the
    quote; both engines agree and differ from the Binance-side fill of the same rules."""
    kraken = market_rules(closes, _strategy(), KRAKEN)
    assert kraken.venue.fee_in == "quote" and "kraken" in kraken.source
    assert all(r.fee_in_quote for r in kraken.rules.values())
    listed = shipped("kraken")["markets"]["BTC/USDT"]
    assert kraken.rules["BTC"].amount_step == D(listed["amount_step"])
    kw = {"bands": [0.05], "fee_rates": [0.0026], "kinds": ["abs", "rel"], "bar": DAY,
          "capital": D(1000)}
    compiled = run_grid(closes, _strategy(), market=kraken, **kw)  # type: ignore[arg-type]
    replayed = run_grid(closes, _strategy(), market=kraken, engine="replay", workers=1, **kw)  # type: ignore[arg-type]
    assert compiled.venue == "kraken"
    assert np.allclose(compiled.rows["final_value"], replayed.rows["final_value"], rtol=1e-9)
    assert list(compiled.rows["n_rebalances"]) == list(replayed.rows["n_rebalances"])
    received = replace(kraken, venue=replace(kraken.venue, fee_in="received"))
    other = run_grid(closes, _strategy(), market=received, **kw)  # type: ignore[arg-type]
    assert not np.allclose(other.rows["final_value"], compiled.rows["final_value"], rtol=1e-9)


def test_fees_in_a_third_asset_are_refused() -> None:
    with pytest.raises(ConfigError, match="fees paid in BNB cannot be swept"):
        fill_model(BINANCE.with_fee_currency("BNB", D("0.75")))


def test_break_even_definition() -> None:
    rows = pd.DataFrame(
        {
            "kind": ["abs"] * 6,
            "style": ["target"] * 6,
            "fee_rate": [0.001] * 3 + [0.0025] * 3,
            "band": [0.01, 0.02, 0.03] * 2,
            "final_value": [90.0, 101.0, 99.0, 80.0, 85.0, 99.9],
            "bh_final_value": [100.0] * 6,
        }
    )
    rows["beats_bh"] = rows["final_value"] >= rows["bh_final_value"]
    rows["premium"] = rows["final_value"] / rows["bh_final_value"] - 1
    be = break_even(rows).set_index("fee_rate")
    assert be.loc[0.001, "break_even_band"] == 0.02  # the smallest band that gets there
    assert be.loc[0.001, "best_band"] == 0.02
    assert math.isnan(be.loc[0.0025, "break_even_band"])
    assert not be.loc[0.0025, "beats_at_all_bands"]


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ConfigError, match="kinds"):
        combos([0.05], [0.001], ["sometimes"], ["target"])
    with pytest.raises(ConfigError, match="bands"):
        combos([0.0], [0.001], ["abs"], ["target"])
    with pytest.raises(ConfigError, match="fee rates"):
        combos([0.05], [1.5], ["abs"], ["target"])
    assert len(combos([0.05, 0.05, 0.1], [0.0, 0.001], ["abs", "rel"], ["target"])) == 8


def test_outputs_written(closes: pd.DataFrame, tmp_path: Path) -> None:
    grid = run_grid(
        closes, _strategy(), bands=[0.02, 0.05, 0.1, 0.2], fee_rates=[0.0005, 0.001], bar=DAY
    )
    paths = write_outputs(grid, tmp_path)
    back = pd.read_csv(paths["csv"])
    assert len(back) == 8 and set(back["engine"]) == {"compiled"}
    assert set(back["semantics"]) == {"full"}
    assert back["final_value"].tolist() == pytest.approx(grid.rows["final_value"].tolist())
    for metric in ("final_value", "sharpe", "max_drawdown"):
        png = paths[f"heatmap_{metric}"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(paths["break_even"])) == 2
    assert not math.isnan(grid.rows["sharpe"].iloc[0])


def test_worker_processes_give_the_same_rows(closes: pd.DataFrame) -> None:
    kw = {
        "bands": [0.02, 0.05, 0.1, 0.2],
        "fee_rates": [0.001, 0.0025],
        "kinds": ["rel"],
        "styles": ["target", "band_edge"],
        "bar": DAY,
        "capital": D(1000),
        "engine": "replay",
    }
    one = run_grid(closes, _strategy(), workers=1, **kw)  # type: ignore[arg-type]
    two = run_grid(closes, _strategy(), workers=2, **kw)  # type: ignore[arg-type]
    assert one.engines() == {"replay": 16}
    pd.testing.assert_frame_equal(one.rows, two.rows)


def test_vol_and_cost_kinds_are_the_smarter_rules_run_in_full(closes: pd.DataFrame) -> None:
    """kind vol = the volatility-scaled rule with the band as its base band, kind cost = the
    absolute band with cost-aware legs; each row equals that rule's own backtest."""
    grid = run_grid(
        closes,
        _strategy(),
        bands=[0.03, 0.06],
        fee_rates=[0.001],
        kinds=["abs", "vol", "cost"],
        bar=DAY,
        capital=D(1000),
        workers=1,
        engine="replay",
    )
    assert grid.engines() == {"replay": 6}
    for row in grid.rows.to_dict("records"):
        band = D(repr(row["band"]))
        trigger: Trigger = Threshold(band, None)
        policy = _strategy().policy
        if row["kind"] == "vol":
            trigger = VolScaledThreshold(
                half_life=20,
                base_band=band,
                floor=band * D("0.4"),
                cap=band * 3,
                reference_vol=0.04,
            )
        if row["kind"] == "cost":
            policy = replace(policy, cost_aware=True, risk_aversion=D("0.1"))
        one = run_backtest(
            closes,
            Strategy("USDT", TARGETS, trigger, policy),
            capital=D(1000),
            taker_fee=D("0.001"),
            slippage=D("0.001"),
            bar=DAY,
            benchmarks=False,
            engine="replay",
        )
        assert row["final_value"] == float(one.run.final_value)
        assert row["n_rebalances"] == len(one.run.rebalance_bars)
        fifo = sum((g.net for g in one.run.realised_gains("fifo").values()), D(0))
        assert row["realised_gain_fifo"] == float(fifo)
    by_kind = grid.rows.groupby("kind")["n_rebalances"].apply(list).to_dict()
    assert by_kind["vol"] != by_kind["abs"]  # the rules really differ on this data


def test_vol_kind_has_no_band_edge_and_the_kernels_keep_no_lots(closes: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="vol has no band_edge"):
        combos([0.05], [0.001], ["vol"], ["band_edge"])
    # with other kinds or styles, the (vol, band_edge) pair is left out, and said so
    pairs = {(c.kind, c.style) for c in combos([0.05], [0.001], ["abs", "vol"], STYLES)}
    assert pairs == {("abs", "target"), ("abs", "band_edge"), ("vol", "target")}
    both = run_grid(closes, _strategy(), bands=[0.05], fee_rates=[0.001], kinds=["abs", "vol"],
                    styles=list(STYLES), bar=DAY)
    assert len(both.rows) == 3 and "vol runs with style target only" in both.notes[0]
    grid = run_grid(closes, _strategy(), bands=[0.05], fee_rates=[0.001], bar=DAY)
    assert grid.engines() == {"compiled": 1}
    assert math.isnan(grid.rows["realised_gain_fifo"].iloc[0])
