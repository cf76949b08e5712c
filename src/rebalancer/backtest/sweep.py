"""Parameter sweeps under the reference semantics, compiled with numba.

One price panel, many ``(band_abs, fee_rate)`` combinations, run in parallel across
combinations (``numba.prange``). Each combination keeps only its holdings (``n`` floats)
and a few running statistics -- no equity curve -- so memory stays at the price panel plus
``combinations x STATS`` floats. The rules are exactly those of
:func:`rebalancer.backtest.reference.simulate` (the tested oracle); options the kernel does
not implement are refused with :class:`ValueError`, never approximated.

Per combination the kernel records: final value, rebalance count, fees (bar-0 purchase
included), traded notional and turnover (rebalances only), max drawdown and its duration
in bars, and the moments of the per-bar simple returns (Welford mean and M2, downside sum
of squares) from which :mod:`rebalancer.backtest.metrics` derives volatility, Sharpe and
Sortino with the same formulas it applies to full equity curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

from rebalancer.backtest.metrics import ReturnMoments, period_seconds, ratios_from_moments
from rebalancer.backtest.reference import FloatArray, check_inputs, post_fee_total

# columns of the kernel's output
BoolArray = NDArray[np.bool_]

FINAL, N_REB, FEES, TRADED, TURNOVER, MAX_DD, DD_BARS, N_RET, MEAN, M2, DOWN_SS = range(11)
STATS = 11


#: the reference semantics' one post-fee solver, compiled
_post_fee_total = njit(cache=True, nogil=True)(post_fee_total)


#: margin around the band inside which the kernel's quick drift estimate (weights taken as
#: ``value * (1 / total)``, a few ulps off the exact ``value / total``) is not trusted and
#: the exact quotients decide, so the firing bars are exactly the reference's
_MARGIN = 1e-12


def _exact_drift_py(
    values: FloatArray, total: float, cash: float, cash_target: float, targets: FloatArray
) -> float:
    """The reference's drift: largest ``|value / total - target|`` over all legs, cash first."""
    drift = abs(cash / total - cash_target)
    for i in range(values.shape[0]):
        d = abs(values[i] / total - targets[i])
        if d > drift:
            drift = d
    return drift


_exact_drift = njit(cache=True, nogil=True, inline="always")(_exact_drift_py)


#: combinations advanced together, bar by bar, by one kernel task: their per-bar arithmetic
#: (valuation, drift estimate, statistics) is written out once per lane (``v0 .. v4``) as
#: independent scalar chains the CPU overlaps (numba 0.68 does not vectorise them), each lane
#: doing exactly the scalar operations of one combination in the same order, so the same
#: floats come out (the kernel's per-lane lines must be kept in step with this constant)
LANES = 5


def _bar_stats_py(
    e: float,
    t: int,
    n_ret: int,
    eq: float,
    mean: float,
    m2: float,
    down: float,
    peak: float,
    pb: float,
    mdd: float,
    ddb: float,
) -> tuple[float, float, float, float, float, float, float, float]:
    """One bar of the running statistics, as the reference computes them (``max`` forms:
    at a new peak the duration is 0 bars, which never beats the maximum)."""
    r = e / eq - 1.0
    delta = r - mean
    mean += delta / n_ret
    m2 += delta * (r - mean)
    down += r * r if r < 0.0 else 0.0
    if e >= peak:
        pb = float(t)
        peak = e
    elif e < peak * (1.0 - mdd) * (1.0 + _MARGIN):
        # only here can the drawdown beat the maximum (the test is slightly generous;
        # the exact quotient decides, as in the reference)
        mdd = max(mdd, 1.0 - e / peak)
    ddb = max(ddb, t - pb)
    return e, mean, m2, down, peak, pb, mdd, ddb


_bar_stats = njit(cache=True, nogil=True, inline="always")(_bar_stats_py)


def _sweep_kernel_py(
    prices: FloatArray,
    targets: FloatArray,
    cash_target: float,
    capital: float,
    bands: FloatArray,
    fee_rates: FloatArray,
    every: int,
    out: FloatArray,
    record: bool,
    equity_out: FloatArray,
    fired_out: BoolArray,
) -> None:
    """Fill ``out[k]`` with the statistics of combination ``k`` (band < 0: always fire).

    With ``record``, also ``equity_out[k, t]`` (equity per bar) and ``fired_out[k, t]``.

    Speed without changing a result: combinations run ``LANES`` at a time (one ``prange``
    task per group, padded with never-firing lanes), written as independent scalar lanes
    that each keep the reference's operation order. On each due bar the drift is first
    estimated with one division per lane (``value * (1 / total)``); only a lane whose
    estimate lies within ``_MARGIN`` of its band computes the exact quotients, so every
    decision is the reference's.
    """
    n_bars, n = prices.shape
    n_combos = bands.shape[0]
    n_groups = (n_combos + LANES - 1) // LANES
    for g in prange(n_groups):
        band = np.full(LANES, np.inf)
        fee_rate = np.zeros(LANES)
        for c in range(LANES):
            k = g * LANES + c
            if k < n_combos:
                band[c] = bands[k]
                fee_rate[c] = fee_rates[k]
        lo_band = band - _MARGIN
        hi_band = band + _MARGIN
        units = np.zeros((n, LANES))
        vals = np.zeros((n, LANES))
        values = np.zeros(n)  # one lane's values, for the exact paths
        buf = np.empty(n + 2)
        cash = np.empty(LANES)
        total = np.empty(LANES)
        near = np.empty(LANES)
        inv = np.empty(LANES)
        start = np.empty(LANES)
        fees = np.zeros(LANES)
        n_reb = np.zeros(LANES)
        traded_sum = np.zeros(LANES)
        turnover = np.zeros(LANES)
        # bar 0: buy to target from cash
        for c in range(LANES):
            values[:] = 0.0
            after = _post_fee_total(capital, values, targets, fee_rate[c], buf)
            f = 0.0
            for i in range(n):
                units[i, c] = targets[i] * after / prices[0, i]
                f += fee_rate[c] * targets[i] * after
            fees[c] = f
            cash[c] = cash_target * after
            start[c] = after
            if record and g * LANES + c < n_combos:
                equity_out[g * LANES + c, 0] = after
        eq0 = peak0 = start[0]
        eq1 = peak1 = start[1]
        eq2 = peak2 = start[2]
        eq3 = peak3 = start[3]
        eq4 = peak4 = start[4]
        mean0 = m20 = down0 = pb0 = mdd0 = ddb0 = 0.0
        mean1 = m21 = down1 = pb1 = mdd1 = ddb1 = 0.0
        mean2 = m22 = down2 = pb2 = mdd2 = ddb2 = 0.0
        mean3 = m23 = down3 = pb3 = mdd3 = ddb3 = 0.0
        mean4 = m24 = down4 = pb4 = mdd4 = ddb4 = 0.0
        n_ret = 0
        for t in range(1, n_bars):
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            t4 = 0.0
            for i in range(n):
                p = prices[t, i]
                v0 = units[i, 0] * p
                v1 = units[i, 1] * p
                v2 = units[i, 2] * p
                v3 = units[i, 3] * p
                v4 = units[i, 4] * p
                vals[i, 0] = v0
                vals[i, 1] = v1
                vals[i, 2] = v2
                vals[i, 3] = v3
                vals[i, 4] = v4
                t0 += v0
                t1 += v1
                t2 += v2
                t3 += v3
                t4 += v4
            # after the assets, as the reference sums
            t0 += cash[0]
            t1 += cash[1]
            t2 += cash[2]
            t3 += cash[3]
            t4 += cash[4]
            if every <= 1 or t % every == 0:
                i0 = 1.0 / t0
                i1 = 1.0 / t1
                i2 = 1.0 / t2
                i3 = 1.0 / t3
                i4 = 1.0 / t4
                n0 = abs(cash[0] * i0 - cash_target)
                n1 = abs(cash[1] * i1 - cash_target)
                n2 = abs(cash[2] * i2 - cash_target)
                n3 = abs(cash[3] * i3 - cash_target)
                n4 = abs(cash[4] * i4 - cash_target)
                for i in range(n):
                    tg = targets[i]
                    n0 = max(n0, abs(vals[i, 0] * i0 - tg))
                    n1 = max(n1, abs(vals[i, 1] * i1 - tg))
                    n2 = max(n2, abs(vals[i, 2] * i2 - tg))
                    n3 = max(n3, abs(vals[i, 3] * i3 - tg))
                    n4 = max(n4, abs(vals[i, 4] * i4 - tg))
                if (
                    (n0 < lo_band[0] and i0 < np.inf)
                    and (n1 < lo_band[1] and i1 < np.inf)
                    and (n2 < lo_band[2] and i2 < np.inf)
                    and (n3 < lo_band[3] and i3 < np.inf)
                    and (n4 < lo_band[4] and i4 < np.inf)
                ):
                    pass  # every lane quiet (the usual case)
                else:
                    total[0] = t0
                    total[1] = t1
                    total[2] = t2
                    total[3] = t3
                    total[4] = t4
                    near[0] = n0
                    near[1] = n1
                    near[2] = n2
                    near[3] = n3
                    near[4] = n4
                    inv[0] = i0
                    inv[1] = i1
                    inv[2] = i2
                    inv[3] = i3
                    inv[4] = i4
                    for c in range(LANES):
                        if near[c] < lo_band[c] and inv[c] < np.inf:
                            continue  # quiet lane
                        tot = total[c]
                        for i in range(n):
                            values[i] = vals[i, c]
                        if near[c] <= hi_band[c] or not inv[c] < np.inf:
                            exact = _exact_drift(values, tot, cash[c], cash_target, targets)
                            if not exact > band[c]:
                                continue
                        after = _post_fee_total(tot, values, targets, fee_rate[c], buf)
                        traded = 0.0
                        for i in range(n):
                            new_value = targets[i] * after
                            traded += abs(new_value - values[i])
                            units[i, c] = new_value / prices[t, i]
                        cash[c] = cash_target * after
                        fees[c] += fee_rate[c] * traded
                        traded_sum[c] += traded
                        turnover[c] += traded / tot
                        n_reb[c] += 1
                        total[c] = after
                        if record and g * LANES + c < n_combos:
                            fired_out[g * LANES + c, t] = True
                    t0 = total[0]
                    t1 = total[1]
                    t2 = total[2]
                    t3 = total[3]
                    t4 = total[4]
            if record:
                total[0] = t0
                total[1] = t1
                total[2] = t2
                total[3] = t3
                total[4] = t4
                for c in range(LANES):
                    if g * LANES + c < n_combos:
                        equity_out[g * LANES + c, t] = total[c]
            # statistics of the equity curve, bar by bar
            n_ret += 1
            eq0, mean0, m20, down0, peak0, pb0, mdd0, ddb0 = _bar_stats(
                t0, t, n_ret, eq0, mean0, m20, down0, peak0, pb0, mdd0, ddb0
            )
            eq1, mean1, m21, down1, peak1, pb1, mdd1, ddb1 = _bar_stats(
                t1, t, n_ret, eq1, mean1, m21, down1, peak1, pb1, mdd1, ddb1
            )
            eq2, mean2, m22, down2, peak2, pb2, mdd2, ddb2 = _bar_stats(
                t2, t, n_ret, eq2, mean2, m22, down2, peak2, pb2, mdd2, ddb2
            )
            eq3, mean3, m23, down3, peak3, pb3, mdd3, ddb3 = _bar_stats(
                t3, t, n_ret, eq3, mean3, m23, down3, peak3, pb3, mdd3, ddb3
            )
            eq4, mean4, m24, down4, peak4, pb4, mdd4, ddb4 = _bar_stats(
                t4, t, n_ret, eq4, mean4, m24, down4, peak4, pb4, mdd4, ddb4
            )
        stats = np.empty((LANES, 8))
        stats[0] = (eq0, mean0, m20, down0, peak0, pb0, mdd0, ddb0)
        stats[1] = (eq1, mean1, m21, down1, peak1, pb1, mdd1, ddb1)
        stats[2] = (eq2, mean2, m22, down2, peak2, pb2, mdd2, ddb2)
        stats[3] = (eq3, mean3, m23, down3, peak3, pb3, mdd3, ddb3)
        stats[4] = (eq4, mean4, m24, down4, peak4, pb4, mdd4, ddb4)
        for c in range(LANES):
            k = g * LANES + c
            if k < n_combos:
                out[k, FINAL] = stats[c, 0]
                out[k, N_REB] = n_reb[c]
                out[k, FEES] = fees[c]
                out[k, TRADED] = traded_sum[c]
                out[k, TURNOVER] = turnover[c]
                out[k, MAX_DD] = stats[c, 6]
                out[k, DD_BARS] = stats[c, 7]
                out[k, N_RET] = n_ret
                out[k, MEAN] = stats[c, 1]
                out[k, M2] = stats[c, 2]
                out[k, DOWN_SS] = stats[c, 3]


_KernelFn = Callable[
    [
        FloatArray,
        FloatArray,
        float,
        float,
        FloatArray,
        FloatArray,
        int,
        FloatArray,
        bool,
        FloatArray,
        BoolArray,
    ],
    None,
]
_sweep_kernel = cast(_KernelFn, njit(cache=True, parallel=True, nogil=True)(_sweep_kernel_py))


@dataclass(frozen=True)
class SweepResult:
    """Per combination (same order as ``band_abs`` / ``fee_rate``): the kernel's statistics.

    ``band_abs`` is ``-1`` for "no band" (fire on every due bar). ``stats`` is the raw
    ``(combinations, STATS)`` array; the named properties read its columns.
    """

    band_abs: FloatArray
    fee_rate: FloatArray
    every: int | None
    capital: float
    stats: FloatArray
    equity: FloatArray | None = None
    rebalanced: BoolArray | None = None

    def rebalance_bars(self, k: int) -> NDArray[np.int64]:
        """Bars where combination ``k`` rebalanced (needs ``record=True``)."""
        if self.rebalanced is None:
            raise ValueError("run the sweep with record=True to keep rebalance bars")
        return np.flatnonzero(self.rebalanced[k]).astype(np.int64)

    @property
    def final_value(self) -> FloatArray:
        return self.stats[:, FINAL]

    @property
    def n_rebalances(self) -> FloatArray:
        return self.stats[:, N_REB]

    @property
    def fees(self) -> FloatArray:
        return self.stats[:, FEES]

    @property
    def max_drawdown(self) -> FloatArray:
        return self.stats[:, MAX_DD]

    @property
    def traded(self) -> FloatArray:
        return self.stats[:, TRADED]

    @property
    def turnover(self) -> FloatArray:
        return self.stats[:, TURNOVER]

    def moments(self, k: int) -> ReturnMoments:
        row = self.stats[k]
        return ReturnMoments(
            n=int(row[N_RET]), mean=float(row[MEAN]), m2=float(row[M2]), down_ss=float(row[DOWN_SS])
        )

    def to_frame(
        self, bar_period: timedelta | float, span: timedelta | None = None
    ) -> pd.DataFrame:
        """One row per combination with the metrics of :mod:`rebalancer.backtest.metrics`.
        ``span``: the calendar time from the first bar to the last (from the timestamps, so
        missing bars count); default ``(bars - 1) * bar_period``."""
        secs = period_seconds(bar_period)
        n_bars = int(self.stats[0, N_RET]) + 1 if self.stats.shape[0] else 0
        elapsed = (n_bars - 1) * secs if span is None else span.total_seconds()
        years = elapsed / (365 * 86400)
        rows: list[dict[str, Any]] = []
        for k in range(self.stats.shape[0]):
            row = self.stats[k]
            vol, sharpe, sortino = ratios_from_moments(self.moments(k), secs)
            growth = float(row[FINAL]) / self.capital
            cagr = growth ** (1 / years) - 1 if years > 0 else math.nan
            max_dd = float(row[MAX_DD])
            rows.append(
                {
                    "band_abs": float(self.band_abs[k]),
                    "fee_rate": float(self.fee_rate[k]),
                    "final_value": float(row[FINAL]),
                    "total_return": growth - 1,
                    "cagr": cagr,
                    "volatility": vol,
                    "sharpe": sharpe,
                    "sortino": sortino,
                    "max_drawdown": max_dd,
                    "max_drawdown_bars": int(row[DD_BARS]),
                    "calmar": cagr / max_dd if max_dd > 0 else math.nan,
                    "n_rebalances": int(row[N_REB]),
                    "fees": float(row[FEES]),
                    "traded": float(row[TRADED]),
                    "turnover": float(row[TURNOVER]),
                }
            )
        return pd.DataFrame(rows)


def sweep(
    prices: ArrayLike,
    targets: ArrayLike,
    band_abs: ArrayLike,
    fee_rate: ArrayLike,
    *,
    capital: float = 1.0,
    every: int | None = None,
    band_rel: float | None = None,
    slippage: float = 0.0,
    min_trade: float = 0.0,
    style: str = "target",
    record: bool = False,
) -> SweepResult:
    """Run every pair ``(band_abs[k], fee_rate[k])`` (equal-length 1-D arrays) over ``prices``.

    ``band_abs`` entries: a band, ``inf`` (buy-and-hold) or ``-1`` (no band: fire on every
    due bar). ``every``: calendar gate in bars. The kernel implements the reference rule
    only: ``band_rel``, ``slippage``, ``min_trade`` and ``style`` other than their defaults
    are refused with :class:`ValueError` (use the full engine for them). ``record`` keeps
    each combination's equity curve and rebalance flags (``combinations x bars`` memory).
    """
    refused = {
        "band_rel": band_rel is not None,
        "slippage": slippage != 0.0,
        "min_trade": min_trade != 0.0,
        "style": style != "target",
    }
    asked = [name for name, bad in refused.items() if bad]
    if asked:
        raise ValueError(
            f"the sweep kernel does not support {', '.join(asked)} (reference rule only: "
            "absolute band, calendar gate, proportional fee, trade back to target)"
        )
    bands = np.ascontiguousarray(band_abs, dtype=np.float64).ravel()
    fees = np.ascontiguousarray(fee_rate, dtype=np.float64).ravel()
    if bands.shape != fees.shape:
        raise ValueError(f"band_abs ({bands.size}) and fee_rate ({fees.size}) differ in length")
    if np.any(np.isnan(bands)) or np.any((bands < 0) & (bands != -1)):
        raise ValueError(f"band_abs entries must be >= 0, inf or -1 (always), got {bands}")
    if np.any(~np.isfinite(fees)) or np.any((fees < 0) | (fees >= 1)):
        raise ValueError(f"fee_rate entries must be in [0, 1), got {fees}")
    if every is not None and every < 1:
        raise ValueError(f"every must be a whole number of bars >= 1, got {every}")
    p, w, cash_target = check_inputs(prices, targets, capital, 0.0)
    out = np.zeros((bands.size, STATS))
    shape = (bands.size, p.shape[0]) if record else (0, 0)
    equity = np.zeros(shape)
    fired = np.zeros(shape, dtype=np.bool_)
    _sweep_kernel(
        p, w, cash_target, float(capital), bands, fees, every or 1, out, record, equity, fired
    )
    return SweepResult(
        band_abs=bands,
        fee_rate=fees,
        every=every,
        capital=capital,
        stats=out,
        equity=equity if record else None,
        rebalanced=fired if record else None,
    )


def sweep_grid(
    prices: ArrayLike,
    targets: ArrayLike,
    bands: ArrayLike,
    fee_rates: ArrayLike,
    *,
    capital: float = 1.0,
    every: int | None = None,
    record: bool = False,
) -> SweepResult:
    """Every band x every fee rate (band-major order) through :func:`sweep`."""
    b, f = np.meshgrid(
        np.asarray(bands, dtype=np.float64), np.asarray(fee_rates, dtype=np.float64), indexing="ij"
    )
    return sweep(prices, targets, b.ravel(), f.ravel(), capital=capital, every=every, record=record)
