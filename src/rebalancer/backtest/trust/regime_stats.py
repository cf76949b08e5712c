"""Per-regime statistics of one run against buy-and-hold, bar by bar.

The bars are labelled by :func:`.regimes.label_bars` from the **market curve**
(:func:`market_curve`: buy-and-hold of the targets at zero fee, exact fractional units, so
every engine and every fee sees the same regimes). A run is described bar by bar by
:class:`RunBars`; the return of bar ``t`` (from the equity after bar ``t - 1``'s trades to
the equity after bar ``t``'s, and for bar 0 from the starting value) belongs to the regime
of bar ``t``. Per regime (:class:`RegimeRow`, units in the field list):

* ``bars``, ``episodes`` (contiguous stretches), ``years`` (calendar time of those bars:
  the sum of each bar's time since the previous bar, 365-day years; bar 0 spans none) and
  ``share`` (of the run's calendar time);
* ``rule_return`` / ``bh_return``: the strategy's and buy-and-hold's returns compounded
  over the regime's bars (fractions: ``prod(1 + r_t) - 1``);
* ``premium``: ``(1 + rule_return) / (1 + bh_return) - 1``, the same growth-ratio
  definition as the run's headline premium (``final / bh_final - 1``), so the regimes'
  ``1 + premium`` **multiply** to the run's; ``return_difference``: ``rule_return -
  bh_return`` (percentage points, as a fraction); ``premium_per_year``: ``(1 +
  premium) ** (1 / years) - 1`` (NaN with a note when the regime spans no time);
* ``fees`` (quote currency), ``turnover`` (sum over trades of traded / value before the
  trade, so 1.0 = the portfolio's value traded once) and ``rebalances`` (bars with a
  trade) of the trades in those bars: they **sum** to the run's figures over the rows
  warm-up + bull + bear + sideways (and warm-up + high-vol + low-vol);
* ``max_drawdown`` / ``bh_max_drawdown``: the deepest fall from a running peak *within one
  episode* of the regime (the peak starts at the value before the episode's first bar), a
  fraction in [0, 1]; the deepest over the regime's episodes.

The ``warm-up`` row holds the first ``window`` bars (no full trailing window), bar 0's first
purchase included, so the rows reconcile with the whole run. A regime with no bars keeps a
row whose figures are NaN and whose ``note`` says why and what to change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rebalancer.backtest.reference import FloatArray, RunResult
from rebalancer.backtest.trust.regimes import (
    TRENDS,
    VOLS,
    WARMUP,
    BarFlows,
    Labels,
    RegimeOptions,
    label_bars,
)
from rebalancer.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from rebalancer.backtest.engine import Run

SECONDS_PER_YEAR = 365 * 86_400
EMPTY_NOTE = (
    "no bars in this regime: loosen the cut-offs (--bull/--bear/--vol-quantile), "
    "shorten --regime-window or lengthen the panel"
)

NO_WARMUP_NOTE = "no warm-up: the bars before this span fill the trailing window"


@dataclass(frozen=True)
class RunBars:
    """One run bar by bar: ``equity`` after each bar's trades (quote units), ``start`` the
    value before bar 0's trades (the capital) and the per-bar ``flows`` (bar 0 holds the
    first purchase where the engine counts it)."""

    equity: FloatArray
    start: float
    flows: BarFlows

    def log_returns(self) -> FloatArray:
        """Per bar ``log(e[t] / e[t-1])``, bar 0 from ``start``."""
        e = np.asarray(self.equity, dtype=np.float64)
        out: FloatArray = np.diff(np.log(np.concatenate([[self.start], e])))
        return out


@dataclass(frozen=True)
class RegimeRow:
    """One regime's figures (see the module docstring for each field and its unit)."""

    regime: str
    bars: int
    episodes: int
    years: float
    share: float
    rule_return: float
    bh_return: float
    premium: float
    return_difference: float
    premium_per_year: float
    turnover: float
    fees: float
    rebalances: int
    max_drawdown: float
    bh_max_drawdown: float
    note: str = ""


@dataclass(frozen=True)
class RegimeReport:
    """Rows for ``warm-up``, the trends and the volatilities; ``spans`` the trend episodes
    ``(first bar, last bar + 1, regime)`` and ``vol_spans`` the high-vol ones (for shading
    charts); ``note`` says why there are no rows (a panel too short for the window)."""

    options: RegimeOptions
    rows: list[RegimeRow] = field(default_factory=list)
    vol_cutoff: float = math.nan
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    vol_spans: list[tuple[int, int, str]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` payload: options (window in bars, cut-offs, the volatility
        cut-off per bar), rows, and the note."""
        return {
            "options": {**asdict(self.options), "vol_cutoff_per_bar": self.vol_cutoff},
            "rows": [asdict(r) for r in self.rows],
            "note": self.note,
        }


def market_curve(prices: FloatArray, targets: Sequence[float]) -> FloatArray:
    """Buy-and-hold of ``targets`` (asset weights; the rest is cash) from 1 unit of money at
    bar 0's prices, no fee, fractional units: the curve the regimes are labelled from."""
    p = np.asarray(prices, dtype=np.float64)
    w = np.asarray(targets, dtype=np.float64)
    out: FloatArray = p @ (w / p[0]) + (1.0 - float(w.sum()))
    return out


def durations(times: pd.DatetimeIndex | None, n: int, bar_seconds: float) -> FloatArray:
    """Seconds from the previous bar to each bar (bar 0: 0); evenly ``bar_seconds`` apart
    without ``times``. Missing bars count as the time they span."""
    if times is None:
        out = np.full(n, float(bar_seconds))
    else:
        ns = np.asarray(times.as_unit("ns").asi8, dtype=np.float64)
        out = np.concatenate([[0.0], np.diff(ns) / 1e9])
    out[0] = 0.0
    return out


def episodes(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[tuple[int, int]]:
    """The contiguous stretches ``(first, last + 1)`` where ``mask`` holds."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def episode_drawdown(log_returns: FloatArray, stretches: Sequence[tuple[int, int]]) -> float:
    """The deepest fall from a running peak within any one stretch (the peak starting at
    the value before the stretch), a fraction in [0, 1]; NaN without stretches."""
    worst = math.nan
    for a, b in stretches:
        curve = np.exp(np.concatenate([[0.0], np.cumsum(log_returns[a:b])]))
        dd = float(np.max(1.0 - curve / np.maximum.accumulate(curve)))
        worst = dd if math.isnan(worst) else max(worst, dd)
    return worst


def _empty(name: str) -> RegimeRow:
    nan = math.nan
    figures = (nan,) * 7
    note = NO_WARMUP_NOTE if name == WARMUP else EMPTY_NOTE
    return RegimeRow(name, 0, 0, 0.0, 0.0, *figures, 0, nan, nan, note)


def _row(
    name: str,
    mask: np.ndarray[Any, np.dtype[np.bool_]],
    run: RunBars,
    hold: RunBars,
    dt: FloatArray,
) -> RegimeRow:
    n = int(mask.sum())
    if n == 0:
        return _empty(name)
    r_rule, r_bh = run.log_returns(), hold.log_returns()
    stretches = episodes(mask)
    years = float(dt[mask].sum()) / SECONDS_PER_YEAR
    total_years = float(dt.sum()) / SECONDS_PER_YEAR
    excess = float(r_rule[mask].sum() - r_bh[mask].sum())
    rule_ret = math.expm1(float(r_rule[mask].sum()))
    bh_ret = math.expm1(float(r_bh[mask].sum()))
    note = "" if years > 0 else "per year: n/a, the regime spans no calendar time (bar 0 only)"
    f = run.flows
    return RegimeRow(
        regime=name,
        bars=n,
        episodes=len(stretches),
        years=years,
        share=years / total_years if total_years > 0 else math.nan,
        rule_return=rule_ret,
        bh_return=bh_ret,
        premium=math.expm1(excess),
        return_difference=rule_ret - bh_ret,
        premium_per_year=math.expm1(excess / years) if years > 0 else math.nan,
        turnover=float(f.turnover[mask].sum()),
        fees=float(f.fees[mask].sum()),
        rebalances=int(np.count_nonzero(f.traded[mask])),
        max_drawdown=episode_drawdown(r_rule, stretches),
        bh_max_drawdown=episode_drawdown(r_bh, stretches),
        note=note,
    )


def regime_rows(
    run: RunBars, hold: RunBars, labels: Labels, dt: FloatArray, *, warmup: bool = True
) -> list[RegimeRow]:
    """``warm-up`` (when ``warmup``), bull, bear, sideways, high-vol, low-vol (see the module
    docstring); ``dt`` the seconds from the previous bar to each bar (:func:`durations`)."""
    n = len(labels.trend)
    for what, size in (("equity", len(run.equity)), ("buy-and-hold", len(hold.equity))):
        if size != n:
            raise ConfigError(f"{what} has {size} bars, the labels {n}: give the same bars")
    named = [(WARMUP, labels.trend == WARMUP)] if warmup else []
    named += [(t, labels.trend == t) for t in TRENDS]
    named += [(v, labels.vol == v) for v in VOLS]
    return [_row(name, mask, run, hold, dt) for name, mask in named]


def spans(
    column: np.ndarray[Any, np.dtype[np.str_]], names: Sequence[str]
) -> list[tuple[int, int, str]]:
    """Every episode of each of ``names`` in ``column``, in bar order."""
    out = [(a, b, name) for name in names for a, b in episodes(column == name)]
    return sorted(out)


def regime_report(
    market: FloatArray,
    run: RunBars,
    hold: RunBars,
    options: RegimeOptions,
    dt: FloatArray,
    *,
    offset: int = 0,
) -> RegimeReport:
    """Label ``market`` (the whole panel's :func:`market_curve`) and describe the run, whose
    bars are the panel's bars ``offset`` onwards (a walk-forward's out-of-sample span).
    A panel too short for the window gives a report with no rows and the reason in
    ``note`` (the run itself stands)."""
    try:
        labels = label_bars(market, options)
    except ConfigError as exc:
        return RegimeReport(options, note=f"no regimes: {exc}")
    end = offset + len(run.equity)
    part = Labels(labels.trend[offset:end], labels.vol[offset:end], labels.vol_cutoff)
    return RegimeReport(
        options,
        regime_rows(run, hold, part, dt),
        labels.vol_cutoff,
        spans(part.trend, TRENDS),
        spans(part.vol, ("high-vol",)),
    )


# -- per-bar runs from the engines --------------------------------------------------------------


def engine_bars(run: Run) -> RunBars:
    """A :class:`rebalancer.backtest.engine.Run` bar by bar: fees in the quote currency,
    traded notional and turnover (traded / value before the trade) of each bar's fills,
    as the run's own ``metrics`` sum them (bar 0's first purchase included)."""
    n = len(run.equity)
    traded, fees, turnover = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in run.fires:
        if not c.fills:
            continue
        traded[c.bar] += float(c.traded)
        fees[c.bar] += float(c.fees)
        turnover[c.bar] += float(c.traded / c.value_before)
    flows = BarFlows(traded=traded, fees=fees, turnover=turnover)
    return RunBars(np.asarray(run.equity, dtype=np.float64), float(run.initial_value), flows)


def reference_bars(res: RunResult, capital: float) -> RunBars:
    """A reference run (:func:`rebalancer.backtest.reference.simulate`, the compiled
    kernel's oracle) bar by bar, as the kernel's sweep rows count it: fees include bar 0's
    purchase, turnover and rebalances the rebalances only (bar 0 excluded)."""
    n = len(res.equity)
    traded, fees, turnover = np.zeros(n), np.zeros(n), np.zeros(n)
    idx = np.asarray(res.rebalance_bars, dtype=np.int64)
    traded[idx] = res.traded
    fees[idx] = res.fees
    turnover[idx] = np.asarray(res.traded) / np.asarray(res.value_before)
    fees[0] += res.initial_fee
    flows = BarFlows(traded=traded, fees=fees, turnover=turnover)
    return RunBars(np.asarray(res.equity, dtype=np.float64), float(capital), flows)


def panel_market(closes: pd.DataFrame, strategy: Any) -> FloatArray:
    """:func:`market_curve` of a closes frame (one column per asset) for a
    :class:`rebalancer.core.strategy.Strategy`'s asset targets (the quote is the cash)."""
    assets = [str(a) for a in strategy.assets]
    prices = closes[assets].to_numpy(dtype=np.float64)
    return market_curve(prices, [float(strategy.targets.get(a, 0)) for a in assets])


def backtest_regimes(result: Any, closes: pd.DataFrame, options: RegimeOptions) -> RegimeReport:
    """The strategy's regimes in a :class:`rebalancer.backtest.engine.BacktestResult` (run
    with its benchmarks) over ``closes``, against its ``buy_and_hold`` benchmark."""
    run, hold = result.run, result.benchmarks.get("buy_and_hold")
    if hold is None:
        return RegimeReport(options, note="no regimes: the run has no buy-and-hold benchmark")
    dt = durations(run.times, len(run.equity), result.bar.total_seconds())
    market = panel_market(closes, run.strategy)
    return regime_report(market, engine_bars(run), engine_bars(hold), options, dt)


def flows_frame(run: Run) -> pd.DataFrame:
    """:func:`engine_bars`' per-bar flows of ``run`` as a frame on its bar times: columns
    ``traded`` and ``fees`` (quote) and ``turnover`` (traded / value before the trade)."""
    import pandas as pd

    f = engine_bars(run).flows
    data = {"traded": f.traded, "fees": f.fees, "turnover": f.turnover}
    return pd.DataFrame(data, index=run.times)


def walk_forward_regimes(
    result: Any, closes: pd.DataFrame, strategy: Any, options: RegimeOptions, bar_seconds: float
) -> RegimeReport:
    """The stitched out-of-sample run of a
    :class:`rebalancer.backtest.walk_forward.WalkForwardResult` against buy-and-hold over the
    same span (both from the capital), labelled from the whole panel's market curve (the
    in-sample bars before the first test window serve as the trailing window)."""
    if result.bar_flows is None or result.hold_equity is None:
        return RegimeReport(options, note="no regimes: the result has no per-bar flows")
    import pandas as pd

    first = pd.Timestamp(str(result.windows["test_start"].iloc[0]))
    offset = int(closes.index.searchsorted(first))
    capital = float(result.windows["start_value"].iloc[0])
    f = result.bar_flows
    flows = BarFlows(
        traded=f["traded"].to_numpy(), fees=f["fees"].to_numpy(), turnover=f["turnover"].to_numpy()
    )
    run = RunBars(result.equity.to_numpy(dtype=np.float64), capital, flows)
    hold = RunBars(
        result.hold_equity.to_numpy(dtype=np.float64),
        capital,
        BarFlows(np.zeros(len(f)), np.zeros(len(f)), np.zeros(len(f))),
    )
    dt = durations(result.equity.index, len(result.equity), bar_seconds)
    return regime_report(panel_market(closes, strategy), run, hold, options, dt, offset=offset)
