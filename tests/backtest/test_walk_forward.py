"""Walk-forward: windows, the in-sample choice, the stitched out-of-sample account."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.backtest.engine import BacktestResult, run_backtest
from rebalancer.backtest.grid import Combo, Market, combo_strategy, market_rules
from rebalancer.backtest.walk_forward import Window, _window_run, walk_forward, windows
from rebalancer.core.errors import ConfigError
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.core.venue import KRAKEN
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


def _alone(
    frame: pd.DataFrame, strategy: Strategy, combo: Combo, market: Market, **start: object
) -> BacktestResult:
    """``combo`` run alone by the replay in ``market`` (what a walk-forward run must equal)."""
    fee = D(repr(combo.fee_rate))
    return run_backtest(
        frame,
        Strategy("USDT", TARGETS, combo.trigger(), combo.policy(strategy.policy)),
        taker_fee=fee,
        slippage=strategy.policy.slippage,
        bar=DAY,
        rules=market.at_fee(fee),
        benchmarks=False,
        venue=market.venue,
        engine="replay",
        **start,  # type: ignore[arg-type]
    )


def test_walk_forward_replay_chooses_and_scores_with_the_same_engine(
    closes: pd.DataFrame,
) -> None:
    """--engine replay: the in-sample choice is the best of the bands run alone by the
    replay (full semantics, the same market), and each out-of-sample window is that band
    run alone from the holdings the previous window ended with."""
    for kind in ("abs", "vol"):
        _check_replayed_walk(closes, kind)


def _check_replayed_walk(closes: pd.DataFrame, kind: str) -> None:
    strategy = Strategy("USDT", TARGETS, Threshold(), PlanPolicy(min_trade=D(10)))
    fee = D("0.001")
    market = market_rules(closes, strategy)
    res = walk_forward(
        closes, strategy, kind=kind, bands=BANDS, fee_rate=fee, train=365, test=120, bar=DAY,
        engine="replay",
    )
    assert res.summary()["kind"] == kind and res.summary()["engine"] == "replay"
    wins = windows(len(closes), 365, 120, anchored=False)
    assert len(res.windows) == len(wins)
    assert len(res.equity) == sum(w.test[1] - w.test[0] for w in wins)
    for w, row in zip(wins[:2], res.windows.to_dict("records"), strict=False):
        a, b = w.train
        scores = [
            _alone(closes.iloc[a:b], strategy, Combo(kind, "target", band, 0.001), market,
                   capital=D(10000)).run.metrics.sharpe
            for band in BANDS
        ]
        assert row["band"] == BANDS[int(np.argmax(scores))]
        assert row["in_sample_sharpe"] == max(scores)
    # the second window continues the first one's account: no fresh purchase from cash
    (c0, d0), (c1, d1) = wins[0].test, wins[1].test
    rule = [Combo(kind, "target", float(band), 0.001) for band in res.windows["band"][:2]]
    first = _alone(closes.iloc[c0:d0], strategy, rule[0], market, capital=D(10000))
    np.testing.assert_array_equal(res.equity.to_numpy()[: d0 - c0], first.run.equity)
    second = _alone(
        closes.iloc[c1:d1], strategy, rule[1], market, initial=first.run.final_balances
    )
    np.testing.assert_array_equal(
        res.equity.to_numpy()[d0 - c0 : d0 - c0 + d1 - c1], second.run.equity
    )
    # hindsight: every band, best first by the objective
    assert sorted(res.hindsight["band"]) == BANDS
    assert res.hindsight["score"].is_monotonic_decreasing
    assert res.summary()["walk_forward"]["final_value"] == pytest.approx(res.equity.iloc[-1])


def test_compiled_walk_forward_equals_the_replayed_one(closes: pd.DataFrame) -> None:
    """The default engine makes the same choices and scores as the replay: bands exactly,
    scores, the stitched equity, hindsight and buy-and-hold within 1e-9."""
    for kind in ("abs", "vol", "cost"):
        _check_engines_agree(closes, kind)


def _check_engines_agree(closes: pd.DataFrame, kind: str) -> None:
    policy = PlanPolicy(min_trade=D(10), slippage=D("0.001"))
    strategy = Strategy("USDT", TARGETS, Threshold(), policy)
    kw = {"kind": kind, "bands": BANDS, "fee_rate": D("0.001"), "train": 365, "test": 120,
          "bar": DAY}
    fast = walk_forward(closes, strategy, **kw)  # type: ignore[arg-type]
    slow = walk_forward(closes, strategy, engine="replay", **kw)  # type: ignore[arg-type]
    assert fast.engine == "compiled"
    assert list(fast.windows["band"]) == list(slow.windows["band"])
    assert list(fast.windows["rebalances"]) == list(slow.windows["rebalances"])
    for col in ("in_sample_sharpe", "out_of_sample_sharpe", "end_value"):
        np.testing.assert_allclose(fast.windows[col], slow.windows[col], rtol=1e-9)
    np.testing.assert_allclose(fast.equity.to_numpy(), slow.equity.to_numpy(), rtol=1e-9)
    assert list(fast.equity.index) == list(slow.equity.index)
    assert list(fast.hindsight["band"]) == list(slow.hindsight["band"])
    np.testing.assert_allclose(fast.hindsight["final_value"], slow.hindsight["final_value"],
                               rtol=1e-9)
    np.testing.assert_allclose(fast.hindsight_equity, slow.hindsight_equity, rtol=1e-9)
    assert fast.hold_equity is not None and slow.hold_equity is not None
    np.testing.assert_allclose(fast.hold_equity, slow.hold_equity, rtol=1e-9)
    assert fast.metrics.n_rebalances == slow.metrics.n_rebalances
    assert fast.metrics.fees == pytest.approx(slow.metrics.fees, rel=1e-9)


def test_compiled_window_curve_ends_at_the_engine_final_value(closes: pd.DataFrame) -> None:
    """A window's run is the compiled engine's own run (through ``run_backtest``): its
    curve ends at the engine's final value and leaves its final amounts, here with the fee
    in the quote (Kraken's market list) and slippage, from holdings."""
    from rebalancer.backtest.compiled.engine import run

    policy = PlanPolicy(min_trade=D(10), slippage=D("0.002"))
    strategy = Strategy("USDT", TARGETS, Threshold(), policy)
    market = market_rules(closes, strategy, KRAKEN)
    combo = Combo("abs", "target", 0.03, 0.0026)
    frame = closes.iloc[100:400]
    start = {"BTC": D("0.2"), "USDT": D(3000)}
    got = _window_run(frame, strategy, combo, DAY, market, start)
    one = run(frame, combo_strategy(combo, strategy), start, rules=market.at_fee(D("0.0026")),
              bar=DAY, fee_currency="quote")
    assert got.final_value == pytest.approx(one.final_value, rel=1e-12)
    assert {a: float(x) for a, x in got.final_balances.items()} == pytest.approx(one.final_amounts)
    assert got.metrics.n_rebalances == len({o.bar for o in one.orders}) > 3
    replayed = _alone(frame, strategy, combo, market, initial=start)
    np.testing.assert_allclose(got.equity.to_numpy(), replayed.run.equity, rtol=1e-9)
    assert list(got.equity.index) == list(replayed.run.times)


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


def test_unknown_kind_and_engine_are_refused(closes: pd.DataFrame) -> None:
    strategy = Strategy("USDT", TARGETS, Threshold(), PlanPolicy())
    kw = {"bands": BANDS, "fee_rate": D("0.001"), "train": 365, "test": 120, "bar": DAY}
    with pytest.raises(ConfigError, match="kind must be one of"):
        walk_forward(closes, strategy, kind="rel", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="engine must be one of compiled, replay"):
        walk_forward(closes, strategy, engine="fast", **kw)  # type: ignore[arg-type]


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
