"""Run functions: the one seam between the trust statistics and a backtest engine.

A :class:`RowRunner` runs a fixed list of rule configurations (:class:`Rule`) and their
buy-and-hold baselines over a price panel ``(bars, assets)`` and returns per-row final
values, Sharpe ratios and maximum drawdowns (:class:`RowStats`) or per-row equity curves
(:class:`RowPaths`). The statistics only ever call these two methods, so any engine that
fills them -- today the compiled reference kernel (:class:`KernelRunner`), later a
full-fidelity compiled engine -- can drive them unchanged.

Units: prices and equity in the quote currency; Sharpe annualised with 365-day years and a
zero risk-free rate (as :mod:`rebalancer.backtest.metrics`); drawdowns as fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rebalancer.backtest.metrics import ratios_from_moments
from rebalancer.backtest.reference import FloatArray, simulate
from rebalancer.backtest.sweep import sweep
from rebalancer.backtest.trust.regimes import BarFlows, reference_flows
from rebalancer.core.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """One row of a sweep: trigger ``kind``, ``band`` (fraction, 0.05 = 5 points), fee rate
    and plan ``style`` (``target``: trade back to target; ``band_edge``: to the band's edge)."""

    kind: str
    band: float
    fee_rate: float
    style: str = "target"

    @property
    def label(self) -> str:
        style = "" if self.style == "target" else f" {self.style}"
        return f"{self.kind}{style} {self.band:.2%} @ fee {self.fee_rate:.3%}"


@dataclass(frozen=True)
class RowStats:
    """Per row (same order as the runner's rules): the rule's and its buy-and-hold's results."""

    final_value: FloatArray
    bh_final_value: FloatArray
    sharpe: FloatArray
    max_drawdown: FloatArray

    @property
    def premium(self) -> FloatArray:
        """Final-value premium over buy-and-hold at the same fee: ``final / bh_final - 1``."""
        out: FloatArray = self.final_value / self.bh_final_value - 1.0
        return out


@dataclass(frozen=True)
class RowPaths:
    """Per row, the equity after each bar (``(rows, bars)``), and buy-and-hold's."""

    equity: FloatArray
    bh_equity: FloatArray


class RowRunner(Protocol):
    """What the trust statistics need from an engine (see the module docstring)."""

    @property
    def rules(self) -> tuple[Rule, ...]: ...

    def stats(self, prices: FloatArray) -> RowStats: ...

    def paths(self, prices: FloatArray) -> RowPaths: ...


#: trigger kinds the compiled reference kernel implements exactly
KERNEL_KINDS = ("abs",)


class KernelRunner:
    """The compiled reference kernel (:func:`rebalancer.backtest.sweep.sweep`) as a runner.

    ``rules`` must be ``abs`` rules (absolute band, trade back to target); any other kind is
    refused rather than approximated. ``bar_seconds`` annualises the Sharpe ratio.
    """

    def __init__(
        self,
        targets: Sequence[float],
        rules: Sequence[Rule],
        *,
        capital: float = 10_000.0,
        bar_seconds: float = 86_400.0,
    ) -> None:
        if not rules:
            raise ConfigError("no rules to run: give at least one band (--bands 0.05)")
        bad = sorted({r.kind for r in rules if r.kind not in KERNEL_KINDS})
        if bad:
            raise ConfigError(
                f"kinds {bad} are not implemented by the compiled kernel the trust statistics "
                f"run on today: use --kinds {','.join(KERNEL_KINDS)}"
            )
        self._rules = tuple(rules)
        self._targets = np.asarray(targets, dtype=np.float64)
        self._capital = float(capital)
        self._bar_seconds = float(bar_seconds)
        fees = sorted({r.fee_rate for r in rules})
        self._bh_index = {f: len(rules) + i for i, f in enumerate(fees)}
        self._bands = np.array([r.band for r in rules] + [math.inf] * len(fees))
        self._fees = np.array([r.fee_rate for r in rules] + fees)
        self._bh_rows = np.array([self._bh_index[r.fee_rate] for r in rules])

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def stats(self, prices: FloatArray) -> RowStats:
        res = sweep(prices, self._targets, self._bands, self._fees, capital=self._capital)
        n = len(self._rules)
        sharpe = np.array(
            [ratios_from_moments(res.moments(k), self._bar_seconds)[1] for k in range(n)]
        )
        final = res.final_value
        return RowStats(
            final_value=final[:n].copy(),
            bh_final_value=final[self._bh_rows],
            sharpe=sharpe,
            max_drawdown=res.max_drawdown[:n].copy(),
        )

    def paths(self, prices: FloatArray) -> RowPaths:
        res = sweep(
            prices, self._targets, self._bands, self._fees, capital=self._capital, record=True
        )
        assert res.equity is not None
        n = len(self._rules)
        return RowPaths(equity=res.equity[:n], bh_equity=res.equity[self._bh_rows])


def reference_run(
    prices: FloatArray, targets: Sequence[float], rule: Rule, capital: float
) -> tuple[FloatArray, FloatArray, BarFlows]:
    """One abs rule and its buy-and-hold through :func:`reference.simulate` (the kernel's
    oracle): the rule's equity, buy-and-hold's, and the rule's per-bar flows."""
    if rule.kind not in KERNEL_KINDS:
        raise ConfigError(f"kind {rule.kind!r} has no reference run: use {KERNEL_KINDS}")
    run = simulate(prices, targets, capital=capital, fee_rate=rule.fee_rate, band_abs=rule.band)
    bh = simulate(prices, targets, capital=capital, fee_rate=rule.fee_rate, band_abs=math.inf)
    flows = reference_flows(
        prices.shape[0], run.rebalance_bars, run.traded, run.fees, run.value_before
    )
    return run.equity, bh.equity, flows


def rules_from_rows(rows: Any) -> list[Rule]:
    """The rules of a sweep's rows (``GridResult.rows``: columns kind, style, band,
    fee_rate), to bootstrap each row; only ``target``-style rows can be run here."""
    styles = sorted({str(s) for s in rows["style"]})
    if styles != ["target"]:
        raise ConfigError(
            f"the trust statistics run trade-back-to-target rows only, got styles {styles}: "
            "sweep with --styles target"
        )
    return [
        Rule(str(k), float(b), float(f))
        for k, b, f in zip(rows["kind"], rows["band"], rows["fee_rate"], strict=True)
    ]
