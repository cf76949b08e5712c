"""Volatility ratios per bar, compiled: the twin of :meth:`VolScaledThreshold.vols`.

For each bar ``t`` the closes up to and including ``t`` (the last ``window + 1``, as
:class:`~rebalancer.backtest.history.FrameHistory` gives the trigger), their log returns,
the ``lam``-weighted volatility of each asset's and of the target-weighted portfolio's
returns, in the same operations and order as :mod:`rebalancer.core.vol_bands` (so the
floats are the same); ``tests/backtest/test_compiled_oracle.py`` checks it bar by bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _weighted_vol(returns: np.ndarray, m: int, lam: float, window: int) -> float:
    """:func:`vol_bands.weighted_vol` of ``returns[:m]``; NaN when there is none."""
    start = max(0, m - window)
    if m - start <= 0:
        return math.nan
    num = 0.0
    den = 0.0
    for j in range(m - start):
        w = lam ** float(j)  # pow(), as Python: numba multiplies out an int power
        r = returns[m - 1 - j]
        num += w * r * r
        den += w
    return math.sqrt(num / den)


@njit(cache=True)
def vol_table(
    closes: np.ndarray, weights: np.ndarray, lam: float, window: int
) -> np.ndarray:
    """(T, A + 1): each asset's volatility per bar, then the portfolio's (NaN: none yet)."""
    T, A = closes.shape
    out = np.full((T, A + 1), np.nan)
    rets = np.zeros((A, window + 1))
    port = np.zeros(window + 1)
    for t in range(T):
        lo = max(0, t + 1 - (window + 1))
        m = t - lo  # returns available
        for a in range(A):
            for k in range(m):
                rets[a, k] = math.log(closes[lo + k + 1, a] / closes[lo + k, a])
            out[t, a] = _weighted_vol(rets[a], m, lam, window)
        for k in range(m):
            s = 0.0
            for a in range(A):
                s += weights[a] * rets[a, k]
            port[k] = s
        out[t, A] = _weighted_vol(port, m, lam, window)
    return out
