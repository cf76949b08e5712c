"""Performance metrics of an equity curve. Crypto trades every day: a year is 365 days.

Definitions (``E`` the equity per bar, ``r_t = E_t / E_{t-1} - 1`` for ``t >= 1``, ``P`` the
bars per year = 365 days / bar period):

* ``total_return = E_last / initial - 1`` (``initial`` defaults to ``E_0``; pass the capital
  to charge the bar-0 purchase fee); ``years`` = the calendar time from the first bar to the
  last (their timestamps, when given; else ``(bars - 1) * period``) / 365 days, so bars
  missing from the data (exchange outages) do not shorten it;
  ``cagr = (E_last / initial) ** (1 / years) - 1``;
* ``volatility = std(r, ddof=1) * sqrt(P)``; ``sharpe = mean(r) / std(r, ddof=1) * sqrt(P)``
  (risk-free rate 0); ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)``;
* ``max_drawdown = max_t (1 - E_t / max_{s<=t} E_s)`` (a positive fraction);
  ``max_drawdown_bars`` = the longest run of bars since the last running peak (until the
  peak is regained, or the end), ``max_drawdown_duration`` the longest such time (from the
  timestamps when given); ``calmar = cagr / max_drawdown``;
* the rebalancing premium over buy-and-hold: ``total = E_reb / E_hold - 1`` and annualised
  ``(E_reb / E_hold) ** (1 / years) - 1``.

Undefined ratios (zero deviation, zero drawdown, less than two returns) are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from rebalancer.backtest.reference import RunResult

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Times = pd.Index | Sequence[datetime] | None  # one timestamp per equity value

DAYS_PER_YEAR = 365
SECONDS_PER_YEAR = DAYS_PER_YEAR * 86400

# The conventions above in words, for people: the HTML report's footer and the docs say these.
CONVENTIONS: tuple[str, ...] = (
    "A year is 365 days (crypto trades every day). Years are the calendar time from the first "
    "bar to the last, so bars missing from the data (exchange outages) still count.",
    "Periods per year P = 365 days / bar length (365 for daily bars, 8760 for hourly).",
    "Volatility (annualised) = standard deviation of the per-bar returns (n - 1) x sqrt(P).",
    "Sharpe = mean / standard deviation of the per-bar returns x sqrt(P), risk-free rate 0.",
    "Sortino = mean return / downside deviation x sqrt(P); the downside deviation is "
    "sqrt(mean(min(r, 0)^2)) over all returns, gains counting as 0.",
    "Total return and CAGR are measured from the starting capital, so the first purchase's "
    "fees count: CAGR = (final / capital)^(1 / years) - 1; Calmar = CAGR / max drawdown.",
    "Max drawdown = the largest fall from a running peak; its duration = the longest time "
    "spent below a previous peak (until regained, or the end).",
)


@dataclass(frozen=True)
class ReturnMoments:
    """``n`` returns, their ``mean``, ``m2 = sum (r - mean)^2``, ``down_ss = sum min(r, 0)^2``."""

    n: int
    mean: float
    m2: float
    down_ss: float


@dataclass(frozen=True)
class Metrics:
    final_value: float
    total_return: float
    years: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_duration: timedelta
    calmar: float
    n_rebalances: int
    fees: float
    traded: float
    turnover: float


@dataclass(frozen=True)
class Premium:
    """Rebalancing premium over buy-and-hold: ``total`` and ``annualised`` growth ratios."""

    total: float
    annualised: float


def period_seconds(bar_period: timedelta | float) -> float:
    """A bar period (timedelta or seconds) in seconds; refuses non-positive periods."""
    secs = bar_period.total_seconds() if isinstance(bar_period, timedelta) else float(bar_period)
    if not (math.isfinite(secs) and secs > 0):
        raise ValueError(f"bar_period must be a positive duration, got {bar_period!r}")
    return secs


def return_moments(equity: ArrayLike) -> ReturnMoments:
    e = np.asarray(equity, dtype=np.float64)
    r = e[1:] / e[:-1] - 1.0
    if r.size == 0:
        return ReturnMoments(0, 0.0, 0.0, 0.0)
    mean = float(r.mean())
    return ReturnMoments(
        n=int(r.size),
        mean=mean,
        m2=float(((r - mean) ** 2).sum()),
        down_ss=float((np.minimum(r, 0.0) ** 2).sum()),
    )


def ratios_from_moments(m: ReturnMoments, bar_seconds: float) -> tuple[float, float, float]:
    """``(volatility, sharpe, sortino)`` annualised with 365-day years (rf = 0)."""
    scale = math.sqrt(SECONDS_PER_YEAR / bar_seconds)
    if m.n < 2:
        return math.nan, math.nan, math.nan
    std = math.sqrt(m.m2 / (m.n - 1))
    down = math.sqrt(m.down_ss / m.n)
    vol = std * scale
    sharpe = m.mean / std * scale if std > 0 else math.nan
    sortino = m.mean / down * scale if down > 0 else math.nan
    return vol, sharpe, sortino


def drawdown(equity: ArrayLike) -> tuple[float, int]:
    """``(max_drawdown, max_drawdown_bars)`` as defined in the module docstring."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return 0.0, 0
    peak = np.maximum.accumulate(e)
    bars = np.arange(e.size)
    last_peak = np.maximum.accumulate(np.where(e >= peak, bars, 0))
    return float((1.0 - e / peak).max()), int((bars - last_peak).max())


def bar_times(times: Times, n: int, bar_seconds: float) -> FloatArray:
    """Seconds since the first bar for each of ``n`` bars: from ``times`` (datetimes,
    strictly increasing, one per bar) or, without them, evenly ``bar_seconds`` apart."""
    if times is None:
        return np.arange(n, dtype=np.float64) * bar_seconds
    index = pd.DatetimeIndex(list(times) if not isinstance(times, pd.Index) else times)
    ns = index.as_unit("ns").asi8
    if ns.size != n:
        raise ValueError(f"times: one per equity value needed, got {ns.size} for {n}")
    if n > 1 and not np.all(np.diff(ns) > 0):
        raise ValueError("times must be strictly increasing")
    return np.asarray((ns - ns[0]) / 1e9, dtype=np.float64)


def underwater_seconds(equity: ArrayLike, elapsed: FloatArray) -> float:
    """The longest time (seconds, from ``elapsed``: each bar's seconds since the first)
    spent since the last running peak, as ``max_drawdown_bars`` counts bars."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    last_peak = np.maximum.accumulate(np.where(e >= peak, np.arange(e.size), 0))
    return float((elapsed - elapsed[last_peak]).max())


def compute_metrics(
    equity: ArrayLike,
    bar_period: timedelta | float,
    *,
    times: Times = None,
    initial: float | None = None,
    n_rebalances: int = 0,
    fees: float = 0.0,
    traded: float = 0.0,
    turnover: float = 0.0,
) -> Metrics:
    """Metrics of ``equity`` (one value per bar of length ``bar_period``). ``times``: each
    bar's timestamp; years (CAGR, Calmar, the premium) and the drawdown duration then come
    from the calendar, so missing bars count as the time they span. Without ``times`` the
    bars are taken as evenly spaced. Ratios annualise per-bar returns with ``P`` = 365 days /
    ``bar_period`` either way."""
    e = np.asarray(equity, dtype=np.float64)
    if e.ndim != 1 or e.size < 1 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("equity must be a non-empty 1-D array of finite values > 0")
    secs = period_seconds(bar_period)
    elapsed = bar_times(times, e.size, secs)
    start = float(e[0]) if initial is None else float(initial)
    final = float(e[-1])
    years = float(elapsed[-1]) / SECONDS_PER_YEAR
    cagr = (final / start) ** (1 / years) - 1 if years > 0 else math.nan
    vol, sharpe, sortino = ratios_from_moments(return_moments(e), secs)
    max_dd, dd_bars = drawdown(e)
    dd_seconds = underwater_seconds(e, elapsed)
    return Metrics(
        final_value=final,
        total_return=final / start - 1,
        years=years,
        cagr=cagr,
        volatility=vol,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        max_drawdown_bars=dd_bars,
        max_drawdown_duration=timedelta(seconds=dd_seconds),
        calmar=cagr / max_dd if max_dd > 0 else math.nan,
        n_rebalances=n_rebalances,
        fees=fees,
        traded=traded,
        turnover=turnover,
    )


def run_metrics(
    run: RunResult,
    bar_period: timedelta | float,
    capital: float,
    times: Times = None,
) -> Metrics:
    """Metrics of a reference run; returns measured from ``capital`` (bar-0 fee charged)."""
    return compute_metrics(
        run.equity,
        bar_period,
        times=times,
        initial=capital,
        n_rebalances=run.n_rebalances,
        fees=run.total_fees,
        traded=run.total_traded,
        turnover=run.turnover,
    )


def rebalancing_premium(strategy: Metrics, hold: Metrics) -> Premium:
    """Premium of ``strategy`` over ``hold`` (buy-and-hold over the same bars)."""
    ratio = strategy.final_value / hold.final_value
    years = strategy.years
    return Premium(total=ratio - 1, annualised=ratio ** (1 / years) - 1 if years > 0 else math.nan)


def calendar_span(index: pd.Index) -> timedelta | None:
    """The time from the first to the last timestamp of ``index`` (gaps included), or None
    when it holds no timestamps (the bars are then taken as evenly spaced)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    return (index[-1] - index[0]).to_pytimedelta()
