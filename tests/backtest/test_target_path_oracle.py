"""Scheduled optimised targets (a target path) in the compiled engine against its oracle,
the Decimal replay running the live ``retarget`` step over the same path.

The equalities are those of ``test_compiled_oracle.py`` (its :func:`compare`: the same
firing bars, orders within the tie rule, the same skipped legs, final values within 1e-9
relative; ties and dust legs counted there and printed by that module's report, plus a
line of this module's own). Cases: random paths (Hypothesis, derandomised) over the random
panels, rules and triggers of that module, with change times on or between bar closes and
changes to equal targets; and a real optimised path from ``target_schedule`` over the daily
Binance panel in ``../shared/data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.backtest.test_compiled_oracle import (
    DATA,
    HOUR,
    QUOTE,
    TIES,
    Case,
    Oracle,
    _real_rules,
    cases,
    compare,
)
from tests.backtest.test_compiled_oracle import oracle as replay_oracle
from tests.core.strategies import weights_summing_to_one

from rebalancer.backtest.compiled.engine import run
from rebalancer.backtest.replay import decimal_rows, holdings_from_weights, replay
from rebalancer.core.errors import ConfigError
from rebalancer.core.model import MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Never, Threshold, Trigger, hybrid
from rebalancer.data.panel import load_panel
from rebalancer.optimise.path import TargetPath
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import Constraints, to_targets

D = Decimal
DAY = timedelta(days=1)
SEEN = {"cases": 0, "changes": 0}


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    before = (TIES.cases, TIES.ties_counted, TIES.one_step_apart)
    yield
    line = (
        f"target path: {SEEN['cases']} cases, {SEEN['changes']} target changes (each a "
        "forced rebalance); "
        f"{TIES.ties_counted - before[1]} ties counted, "
        f"{TIES.one_step_apart - before[2]} orders one step apart"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + line)


def oracle(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: dict[str, Decimal],
    rules: dict[str, MarketRules],
    bar: timedelta,
    path: TargetPath,
) -> tuple[Oracle, list[int]]:
    """The replay over ``path``; also the bars whose decision says "targets changed"."""
    changed: list[int] = []

    def note(i: int, report: object) -> None:
        if report.decision.reason.startswith("targets changed"):  # type: ignore[attr-defined]
            changed.append(i)

    return replay_oracle(closes, strategy, initial, rules, bar, targets=path, also=note), changed


def check(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: dict[str, Decimal],
    rules: dict[str, MarketRules],
    bar: timedelta,
    path: TargetPath,
    label: str,
) -> None:
    want, changed = oracle(closes, strategy, initial, rules, bar, path)
    got = run(closes, strategy, initial, rules=rules, bar=bar, targets=path, equity=True)
    times = [t.to_pydatetime() + bar for t in closes.index]
    path_bar, _ = path.kernel_input(times, list(strategy.targets), strategy.targets)
    assert changed == path_bar.tolist(), f"{label}: the replay's changes are not the kernel's"
    assert set(changed) <= set(got.fired), f"{label}: a change did not fire"
    SEEN["cases"] += 1
    SEEN["changes"] += len(changed)
    compare(want, got, rules, closes[list(strategy.assets)], label)


# -- random paths ------------------------------------------------------------------------------


@st.composite
def paths(
    draw: st.DrawFn, closes: pd.DataFrame, legs: list[str], start: dict[str, Decimal]
) -> TargetPath:
    """Up to five changes at distinct bars after the first, each at the bar's close or up to
    59 minutes before it (hourly bars: still after the bar before); a change may repeat the
    targets in force (no effect live)."""
    bars = sorted(draw(st.sets(st.integers(1, len(closes) - 1), max_size=5)))
    changes = []
    current = start
    for b in bars:
        close = closes.index[b].to_pydatetime() + HOUR
        when = close - timedelta(minutes=draw(st.integers(0, 59)))
        if draw(st.integers(0, 4)) == 0:
            targets = dict(current)
        else:
            targets = dict(zip(legs, draw(weights_summing_to_one(len(legs))), strict=True))
        changes.append((when, targets))
        current = targets
    return TargetPath.of(changes, "random")


@settings(max_examples=60)
@given(cases(), st.data())
def test_compiled_equals_replay_on_random_paths(case: Case, data: st.DataObject) -> None:
    closes, strategy, initial, rules = case
    path = data.draw(paths(closes, list(strategy.targets), dict(strategy.targets)))
    label = f"path of {len(path)}: {strategy.trigger.describe()} / {strategy.policy.style}"
    check(closes, strategy, initial, rules, HOUR, path, label)


@settings(max_examples=20)
@given(cases(round_prices=True), st.data())
def test_compiled_equals_replay_on_random_paths_round_numbers(
    case: Case, data: st.DataObject
) -> None:
    closes, strategy, initial, rules = case
    path = data.draw(paths(closes, list(strategy.targets), dict(strategy.targets)))
    label = f"round, path of {len(path)}: {strategy.trigger.describe()}"
    check(closes, strategy, initial, rules, HOUR, path, label)


# -- the live meaning, by hand -------------------------------------------------------------------


def _two_assets(trigger: Trigger) -> tuple[pd.DataFrame, Strategy, dict[str, MarketRules]]:
    index = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    closes = pd.DataFrame({"BTC": [100.0] * 6, "ETH": [10.0] * 6}, index=index)
    targets = {"BTC": D("0.5"), "ETH": D("0.3"), QUOTE: D("0.2")}
    strategy = Strategy(QUOTE, targets, trigger, PlanPolicy())
    rules = {a: MarketRules(f"{a}/{QUOTE}", a, QUOTE) for a in ("BTC", "ETH")}
    return closes, strategy, rules


def test_a_change_forces_a_full_rebalance_and_equal_targets_do_not() -> None:
    """Flat prices and a rule that never fires: only the first change (bar 1) and the
    third (bar 3) trade; the second (bar 2) repeats the targets in force and does nothing.
    A change at a bar's open + 12 h takes effect at that bar's close (the first check at or
    after it)."""
    closes, strategy, rules = _two_assets(Never())
    new = {"BTC": D("0.2"), "ETH": D("0.6"), QUOTE: D("0.2")}
    last = {"BTC": D("0.1"), "ETH": D("0.1"), QUOTE: D("0.8")}
    at = [closes.index[k].to_pydatetime() + timedelta(hours=12) for k in (1, 2, 3)]
    path = TargetPath.of([(at[0], new), (at[1], dict(new)), (at[2], last)])
    start = holdings_from_weights(strategy.targets, decimal_rows(closes)[0], D(1000), QUOTE)
    got = run(closes, strategy, start, rules=rules, bar=DAY, targets=path, equity=True)
    assert got.fired == (1, 3)
    assert got.final_amounts["ETH"] == pytest.approx(10.0) and got.final_value == 1000.0
    check(closes, strategy, start, rules, DAY, path, "by hand")


def test_a_path_without_changes_is_the_strategy_alone() -> None:
    closes, strategy, rules = _two_assets(Calendar(timedelta(days=2)))
    plain = run(closes, strategy, {QUOTE: D(1000)}, rules=rules, bar=DAY)
    empty = run(closes, strategy, {QUOTE: D(1000)}, rules=rules, bar=DAY, targets=TargetPath(()))
    assert (plain.fired, plain.orders, plain.final_amounts, plain.final_value) == (
        empty.fired,
        empty.orders,
        empty.final_amounts,
        empty.final_value,
    )


@pytest.mark.parametrize(
    "hours,match",
    [
        ((24,), "at or before the first bar"),
        ((40, 44), "two changes fall in the bar"),
    ],
)
def test_unusable_paths_are_refused_by_both_engines(hours: tuple[int, ...], match: str) -> None:
    closes, strategy, rules = _two_assets(Threshold(D("0.05")))
    t0 = closes.index[0].to_pydatetime()
    path = TargetPath.of([(t0 + timedelta(hours=h), dict(strategy.targets)) for h in hours])
    with pytest.raises(ConfigError, match=match):
        run(closes, strategy, {QUOTE: D(1000)}, rules=rules, bar=DAY, targets=path)
    with pytest.raises(ConfigError, match=match):
        replay(closes, strategy, {QUOTE: D(1000)}, taker_fee=D(0), slippage=D(0), bar=DAY,
               rules=rules, targets=path)


@pytest.mark.parametrize(
    "changes,match",
    [
        ([("2024-01-03", {"BTC": D("0.5"), QUOTE: D("0.4")})], "sum to exactly 1"),
        ([("2024-01-03", {"BTC": D("-0.1"), QUOTE: D("1.1")})], ">= 0"),
        ([("2024-01-04", {QUOTE: D(1)}), ("2024-01-03", {QUOTE: D(1)})], "strictly increasing"),
    ],
)
def test_bad_paths_name_the_problem(
    changes: list[tuple[str, dict[str, Decimal]]], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        TargetPath.of([(pd.Timestamp(t, tz="UTC"), w) for t, w in changes])


def test_targets_must_name_the_strategys_legs() -> None:
    closes, strategy, rules = _two_assets(Threshold(D("0.05")))
    when = closes.index[2].to_pydatetime() + DAY
    path = TargetPath.of([(when, {"BTC": D("0.5"), QUOTE: D("0.5")})])
    with pytest.raises(ConfigError, match=r"missing \['ETH'\]"):
        run(closes, strategy, {QUOTE: D(1000)}, rules=rules, bar=DAY, targets=path)


# -- a real optimised path ---------------------------------------------------------------------

ASSETS = ["BTC", "ETH", "BNB", "ADA"]
START = {"BTC": D("0.3"), "ETH": D("0.25"), "BNB": D("0.15"), "ADA": D("0.2"), QUOTE: D("0.1")}


def real_path(closes: pd.DataFrame, method: str) -> TargetPath:
    c = Constraints(min_weight=0.02, max_weight=0.5, cash_floor=0.1, max_turnover=0.5)
    initial = {a: float(START[a]) for a in ASSETS}
    plan = target_schedule(closes, method, c, window=90, initial=initial)  # type: ignore[arg-type]
    return TargetPath.of([(t, to_targets(ASSETS, w, QUOTE, c)) for t, w in plan], method)


REAL_RULES: list[tuple[str, Trigger, str]] = [
    ("abs 5%", Threshold(D("0.05")), "target"),
    ("hybrid weekly 2% band_edge", hybrid(Calendar(timedelta(weeks=1)), Threshold(D("0.02"))),
     "band_edge"),
]


@pytest.mark.parametrize("method", ["risk_parity", "min_variance"])
@pytest.mark.parametrize("name,trigger,style", REAL_RULES)
def test_compiled_equals_replay_on_a_real_optimised_path(
    method: str, name: str, trigger: Trigger, style: str
) -> None:
    folder = DATA / "binance_spot_2017_2022"
    if not folder.is_dir():
        pytest.fail(f"the real candle data is missing: expected {folder}")
    closes = load_panel(folder, ASSETS, "1d", start="2019-01-01", end="2021-12-31").closes
    path = real_path(closes, method)
    assert len(path) >= 30
    policy = PlanPolicy(min_trade=D(10), slippage=D("0.0005"), style=style)  # type: ignore[arg-type]
    strategy = Strategy(QUOTE, START, trigger, policy)
    rules = _real_rules(closes, D("0.001"))
    check(closes, strategy, {QUOTE: D(100_000)}, rules, DAY, path, f"real {method} {name}")


def test_run_many_rows_share_one_path() -> None:
    """Every parameter row of :func:`run_many` follows the path: each row's final value is
    that of :func:`run` with the same band."""
    from rebalancer.backtest.compiled import kernel as K
    from rebalancer.backtest.compiled.engine import run_many
    from rebalancer.backtest.compiled.program import build_inputs, params_row, trigger_program

    folder = DATA / "binance_spot_2017_2022"
    if not folder.is_dir():
        pytest.fail(f"the real candle data is missing: expected {folder}")
    closes = load_panel(folder, ASSETS, "1d", start="2020-01-01", end="2021-06-30").closes
    path = real_path(closes, "risk_parity")
    rules = _real_rules(closes, D("0.001"))
    bands = [D("0.02"), D("0.05"), D("0.1")]
    strategies = [Strategy(QUOTE, START, Threshold(b), PlanPolicy()) for b in bands]
    inputs, _ = build_inputs(closes, strategies[0], {QUOTE: D(10_000)}, rules, DAY, targets=path)
    params = np.stack([params_row(s, trigger_program(s.trigger)) for s in strategies])
    stats = run_many(inputs, params)
    for s, row in zip(strategies, stats, strict=True):
        one = run(closes, s, {QUOTE: D(10_000)}, rules=rules, bar=DAY, targets=path)
        assert row[K.FINAL] == one.final_value
        assert row[K.N_FIRED] == len(one.fired)
