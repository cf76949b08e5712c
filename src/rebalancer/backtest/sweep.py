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
from rebalancer.backtest.reference import FloatArray, check_inputs

# columns of the kernel's output
BoolArray = NDArray[np.bool_]

FINAL, N_REB, FEES, TRADED, TURNOVER, MAX_DD, DD_BARS, N_RET, MEAN, M2, DOWN_SS = range(11)
STATS = 11


def _post_fee_total_py(
    total: float, values: FloatArray, targets: FloatArray, fee_rate: float, buf: FloatArray
) -> float:
    """Kernel twin of :func:`reference.solve_post_fee_total` (loops, no allocation; ``buf``
    holds ``n + 2`` floats): exact root of ``x = total - f * sum|w_i x - v_i|`` on its piece."""
    if fee_rate == 0.0:
        return total
    n = values.shape[0]
    m = 0
    buf[m] = 0.0
    m += 1
    buf[m] = total
    m += 1
    for i in range(n):
        if targets[i] > 0.0:
            kink = values[i] / targets[i]
            if 0.0 < kink < total:
                # insertion sort into buf[1 : m] (0 stays first, the kinks lie below total)
                j = m
                while buf[j - 1] > kink:
                    buf[j] = buf[j - 1]
                    j -= 1
                buf[j] = kink
                m += 1
    lo = buf[0]
    hi = buf[m - 1]
    for j in range(1, m):
        x = buf[j]
        g = x - total
        for i in range(n):
            g += fee_rate * abs(targets[i] * x - values[i])
        if g >= 0.0:
            lo = buf[j - 1]
            hi = x
            break
    mid = 0.5 * (lo + hi)
    sw = 0.0
    sv = 0.0
    for i in range(n):
        d = targets[i] * mid - values[i]
        if d > 0.0:
            sw += targets[i]
            sv += values[i]
        elif d < 0.0:
            sw -= targets[i]
            sv -= values[i]
    return (total + fee_rate * sv) / (1.0 + fee_rate * sw)


_post_fee_total = njit(cache=True, nogil=True)(_post_fee_total_py)


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
    """
    n_bars, n = prices.shape
    for k in prange(bands.shape[0]):
        band = bands[k]
        fee_rate = fee_rates[k]
        units = np.zeros(n)
        values = np.zeros(n)
        buf = np.empty(n + 2)
        # bar 0: buy to target from cash
        after = _post_fee_total(capital, values, targets, fee_rate, buf)
        fees = 0.0
        for i in range(n):
            units[i] = targets[i] * after / prices[0, i]
            fees += fee_rate * targets[i] * after
        cash = cash_target * after
        equity = after
        if record:
            equity_out[k, 0] = after
        peak = after
        peak_bar = 0
        max_dd = 0.0
        dd_bars = 0
        n_reb = 0
        traded_sum = 0.0
        turnover = 0.0
        n_ret = 0
        mean = 0.0
        m2 = 0.0
        down_ss = 0.0
        for t in range(1, n_bars):
            total = 0.0
            for i in range(n):
                values[i] = units[i] * prices[t, i]
                total += values[i]
            total += cash  # after the assets, as the reference sums
            if every <= 1 or t % every == 0:
                drift = abs(cash / total - cash_target)
                for i in range(n):
                    d = abs(values[i] / total - targets[i])
                    if d > drift:
                        drift = d
                if drift > band:
                    after = _post_fee_total(total, values, targets, fee_rate, buf)
                    traded = 0.0
                    for i in range(n):
                        new_value = targets[i] * after
                        traded += abs(new_value - values[i])
                        units[i] = new_value / prices[t, i]
                    cash = cash_target * after
                    fees += fee_rate * traded
                    traded_sum += traded
                    turnover += traded / total
                    n_reb += 1
                    total = after
                    if record:
                        fired_out[k, t] = True
            if record:
                equity_out[k, t] = total
            # statistics of the equity curve, bar by bar
            r = total / equity - 1.0
            equity = total
            n_ret += 1
            delta = r - mean
            mean += delta / n_ret
            m2 += delta * (r - mean)
            if r < 0.0:
                down_ss += r * r
            if equity >= peak:
                peak = equity
                peak_bar = t
            else:
                dd = 1.0 - equity / peak
                if dd > max_dd:
                    max_dd = dd
                if t - peak_bar > dd_bars:
                    dd_bars = t - peak_bar
        out[k, FINAL] = equity
        out[k, N_REB] = n_reb
        out[k, FEES] = fees
        out[k, TRADED] = traded_sum
        out[k, TURNOVER] = turnover
        out[k, MAX_DD] = max_dd
        out[k, DD_BARS] = dd_bars
        out[k, N_RET] = n_ret
        out[k, MEAN] = mean
        out[k, M2] = m2
        out[k, DOWN_SS] = down_ss


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

    def to_frame(self, bar_period: timedelta | float) -> pd.DataFrame:
        """One row per combination with the metrics of :mod:`rebalancer.backtest.metrics`."""
        secs = period_seconds(bar_period)
        n_bars = int(self.stats[0, N_RET]) + 1 if self.stats.shape[0] else 0
        years = (n_bars - 1) * secs / (365 * 86400)
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
