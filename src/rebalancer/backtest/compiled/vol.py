"""Volatility ratios per bar, compiled: the twin of :meth:`VolScaledThreshold.vols`.

For each bar ``t`` the closes up to and including ``t`` (the last ``window + 1``, as
:class:`~rebalancer.data.history.FrameHistory` gives the trigger), their log returns,
the ``lam``-weighted volatility of each asset's and of the target-weighted portfolio's
returns, in the same operations and order as :mod:`rebalancer.core.vol_bands` (so the
floats are the same); ``tests/backtest/test_compiled_oracle.py`` checks it bar by bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _weighted_vol(returns: np.ndarray, end: int, m: int, powers: np.ndarray) -> float:
    """:func:`vol_bands.weighted_vol` of the ``m`` returns ending before ``end`` (``m`` at
    most the window), ``powers[j] = lam ** j``; NaN when there is none."""
    if m <= 0:
        return math.nan
    num = 0.0
    den = 0.0
    for j in range(m):
        w = powers[j]
        r = returns[end - 1 - j]
        num += w * r * r
        den += w
    return math.sqrt(num / den)


BLOCK = 256


@njit(cache=True)
def _full_window_vols(
    series: np.ndarray, start: int, stop: int, window: int, powers: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[t] = _weighted_vol(series, t + 1, window, powers)`` for ``start <= t < stop``
    (every such bar has a full window), a block of bars at a time: for each ``j`` the
    block's sums advance together (independent lanes the compiler vectorises), each bar's
    sum still in the order ``j = 0, 1, ...`` of :func:`_weighted_vol`, so bit for bit."""
    den = 0.0
    for j in range(window):
        den += powers[j]
    num = np.zeros(BLOCK)
    for b0 in range(start, stop, BLOCK):
        n = min(BLOCK, stop - b0)
        for b in range(n):
            num[b] = 0.0
        for j in range(window):
            w = powers[j]
            base = b0 - j  # returns[end - 1 - j] with end = t + 1
            for b in range(n):
                r = series[base + b]
                num[b] += w * r * r
        for b in range(n):
            out[b0 + b] = math.sqrt(num[b] / den)


@njit(cache=True, parallel=True)
def vol_table(
    closes: np.ndarray, weights: np.ndarray, lam: float, window: int
) -> np.ndarray:
    """(T, A + 1): each asset's volatility per bar, then the portfolio's (NaN: none yet).

    Each log return and each ``lam ** j`` is computed once (the same floats as the core
    computes them again per bar), so a bar costs ``O(window x assets)`` multiplications;
    the columns run across cores (each column's sums in the core's order: bit for bit).
    """
    T, A = closes.shape
    out = np.full((T, A + 1), np.nan)
    powers = np.empty(window + 1)
    for j in range(window + 1):
        powers[j] = lam ** float(j)  # pow(), as Python: numba multiplies out an int power
    rets = np.zeros((A, T))  # rets[a, k]: return from bar k - 1 to bar k (k >= 1)
    port = np.zeros(T)
    for k in range(1, T):
        s = 0.0
        for a in range(A):
            rets[a, k] = math.log(closes[k, a] / closes[k - 1, a])
            s += weights[a] * rets[a, k]
        port[k] = s
    for c in prange(A + 1):
        series = port if c == A else rets[c]
        column = np.full(T, np.nan)
        head = min(T, window)  # bars whose history is shorter than the window
        for t in range(head):
            column[t] = _weighted_vol(series, t + 1, t, powers)
        if window > 0:
            _full_window_vols(series, head, T, window, powers, column)
        out[:, c] = column
    return out
