"""A :class:`Strategy` and a price panel turned into the compiled kernel's inputs.

Every rule is translated with the core's own definitions (one meaning of each rule):

* the trigger: a band (:class:`Threshold`, absolute and/or relative, or
  :class:`VolScaledThreshold`), a :class:`Calendar` (by period or by cron, since the last
  firing or the last check), or one :class:`AllOf` / :class:`AnyOf` of at most one band
  and one calendar (``hybrid`` included), or :class:`Never`. A calendar becomes, per bar,
  the first scheduled time after that bar's time (:func:`next_scheduled`, checked against
  :meth:`Calendar.due`); volatility bands become per-bar ratios ``vol / reference_vol``
  from :meth:`VolScaledThreshold.vols` on the same history the replay's trigger sees;
* the market rules per leg (step, minimum amount, maximum amount, minimum notional, fee);
* a target path (scheduled optimised targets, :class:`TargetPath`): the bars where the
  targets change and the new rows (:meth:`TargetPath.kernel_input`); volatility bands then
  take the portfolio's volatility under the targets in force at each bar.

Anything else raises :class:`UnsupportedRule`, naming the rule and ``--engine replay``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rebalancer.backtest.compiled import kernel as K
from rebalancer.backtest.compiled.vol import vol_table
from rebalancer.core.errors import ConfigError, DataError
from rebalancer.core.model import MarketRules
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import EPOCH, AllOf, AnyOf, Calendar, Never, Threshold, Trigger
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.history import FrameHistory
from rebalancer.optimise.path import TargetPath

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
FeeCurrency = Literal["received", "quote"]


class UnsupportedRule(ConfigError):
    """A rule the compiled engine does not implement (run it with ``--engine replay``)."""


def _unsupported(what: str) -> UnsupportedRule:
    return UnsupportedRule(
        f"the compiled engine does not implement {what}; run it with `--engine replay` "
        "(the Decimal replay of the live loop)"
    )


@dataclass(frozen=True)
class TriggerProgram:
    """The trigger as the kernel reads it (codes of :mod:`.kernel`)."""

    combine: int
    band_kind: int
    band: Threshold | None
    vol: VolScaledThreshold | None
    calendar: Calendar | None
    first_bar: bool = False


def trigger_program(trigger: Trigger) -> TriggerProgram:
    """Translate ``trigger``; :class:`UnsupportedRule` for any other shape."""
    from rebalancer.backtest.engine import FirstBar  # the backtests' buy-and-hold rule

    if isinstance(trigger, Never):
        return TriggerProgram(K.COMB_NEVER, K.BAND_NONE, None, None, None)
    if isinstance(trigger, AllOf | AnyOf):
        parts = list(trigger.parts)
        combine = K.COMB_ALL if isinstance(trigger, AllOf) else K.COMB_ANY
    else:
        parts = [trigger]
        combine = -1
    bands = [p for p in parts if isinstance(p, Threshold | VolScaledThreshold)]
    # FirstBar (due on the first cycle only) is a calendar checked since the last check
    # whose next time never comes
    cals: list[Calendar | FirstBar] = [p for p in parts if isinstance(p, Calendar | FirstBar)]
    if len(bands) + len(cals) != len(parts) or len(bands) > 1 or len(cals) > 1:
        raise _unsupported(f"the trigger {trigger.describe()}")
    band = bands[0] if bands else None
    first_bar = bool(cals) and isinstance(cals[0], FirstBar)
    cal = cals[0] if cals and isinstance(cals[0], Calendar) else None
    if combine < 0 or not (band and cals):  # one part alone
        combine = K.COMB_BAND if band is not None else K.COMB_CAL
    if combine == K.COMB_CAL and not cals:
        raise _unsupported(f"the trigger {trigger.describe()}")
    kind = K.BAND_NONE
    if isinstance(band, Threshold):
        kind = K.BAND_STATIC
    elif isinstance(band, VolScaledThreshold):
        kind = K.BAND_VOL
    return TriggerProgram(
        combine,
        kind,
        band if isinstance(band, Threshold) else None,
        band if isinstance(band, VolScaledThreshold) else None,
        cal,
        first_bar,
    )


def next_scheduled(calendar: Calendar, t: datetime) -> datetime:
    """The first scheduled time of ``calendar`` after ``t``: due at ``now`` with reference
    ``t`` exactly when this is ``<= now`` (the meaning of :meth:`Calendar.due`)."""
    if calendar.cron is not None:
        return calendar.cron.next_after(t)
    assert calendar.period is not None
    return EPOCH + ((t - EPOCH) // calendar.period + 1) * calendar.period


def close_times(index: pd.Index, bar: timedelta) -> list[datetime]:
    """Each bar's decision time: its open time plus ``bar`` (as the replay runs cycles);
    converted in one vectorised step where the index allows it (same objects)."""
    if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
        return list((index + bar).to_pydatetime())
    return [t.to_pydatetime() + bar for t in index]


class _LazyTimes(Sequence[datetime]):
    """``close_times(index, bar)``, each element converted only when read."""

    def __init__(self, index: pd.Index, bar: timedelta) -> None:
        self._index, self._bar = index, bar

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> datetime: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[datetime]: ...

    def __getitem__(self, i: int | slice) -> datetime | Sequence[datetime]:
        if isinstance(i, slice):
            return close_times(self._index[i], self._bar)
        stamp: Any = self._index[i]
        return stamp.to_pydatetime() + self._bar  # type: ignore[no-any-return]


def calendar_next(
    calendar: Calendar | None, times: Sequence[datetime], times_ns: IntArray | None = None
) -> IntArray:
    """Per bar, :func:`next_scheduled` in ns since the epoch (the schedule is monotone, so
    a bar before the previous answer reuses it: one look-up per scheduled time). With
    ``times_ns`` (the same times in ns, strictly increasing) the bars up to the next
    scheduled time are found by bisection and only those look-ups read ``times``."""
    out = np.zeros(len(times), dtype=np.int64)
    if calendar is None:
        return out
    n = len(times)
    if times_ns is not None and n > 1 and bool(np.all(np.diff(times_ns) > 0)):
        j = 0
        while j < n:
            nxt = _ns(next_scheduled(calendar, times[j]))
            k = max(j + 1, int(np.searchsorted(times_ns, nxt, side="left")))
            out[j:k] = nxt
            j = k
        return out
    known: datetime | None = None
    for j, t in enumerate(times):
        if known is None or t >= known:
            known = next_scheduled(calendar, t)
        out[j] = _ns(known)
    return out


def _ns(t: datetime) -> int:
    delta = t - EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def vol_ratios(
    vol: VolScaledThreshold | None,
    closes: pd.DataFrame,
    legs: list[str],
    quote: str,
    targets: Mapping[str, Decimal],
) -> FloatArray:
    """Per bar and leg ``vol / reference_vol`` (NaN: no history, the base band) as the
    replay's trigger computes it (:func:`vol.vol_table`, the compiled twin of
    :meth:`VolScaledThreshold.vols`); the quote's leg (and every leg when not
    ``per_asset``) takes the portfolio's."""
    out = np.full((len(closes), len(legs)), np.nan)
    if vol is None:
        return out
    assets = [a for a in legs if a != quote]
    table = vol_table(
        closes[assets].to_numpy(dtype=np.float64),
        np.array([float(targets.get(a, 0)) for a in assets]),
        0.5 ** (1.0 / vol.half_life),
        vol.returns_window,
    )
    port = table[:, len(assets)]
    for i, leg in enumerate(legs):
        own = vol.per_asset and leg != quote
        out[:, i] = (table[:, assets.index(leg)] if own else port) / vol.reference_vol
    return out


def vol_ratios_core(
    vol: VolScaledThreshold,
    closes: pd.DataFrame,
    bar: timedelta,
    legs: list[str],
    quote: str,
    targets: Mapping[str, Decimal],
) -> FloatArray:
    """:func:`vol_ratios` from the core's own :meth:`VolScaledThreshold.vols` bar by bar on
    :class:`FrameHistory` (slow: the check of the compiled twin)."""
    out = np.full((len(closes), len(legs)), np.nan)
    assets = [a for a in legs if a != quote]
    history = FrameHistory(closes[assets], bar)
    for t, now in enumerate(close_times(closes.index, bar)):
        per, port = vol.vols(history.closes(assets, now, vol.history_bars), targets)
        for i, leg in enumerate(legs):
            v = per.get(leg, port) if vol.per_asset else port
            out[t, i] = math.nan if v is None else v / vol.reference_vol
    return out


@dataclass(frozen=True)
class Inputs:
    """Everything :func:`kernel.simulate` reads apart from the per-combination params."""

    legs: tuple[str, ...]
    q: int
    prices: FloatArray
    amount0: FloatArray
    targets: FloatArray
    fee: FloatArray
    step: FloatArray
    min_amt: FloatArray
    max_amt: FloatArray
    min_notional: FloatArray
    band_kind: int
    combine: int
    cal_mode: int
    cal_next: IntArray
    times: IntArray
    vol_ratio: FloatArray
    fee_quote: bool
    path_bar: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    path_rows: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    def args(self) -> tuple[Any, ...]:
        """(prices .. min_notional) then (band_kind .. fee_quote) around the params."""
        return (
            self.prices,
            self.amount0,
            self.targets,
            self.q,
            self.fee,
            self.step,
            self.min_amt,
            self.max_amt,
            self.min_notional,
        )

    def trigger_args(self) -> tuple[Any, ...]:
        return (
            self.band_kind,
            self.combine,
            self.cal_mode,
            self.cal_next,
            self.times,
            self.vol_ratio,
            self.fee_quote,
        )

    def path_args(self) -> tuple[Any, ...]:
        """The target path (``path_bar``, ``path_rows``), last in the kernel's arguments."""
        return (self.path_bar, self.path_rows)


def check_strategy(strategy: Strategy, initial: Mapping[str, Decimal]) -> None:
    """Refuse what the kernel does not model (naming ``--engine replay``).

    ``cash_flows`` has no effect over history (a replay sees no deposit or withdrawal) and
    ``unmanaged`` none while nothing outside the targets is held, so both are accepted.
    """
    if strategy.quote not in strategy.targets:
        raise _unsupported(f"targets without the quote {strategy.quote} (the cash leg)")
    others = sorted(a for a, x in initial.items() if a not in strategy.targets and x != 0)
    if others:
        raise _unsupported(f"starting holdings outside the targets ({', '.join(others)})")
    if not strategy.execution.plain:
        raise _unsupported("limit orders or sliced orders (the [execution] policy)")


def params_row(strategy: Strategy, program: TriggerProgram) -> FloatArray:
    """The per-combination parameters of ``strategy`` (columns ``kernel.P_*``)."""
    p = np.zeros(K.PARAMS)
    th = strategy.threshold
    p[K.P_BAND_ABS] = _f(th.band_abs if th else None)
    p[K.P_BAND_REL] = _f(th.band_rel if th else None)
    p[K.P_STYLE_EDGE] = 1.0 if strategy.policy.style == "band_edge" and th else 0.0
    p[K.P_MIN_TRADE] = float(strategy.policy.min_trade)
    p[K.P_SLIPPAGE] = float(strategy.policy.slippage)
    p[K.P_COST_AWARE] = 1.0 if strategy.policy.cost_aware else 0.0
    p[K.P_RISK_AVERSION] = float(strategy.policy.risk_aversion)
    vol = program.vol
    p[K.P_VOL_BASE] = float(vol.base_band) if vol else math.nan
    p[K.P_VOL_FLOOR] = float(vol.floor) if vol else math.nan
    p[K.P_VOL_CAP] = float(vol.cap) if vol else math.nan
    p[K.P_FEE_SCALE] = 1.0
    return p


def _calendar_or_zeros(
    cal: Calendar | None, times: Sequence[datetime], times_ns: IntArray
) -> IntArray:
    if cal is None:
        return np.zeros(len(times_ns), dtype=np.int64)
    return calendar_next(cal, times, times_ns)


def _forever(n: int) -> IntArray:
    """A schedule whose next time never comes: checked since the last check, due on the
    first bar only (:class:`FirstBar`, buy-and-hold)."""
    return np.full(n, np.iinfo(np.int64).max, dtype=np.int64)


def _cal_mode(cal: Calendar | None) -> int:
    if cal is None:
        return K.CAL_NONE
    return K.CAL_FIRED if cal.since == "fired" else K.CAL_CHECK


def _f(x: Decimal | None) -> float:
    return math.nan if x is None else float(x)


def build_inputs(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    rules: Mapping[str, MarketRules],
    bar: timedelta,
    fee_currency: FeeCurrency = "received",
    targets: TargetPath | None = None,
) -> tuple[Inputs, TriggerProgram]:
    """The kernel's inputs for ``strategy`` over ``closes`` (UTC open times, one column per
    asset); every non-quote target needs its ``rules`` (the replay's paper exchange would
    otherwise invent them). ``targets``: a target path (the strategy's targets until its
    first change; see :mod:`rebalancer.optimise.path`)."""
    check_strategy(strategy, initial)
    if fee_currency not in ("received", "quote"):
        raise ConfigError(f"fee_currency must be 'received' or 'quote', got {fee_currency!r}")
    program = trigger_program(strategy.trigger)
    legs = list(strategy.targets)
    quote = strategy.quote
    missing = [a for a in legs if a != quote and a not in rules]
    if missing:
        raise ConfigError(f"no market rules for {', '.join(missing)}: pass rules for every asset")
    T = len(closes)
    prices = np.ones((T, len(legs)))
    for i, leg in enumerate(legs):
        if leg != quote:
            col = closes[leg].to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(col) & (col > 0)):
                raise DataError(
                    f"prices of {leg} contain NaN or non-positive values: fill or trim the "
                    "data (e.g. `rebalancer data check`) before backtesting"
                )
            prices[:, i] = col

    def per_leg(get: Any, default: float) -> FloatArray:
        return np.array([default if a == quote else get(rules[a]) for a in legs], dtype=float)

    index = pd.DatetimeIndex(closes.index)
    times_ns = np.asarray((index + pd.Timedelta(bar)).as_unit("ns").asi8, dtype=np.int64)
    times = _LazyTimes(index, bar)
    cal = program.calendar
    path_bar, path_rows = np.zeros(0, dtype=np.int64), np.zeros((0, len(legs)))
    if targets:
        path_bar, path_rows = targets.kernel_input(times, legs, strategy.targets)
    inputs = Inputs(
        legs=tuple(legs),
        q=legs.index(quote),
        prices=prices,
        amount0=np.array([float(initial.get(a, Decimal(0))) for a in legs]),
        targets=np.array([float(strategy.targets[a]) for a in legs]),
        fee=per_leg(lambda r: float(r.taker_fee), 0.0),
        step=per_leg(lambda r: float(r.amount_step or 0), 0.0),
        min_amt=per_leg(lambda r: float(r.min_amount), 0.0),
        max_amt=per_leg(lambda r: math.inf if r.max_amount is None else float(r.max_amount), 0),
        min_notional=per_leg(lambda r: float(r.min_notional), 0.0),
        band_kind=program.band_kind,
        combine=program.combine,
        cal_mode=K.CAL_CHECK if program.first_bar else _cal_mode(cal),
        cal_next=_forever(T) if program.first_bar else _calendar_or_zeros(cal, times, times_ns),
        times=times_ns,
        vol_ratio=_vol_ratios(program.vol, closes, legs, quote, strategy.targets, targets, times),
        fee_quote=fee_currency == "quote",
        path_bar=path_bar,
        path_rows=path_rows,
    )
    return inputs, program


def _vol_ratios(
    vol: VolScaledThreshold | None,
    closes: pd.DataFrame,
    legs: list[str],
    quote: str,
    start: Mapping[str, Decimal],
    path: TargetPath | None,
    times: Sequence[datetime],
) -> FloatArray:
    """:func:`vol_ratios` under the targets in force at each bar: with a target path, each
    span of bars takes the table computed with its own targets (the portfolio's volatility
    weighs the assets by the targets in force, as the live trigger does)."""
    if vol is None or not path:
        return vol_ratios(vol, closes, legs, quote, start)
    out = np.full((len(closes), len(legs)), np.nan)
    for lo, hi, targets in path.segments(times, legs, start):
        out[lo:hi] = vol_ratios(vol, closes, legs, quote, targets)[lo:hi]
    return out
