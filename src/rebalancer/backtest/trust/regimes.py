"""Market regimes: label each bar bull / bear / sideways and high / low volatility.

Labels come from the portfolio's **buy-and-hold** equity ``bh`` (so they describe the
market the rule faced, not the rule): at bar ``t`` with a trailing ``window`` of bars,

* trend: the trailing return ``bh[t] / bh[t - window] - 1``; **bull** above ``bull``
  (default +10 %), **bear** below ``bear`` (default -10 %), **sideways** in between;
* volatility: the standard deviation of the last ``window`` per-bar log returns of ``bh``;
  **high** above the ``vol_quantile`` (default the median, 0.5) of that series over the
  panel, **low** otherwise.

The first ``window`` bars have no full trailing window and are labelled ``warm-up``
(excluded from every regime). Defaults (:data:`DEFAULT_WINDOW_DAYS` = 90 days, +/-10 %,
median volatility) are documented in the README; the CLI converts the days into bars.

:mod:`.regime_stats` then reports, per regime, what a run did on the bars of that regime
(the return of bar ``t`` is counted in the regime of bar ``t``): the rebalancing premium
over buy-and-hold compounded over those bars and annualised over their calendar time,
turnover, fees, and the deepest drawdown within one stretch of the regime;
:func:`regime_table` is its evenly-spaced form for ``advise``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rebalancer.backtest.reference import FloatArray
from rebalancer.core.errors import ConfigError

TRENDS = ("bull", "bear", "sideways")
VOLS = ("high-vol", "low-vol")
WARMUP = "warm-up"
DEFAULT_WINDOW_DAYS = 90
DEFAULT_BULL = 0.10
DEFAULT_BEAR = -0.10
DEFAULT_VOL_QUANTILE = 0.5


@dataclass(frozen=True)
class RegimeOptions:
    """``window`` in bars; ``bull`` / ``bear`` trailing-return cut-offs (fractions);
    ``vol_quantile``: the quantile of trailing volatility above which a bar is high-vol."""

    window: int
    bull: float = DEFAULT_BULL
    bear: float = DEFAULT_BEAR
    vol_quantile: float = DEFAULT_VOL_QUANTILE

    def check(self, n_bars: int) -> None:
        if self.window < 2:
            raise ConfigError(f"--regime-window must be at least 2 bars, got {self.window}")
        if not self.bear < self.bull:
            raise ConfigError(
                f"--bear ({self.bear}) must be below --bull ({self.bull}), e.g. -0.1 and 0.1"
            )
        if not 0 < self.vol_quantile < 1:
            raise ConfigError(f"--vol-quantile must be in (0, 1), got {self.vol_quantile}")
        if n_bars < 2 * self.window:
            raise ConfigError(
                f"the panel has {n_bars} bars; regimes with a {self.window}-bar window need at "
                f"least {2 * self.window}: widen --start/--end or shorten --regime-window"
            )


@dataclass(frozen=True)
class Labels:
    """Per bar: ``trend`` (bull / bear / sideways / warm-up) and ``vol`` (high-vol /
    low-vol / warm-up), and the volatility cut-off used (per-bar log-return std)."""

    trend: np.ndarray[Any, np.dtype[np.str_]]
    vol: np.ndarray[Any, np.dtype[np.str_]]
    vol_cutoff: float


def label_bars(bh_equity: FloatArray, options: RegimeOptions) -> Labels:
    """Label every bar of the buy-and-hold equity curve (see the module docstring)."""
    e = np.asarray(bh_equity, dtype=np.float64)
    options.check(e.size)
    w = options.window
    trailing = np.full(e.size, math.nan)
    trailing[w:] = e[w:] / e[:-w] - 1
    r = np.diff(np.log(e))
    vol = np.full(e.size, math.nan)
    # vol[t] = std of returns r[t-w .. t-1] (the w returns ending at bar t), by pandas'
    # rolling form: O(bars) time and memory (a window view's std materialised bars x w
    # floats: 0.5 GB for a 90-day window of hourly bars)
    import pandas as pd

    rolling = pd.Series(r).rolling(w).std(ddof=1).to_numpy(dtype=np.float64)
    vol[w:] = rolling[w - 1 :]
    cutoff = float(np.quantile(vol[w:], options.vol_quantile))
    trend = np.full(e.size, WARMUP, dtype="<U8")
    trend[w:] = np.where(
        trailing[w:] > options.bull,
        "bull",
        np.where(trailing[w:] < options.bear, "bear", "sideways"),
    )
    vols = np.full(e.size, WARMUP, dtype="<U8")
    vols[w:] = np.where(vol[w:] > cutoff, "high-vol", "low-vol")
    return Labels(trend=trend, vol=vols, vol_cutoff=cutoff)


@dataclass(frozen=True)
class BarFlows:
    """Per bar of a run: ``traded`` notional and ``fees`` (quote units) and ``turnover``
    (traded / value before trading), zero where the rule did not trade."""

    traded: FloatArray
    fees: FloatArray
    turnover: FloatArray


def regime_table(
    equity: FloatArray,
    bh_equity: FloatArray,
    flows: BarFlows,
    labels: Labels,
    bars_per_year: float,
) -> list[dict[str, Any]]:
    """One row per regime (trends, then volatilities; no warm-up row) as
    :func:`.regime_stats.regime_rows` defines them, for evenly spaced bars
    (``bars_per_year`` of them a year) whose first value is the start: bars, share of time,
    rule and buy-and-hold return over those bars, the premium (compounded, and per year),
    turnover, fees, rebalances and the deepest drawdown within one stretch; a regime with
    no bars says so in ``note`` (its figures are NaN)."""
    from dataclasses import asdict

    from rebalancer.backtest.trust import regime_stats as rs

    e = np.asarray(equity, dtype=np.float64)
    b = np.asarray(bh_equity, dtype=np.float64)
    dt = np.full(e.size, rs.SECONDS_PER_YEAR / bars_per_year)
    dt[0] = 0.0
    none = BarFlows(np.zeros(b.size), np.zeros(b.size), np.zeros(b.size))
    rows = rs.regime_rows(
        rs.RunBars(e, float(e[0]), flows),
        rs.RunBars(b, float(b[0]), none),
        labels,
        dt,
        warmup=False,
    )
    return [asdict(r) for r in rows]


def reference_flows(
    n_bars: int, rebalance_bars: Any, traded: Any, fees: Any, before: Any
) -> BarFlows:
    """Per-bar flows from a reference-style run's per-rebalance arrays (bar 0 excluded)."""
    t = np.zeros(n_bars)
    f = np.zeros(n_bars)
    u = np.zeros(n_bars)
    idx = np.asarray(rebalance_bars, dtype=np.int64)
    t[idx] = np.asarray(traded, dtype=np.float64)
    f[idx] = np.asarray(fees, dtype=np.float64)
    u[idx] = t[idx] / np.asarray(before, dtype=np.float64)
    return BarFlows(traded=t, fees=f, turnover=u)
