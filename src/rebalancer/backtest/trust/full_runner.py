"""The compiled full-semantics engine as a trust runner: every band kind, the bot's rules.

:class:`CompiledRunner` runs a fixed list of rules (kind ``abs``, ``rel``, ``hybrid``,
``vol`` or ``cost``; style ``target`` or ``band_edge``) and their buy-and-hold baselines
through :func:`rebalancer.backtest.compiled.engine.run_many`, exactly as a sweep's rows are
made (:mod:`rebalancer.backtest.compiled.grid_rows`): the same strategy per combination,
the same market (a :class:`rebalancer.backtest.grid.Market`: the venue's market rules and
fee side, as ``sweep`` trades its rows) and frictions (the strategy's ``min_trade`` and
slippage), the combination's fee rate. The reference semantics are not here: they run in
the reference kernel (:func:`.advise.reference_engine`).

The kernel's inputs are built once per (kind, style) group from the real panel; a
resampled panel only swaps the prices in (its first bar, hence the market rules, is the
real one) and, for the ``vol`` kind, recomputes the per-bar volatility ratios from the
resampled prices (the trigger sees the resampled history). Calendar schedules (``hybrid``)
come from the panel's timestamps, which a resample keeps.

Units as :mod:`.runner`: equity in the quote currency, Sharpe annualised with 365-day years,
drawdowns as fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from rebalancer.backtest.compiled import kernel as K
from rebalancer.backtest.compiled.engine import CompiledResult, run_inputs, run_many
from rebalancer.backtest.compiled.program import (
    FloatArray,
    Inputs,
    build_inputs,
    params_row,
    trigger_program,
    vol_ratios,
)
from rebalancer.backtest.grid import Combo, Market, combo_strategy, combos, market_rules
from rebalancer.backtest.metrics import ReturnMoments, ratios_from_moments
from rebalancer.backtest.trust.advise import Engine
from rebalancer.backtest.trust.regimes import BarFlows
from rebalancer.backtest.trust.runner import RowPaths, RowStats, Rule
from rebalancer.core.errors import ConfigError
from rebalancer.core.strategy import Strategy
from rebalancer.core.vol_bands import VolScaledThreshold


@dataclass(frozen=True)
class _Group:
    """One kernel call: rows ``members`` (indexes into rules + holds) of one kind and style."""

    members: tuple[int, ...]
    inputs: Inputs
    params: FloatArray
    strategies: tuple[Strategy, ...]
    vol: VolScaledThreshold | None


class CompiledRunner:
    """:func:`engine.run_many` as a :class:`~.runner.RowRunner` (see the module docstring).

    ``closes``: the real panel (UTC bar open times, one column per asset of ``strategy``);
    the price arrays later given to :meth:`stats` / :meth:`paths` have the same shape and
    column order (a resample of it). ``strategy``: the config's (its targets, quote and
    plan policy); each rule replaces its trigger and style.
    """

    def __init__(
        self,
        closes: pd.DataFrame,
        strategy: Strategy,
        rules: Sequence[Rule],
        *,
        capital: float = 10_000.0,
        bar: timedelta,
        market: Market | None = None,
    ) -> None:
        if not rules:
            raise ConfigError("no rules to run: give at least one band (--bands 0.05)")
        for r in rules:  # the grid's own checks: known kinds and styles, vol without band_edge
            combos([r.band], [r.fee_rate], [r.kind], [r.style])
        self._rules = tuple(rules)
        self._assets = list(closes.columns)
        self._index = closes.index
        self._strategy = strategy
        self._bar_seconds = bar.total_seconds()
        fees = sorted({r.fee_rate for r in rules})
        todo = [Combo(r.kind, r.style, r.band, r.fee_rate) for r in rules]
        todo += [Combo("abs", "target", math.inf, f) for f in fees]
        self._bh_rows = np.array([len(rules) + fees.index(r.fee_rate) for r in rules])
        where = market or market_rules(closes, strategy)
        self._groups = _groups(todo, closes, strategy, Decimal(repr(capital)), bar, where)
        legs = self._groups[0].inputs.legs
        self._quote = strategy.quote
        self._cols = [(j, self._assets.index(a)) for j, a in enumerate(legs) if a != self._quote]
        self._n = len(todo)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def _inputs(self, group: _Group, prices: FloatArray, closes: pd.DataFrame | None) -> Inputs:
        """``group``'s inputs with ``prices`` (assets' order) in the legs' order."""
        full = np.ones_like(group.inputs.prices)
        for j, i in self._cols:
            full[:, j] = prices[:, i]
        if group.vol is None or closes is None:
            return replace(group.inputs, prices=full)
        s = group.strategies[0]
        ratios = vol_ratios(group.vol, closes, list(group.inputs.legs), s.quote, s.targets)
        return replace(group.inputs, prices=full, vol_ratio=ratios)

    def _frame(self, prices: FloatArray) -> pd.DataFrame:
        return pd.DataFrame(prices, index=self._index, columns=self._assets)

    def all_stats(self, prices: FloatArray) -> FloatArray:
        """``(rules + holds, kernel.STATS)``: every row's running statistics on ``prices``."""
        p = np.ascontiguousarray(prices, dtype=np.float64)
        if p.shape != (len(self._index), len(self._assets)):
            want = (len(self._index), len(self._assets))
            raise ValueError(f"prices must be {want}, got {p.shape}")
        closes = self._frame(p) if any(g.vol is not None for g in self._groups) else None
        out = np.zeros((self._n, K.STATS))
        for g in self._groups:
            out[list(g.members)] = run_many(self._inputs(g, p, closes), g.params)
        return out

    def stats(self, prices: FloatArray) -> RowStats:
        s = self.all_stats(prices)
        n = len(self._rules)
        sharpe = np.array([_sharpe(row, self._bar_seconds) for row in s[:n]])
        return RowStats(
            final_value=s[:n, K.FINAL].copy(),
            bh_final_value=s[self._bh_rows, K.FINAL],
            sharpe=sharpe,
            max_drawdown=s[:n, K.MAX_DD].copy(),
        )

    def _row_runs(self, prices: FloatArray, rows: Sequence[int]) -> dict[int, CompiledResult]:
        """Rows ``rows`` (indexes into rules + holds) run one by one with per-bar equity."""
        p = np.ascontiguousarray(prices, dtype=np.float64)
        wanted = set(rows)
        closes = self._frame(p) if any(g.vol is not None for g in self._groups) else None
        out: dict[int, CompiledResult] = {}
        for g in self._groups:
            todo = [(k, m) for k, m in enumerate(g.members) if m in wanted]
            if not todo:
                continue
            inputs = self._inputs(g, p, closes)
            for k, m in todo:
                out[m] = run_inputs(inputs, g.params[k], equity=True, skip_log=False)
        return out

    def paths(self, prices: FloatArray) -> RowPaths:
        n = len(self._rules)
        holds = sorted(set(self._bh_rows.tolist()))
        runs = self._row_runs(prices, [*range(n), *holds])
        equity = np.array([_curve(runs[i]) for i in range(n)])
        return RowPaths(equity=equity, bh_equity=np.array([_curve(runs[i]) for i in self._bh_rows]))

    def profile(self, rule: Rule, prices: FloatArray) -> tuple[FloatArray, FloatArray, BarFlows]:
        """``rule``'s equity, its buy-and-hold's and the rule's per-bar flows on ``prices``."""
        i = self._rules.index(rule)
        h = int(self._bh_rows[i])
        runs = self._row_runs(prices, [i, h])
        return _curve(runs[i]), _curve(runs[h]), flows_of(runs[i], prices, self._cols)


def _curve(res: CompiledResult) -> FloatArray:
    assert res.equity is not None
    return res.equity


def flows_of(res: CompiledResult, prices: FloatArray, cols: Sequence[tuple[int, int]]) -> BarFlows:
    """Per bar: traded notional (the orders' cost), fees valued in the quote and turnover
    (traded / the value of the holdings before the bar's trades, at its prices). Bar 0, the
    initial purchase from cash, is left out (as :func:`~.regimes.reference_flows`)."""
    assert res.holdings is not None
    T = res.holdings.shape[0]
    traded, fees = np.zeros(T), np.zeros(T)
    for o in res.orders:
        if o.bar > 0:
            traded[o.bar] += o.cost
            fees[o.bar] += o.fee_quote
    held = res.holdings
    q = [j for j in range(held.shape[1]) if j not in {c for c, _ in cols}]
    before = np.zeros(T)
    before[1:] = held[:-1, q].sum(axis=1)  # the quote leg, price 1
    for j, i in cols:
        before[1:] += held[:-1, j] * prices[1:, i]
    turnover = np.divide(traded, before, out=np.zeros(T), where=before > 0)
    return BarFlows(traded=traded, fees=fees, turnover=turnover)


def _sharpe(row: FloatArray, bar_seconds: float) -> float:
    m = ReturnMoments(
        n=int(row[K.N_RET]),
        mean=float(row[K.MEAN]),
        m2=float(row[K.M2]),
        down_ss=float(row[K.DOWN_SS]),
    )
    return ratios_from_moments(m, bar_seconds)[1]


def _groups(
    todo: Sequence[Combo],
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    market: Market,
) -> list[_Group]:
    """One kernel input per (kind, style, buy-and-hold) group, as ``grid_rows`` builds them
    (the strategy of each combination, ``market``'s rules and fee side)."""
    initial = {base.quote: capital}
    keys: dict[tuple[str, str, bool], list[int]] = {}
    for i, c in enumerate(todo):
        keys.setdefault((c.kind, c.style, math.isinf(c.band)), []).append(i)
    out = []
    for members in keys.values():
        combos_ = [todo[i] for i in members]
        strategies = [combo_strategy(c, base) for c in combos_]
        inputs, program = build_inputs(
            closes, strategies[0], initial, market.rules, bar, market.fee_currency
        )
        params = np.array(
            [params_row(s, trigger_program(s.trigger)) for s in strategies], dtype=np.float64
        )
        params[:, K.P_FEE_SCALE] = [c.fee_rate for c in combos_]
        out.append(_Group(tuple(members), inputs, params, tuple(strategies), program.vol))
    return out


def full_engine(
    closes: pd.DataFrame,
    strategy: Strategy,
    rules: Sequence[Rule],
    *,
    capital: float,
    bar: timedelta,
    market: Market | None = None,
) -> Engine:
    """:class:`CompiledRunner` as :func:`~.advise.advise_rules`' engine (``market``: where
    the rows trade, as ``sweep``'s: the venue's market rules and fee side)."""
    where = market or market_rules(closes, strategy)
    runner = CompiledRunner(
        closes, strategy, rules, capital=capital, bar=bar, market=where
    )
    prices = np.ascontiguousarray(closes.to_numpy(dtype=np.float64))
    what = (
        f"the strategy's min_trade and slippage, {where.venue.name}'s fee side, market rules "
        f"from {where.source}"
    )
    return Engine(
        runner=runner,
        profile=lambda rule: runner.profile(rule, prices),
        label=f"compiled engine, full semantics (the bot's planner; {what})",
        semantics="full",
    )
