"""The backtest engine: the live loop replayed over history, with benchmarks and metrics.

:func:`run_backtest` runs ``service.run_cycle`` -- the same triggers, planner and paper fill
model as the live bot -- over a closes panel, then runs two benchmarks through the same
engine and computes :mod:`.metrics` for all three:

* ``buy_and_hold``: trade to target on the first bar (as a start from cash does), then never;
* ``calendar``: trade to target on the first bar and then on a schedule (monthly by default).

With a start from given holdings a third curve, ``hold_start``, holds them untouched.

Fees are those of the fills (what is really traded), never ``total x fee x assets``.

**Skipping quiet bars** (``fast=True``, the default). Between two cycles that trade the
holdings are fixed, so whether a bar *may* fire depends on its prices alone. Each trigger
gives a conservative mask of candidate bars over a window of bars: a threshold in floats
with a margin of ``1e-9`` weight units (far above float error, so no firing bar is ever
missed), a calendar by calling its own ``due`` with the times the bar-by-bar loop would
pass, a volatility-scaled band with its widths computed for every bar at once in floats from
the closes up to that bar (:func:`vol_band_widths`, the same margin), ``AllOf``/``AnyOf``
by combining their parts, anything else every bar. The real cycle (exact Decimal decision
and planner) runs on candidate bars only. A quiet cycle changes nothing but the journal's
``last_check``, so the journal here reports the previous bar as the last check, exactly as
the bar-by-bar loop would. ``fast=False`` runs
:func:`rebalancer.backtest.replay.replay` itself; tests check both give identical decisions,
fills and final balances on real data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.backtest.metrics import Metrics, Premium, compute_metrics, rebalancing_premium
from rebalancer.backtest.replay import Ranges, paper_exchange, replay, value
from rebalancer.core.cron import Cron
from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.errors import ConfigError
from rebalancer.core.fills import apply_fill
from rebalancer.core.lots import Lot, LotBook, Method, TimedFill, YearGains, gains_by_year, realise
from rebalancer.core.model import ZERO, MarketRules
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import (
    AllOf,
    AnyOf,
    Calendar,
    Decision,
    Never,
    Threshold,
    Trigger,
    TriggerContext,
)
from rebalancer.core.venue import REFERENCE, VenueModel
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.history import FrameHistory
from rebalancer.ports import TriggerTimes
from rebalancer.service import CycleReport, run_cycle

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

#: the calendar benchmark's default schedule: midnight UTC on the 1st of each month
MONTHLY = "0 0 1 * *"
#: weight units a float drift may fall short of its band and still be checked exactly
SCAN_MARGIN = 1e-9
_WINDOW = 4096
_FIRST_WINDOW = 8
#: first window after a decision when every mask is vectorised (no per-bar Python work)
_FIRST_WINDOW_VECTOR = 256


@dataclass(frozen=True)
class FirstBar:
    """Fire on the first cycle only (buy-and-hold after the initial purchase)."""

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        if ctx.last_fired is None and ctx.last_check is None:
            return Decision(True, "first bar: buy to target")
        return Decision(False, "buy-and-hold: bought on the first bar only")

    def describe(self) -> str:
        return "buy to target on the first bar, then hold"


@dataclass(frozen=True)
class Trade:
    """One fill of the backtest; ``fee_quote`` is the fee valued in the quote."""

    bar: int
    time: datetime
    asset: str
    side: str
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    fee_quote: Decimal
    reason: str


@dataclass
class Run:
    """One engine run: every cycle that ran, per-bar equity and weights, the trades."""

    name: str
    strategy: Strategy
    times: pd.DatetimeIndex
    equity: FloatArray
    weights: pd.DataFrame
    cycles: list[tuple[int, CycleReport]]
    initial: dict[str, Decimal]
    initial_value: Decimal
    final_balances: dict[str, Decimal]
    final_value: Decimal
    metrics: Metrics
    fast: bool

    @property
    def fired_bars(self) -> list[int]:
        """Bars whose decision fired (traded or not)."""
        return [i for i, r in self.cycles if r.decision.fire]

    @property
    def rebalance_bars(self) -> list[int]:
        """Bars where at least one order filled."""
        return [i for i, r in self.cycles if r.fills]

    @property
    def fees(self) -> Decimal:
        return sum((r.fees_in_quote() for _, r in self.cycles), ZERO)

    @property
    def traded(self) -> Decimal:
        return sum((r.traded_value for _, r in self.cycles), ZERO)

    @property
    def trades(self) -> list[Trade]:
        out: list[Trade] = []
        for i, r in self.cycles:
            snap = r.snapshot
            for f in r.fills:
                rate = Decimal(1) if f.fee_asset == snap.quote else snap.prices.get(f.fee_asset)
                out.append(
                    Trade(
                        i,
                        r.at,
                        f.asset,
                        f.side.value,
                        f.amount,
                        f.price,
                        f.cost,
                        f.fee,
                        f.fee_asset,
                        f.fee * (rate if rate is not None else f.price),
                        r.decision.reason,
                    )
                )
        return out

    def realised_gains(self, method: Method = "fifo") -> dict[int, YearGains]:
        """Realised gains and losses per year of the run's fills, in tax lots by ``method``;
        starting holdings are lots bought at the first bar's closes."""
        quote = self.strategy.quote
        lots: dict[str, tuple[Lot, ...]] = {}
        for a, amt in self.initial.items():
            if a == quote or amt <= 0 or a not in self.weights.columns:
                continue
            if self.cycles and self.cycles[0][0] == 0:  # bar 0 ran a cycle: its own prices
                cost = amt * self.cycles[0][1].snapshot.prices[a]
            else:  # untouched at bar 0: its value there is its weight of the equity
                share = float(self.weights[a].iloc[0]) * float(self.equity[0])
                cost = Decimal(repr(share))
            lots[a] = (Lot(f"start:{a}", a, amt, cost, self.times[0]),)
        fills = [TimedFill(r.at, f, quote) for _, r in self.cycles for f in r.fills]
        return gains_by_year(realise(fills, method, LotBook(lots))[1])

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        gains = self.realised_gains()
        return {
            "name": self.name,
            "trigger": self.strategy.trigger.describe(),
            "initial_value": float(self.initial_value),
            "final_value": float(self.final_value),
            "total_return": m.total_return,
            "cagr": m.cagr,
            "volatility": m.volatility,
            "sharpe": m.sharpe,
            "sortino": m.sortino,
            "max_drawdown": m.max_drawdown,
            "max_drawdown_days": m.max_drawdown_duration.total_seconds() / 86400,
            "calmar": m.calmar,
            "rebalances": m.n_rebalances,
            "orders": sum(len(r.fills) for _, r in self.cycles),
            "traded": m.traded,
            "turnover": m.turnover,
            "fees": m.fees,
            "realised_gain_fifo": float(sum((g.net for g in gains.values()), ZERO)),
            "final_balances": {k: float(v) for k, v in self.final_balances.items()},
        }


@dataclass
class BacktestResult:
    """The strategy's run, the benchmarks' runs and the premium over buy-and-hold."""

    run: Run
    benchmarks: dict[str, Run]
    bar: timedelta
    taker_fee: Decimal
    slippage: Decimal
    premium: Premium | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def trades(self) -> list[Trade]:
        return self.run.trades

    def trades_frame(self) -> pd.DataFrame:
        cols = ["bar", "time", "asset", "side", "amount", "price", "cost", "fee", "fee_asset"]
        rows = [
            {
                "bar": t.bar,
                "time": t.time.isoformat(),
                "asset": t.asset,
                "side": t.side,
                "amount": float(t.amount),
                "price": float(t.price),
                "cost": float(t.cost),
                "fee": float(t.fee),
                "fee_asset": t.fee_asset,
                "fee_quote": float(t.fee_quote),
                "reason": t.reason,
            }
            for t in self.trades
        ]
        return pd.DataFrame(rows, columns=[*cols, "fee_quote", "reason"])

    def summary(self) -> dict[str, Any]:
        r = self.run
        return {
            "start": r.times[0].isoformat(),
            "end": r.times[-1].isoformat(),
            "bars": len(r.times),
            "bar_seconds": self.bar.total_seconds(),
            "quote": r.strategy.quote,
            "targets": {k: float(v) for k, v in r.strategy.targets.items()},
            "taker_fee": float(self.taker_fee),
            "slippage": float(self.slippage),
            "strategy": r.summary(),
            "benchmarks": {k: b.summary() for k, b in self.benchmarks.items()},
            "premium_vs_buy_and_hold": None
            if self.premium is None
            else {"total": self.premium.total, "annualised": self.premium.annualised},
            "rebalance_times": [r.times[i].isoformat() for i in r.rebalance_bars],
            "notes": list(self.notes),
        }


# -- the decision loop ------------------------------------------------------------------------


class _BarJournal(MemoryJournal):
    """Journal for the skipping loop: the last check is always the previous bar."""

    def __init__(self) -> None:
        super().__init__()
        self.previous_bar: datetime | None = None

    @property
    def last_fired(self) -> datetime | None:
        return super().trigger_times().last_fired

    def trigger_times(self) -> TriggerTimes:
        return TriggerTimes(self.previous_bar, self.last_fired)


def close_times(index: pd.Index, bar: timedelta) -> list[datetime]:
    """``[t.to_pydatetime() + bar for t in index]``, converted in one vectorised step
    (the per-element form took tens of ms on 30k-bar panels); same objects, same tzinfo."""
    if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
        return list((index + bar).to_pydatetime())
    return [t.to_pydatetime() + bar for t in index]


class _CloseTimes:
    """The close times ``close_times(index, bar)``, converted only when read: one element at
    a time (candidate bars), or all at once for the masks that walk every bar (calendar)."""

    def __init__(self, index: pd.Index, bar: timedelta) -> None:
        self._index, self._bar = index, bar
        self._all: list[datetime] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def at(self, i: int) -> datetime:
        if self._all is not None:
            return self._all[i]
        stamp: Any = self._index[i]
        return stamp.to_pydatetime() + self._bar  # type: ignore[no-any-return]

    def all(self) -> list[datetime]:
        if self._all is None:
            self._all = close_times(self._index, self._bar)
        return self._all


def _dec_row(prices: FloatArray, assets: list[str]) -> dict[str, Decimal]:
    return {a: Decimal(repr(float(v))) for a, v in zip(assets, prices, strict=True)}


@dataclass
class _Scan:
    """What the candidate masks see: fixed holdings and the window's prices and times."""

    strategy: Strategy
    prices: FloatArray  # (window, assets)
    units: FloatArray
    cash: float
    clock: _CloseTimes  # close times of the whole panel (lazy)
    previous: datetime | None  # close time of the bar before the window
    last_fired: datetime | None
    targets: FloatArray  # per asset (assets order)
    cash_target: float
    start: int = 0  # bar index of the window's first bar
    all_prices: FloatArray | None = None  # the whole panel, for look-back triggers
    cache: dict[int, FloatArray] = field(default_factory=dict)

    @property
    def times(self) -> list[datetime]:
        """Close times of the window."""
        return self.clock.all()[self.start : self.start + len(self.prices)]


def _threshold_mask(trig: Threshold, s: _Scan) -> BoolArray:
    values = s.prices * s.units
    total = values.sum(axis=1) + s.cash
    n = len(total)
    if np.any(total <= 0):
        return np.ones(n, dtype=np.bool_)
    if (s.cash_target > 0 and s.cash == 0) or bool(np.any((s.targets > 0) & (s.units == 0))):
        return np.ones(n, dtype=np.bool_)  # a leg with a target is not held at all
    limits = s.cache.get(id(trig))
    if limits is None:  # the same every window: computed once per run
        names = [*s.strategy.assets, s.strategy.quote]
        widths = np.array([float(trig.band_width(s.strategy.targets.get(a, ZERO))) for a in names])
        limits = s.cache[id(trig)] = widths - SCAN_MARGIN
    # the same quotients as dividing column_stack([values, cash]) by the total, leg by leg
    out = (np.abs(values / total[:, None] - s.targets) > limits[:-1]).any(axis=1)
    out |= np.abs(s.cash / total - s.cash_target) > limits[-1]
    return np.asarray(out, dtype=np.bool_)


def vol_band_widths(
    trig: VolScaledThreshold, prices: FloatArray, targets: FloatArray
) -> FloatArray:
    """Band half-widths per bar (rows) and leg (assets, then the quote) in floats.

    The same definition as :meth:`VolScaledThreshold.bands` on the closes up to each bar
    (no look-ahead), vectorised: the EWMA numerator is a convolution of the squared returns
    with the kernel ``lam**j`` (``j`` < window), truncated at the first bars.
    """
    n_bars, n_assets = prices.shape
    lam = 0.5 ** (1.0 / trig.half_life)
    w = trig.returns_window
    rets = np.log(prices[1:] / prices[:-1])  # row k: return into bar k + 1
    port = rets @ targets if n_assets else np.zeros(len(rets))
    kernel = lam ** np.arange(w)
    m = np.minimum(np.arange(1, n_bars), w)
    den = (1 - lam**m) / (1 - lam) if lam < 1 else m.astype(np.float64)

    def vols(r: FloatArray) -> FloatArray:
        num = np.convolve(r * r, kernel)[: len(r)]
        out = np.full(n_bars, np.nan)
        out[1:] = np.sqrt(num / den)
        return out

    port_vol = vols(port)
    cols = [vols(rets[:, j]) if trig.per_asset else port_vol for j in range(n_assets)]
    vol = np.column_stack([*cols, port_vol]) if cols else port_vol[:, None]
    base, floor, cap = float(trig.base_band), float(trig.floor), float(trig.cap)
    raw = np.where(np.isnan(vol), base, base * vol / trig.reference_vol)
    return np.asarray(np.clip(raw, floor, cap), dtype=np.float64)


def _vol_mask(trig: VolScaledThreshold, s: _Scan) -> BoolArray:
    n = len(s.prices)
    if s.all_prices is None:
        return np.ones(n, dtype=np.bool_)
    widths = s.cache.get(id(trig))
    if widths is None:
        widths = s.cache[id(trig)] = vol_band_widths(trig, s.all_prices, s.targets)
    values = s.prices * s.units
    total = values.sum(axis=1) + s.cash
    if np.any(total <= 0):
        return np.ones(n, dtype=np.bool_)
    legs = np.column_stack([values, np.full(n, s.cash)]) / total[:, None]
    targets = np.append(s.targets, s.cash_target)
    held = np.append(s.units, s.cash)
    band = widths[s.start : s.start + n]
    out = np.abs(legs - targets) > band - SCAN_MARGIN
    zero_held = (targets > 0) & (held == 0)
    return np.asarray(out.any(axis=1) | bool(zero_held.any()), dtype=np.bool_)


def _calendar_mask(trig: Calendar, s: _Scan) -> BoolArray:
    times = s.times
    mask = np.zeros(len(times), dtype=np.bool_)
    if trig.since == "fired":
        # the reference time is fixed in the window and ``due`` is monotone in ``now``:
        # find the first due bar by bisection, with the trigger's own ``due``
        lo, hi = 0, len(times)
        while lo < hi:
            mid = (lo + hi) // 2
            prev = times[mid - 1] if mid > 0 else s.previous
            if trig.due(TriggerContext(times[mid], prev, s.last_fired)):
                hi = mid
            else:
                lo = mid + 1
        mask[lo:] = True
        return mask
    previous = s.previous
    for i, now in enumerate(times):
        mask[i] = trig.due(TriggerContext(now, previous, s.last_fired))
        previous = now
    return mask


def _mask(trig: Trigger, s: _Scan) -> BoolArray:
    n = len(s.prices)
    if isinstance(trig, Threshold):
        return _threshold_mask(trig, s)
    if isinstance(trig, Calendar):
        return _calendar_mask(trig, s)
    if isinstance(trig, VolScaledThreshold):
        return _vol_mask(trig, s)
    if isinstance(trig, Never):
        return np.zeros(n, dtype=np.bool_)
    if isinstance(trig, FirstBar):
        mask = np.zeros(n, dtype=np.bool_)
        mask[0] = s.previous is None and s.last_fired is None
        return mask
    if isinstance(trig, AllOf):
        out = np.ones(n, dtype=np.bool_)
        for part in trig.parts:
            out &= _mask(part, s)
        return out
    if isinstance(trig, AnyOf):
        out = np.zeros(n, dtype=np.bool_)
        for part in trig.parts:
            out |= _mask(part, s)
        return out
    return np.ones(n, dtype=np.bool_)


def _vectorised(trig: Trigger) -> bool:
    """True when :func:`_mask` evaluates ``trig`` with array operations only."""
    if isinstance(trig, AllOf | AnyOf):
        return all(_vectorised(p) for p in trig.parts)
    return isinstance(trig, Threshold | VolScaledThreshold | Never | FirstBar)


def _skip_loop(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    times: _CloseTimes,
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    maker_fee: Decimal | None = None,
    ranges: Ranges | None = None,
    venue: VenueModel = REFERENCE,
) -> tuple[list[tuple[int, CycleReport]], dict[str, Decimal]]:
    assets = list(strategy.assets)
    prices = closes[assets].to_numpy(dtype=np.float64)
    quote = strategy.quote
    exchange = paper_exchange(strategy, initial, taker_fee, slippage, rules, maker_fee, venue)
    journal, notifier = _BarJournal(), MemoryNotifier()
    # the first prices fix the default market rules, as in the bar-by-bar loop
    exchange.set_prices(_dec_row(prices[0], assets), times.at(0))
    targets = np.array([float(strategy.targets[a]) for a in assets])
    cash_target = float(strategy.targets.get(quote, ZERO))
    managed = set(strategy.targets)
    history = FrameHistory(closes[assets], times.at(0) - closes.index[0].to_pydatetime())
    cache: dict[int, FloatArray] = {}
    cycles: list[tuple[int, CycleReport]] = []
    first = _FIRST_WINDOW_VECTOR if _vectorised(strategy.trigger) else _FIRST_WINDOW
    t, n_bars, window = 0, len(times), first
    held: tuple[bool, FloatArray, float] | None = None  # balances only change in a cycle
    while t < n_bars:
        end = min(n_bars, t + window)
        if held is None:
            bal = exchange.balances
            held = (
                any(a not in managed and b != 0 for a, b in bal.items()),
                np.array([float(bal.get(a, ZERO)) for a in assets]),
                float(bal.get(quote, ZERO)),
            )
        extra, units, cash = held
        scan = _Scan(
            strategy,
            prices[t:end],
            units,
            cash,
            times,
            times.at(t - 1) if t > 0 else None,
            journal.last_fired,
            targets,
            cash_target,
            t,
            prices,
            cache,
        )
        unmanaged_sell = extra and strategy.policy.unmanaged == "sell"
        mask = np.ones(end - t, bool) if unmanaged_sell else _mask(strategy.trigger, scan)
        hits = np.flatnonzero(mask)
        if hits.size == 0:
            t, window = end, min(2 * window, _WINDOW)
            continue
        window = first
        i = t + int(hits[0])
        journal.previous_bar = times.at(i - 1) if i > 0 else None
        now = times.at(i)
        exchange.set_prices(_dec_row(prices[i], assets), now)
        if ranges is not None:
            exchange.set_ranges(*ranges.after(i))
        report = run_cycle(exchange, journal, notifier, strategy, now, history=history)
        cycles.append((i, report))
        held = None
        t = i + 1
    return cycles, dict(exchange.balances)


def _plain_loop(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    maker_fee: Decimal | None = None,
    ranges: Ranges | None = None,
    venue: VenueModel = REFERENCE,
) -> tuple[list[tuple[int, CycleReport]], dict[str, Decimal]]:
    cycles: list[tuple[int, CycleReport]] = []

    def keep(i: int, report: CycleReport) -> None:
        if report.decision.fire:
            cycles.append((i, report))

    result = replay(
        closes,
        strategy,
        initial,
        taker_fee=taker_fee,
        slippage=slippage,
        bar=bar,
        rules=rules,
        on_bar=keep,
        maker_fee=maker_fee,
        ranges=ranges,
        venue=venue,
    )
    return cycles, result.final_balances


# -- curves ------------------------------------------------------------------------------------


def _curves(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    cycles: list[tuple[int, CycleReport]],
) -> tuple[FloatArray, pd.DataFrame]:
    """Per-bar equity and weights (after each bar's trades), from the fills."""
    assets = list(strategy.assets)
    quote = strategy.quote
    prices = closes[assets].to_numpy(dtype=np.float64)
    n_bars = len(prices)
    units = np.zeros((n_bars, len(assets)))
    cash = np.zeros(n_bars)
    balances = dict(initial)
    changes = {i: r for i, r in cycles if r.fills}
    start = 0
    for i in [*sorted(changes), n_bars]:
        units[start:i] = [float(balances.get(a, ZERO)) for a in assets]
        cash[start:i] = float(balances.get(quote, ZERO))
        if i == n_bars:
            break
        for f in changes[i].fills:
            balances = apply_fill(balances, f, quote)
        start = i
    values = units * prices
    equity = values.sum(axis=1) + cash
    safe = np.where(equity > 0, equity, np.nan)
    legs = np.empty((n_bars, len(assets) + 1))  # the quotients of column_stack([values, cash])
    np.divide(values, safe[:, None], out=legs[:, :-1])
    np.divide(cash, safe, out=legs[:, -1])
    weights = pd.DataFrame(
        legs,
        index=closes.index,
        columns=[*assets, quote],
    )
    return np.asarray(equity, dtype=np.float64), weights


def _run(
    name: str,
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    fast: bool,
    maker_fee: Decimal | None = None,
    ranges: Ranges | None = None,
    venue: VenueModel = REFERENCE,
) -> Run:
    times = _CloseTimes(closes.index, bar)
    kw: dict[str, Any] = {
        "taker_fee": taker_fee,
        "slippage": slippage,
        "rules": rules,
        "maker_fee": maker_fee,
        "ranges": ranges,
        "venue": venue,
    }
    if fast:
        cycles, final = _skip_loop(closes, strategy, initial, times, **kw)
    else:
        cycles, final = _plain_loop(closes, strategy, initial, bar, **kw)
    assets = list(strategy.assets)
    first = _dec_row(closes[assets].to_numpy(dtype=np.float64)[0], assets)
    last = _dec_row(closes[assets].to_numpy(dtype=np.float64)[-1], assets)
    initial_value = value(initial, first, strategy.quote)
    final_value = value(final, last, strategy.quote)
    equity, weights = _curves(closes, strategy, initial, cycles)
    traded = [r for _, r in cycles if r.fills]
    turnover = sum(float(r.traded_value / r.drift.total_value) for r in traded)
    time_index = _time_index(closes.index, bar, times.all)
    metrics = compute_metrics(
        equity,
        bar,
        times=time_index,
        initial=float(initial_value),
        n_rebalances=len(traded),
        fees=float(sum((r.fees_in_quote() for r in traded), ZERO)),
        traded=float(sum((r.traded_value for r in traded), ZERO)),
        turnover=turnover,
    )
    return Run(
        name,
        strategy,
        time_index,
        equity,
        weights,
        cycles,
        dict(initial),
        initial_value,
        final,
        final_value,
        metrics,
        fast,
    )


def _time_index(
    index: pd.Index, bar: timedelta, times: Callable[[], list[datetime]]
) -> pd.DatetimeIndex:
    """``pd.DatetimeIndex([pd.Timestamp(t) for t in times()])`` for ``times() ==
    close_times(index, bar)`` (unit ``us``, no name, no freq), vectorised when it can be."""
    if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
        shifted = (index + bar).as_unit("us")
        return pd.DatetimeIndex(shifted, freq=None).rename(None)  # type: ignore[arg-type]
    return pd.DatetimeIndex([pd.Timestamp(t) for t in times()])


def hold_run(
    closes: pd.DataFrame, strategy: Strategy, initial: Mapping[str, Decimal], bar: timedelta
) -> Run:
    """The starting holdings held untouched (no trade, no fee)."""
    held = replace(strategy, trigger=Never())
    return _run(
        "hold_start",
        closes,
        held,
        initial,
        bar,
        taker_fee=ZERO,
        slippage=ZERO,
        rules=None,
        fast=True,
    )


def start_balances(
    strategy: Strategy, capital: Decimal | None, initial: Mapping[str, Decimal] | None
) -> dict[str, Decimal]:
    """``{quote: capital}`` or the given holdings; exactly one of them must be given."""
    if (capital is None) == (initial is None):
        raise ConfigError("give either capital (start from cash) or initial holdings, not both")
    if capital is not None:
        if not (capital.is_finite() and capital > 0):
            raise ConfigError(f"capital must be a number > 0, got {capital}")
        return {strategy.quote: capital}
    assert initial is not None
    bad = {a: v for a, v in initial.items() if not v.is_finite() or v < 0}
    if bad or not any(v > 0 for v in initial.values()):
        raise ConfigError(f"initial holdings must be >= 0 with one > 0, got {dict(initial)}")
    return dict(initial)


def check_closes(closes: pd.DataFrame, strategy: Strategy) -> pd.DataFrame:
    """The strategy's asset columns of ``closes``; refuses missing columns and bad prices."""
    missing = [a for a in strategy.assets if a not in closes.columns]
    if missing:
        raise ConfigError(
            f"no close prices for {missing}: the data has {list(closes.columns)}; "
            "load those assets or drop them from the targets"
        )
    if len(closes) < 2:
        raise ConfigError(f"a backtest needs at least 2 bars, got {len(closes)}")
    frame = closes[list(strategy.assets)]
    arr = frame.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError("closes must be finite and > 0 (drop gaps with an inner join first)")
    return frame


def run_backtest(
    closes: pd.DataFrame,
    strategy: Strategy,
    *,
    capital: Decimal | None = None,
    initial: Mapping[str, Decimal] | None = None,
    taker_fee: Decimal,
    slippage: Decimal = ZERO,
    bar: timedelta,
    rules: Mapping[str, MarketRules] | None = None,
    calendar: Trigger | None = None,
    benchmarks: bool = True,
    fast: bool = True,
    progress: Callable[[str], None] | None = None,
    maker_fee: Decimal | None = None,
    ranges: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    venue: VenueModel = REFERENCE,
) -> BacktestResult:
    """Backtest ``strategy`` over ``closes`` (UTC index = candle open times; one column per
    asset) with the live loop, plus the benchmarks and metrics described in the module doc.

    ``taker_fee`` and ``slippage`` (fractions) drive the paper fill model; ``rules``
    overrides the paper exchange's Binance-like market rules per asset. ``calendar``: the
    calendar benchmark's trigger (default: monthly). ``fast``: skip quiet bars (exact).

    ``maker_fee`` (None: the taker fee) and ``ranges`` (each bar's lows and highs, frames
    like ``closes``) serve ``strategy.execution.order_type = "limit_inside"``: a limit
    placed at a bar's close fills at its price and the maker fee when the next bar's range
    reaches it (one bar of waiting: optimistic on daily bars), else its rest goes at market
    or waits (:mod:`rebalancer.backtest.replay`). Without ``ranges`` no limit ever fills.
    ``venue``: how the paper exchange fills (:mod:`rebalancer.core.venue`; the fee side).
    """
    frame = check_closes(closes, strategy)
    start = start_balances(strategy, capital, initial)
    kw: dict[str, Any] = {
        "taker_fee": taker_fee,
        "slippage": slippage,
        "rules": rules,
        "fast": fast,
    }
    kw["maker_fee"] = maker_fee
    kw["venue"] = venue
    kw["ranges"] = None if ranges is None else Ranges.from_frames(*ranges, frame)
    note = progress or (lambda _msg: None)
    note("strategy")
    main = _run("strategy", frame, strategy, start, bar, **kw)
    result = BacktestResult(main, {}, bar, taker_fee, slippage)
    if not benchmarks:
        return result
    note("buy-and-hold")
    bh = _run("buy_and_hold", frame, replace(strategy, trigger=FirstBar()), start, bar, **kw)
    cal_trigger = calendar or Calendar(cron=Cron.parse(MONTHLY))
    note("calendar")
    cal = _run("calendar", frame, replace(strategy, trigger=cal_trigger), start, bar, **kw)
    result.benchmarks = {"buy_and_hold": bh, "calendar": cal}
    if initial is not None:
        result.benchmarks["hold_start"] = hold_run(frame, strategy, start, bar)
    result.premium = rebalancing_premium(main.metrics, bh.metrics)
    if not math.isfinite(main.metrics.sharpe):
        result.notes.append("Sharpe undefined (no variation in equity)")
    return result
