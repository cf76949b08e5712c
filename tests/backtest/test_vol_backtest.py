"""Volatility-scaled bands in the backtester: no look-ahead, skip == bar by bar, the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.backtest.engine import run_backtest, vol_band_widths
from rebalancer.core.drift import compute_drift
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold, Trigger, TriggerContext
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.history import FrameHistory
from rebalancer.data.panel import load_panel
from rebalancer.service import evaluate

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
DAY = timedelta(days=1)
D = Decimal
TARGETS = {"BTC": D("0.3"), "ETH": D("0.25"), "BNB": D("0.2"), "XRP": D("0.15"), "USDT": D("0.1")}


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    return load_panel(DATA, ["BTC", "ETH", "BNB", "XRP"], "1d", start="2019-01-01").closes


def _strategy(trigger: Trigger) -> Strategy:
    return Strategy("USDT", TARGETS, trigger, PlanPolicy(min_trade=D(10), slippage=D("0.001")))


def test_frame_history_never_looks_ahead() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    h = FrameHistory(pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0, 5.0]}, index=index), DAY)
    # the bar opened on Jan 3 closes on Jan 4: at Jan 4 00:00 it is the latest close
    assert h.closes(["A"], datetime(2024, 1, 4, tzinfo=UTC), 10) == {"A": [D(1), D(2), D(3)]}
    assert h.closes(["A"], datetime(2024, 1, 3, 23, tzinfo=UTC), 2) == {"A": [D(1), D(2)]}
    assert h.closes(["A"], datetime(2023, 1, 1, tzinfo=UTC), 2) == {"A": []}


def test_vectorised_widths_match_the_core(closes: pd.DataFrame) -> None:
    assets = list(closes.columns)
    prices = closes.to_numpy(dtype=np.float64)
    targets = np.array([float(TARGETS[a]) for a in assets])
    history = FrameHistory(closes, DAY)
    for per_asset in (True, False):
        trig = VolScaledThreshold(half_life=7, floor=D("0.01"), cap=D("0.3"), per_asset=per_asset)
        widths = vol_band_widths(trig, prices, targets)
        for i in (0, 1, 2, 17, 35, 36, 400, len(prices) - 1):
            now = closes.index[i].to_pydatetime() + DAY
            snap = _snapshot(closes, i)
            drift = compute_drift(snap, TARGETS)
            ctx = TriggerContext(now, history=history.closes(assets, now, trig.history_bars))
            bands = trig.bands(drift, ctx)
            got = [float(bands[a]) for a in [*assets, "USDT"]]
            np.testing.assert_allclose(widths[i], got, rtol=1e-9, atol=0)


def _snapshot(closes: pd.DataFrame, i: int):  # type: ignore[no-untyped-def]
    ex = PaperExchange("USDT", {"USDT": D(1000)}, D("0.001"), D(0), {})
    ex.set_prices(
        {a: D(repr(float(closes[a].iloc[i]))) for a in closes.columns},
        closes.index[i].to_pydatetime() + DAY,
    )
    return ex.snapshot(list(closes.columns), "USDT")


VOL_TRIGGERS = [
    VolScaledThreshold(half_life=10, base_band=D("0.05"), floor=D("0.02"), cap=D("0.12")),
    VolScaledThreshold(half_life=30, base_band=D("0.04"), per_asset=False, reference_vol=0.02),
]


@pytest.mark.parametrize("trigger", VOL_TRIGGERS, ids=["per_asset", "portfolio"])
def test_skipping_equals_bar_by_bar(closes: pd.DataFrame, trigger: VolScaledThreshold) -> None:
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "slippage": D("0.0005"), "bar": DAY}
    strategy = _strategy(trigger)
    fast = run_backtest(closes, strategy, fast=True, benchmarks=False, **kw)  # type: ignore[arg-type]
    slow = run_backtest(closes, strategy, fast=False, benchmarks=False, **kw)  # type: ignore[arg-type]
    assert len(fast.run.rebalance_bars) > 3
    assert fast.run.fired_bars == slow.run.fired_bars
    assert [r.decision for _, r in fast.run.cycles] == [r.decision for _, r in slow.run.cycles]
    assert fast.run.final_balances == slow.run.final_balances
    assert "vol band" in fast.run.cycles[1][1].decision.reason


def test_future_prices_do_not_change_past_decisions(closes: pd.DataFrame) -> None:
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    strategy = _strategy(VOL_TRIGGERS[0])
    full = run_backtest(closes, strategy, **kw)  # type: ignore[arg-type]
    cut = 500
    shocked = closes.copy()
    shocked.iloc[cut:] = shocked.iloc[cut:] * np.linspace(1, 5, len(closes) - cut)[:, None]
    other = run_backtest(shocked, strategy, **kw)  # type: ignore[arg-type]
    before = [(i, r.decision) for i, r in full.run.cycles if i < cut]
    assert before == [(i, r.decision) for i, r in other.run.cycles if i < cut]
    assert len(before) > 2


def test_vol_bands_differ_from_the_plain_threshold(closes: pd.DataFrame) -> None:
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    plain = run_backtest(closes, _strategy(Threshold(D("0.05"))), **kw)  # type: ignore[arg-type]
    vol = run_backtest(closes, _strategy(VOL_TRIGGERS[0]), **kw)  # type: ignore[arg-type]
    assert plain.run.rebalance_bars != vol.run.rebalance_bars


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], datetime, int]] = []

    def closes(self, assets, until, bars):  # type: ignore[no-untyped-def]
        self.calls.append((tuple(assets), until, bars))
        return {a: [D(100), D(100)] for a in assets}


def test_service_asks_for_history_only_when_the_trigger_needs_it() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    ex = PaperExchange("USDT", {"USDT": D(1000)}, D("0.001"), D(0), {})
    ex.set_prices({"BTC": D(100), "ETH": D(10), "BNB": D(1), "XRP": D(1)}, now)
    rec = _Recorder()
    evaluate(ex, MemoryJournal(), _strategy(Threshold()), now, rec)
    assert rec.calls == []
    _, _, decision = evaluate(ex, MemoryJournal(), _strategy(VOL_TRIGGERS[0]), now, rec)
    assert rec.calls == [(("BTC", "ETH", "BNB", "XRP"), now, VOL_TRIGGERS[0].history_bars)]
    assert decision.fire  # held at 0


def test_realised_plus_unrealised_is_the_profit(closes: pd.DataFrame) -> None:
    """From cash, every quote of profit is realised (closed lots) or unrealised (open lots)."""
    from rebalancer.core.lots import LotBook, TimedFill, realise, unrealised

    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    run = run_backtest(closes, _strategy(Threshold(D("0.05"))), **kw).run  # type: ignore[arg-type]
    gains = run.realised_gains("fifo")
    assert set(gains) >= {2019, 2020, 2021}
    fills = [TimedFill(r.at, f, "USDT") for _, r in run.cycles for f in r.fills]
    book, _ = realise(fills, "fifo", LotBook())
    last = {a: D(repr(float(closes[a].iloc[-1]))) for a in closes.columns}
    open_gain = sum(unrealised(book, last).values(), D(0))
    realised = sum((g.net for g in gains.values()), D(0))
    profit = run.final_value - run.initial_value
    assert abs(realised + open_gain - profit) < D("1e-12") * run.final_value
    assert run.summary()["realised_gain_fifo"] == float(realised)
    hifo = sum((g.net for g in run.realised_gains("hifo").values()), D(0))
    assert hifo < realised  # HIFO defers gains on this history


def test_realised_gains_from_starting_holdings(closes: pd.DataFrame) -> None:
    """Holdings at the start are lots bought at the first bar's closes; held untouched,
    nothing is realised; sold at once by a 1-point band, the gains start from bar 0's prices."""
    kw = {"taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    start = {"BTC": D("0.5"), "ETH": D(5), "USDT": D(1000)}
    from rebalancer.core.triggers import Never

    held = run_backtest(closes, _strategy(Never()), initial=start, **kw)  # type: ignore[arg-type]
    assert held.run.realised_gains() == {}
    run = run_backtest(closes, _strategy(Threshold(D("0.01"))), initial=start, **kw).run  # type: ignore[arg-type]
    from rebalancer.core.lots import Lot, LotBook, TimedFill, gains_by_year, realise

    assert any(t.side == "sell" for t in run.trades)
    t0 = run.times[0].to_pydatetime()
    book = LotBook(
        {
            a: (Lot(f"start:{a}", a, start[a], start[a] * D(repr(float(closes[a].iloc[0]))), t0),)
            for a in ("BTC", "ETH")
        }
    )
    fills = [TimedFill(r.at, f, "USDT") for _, r in run.cycles for f in r.fills]
    expected = gains_by_year(realise(fills, "fifo", book)[1])
    got = run.realised_gains("fifo")
    assert set(got) == set(expected)
    for year, g in got.items():
        assert abs(g.net - expected[year].net) < D("1e-6")
