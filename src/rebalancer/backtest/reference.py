"""Reference semantics: the plain rebalancing rule other backtesting libraries implement.

This is the oracle the compiled sweep kernel (:mod:`rebalancer.backtest.sweep`) is tested
against, written for clarity in NumPy. Its rules:

* **legs**: ``n`` assets with target weights ``targets`` plus the cash (quote) leg, whose
  target is the rest, ``1 - sum(targets)`` (it may be 0). Prices are closes, in quote units.
* **bar 0**: buy every asset to target from the starting cash ``capital``.
* **later bars**: value the holdings at the close. A bar is *due* when ``every`` is None or
  ``bar % every == 0``. On a due bar the portfolio is traded back to target when the largest
  ``|weight - target|`` over all legs (cash included) exceeds ``band_abs`` (strictly);
  ``band_abs=None`` fires on every due bar (the calendar rule), ``band_abs=inf`` never fires
  (buy-and-hold).
* **fee**: ``fee_rate`` x traded notional, paid from cash; the targets apply to the total
  *after* the fee, so the post-trade total ``V'`` solves ``V' = V - f * sum_i |w_i V' - v_i|``
  (assets only: cash is not traded). The right side is piecewise linear in ``V'``; it is
  solved exactly on the linear piece that holds the root (:func:`solve_post_fee_total`).
* **equity** on a bar is the value at its close after that bar's trade (if any).

The bar-0 purchase is not counted as a rebalance: its notional and fee are reported apart
(``initial_traded``, ``initial_fee``); ``total_fees`` includes it, ``total_traded`` does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: bars scanned at once when looking for the next firing bar
_SCAN_CHUNK = 256


@dataclass(frozen=True)
class RunResult:
    """One backtest under the reference semantics.

    ``equity`` (per bar, quote units, after that bar's trade); ``rebalance_bars`` (bar
    indices, bar 0 excluded); per rebalance: ``traded`` notional (buys + sells, quote units),
    ``fees`` paid and ``value_before`` (total just before trading); ``holdings`` (final units
    per asset) and ``cash`` (final quote balance).
    """

    equity: FloatArray
    rebalance_bars: IntArray
    traded: FloatArray
    fees: FloatArray
    value_before: FloatArray
    initial_traded: float
    initial_fee: float
    holdings: FloatArray
    cash: float

    @property
    def final_value(self) -> float:
        return float(self.equity[-1])

    @property
    def n_rebalances(self) -> int:
        return int(self.rebalance_bars.size)

    @property
    def total_fees(self) -> float:
        """Every fee paid, the bar-0 purchase included."""
        return self.initial_fee + float(self.fees.sum())

    @property
    def total_traded(self) -> float:
        """Notional traded by the rebalances (the bar-0 purchase excluded)."""
        return float(self.traded.sum())

    @property
    def turnover(self) -> float:
        """Sum over rebalances of traded notional / value before trading (buys + sells)."""
        return float((self.traded / self.value_before).sum()) if self.traded.size else 0.0


def check_inputs(
    prices: ArrayLike, targets: ArrayLike, capital: float, fee_rate: float
) -> tuple[FloatArray, FloatArray, float]:
    """Validate and convert; return ``(prices (T, n), targets (n,), cash_target)``.

    Raises :class:`ValueError` naming the input, the rule and the value found.
    """
    p = np.ascontiguousarray(prices, dtype=np.float64)
    w = np.ascontiguousarray(targets, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"prices must be a 2-D array (bars, assets), got shape {p.shape}")
    if w.shape != (p.shape[1],):
        raise ValueError(f"targets must have one weight per asset column {p.shape[1]}: {w.shape}")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        bad = np.argwhere(~np.isfinite(p) | (p <= 0))[0]
        raise ValueError(
            f"prices must be finite and > 0: bar {bad[0]} asset column {bad[1]} is "
            f"{p[bad[0], bad[1]]} (drop gaps with an inner join before backtesting)"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"targets must be finite and >= 0, got {w.tolist()}")
    total = float(w.sum())
    if total > 1 + 1e-12:
        raise ValueError(f"targets of the assets sum to {total} > 1 (cash takes 1 - sum)")
    if not (math.isfinite(capital) and capital > 0):
        raise ValueError(f"capital must be finite and > 0, got {capital}")
    if not (0 <= fee_rate < 1):
        raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate}")
    return p, w, max(0.0, 1.0 - total)


def post_fee_total(
    total: float, values: FloatArray, targets: FloatArray, fee_rate: float, buf: FloatArray
) -> float:
    """Exact root ``x`` of ``x = total - fee_rate * sum_i |targets_i * x - values_i|``.

    ``g(x) = x - total + f * sum|w_i x - v_i|`` increases strictly (slope >= 1 - f > 0), is
    negative at 0 (cash >= 0 means ``sum v_i <= total``) and >= 0 at ``total``. Its kinks
    are ``v_i / w_i``: find the piece where ``g`` changes sign, read each term's sign ``s_i``
    there and solve the linear equation ``x (1 + f sum s_i w_i) = total + f sum s_i v_i``.

    The one solver of the reference semantics: plain loops, no allocation (``buf`` holds
    ``n + 2`` floats), so the reference kernel (:mod:`.sweep`) compiles this same function
    with numba.
    """
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


def solve_post_fee_total(
    total: float, values: FloatArray, targets: FloatArray, fee_rate: float
) -> float:
    """:func:`post_fee_total` with its own scratch buffer."""
    return float(post_fee_total(total, values, targets, fee_rate, np.empty(values.shape[0] + 2)))


@dataclass
class _Book:
    """Mutable state of the reference run: units held and cash."""

    units: FloatArray
    cash: float


def _trade_to_target(
    book: _Book, price: FloatArray, targets: FloatArray, cash_target: float, fee_rate: float
) -> tuple[float, float, float, float]:
    """Trade ``book`` to target at ``price``; return (value before, after, traded, fee)."""
    values = book.units * price
    before = float(values.sum()) + book.cash
    after = solve_post_fee_total(before, values, targets, fee_rate)
    new_values = targets * after
    traded = float(np.abs(new_values - values).sum())
    book.units = new_values / price
    book.cash = cash_target * after
    return before, after, traded, fee_rate * traded


def simulate(
    prices: ArrayLike,
    targets: ArrayLike,
    *,
    capital: float = 1.0,
    fee_rate: float = 0.0,
    band_abs: float | None = math.inf,
    every: int | None = None,
) -> RunResult:
    """Run the reference rule over ``prices`` (bars x assets) with asset ``targets``.

    ``band_abs``: fire when the largest |weight - target| exceeds it (``inf`` = buy-and-hold,
    ``None`` = fire on every due bar). ``every``: only bars ``b`` with ``b % every == 0`` are
    due (None = every bar). See the module docstring for the exact rules.
    """
    p, w, cash_target = check_inputs(prices, targets, capital, fee_rate)
    if every is not None and every < 1:
        raise ValueError(f"every must be a whole number of bars >= 1, got {every}")
    band = -1.0 if band_abs is None else float(band_abs)
    if math.isnan(band):
        raise ValueError("band_abs is NaN: give a number, inf (never) or None (always)")
    n_bars = p.shape[0]
    book = _Book(units=np.zeros(p.shape[1]), cash=float(capital))
    _, first, initial_traded, initial_fee = _trade_to_target(book, p[0], w, cash_target, fee_rate)
    equity = np.empty(n_bars)
    equity[0] = first
    bars: list[int] = []
    traded: list[float] = []
    fees: list[float] = []
    before: list[float] = []
    t = 1
    while t < n_bars:
        end = min(n_bars, t + _SCAN_CHUNK)
        values = p[t:end] * book.units
        totals = values.sum(axis=1) + book.cash
        equity[t:end] = totals
        drift = np.abs(values / totals[:, None] - w).max(axis=1)
        drift = np.maximum(drift, np.abs(book.cash / totals - cash_target))
        fire = drift > band
        if every is not None:
            fire &= np.arange(t, end) % every == 0
        if not fire.any():
            t = end
            continue
        bar = t + int(np.argmax(fire))
        v_before, after, notional, fee = _trade_to_target(book, p[bar], w, cash_target, fee_rate)
        equity[bar] = after
        bars.append(bar)
        traded.append(notional)
        fees.append(fee)
        before.append(v_before)
        t = bar + 1
    return RunResult(
        equity=equity,
        rebalance_bars=np.asarray(bars, dtype=np.int64),
        traded=np.asarray(traded, dtype=np.float64),
        fees=np.asarray(fees, dtype=np.float64),
        value_before=np.asarray(before, dtype=np.float64),
        initial_traded=initial_traded,
        initial_fee=initial_fee,
        holdings=book.units,
        cash=book.cash,
    )


def buy_and_hold(
    prices: ArrayLike, targets: ArrayLike, *, capital: float = 1.0, fee_rate: float = 0.0
) -> RunResult:
    """Buy to target on bar 0 (paying the fee) and never trade again."""
    return simulate(prices, targets, capital=capital, fee_rate=fee_rate, band_abs=math.inf)


def calendar(
    prices: ArrayLike,
    targets: ArrayLike,
    every: int,
    *,
    capital: float = 1.0,
    fee_rate: float = 0.0,
    band_abs: float | None = None,
) -> RunResult:
    """Trade back to target every ``every`` bars (only when out of ``band_abs`` if given)."""
    return simulate(
        prices, targets, capital=capital, fee_rate=fee_rate, band_abs=band_abs, every=every
    )


def frame_inputs(
    closes: pd.DataFrame, targets: Mapping[str, float], quote: str = "USDT"
) -> tuple[FloatArray, FloatArray]:
    """``closes`` (columns = assets) and ``targets`` (asset -> weight; the quote's own
    weight, if present, is the cash leg and is left out) -> arrays for :func:`simulate`.

    Every non-quote target needs a column; columns without a target are refused.
    """
    assets = [a for a in targets if a != quote]
    missing = [a for a in assets if a not in closes.columns]
    if missing:
        raise ValueError(f"no close prices for {missing}: columns are {list(closes.columns)}")
    extra = [c for c in closes.columns if c not in targets]
    if extra:
        raise ValueError(f"columns {extra} have no target weight (give them 0 to hold none)")
    prices = closes[assets].to_numpy(dtype=np.float64)
    weights = np.array([float(targets[a]) for a in assets], dtype=np.float64)
    if quote in targets and abs(float(weights.sum()) + float(targets[quote]) - 1) > 1e-9:
        raise ValueError(
            f"targets sum to {float(weights.sum()) + float(targets[quote])}, not 1 "
            f"(the {quote} weight is the cash leg)"
        )
    return prices, weights
