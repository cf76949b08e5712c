"""Per-regime figures for every row of a sweep (:func:`rebalancer.backtest.grid.run_grid`).

Each row is rerun once *with its per-bar equity* by the engine that produced it, with the
same semantics:

* ``kernel`` rows (abs bands, trade back to target, reference semantics) through
  :func:`rebalancer.backtest.reference.simulate`, the compiled kernel's tested oracle (its
  fees include bar 0's purchase; turnover and rebalances count the rebalances only, as the
  kernel's row does);
* ``compiled`` and ``replay`` rows through the compiled full-semantics engine
  (:func:`rebalancer.backtest.compiled.engine.run_inputs` with ``equity=True``, proven equal
  to the replay) with the grid's strategy, market rules and fee side for the row
  (:func:`grid_setup`): per bar, the orders' cost (traded notional), fees in the quote,
  and turnover = traded / the portfolio's value just before the bar's trades; a rule the
  compiled engine does not implement falls back to the Decimal replay.

Buy-and-hold runs once per fee rate and engine, as the row's ``bh_final_value``. The bars
are labelled once from the panel's market curve; :mod:`.regime_stats` defines every figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.backtest.reference import simulate
from rebalancer.backtest.trust.regime_stats import (
    RegimeReport,
    RunBars,
    durations,
    engine_bars,
    panel_market,
    reference_bars,
    regime_rows,
    spans,
)
from rebalancer.backtest.trust.regimes import TRENDS, BarFlows, Labels, RegimeOptions, label_bars
from rebalancer.core.errors import ConfigError
from rebalancer.core.model import MarketRules
from rebalancer.core.strategy import Strategy


@dataclass(frozen=True)
class SweepRegimes:
    """Per grid row (same order as ``grid.rows``) its :class:`RegimeReport`; ``note`` when
    the panel is too short for the window (then ``reports`` is empty)."""

    options: RegimeOptions
    reports: list[RegimeReport]
    note: str = ""
    vol_cutoff: float = math.nan
    #: the ``keep`` row's equity and its buy-and-hold's, per bar (quote), for a chart
    curves: tuple[Any, Any] | None = None

    def to_dict(self, rows: pd.DataFrame) -> dict[str, Any]:
        """The ``--json`` payload: the options, and per row its keys and regime rows."""
        from dataclasses import asdict

        keys = rows[["kind", "style", "band", "fee_rate"]].to_dict("records")
        if not self.reports:  # the panel was too short: the note says why
            keys = []
        return {
            "options": {**asdict(self.options), "vol_cutoff_per_bar": self.vol_cutoff},
            "note": self.note,
            "rows": [
                {
                    **k,
                    "regimes": [asdict(r) for r in rep.rows],
                    **({"note": rep.note} if rep.note else {}),
                }
                for k, rep in zip(keys, self.reports, strict=True)
            ],
        }


#: a row's setup: its strategy, its market rules (at its fee rate) and the fee side
Setup = Callable[[Any], tuple[Strategy, Mapping[str, MarketRules], str]]


def grid_setup(
    closes: pd.DataFrame, base: Strategy, semantics: str, market: Any = None
) -> Setup:
    """How the grid sets up each non-kernel row, mirrored: with ``market`` (the grid's
    ``Market``: rules per asset and the venue's fee side), the combination's strategy and
    those rules at its fee. Only full-semantics grids have such rows, and they always have
    a market; ``closes`` and ``semantics`` name what was asked when one is missing."""
    if market is None:

        def missing(combo: Any) -> tuple[Strategy, Mapping[str, MarketRules], str]:
            raise ConfigError(
                f"the {semantics!r} sweep row {combo} has no market to run in: per-regime "
                "figures of non-kernel rows need the grid's market (full semantics)"
            )

        return missing
    from rebalancer.backtest.grid import combo_strategy

    def with_market(combo: Any) -> tuple[Strategy, Mapping[str, MarketRules], str]:
        rate = Decimal(repr(combo.fee_rate))
        return combo_strategy(combo, base), market.at_fee(rate), market.fee_currency

    return with_market


def _compiled_bars(
    closes: pd.DataFrame,
    strategy: Strategy,
    rules: Mapping[str, MarketRules],
    fee_currency: str,
    capital: Decimal,
    bar: timedelta,
) -> RunBars:
    """One combination through the compiled engine with its per-bar equity."""
    from rebalancer.backtest.compiled.engine import run_inputs
    from rebalancer.backtest.compiled.program import build_inputs, params_row

    inputs, program = build_inputs(
        closes,
        strategy,
        {strategy.quote: capital},
        rules,
        bar,
        fee_currency,  # type: ignore[arg-type]
    )
    res = run_inputs(inputs, params_row(strategy, program), equity=True, skip_log=False)
    assert res.equity is not None and res.holdings is not None
    n = len(res.equity)
    traded, fees = np.zeros(n), np.zeros(n)
    for o in res.orders:
        traded[o.bar] += o.cost
        fees[o.bar] += o.fee_quote
    before = np.empty(n)  # the portfolio's value just before each bar's trades
    before[0] = float(inputs.amount0 @ inputs.prices[0])
    before[1:] = np.einsum("ij,ij->i", res.holdings[:-1], inputs.prices[1:])
    flows = BarFlows(traded=traded, fees=fees, turnover=traded / before)
    return RunBars(np.asarray(res.equity, dtype=np.float64), float(capital), flows)


def _replay_bars(
    closes: pd.DataFrame,
    strategy: Strategy,
    rules: Mapping[str, MarketRules],
    capital: Decimal,
    bar: timedelta,
    fee: float,
    fee_currency: str = "received",
) -> RunBars:
    """One row the compiled engine refuses, through the Decimal replay (as the grid's
    replay rows run: the reference venue with the market's fee side)."""
    from dataclasses import replace as with_

    from rebalancer.backtest.engine import run_backtest
    from rebalancer.core.venue import REFERENCE

    res = run_backtest(
        closes,
        strategy,
        capital=capital,
        taker_fee=Decimal(repr(fee)),
        slippage=strategy.policy.slippage,
        bar=bar,
        rules=rules,
        benchmarks=False,
        engine="replay",
        venue=with_(REFERENCE, fee_in="quote" if fee_currency == "quote" else "received"),
    )
    return engine_bars(res.run)


def row_bars(
    combo: Any,
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    engine: str,
    setup: Setup,
) -> RunBars:
    """One grid combination (a :class:`rebalancer.backtest.grid.Combo`; ``band`` inf =
    buy-and-hold) bar by bar, by the engine named in its row (see the module docstring)."""
    from rebalancer.backtest.compiled.program import UnsupportedRule

    if engine == "kernel":
        assets = list(base.assets)
        prices = closes[assets].to_numpy(dtype=np.float64)
        targets = [float(base.targets[a]) for a in assets]
        res = simulate(
            prices, targets, capital=float(capital), fee_rate=combo.fee_rate, band_abs=combo.band
        )
        return reference_bars(res, float(capital))
    strategy, rules, fee_currency = setup(combo)
    try:
        return _compiled_bars(closes, strategy, rules, fee_currency, capital, bar)
    except UnsupportedRule:
        return _replay_bars(closes, strategy, rules, capital, bar, combo.fee_rate, fee_currency)


def sweep_regimes(
    rows: pd.DataFrame,
    closes: pd.DataFrame,
    strategy: Strategy,
    options: RegimeOptions,
    *,
    capital: Decimal,
    bar: timedelta,
    semantics: str,
    only: Sequence[int] | None = None,
    keep: int | None = None,
    progress: Callable[[int], None] | None = None,
    market: Any = None,
) -> SweepRegimes:
    """Per row of ``rows`` (``GridResult.rows``) its regime report; ``only``: just these row
    positions (the others get an empty report saying so); ``keep``: the row position whose
    equity curves are kept (:attr:`SweepRegimes.curves`); ``market``: the grid's market,
    when it ran with one (see :func:`grid_setup`)."""
    from rebalancer.backtest.grid import Combo

    curve = panel_market(closes, strategy)
    try:
        labels = label_bars(curve, options)
    except ConfigError as exc:
        return SweepRegimes(options, [], note=f"no regimes: {exc}")
    dt = durations(_close_times(closes, bar), len(closes), bar.total_seconds())
    setup = grid_setup(closes, strategy, semantics, market)
    holds: dict[tuple[str, float], RunBars] = {}
    reports: list[RegimeReport] = []
    curves = None
    wanted = set(range(len(rows))) if only is None else set(only)
    for i, r in enumerate(rows.to_dict("records")):
        if i not in wanted:
            reports.append(RegimeReport(options, note="not computed for this row"))
            continue
        # reference-semantics rows ran in the reference kernel (labelled "reference")
        engine = "kernel" if r["engine"] in ("kernel", "reference") else "compiled"
        combo = Combo(str(r["kind"]), str(r["style"]), float(r["band"]), float(r["fee_rate"]))
        key = (engine, combo.fee_rate)
        if key not in holds:
            hold = Combo("abs", "target", math.inf, combo.fee_rate)
            holds[key] = row_bars(hold, closes, strategy, capital, bar, engine, setup)
        run = row_bars(combo, closes, strategy, capital, bar, engine, setup)
        reports.append(_report(options, labels, run, holds[key], dt))
        if i == keep:
            curves = (run.equity, holds[key].equity)
        if progress is not None:
            progress(1)
    return SweepRegimes(options, reports, vol_cutoff=labels.vol_cutoff, curves=curves)


def _report(
    options: RegimeOptions, labels: Labels, run: RunBars, hold: RunBars, dt: Any
) -> RegimeReport:
    return RegimeReport(
        options,
        regime_rows(run, hold, labels, dt),
        labels.vol_cutoff,
        spans(labels.trend, TRENDS),
        spans(labels.vol, ("high-vol",)),
    )


def _close_times(closes: pd.DataFrame, bar: timedelta) -> pd.DatetimeIndex | None:
    index = closes.index
    if not isinstance(index, pd.DatetimeIndex):
        return None
    return index + pd.Timedelta(bar)
