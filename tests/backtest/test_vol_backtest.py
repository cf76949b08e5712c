"""Volatility-scaled bands in the backtester: no look-ahead, compiled == replay, the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.backtest.engine import run_backtest
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold, Trigger
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


VOL_TRIGGERS = [
    VolScaledThreshold(half_life=10, base_band=D("0.05"), floor=D("0.02"), cap=D("0.12")),
    VolScaledThreshold(half_life=30, base_band=D("0.04"), per_asset=False, reference_vol=0.02),
]


@pytest.mark.parametrize("trigger", VOL_TRIGGERS, ids=["per_asset", "portfolio"])
def test_compiled_equals_replay(closes: pd.DataFrame, trigger: VolScaledThreshold) -> None:
    """Two years of daily bars: the same firing bars and reasons (the vol bands' widths),
    the same orders, final balances within 1e-9."""
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    span = closes.loc["2019-01-01":"2020-12-31"]  # type: ignore[misc]
    strategy = _strategy(trigger)
    fast = run_backtest(span, strategy, engine="compiled", **kw)  # type: ignore[arg-type]
    slow = run_backtest(span, strategy, engine="replay", **kw)  # type: ignore[arg-type]
    assert len(fast.run.rebalance_bars) > 3
    assert fast.run.fired_bars == slow.run.fired_bars
    assert [c.reason for c in fast.run.fires] == [c.reason for c in slow.run.fires]
    assert [(t.bar, t.asset, t.amount) for t in fast.trades] == [
        (t.bar, t.asset, t.amount) for t in slow.trades
    ]
    for asset, amount in slow.run.final_balances.items():
        assert float(fast.run.final_balances[asset]) == pytest.approx(float(amount), rel=1e-9)
    assert "vol band" in fast.run.fires[1].reason


def test_future_prices_do_not_change_past_decisions(closes: pd.DataFrame) -> None:
    kw = {"capital": D(10000), "taker_fee": D("0.001"), "bar": DAY, "benchmarks": False}
    strategy = _strategy(VOL_TRIGGERS[0])
    full = run_backtest(closes, strategy, **kw)  # type: ignore[arg-type]
    cut = 500
    shocked = closes.copy()
    shocked.iloc[cut:] = shocked.iloc[cut:] * np.linspace(1, 5, len(closes) - cut)[:, None]
    other = run_backtest(shocked, strategy, **kw)  # type: ignore[arg-type]
    before = [(c.bar, c.reason) for c in full.run.fires if c.bar < cut]
    assert before == [(c.bar, c.reason) for c in other.run.fires if c.bar < cut]
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
    fills = [TimedFill(c.at, f, "USDT") for c in run.fires for f in c.fills]
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
    fills = [TimedFill(c.at, f, "USDT") for c in run.fires for f in c.fills]
    expected = gains_by_year(realise(fills, "fifo", book)[1])
    got = run.realised_gains("fifo")
    assert set(got) == set(expected)
    for year, g in got.items():
        assert abs(g.net - expected[year].net) < D("1e-6")
