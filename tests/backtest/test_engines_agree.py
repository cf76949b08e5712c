"""``backtest`` on the compiled engine (the default) against ``backtest --engine replay``.

The whole :func:`run_backtest` (market rules made up from the first closes as the paper
exchange does, the trade log as Decimals, equity, metrics, the benchmarks), not only the
kernel: the same firing bars and reasons, the same orders (bar, asset, side) with equal
amounts -- one step apart only where the compiled run counted a truncation within 1e-9 of a
step boundary (a tie; the paths then part, so later bars are not compared) -- and final values
within 1e-9 relative. Orders worth less than 1e-11 of the portfolio are left out and counted
(the kernel's rounding floor is 1e-12 of the total, the Decimal planner's 1e-20; see
``test_compiled_oracle.py``). Random cases (Hypothesis, derandomised) and slices of the real
daily, hourly and 5-minute panels in ``../shared/data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from tests.backtest.test_compiled_oracle import QUOTE, Case, cases

from rebalancer.backtest.engine import BacktestResult, Run, run_backtest
from rebalancer.backtest.replay import decimal_rows, holdings_from_weights
from rebalancer.core.cron import Cron
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import AnyOf, Calendar, Threshold, Trigger, hybrid
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.panel import load_panel

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data"
D = Decimal
REL = 1e-9
ABS = 1e-12
DUST = 1e-11


@dataclass
class Tally:
    runs: int = 0
    orders: int = 0
    ties: int = 0
    one_step_apart: int = 0
    dust: int = 0


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even without -s, never hidden
        print(
            f"\nbacktest compiled vs replay: {TALLY.runs} runs, {TALLY.orders} orders compared, "
            f"{TALLY.ties} counted ties, {TALLY.one_step_apart} orders one step apart, "
            f"{TALLY.dust} dust orders (< {DUST:g} of the portfolio) left out"
        )


def agree(fast: Run, slow: Run, label: str) -> None:
    """Assert the module doc's equalities between a compiled and a replayed run."""
    TALLY.runs += 1
    TALLY.ties += fast.ties
    assert fast.engine == "compiled" and slow.engine == "replay"
    assert fast.fired_bars == slow.fired_bars, f"{label}: firing bars differ"
    before = {c.bar: float(c.value_before) for c in slow.fires}

    def kept(run: Run) -> list[tuple[int, str, str, Decimal, Decimal]]:
        out = []
        for t in run.trades:
            if float(t.cost) < DUST * before[t.bar]:
                TALLY.dust += 1
                continue
            out.append((t.bar, t.asset, t.side, t.amount, t.price))
        return sorted(out)

    mine, theirs = kept(fast), kept(slow)
    assert [o[:3] for o in mine] == [o[:3] for o in theirs], f"{label}: orders differ"
    steps = {f.asset: _step(slow, f.asset) for c in slow.fires for f in c.fills}
    for (bar, asset, side, amount, price), (*_, exact, _p) in zip(mine, theirs, strict=True):
        TALLY.orders += 1
        slack = REL * float(exact) + ABS * before[bar] / float(price)
        if abs(float(amount) - float(exact)) <= slack:
            continue
        step = steps.get(asset)
        one_step = step is not None and abs(abs(amount - exact) - step) <= D(repr(REL)) * step
        assert one_step and fast.ties > 0, f"{label}: bar {bar} {side} {asset}: {amount} vs {exact}"
        TALLY.one_step_apart += 1
        return  # the paths part by one step at a counted tie
    assert [c.reason for c in fast.fires] == [c.reason for c in slow.fires], f"{label}: reasons"
    final = float(slow.final_value)
    assert float(fast.final_value) == pytest.approx(final, rel=REL), f"{label}: final value"
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=REL, err_msg=label)


def _step(run: Run, asset: str) -> Decimal | None:
    """The market step of ``asset`` in the replay's cycle reports."""
    for c in run.fires:
        if c.report is not None and asset in c.report.snapshot.markets:
            return c.report.snapshot.markets[asset].amount_step
    return None


def both(closes: pd.DataFrame, strategy: Strategy, **kw: object) -> dict[str, BacktestResult]:
    return {
        engine: run_backtest(closes, strategy, engine=engine, **kw)  # type: ignore[arg-type]
        for engine in ("compiled", "replay")
    }


# -- random cases -----------------------------------------------------------------------------


@settings(max_examples=25)
@given(cases())
def test_backtest_compiled_equals_replay_on_random_cases(case: Case) -> None:
    closes, strategy, initial, rules = case
    fee = next(iter(rules.values())).taker_fee
    got = both(
        closes, strategy, initial=initial, rules=rules, taker_fee=fee,
        bar=timedelta(hours=1), benchmarks=False,
    )
    agree(got["compiled"].run, got["replay"].run, strategy.trigger.describe())


# -- slices of the real panels --------------------------------------------------------------

REAL = [
    ("binance_spot_2017_2022", "1d", "2020-01-01", "2020-12-31", ["BTC", "ETH", "BNB", "ADA"]),
    ("binance_spot_2024_2026", "1h", "2025-01-01", "2025-01-12", ["BTC", "ETH", "SOL", "XRP"]),
    ("binance_spot_2024_2026", "5m", "2025-03-01", "2025-03-01 23:55", ["BTC", "ETH", "SOL"]),
]

TRIGGERS: list[tuple[str, Trigger, str]] = [
    ("rel 10% band_edge", Threshold(None, D("0.1")), "band_edge"),
    ("hybrid cron or vol", AnyOf((Calendar(cron=Cron.parse("0 */6 * * *")), VolScaledThreshold(
        half_life=10, base_band=D("0.01"), floor=D("0.003"), cap=D("0.1"),
        reference_vol=0.01))), "target"),
    ("hybrid 4h, 1%", hybrid(Calendar(timedelta(hours=4)), Threshold(D("0.01"))), "target"),
]


@pytest.mark.parametrize("folder,timeframe,start,end,assets", REAL, ids=["1d", "1h", "5m"])
@pytest.mark.parametrize("name,trigger,style", TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_backtest_compiled_equals_replay_on_real_panels(
    folder: str, timeframe: str, start: str, end: str, assets: list[str],
    name: str, trigger: Trigger, style: str,
) -> None:
    """With the paper exchange's made-up market rules (``rules`` not given), slippage and
    ``min_trade``; the daily slice with its benchmarks too."""
    if not (DATA / folder).is_dir():
        pytest.fail(f"the real candle data is missing: expected {DATA / folder}")
    closes = load_panel(DATA / folder, assets, timeframe, start=start, end=end).closes
    bar = pd.Timedelta(closes.index[1] - closes.index[0]).to_pytimedelta()
    targets = {a: D("0.8") / len(assets) for a in assets} | {QUOTE: D("0.2")}
    policy = PlanPolicy(min_trade=D(10), slippage=D("0.0005"), style=style,  # type: ignore[arg-type]
                        cost_aware=name.startswith("hybrid cron"))
    strategy = Strategy(QUOTE, targets, trigger, policy)
    daily = timeframe == "1d"
    if daily:
        start_kw: dict[str, object] = {"capital": D(100_000)}
    else:  # from holdings at the targets
        first = decimal_rows(closes.iloc[:1])[0]
        start_kw = {"initial": holdings_from_weights(targets, first, D(100_000), QUOTE)}
    got = both(closes, strategy, taker_fee=D("0.001"), bar=bar, benchmarks=daily, **start_kw)
    fast, slow = got["compiled"], got["replay"]
    agree(fast.run, slow.run, f"{folder} {timeframe} {name}")
    assert set(fast.benchmarks) == set(slow.benchmarks)
    for key, run in fast.benchmarks.items():
        agree(run, slow.benchmarks[key], f"{folder} {timeframe} {name}: {key}")
    assert fast.summary()["engine"] == "compiled" and slow.summary()["engine"] == "replay"
