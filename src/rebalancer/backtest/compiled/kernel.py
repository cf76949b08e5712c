"""The full-semantics kernel: the live cycle (trigger -> plan -> sells -> re-planned buys ->
fills) over a price panel, in float64, compiled with numba.

It is a line-by-line float twin of :mod:`rebalancer.core.planner`,
:mod:`rebalancer.core.weights` (``band_edge``), :mod:`rebalancer.core.fills` and the
triggers; :mod:`rebalancer.backtest.compiled.program` turns a :class:`Strategy` into its
inputs and :mod:`rebalancer.backtest.compiled.engine` runs it. The Decimal replay
(:mod:`rebalancer.backtest.replay`) is its oracle (``tests/backtest/test_compiled_oracle.py``).

Layout: ``L`` legs in the targets' order, the quote one of them (``q``); a leg's amount
of the quote is the cash. Prices are quote per base (the quote's column is 1).

Float differences from the Decimal planner, all documented and tested:

* a gap below :data:`NOISE` (1e-12) of the total is rounding noise (Decimal: 1e-20);
* the buys may spend up to :data:`SPEND_SLACK` (1e-12) more than the cash, relative, before
  a buy counts as refused for insufficient funds (Decimal rounds every step against
  spending instead);
* an amount that lies within :data:`TIE` (1e-9, relative) of a step boundary may land one
  step apart from the Decimal amount: such truncations are counted (``ties``); within
  :data:`SNAP` (1e-12) below a boundary it is taken as the exact multiple it stands for.

No allocation per bar: every buffer is allocated once per run. Statistics are running
(Welford moments and the downside sum of squares of the per-bar simple returns, maximum
drawdown and its duration in bars, turnover, bars with fills); ``N_SKIPS`` counts skip-log
entries (a leg skipped by both the first plan and the buys' re-plan counts twice). Logs are
optional (capacity 0: none). The fee is paid in the asset received (``fee_quote`` False,
Binance and today's paper fill model) or in the quote on top of a buy's cost (``fee_quote``
True, Kraken ``fciq`` and Coinbase: the buy is sized ``spend / (ask * (1 + fee))``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NOISE = 1e-12
SPEND_SLACK = 1e-12
TIE = 1e-9
SNAP = 1e-12

# trigger combination
COMB_BAND, COMB_CAL, COMB_ALL, COMB_ANY, COMB_NEVER = range(5)
# band kinds
BAND_NONE, BAND_STATIC, BAND_VOL = range(3)
# calendar reference
CAL_NONE, CAL_FIRED, CAL_CHECK = range(3)
# fee currency
FEE_RECEIVED, FEE_QUOTE = range(2)
# skip reasons (codes of rebalancer.core.rules.violation and the planner)
REASONS = (
    "",
    "dust",
    "below_min_amount",
    "above_max_amount",
    "below_min_notional",
    "below_min_trade",
    "cost_exceeds_benefit",
    "insufficient_funds",
)
# stats columns (the metrics' definitions: rebalancer.backtest.metrics)
(
    FINAL,
    N_FIRED,
    N_ORDERS,
    N_SKIPS,
    TRADED,
    FEES,
    MAX_DD,
    N_RET,
    MEAN,
    M2,
    TIES,
    N_REB,
    TURNOVER,
    DD_BARS,
    DOWN_SS,
) = range(15)
STATS = 15
# order-log columns: bar, leg, side (+1 buy, -1 sell), amount (base), fill price (quote per
# base, slippage included), cost (quote), fee (units of the fee leg), fee leg, fee valued
# in the quote (the fee asset at the fill price, the quote at 1)
(
    O_BAR,
    O_LEG,
    O_SIDE,
    O_AMOUNT,
    O_PRICE,
    O_COST,
    O_FEE,
    O_FEE_LEG,
    O_FEE_QUOTE,
) = range(9)
ORDER_COLS = 9
# parameter columns of one combination
(
    P_BAND_ABS,
    P_BAND_REL,
    P_STYLE_EDGE,
    P_MIN_TRADE,
    P_SLIPPAGE,
    P_COST_AWARE,
    P_RISK_AVERSION,
    P_VOL_BASE,
    P_VOL_FLOOR,
    P_VOL_CAP,
    P_FEE_SCALE,
) = range(11)
PARAMS = 11


@njit(cache=True)
def _band_width(target: float, band_abs: float, band_rel: float) -> float:
    """:meth:`Threshold.band_width`: the tighter band; NaN means the band is not set."""
    w = math.inf
    if not math.isnan(band_abs):
        w = band_abs
    if not math.isnan(band_rel) and target > 0.0:
        w = min(w, band_rel * target)
    return w


@njit(cache=True)
def _trunc(raw: float, step: float, cap: float, tie: np.ndarray) -> float:
    """:func:`rules.truncate`; counts a truncation within TIE of a step boundary.

    A quotient within SNAP of the boundary above is float noise on an exact multiple (a
    round amount computed through a division): it is taken as that multiple unless that
    would exceed ``cap`` (the balance, for a sell).
    """
    if raw <= 0.0:
        return 0.0
    if step <= 0.0:
        return raw
    r = raw / step
    k = math.floor(r)
    near = round(r)
    if near > 0 and abs(r - near) <= TIE * max(r, 1.0):
        tie[0] += 1
        if near > k and near - r <= SNAP * r and near * step <= cap:
            k = near
    return k * step


@njit(cache=True)
def _violation(
    amount: float, price: float, min_amt: float, max_amt: float, min_notional: float,
    min_trade: float,
) -> int:
    """The planner's checks in its order (:func:`rules.violation`, then ``min_trade``)."""
    if amount <= 0.0:
        return 1
    if amount < min_amt:
        return 2
    if amount > max_amt:
        return 3
    notional = amount * price
    if notional < min_notional:
        return 4
    if notional < min_trade:
        return 5
    return 0


@njit(cache=True)
def _sign(x: float, noise: float) -> int:
    if x > noise:
        return 1
    if x < -noise:
        return -1
    return 0


@njit(cache=True)
def _desired(
    wt: np.ndarray, tg: np.ndarray, q: int, edge: bool, band_abs: float, band_rel: float,
    out: np.ndarray, blo: np.ndarray, bhi: np.ndarray,
) -> None:
    """:func:`weights.desired_weights` (``band_edge`` when ``edge``, else the targets)."""
    n = wt.shape[0]
    if not edge:
        for i in range(n):
            out[i] = tg[i]
        return
    s = 0.0
    for i in range(n):
        w = _band_width(tg[i], band_abs, band_rel)
        blo[i] = max(0.0, tg[i] - w)
        bhi[i] = tg[i] + w
        out[i] = min(max(wt[i], blo[i]), bhi[i])
        s += out[i]
    excess = s - 1.0
    if excess != 0.0 and q >= 0:
        qv = out[q]
        wanted = qv - excess
        out[q] = min(max(wanted, blo[q]), bhi[q])
        excess = 0.0 if out[q] == wanted else excess - (qv - out[q])
    if excess != 0.0:
        room = 0.0
        for i in range(n):
            g = out[i] - tg[i]
            if g * excess > 0.0:
                room += g
        if room != 0.0:
            k = min(1.0, excess / room)
            for i in range(n):
                g = out[i] - tg[i]
                if g * excess > 0.0:
                    lo = min(out[i], tg[i])
                    hi = max(out[i], tg[i])
                    out[i] = min(max(out[i] - k * g, lo), hi)


@njit(cache=True)
def _log_skip(
    bar: int, leg: int, side: int, reason: int, skip_log: np.ndarray, counts: np.ndarray
) -> None:
    """Append (bar, leg, side, reason) to the skip log (``counts[1]`` entries so far)."""
    m = counts[1]
    if m < skip_log.shape[0]:
        skip_log[m, 0] = bar
        skip_log[m, 1] = leg
        skip_log[m, 2] = side
        skip_log[m, 3] = reason
    counts[1] = m + 1


@njit(cache=True)
def _plan(
    bar: int, phase_all: bool, amt: np.ndarray, px: np.ndarray, tg: np.ndarray, q: int,
    fee: np.ndarray, step: np.ndarray, min_amt: np.ndarray, max_amt: np.ndarray,
    min_notional: np.ndarray, prm: np.ndarray, fee_quote: bool,
    ws: np.ndarray, out_amount: np.ndarray, out_side: np.ndarray,
    skip_log: np.ndarray, counts: np.ndarray, tie: np.ndarray,
) -> int:
    """:func:`planner.plan`: fills ``out_amount``/``out_side`` (+1 buy, -1 sell, 0 none)
    per leg and logs skipped legs; returns the number of orders. ``ws``: 8 x L scratch."""
    n = amt.shape[0]
    val, wt, d, blo, bhi, ks, kb, side = ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7]
    total = 0.0
    for i in range(n):
        val[i] = amt[i] * px[i]
        total += val[i]
        out_amount[i] = 0.0
        out_side[i] = 0
    if total <= 0.0:
        return 0
    for i in range(n):
        wt[i] = val[i] / total
    slip = prm[P_SLIPPAGE]
    _desired(wt, tg, q, prm[P_STYLE_EDGE] > 0.0, prm[P_BAND_ABS], prm[P_BAND_REL], d, blo, bhi)
    noise = abs(total) * NOISE
    for i in range(n):
        if i == q:
            continue
        f = fee[i] * prm[P_FEE_SCALE]
        sp = px[i] * (1.0 - slip)
        bp = px[i] * (1.0 + slip)
        ks[i] = 1.0 - (sp / px[i]) * (1.0 - f)
        if fee_quote:
            kb[i] = 1.0 - px[i] / (bp * (1.0 + f))
        else:
            kb[i] = 1.0 - (px[i] / bp) * (1.0 - f)
    if prm[P_COST_AWARE] > 0.0:
        ra = prm[P_RISK_AVERSION]
        for i in range(n):
            if i == q:
                continue
            gap = d[i] * total - val[i]
            if abs(gap) <= noise:
                continue
            cost = ks[i] * -gap if gap < 0.0 else kb[i] * gap / (1.0 - kb[i])
            benefit = ra * total * ((wt[i] - tg[i]) ** 2 - (d[i] - tg[i]) ** 2)
            if cost <= benefit:
                continue
            _log_skip(bar, i, 1 if gap > 0.0 else -1, 6, skip_log, counts)
            d[i] = wt[i]
    # sides and the exact post-trade total (solve_total_after)
    for i in range(n):
        side[i] = 0.0 if i == q else _sign(d[i] * total - val[i], noise)
    after = _total_after(val, d, ks, kb, side, total, q)
    for _ in range(n):
        changed = False
        for i in range(n):
            if i != q and side[i] != 0.0 and _sign(d[i] * after - val[i], noise) != side[i]:
                side[i] = 0.0
                changed = True
        if not changed:
            break
        after = _total_after(val, d, ks, kb, side, total, q)
    orders = 0
    proceeds = 0.0
    min_trade = prm[P_MIN_TRADE]
    if phase_all:
        for i in range(n):
            if i == q or side[i] >= 0.0:
                continue
            held = amt[i]
            want = val[i] - d[i] * after
            raw = held if d[i] == 0.0 else min(held, want / px[i])
            amount = _trunc(raw, step[i], held, tie)
            sp = px[i] * (1.0 - slip)
            code = _violation(amount, sp, min_amt[i], max_amt[i], min_notional[i], min_trade)
            if code:
                _log_skip(bar, i, -1, code, skip_log, counts)
            else:
                out_amount[i] = amount
                out_side[i] = -1
                orders += 1
                cost = amount * sp
                proceeds += cost - cost * fee[i] * prm[P_FEE_SCALE]
    cash = amt[q] if q >= 0 else 0.0
    reserve = d[q] * after if q >= 0 else 0.0
    budget = max(0.0, cash + proceeds - reserve)
    need = 0.0
    for i in range(n):
        if i != q and side[i] > 0.0:
            need += (d[i] * after - val[i]) / (1.0 - kb[i])
    scale = min(1.0, budget / need) if need > 0.0 else 1.0
    for i in range(n):
        if i == q or side[i] <= 0.0:
            continue
        f = fee[i] * prm[P_FEE_SCALE]
        bp = px[i] * (1.0 + slip)
        spend = (d[i] * after - val[i]) / (1.0 - kb[i]) * scale
        unit = bp * (1.0 + f) if fee_quote else bp
        amount = _trunc(spend / unit, step[i], math.inf, tie)
        code = _violation(amount, bp, min_amt[i], max_amt[i], min_notional[i], min_trade)
        if code:
            _log_skip(bar, i, 1, code, skip_log, counts)
        else:
            out_amount[i] = amount
            out_side[i] = 1
            orders += 1
    return orders


@njit(cache=True)
def _total_after(
    val: np.ndarray, d: np.ndarray, ks: np.ndarray, kb: np.ndarray, side: np.ndarray,
    total: float, q: int,
) -> float:
    """``V'`` solving ``V' = V - sum_sells k (v - d V') - sum_buys k (d V' - v) / (1 - k)``."""
    num = total
    den = 1.0
    for i in range(val.shape[0]):
        if i == q:
            continue
        if side[i] < 0.0:
            num -= ks[i] * val[i]
            den -= ks[i] * d[i]
        elif side[i] > 0.0:
            u = 1.0 - kb[i]
            num += kb[i] * val[i] / u
            den += kb[i] * d[i] / u
    return num / den


@njit(cache=True)
def _fill(
    bar: int, want_side: int, amt: np.ndarray, px: np.ndarray, q: int, fee: np.ndarray,
    prm: np.ndarray, fee_quote: bool, out_amount: np.ndarray, out_side: np.ndarray,
    order_log: np.ndarray, skip_log: np.ndarray, counts: np.ndarray, acc: np.ndarray,
) -> None:
    """:func:`fills.fill_market_order` + :func:`fills.apply_fill` for the planned orders
    of one side; ``acc`` accumulates (orders, traded value, fees in quote)."""
    slip = prm[P_SLIPPAGE]
    for i in range(amt.shape[0]):
        if out_side[i] != want_side:
            continue
        amount = out_amount[i]
        f = fee[i] * prm[P_FEE_SCALE]
        if want_side < 0:
            price = px[i] * (1.0 - slip)
            cost = amount * price
            amt[i] -= amount
            amt[q] += cost - cost * f
            fee_value = cost * f
            fee_amount = fee_value
            fee_leg = q
        else:
            price = px[i] * (1.0 + slip)
            cost = amount * price
            spend = cost * (1.0 + f) if fee_quote else cost
            if spend > amt[q] * (1.0 + SPEND_SLACK):
                _log_skip(bar, i, 1, 7, skip_log, counts)
                continue
            amt[q] -= spend
            if fee_quote:
                amt[i] += amount
                fee_value = cost * f
                fee_amount = fee_value
                fee_leg = q
            else:
                fee_amount = amount * f
                amt[i] += amount - fee_amount
                fee_value = cost * f  # the fee in the asset valued at the fill price
                fee_leg = i
        m = counts[0]
        if m < order_log.shape[0]:
            order_log[m, O_BAR] = bar
            order_log[m, O_LEG] = i
            order_log[m, O_SIDE] = want_side
            order_log[m, O_AMOUNT] = amount
            order_log[m, O_PRICE] = price
            order_log[m, O_COST] = cost
            order_log[m, O_FEE] = fee_amount
            order_log[m, O_FEE_LEG] = fee_leg
            order_log[m, O_FEE_QUOTE] = fee_value
        counts[0] = m + 1
        acc[0] += 1.0
        acc[1] += cost
        acc[2] += fee_value


@njit(cache=True)
def _band_out(
    amt: np.ndarray, px: np.ndarray, total: float, tg: np.ndarray, bar: int, kind: int,
    prm: np.ndarray, vol_ratio: np.ndarray,
) -> bool:
    """Whether any leg is out of its band (static or volatility-scaled); ``total`` is the
    portfolio's value at ``px``."""
    n = amt.shape[0]
    for i in range(n):
        if tg[i] > 0.0 and amt[i] == 0.0:
            return True
        wt = amt[i] * px[i] / total if total > 0.0 else 0.0
        if kind == BAND_STATIC:
            width = _band_width(tg[i], prm[P_BAND_ABS], prm[P_BAND_REL])
        else:
            r = vol_ratio[bar, i]
            raw = prm[P_VOL_BASE] if math.isnan(r) else prm[P_VOL_BASE] * r
            width = min(max(raw, prm[P_VOL_FLOOR]), prm[P_VOL_CAP])
        if abs(wt - tg[i]) > width:
            return True
    return False


@njit(cache=True)
def simulate(
    prices: np.ndarray, amount0: np.ndarray, targets: np.ndarray, q: int, fee: np.ndarray,
    step: np.ndarray, min_amt: np.ndarray, max_amt: np.ndarray, min_notional: np.ndarray,
    prm: np.ndarray, band_kind: int, combine: int, cal_mode: int, cal_next: np.ndarray,
    times: np.ndarray, vol_ratio: np.ndarray, fee_quote: bool,
    fired: np.ndarray, order_log: np.ndarray, skip_log: np.ndarray,
    final_amounts: np.ndarray, stats: np.ndarray,
    equity: np.ndarray, holdings: np.ndarray,
) -> None:
    """Run one combination over ``prices`` (T x L); see the module doc.

    ``cal_next[j]``: the first scheduled time after bar ``j``'s time (ns), so the calendar
    is due at bar ``i`` with reference bar ``j`` when ``cal_next[j] <= times[i]`` (no
    reference yet: due). ``fired`` (T, or 0 long), ``order_log`` (``ORDER_COLS``
    columns ``O_*``) and ``skip_log`` (bar, leg, side, reason code) are optional outputs;
    their entry counts go to ``stats`` (N_ORDERS, N_SKIPS) even beyond their capacity.
    ``equity`` (T, or 0 long: not kept) receives each bar's value after its trades (quote)
    and ``holdings`` (T x L, or 0 rows) each bar's amounts after its trades; both are
    written in place, nothing is allocated per bar.
    """
    T, n = prices.shape
    amt = amount0.copy()
    ws = np.zeros((8, n))
    out_amount = np.zeros(n)
    out_side = np.zeros(n, dtype=np.int64)
    counts = np.zeros(2, dtype=np.int64)
    tie = np.zeros(1, dtype=np.int64)
    acc = np.zeros(3)
    last_fired = -1
    n_fired = 0
    n_reb = 0
    turnover = 0.0
    peak = 0.0
    peak_bar = 0
    dd_bars = 0
    down_ss = 0.0
    max_dd = 0.0
    prev = 0.0
    n_ret = 0
    mean = 0.0
    m2 = 0.0
    for t in range(T):
        px = prices[t]
        value = 0.0
        for i in range(n):
            value += amt[i] * px[i]
        cal = False
        if cal_mode != CAL_NONE:
            ref = last_fired if cal_mode == CAL_FIRED else t - 1
            cal = ref < 0 or cal_next[ref] <= times[t]
        # the band only where it decides (no side effects: all-of stops at a calendar not
        # due, any-of at one due)
        need_band = band_kind != BAND_NONE and (
            combine == COMB_BAND
            or (combine == COMB_ALL and cal)
            or (combine == COMB_ANY and not cal)
        )
        band = need_band and _band_out(amt, px, value, targets, t, band_kind, prm, vol_ratio)
        if combine == COMB_BAND:
            fire = band
        elif combine == COMB_CAL:
            fire = cal
        elif combine == COMB_ALL:
            fire = band and cal
        elif combine == COMB_ANY:
            fire = band or cal
        else:
            fire = False
        if fire:
            n_fired += 1
            last_fired = t
            if fired.shape[0] > 0:
                fired[t] = True
            before = acc[1]
            total = value
            _plan(t, True, amt, px, targets, q, fee, step, min_amt, max_amt, min_notional,
                  prm, fee_quote, ws, out_amount, out_side, skip_log, counts, tie)
            _fill(t, -1, amt, px, q, fee, prm, fee_quote, out_amount, out_side, order_log,
                  skip_log, counts, acc)
            _plan(t, False, amt, px, targets, q, fee, step, min_amt, max_amt, min_notional,
                  prm, fee_quote, ws, out_amount, out_side, skip_log, counts, tie)
            _fill(t, 1, amt, px, q, fee, prm, fee_quote, out_amount, out_side, order_log,
                  skip_log, counts, acc)
            if acc[1] > before:  # a bar with fills: a rebalance
                n_reb += 1
                turnover += (acc[1] - before) / total
            value = 0.0
            for i in range(n):
                value += amt[i] * px[i]
        if value >= peak:
            peak = value
            peak_bar = t
        elif peak > 0.0:
            max_dd = max(max_dd, 1.0 - value / peak)
        dd_bars = max(dd_bars, t - peak_bar)
        if t > 0 and prev > 0.0:
            r = value / prev - 1.0
            n_ret += 1
            delta = r - mean
            mean += delta / n_ret
            m2 += delta * (r - mean)
            if r < 0.0:
                down_ss += r * r
        prev = value
        if equity.shape[0] > 0:
            equity[t] = value
        if holdings.shape[0] > 0:
            for i in range(n):
                holdings[t, i] = amt[i]
    for i in range(n):
        final_amounts[i] = amt[i]
    stats[FINAL] = prev
    stats[N_FIRED] = n_fired
    stats[N_ORDERS] = counts[0]
    stats[N_SKIPS] = counts[1]
    stats[TRADED] = acc[1]
    stats[FEES] = acc[2]
    stats[MAX_DD] = max_dd
    stats[N_RET] = n_ret
    stats[MEAN] = mean
    stats[M2] = m2
    stats[TIES] = tie[0]
    stats[N_REB] = n_reb
    stats[TURNOVER] = turnover
    stats[DD_BARS] = dd_bars
    stats[DOWN_SS] = down_ss


@njit(cache=True, parallel=True)
def simulate_many(
    prices: np.ndarray, amount0: np.ndarray, targets: np.ndarray, q: int, fee: np.ndarray,
    step: np.ndarray, min_amt: np.ndarray, max_amt: np.ndarray, min_notional: np.ndarray,
    params: np.ndarray, band_kind: int, combine: int, cal_mode: int, cal_next: np.ndarray,
    times: np.ndarray, vol_ratio: np.ndarray, fee_quote: bool,
) -> np.ndarray:
    """:func:`simulate` for every row of ``params`` (C x PARAMS) across cores: C x STATS."""
    C = params.shape[0]
    n = prices.shape[1]
    out = np.zeros((C, STATS))
    finals = np.zeros((C, n))
    no_bars = np.zeros(0, dtype=np.bool_)
    no_orders = np.zeros((0, ORDER_COLS))
    no_skips = np.zeros((0, 4), dtype=np.int64)
    no_equity = np.zeros(0)
    no_holdings = np.zeros((0, n))
    for c in prange(C):
        simulate(prices, amount0, targets, q, fee, step, min_amt, max_amt, min_notional,
                 params[c], band_kind, combine, cal_mode, cal_next, times, vol_ratio,
                 fee_quote, no_bars, no_orders, no_skips, finals[c], out[c],
                 no_equity, no_holdings)
    return out
