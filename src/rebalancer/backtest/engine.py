"""The backtest: one execution model over history, with benchmarks and metrics.

:func:`run_backtest` runs the strategy over a closes panel, then runs two benchmarks through
the same engine and computes :mod:`.metrics` for all three:

* ``buy_and_hold``: trade to target on the first bar (as a start from cash does), then never;
* ``calendar``: trade to target on the first bar and then on a schedule (monthly by default).

With a start from given holdings a third curve, ``hold_start``, holds them untouched.

**One model, two engines.** The model is the live cycle (``service.run_cycle``): the same
triggers, planner, sells-first re-plan of the buys and paper fills. ``engine="compiled"``
(the default) runs it in the compiled kernel (:mod:`rebalancer.backtest.compiled`), whose
equality with the Decimal replay -- same firing bars, same orders, final values within 1e-9
relative -- is tested on random cases and real panels (``tests/backtest/
test_compiled_oracle.py`` and ``test_engine.py``); ``engine="replay"`` runs
:func:`rebalancer.backtest.replay.replay` itself, bar by bar in Decimal, for audits. A rule
the compiled engine does not implement (limit orders, sliced orders, holdings outside the
targets, a fill slippage other than the planner's) is refused with
:class:`~rebalancer.backtest.compiled.program.UnsupportedRule` naming the setting and
``--engine replay``: nothing is approximated.

Fees are those of the fills (what is really traded), never ``total x fee x assets``.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from rebalancer.backtest.metrics import Metrics, Premium, compute_metrics, rebalancing_premium
from rebalancer.backtest.replay import Ranges, replay, value
from rebalancer.core.cron import Cron
from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.errors import ConfigError
from rebalancer.core.fills import apply_fill
from rebalancer.core.lots import Lot, LotBook, Method, TimedFill, YearGains, gains_by_year, realise
from rebalancer.core.model import ZERO, Fill, MarketRules, Side, Snapshot
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Decision, Never, Trigger, TriggerContext
from rebalancer.core.venue import REFERENCE, VenueModel
from rebalancer.core.vol_bands import history_bars
from rebalancer.data.history import FrameHistory
from rebalancer.optimise.path import TargetPath

if TYPE_CHECKING:
    from rebalancer.backtest.compiled.engine import CompiledResult
    from rebalancer.service import CycleReport

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
Engine = Literal["compiled", "replay"]
#: the engines of ``rebalancer backtest --engine`` (the first is the default)
ENGINES: tuple[Engine, ...] = ("compiled", "replay")

#: the calendar benchmark's default schedule: midnight UTC on the 1st of each month
MONTHLY = "0 0 1 * *"


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


class Fire:
    """One bar whose trigger fired, as either engine saw it.

    ``at``: the cycle's time (the bar's close); ``reason``: the trigger's decision;
    ``fills``: the orders filled (sells first, then the re-planned buys); ``fee_values``:
    each fill's fee valued in the quote (the quote at 1, the traded asset at its fill
    price, another asset at the bar's close); ``prices``: the bar's closes (quote per base);
    ``value_before``: the portfolio's value before the bar's trades (quote). ``report``: the
    replay's full cycle report (plans, skipped legs, limit orders), None from the compiled
    engine. ``reason`` and ``prices`` may be given as functions, computed once when first
    read (the compiled engine's runs fire up to tens of thousands of times; only the
    trades' reasons are usually read).
    """

    __slots__ = ("_prices", "_reason", "at", "bar", "fee_values", "fills", "report", "value_before")

    def __init__(
        self,
        bar: int,
        at: datetime,
        reason: str | Callable[[], str],
        fills: tuple[Fill, ...],
        fee_values: tuple[Decimal, ...],
        prices: Mapping[str, Decimal] | Callable[[], Mapping[str, Decimal]],
        value_before: Decimal,
        report: CycleReport | None = None,
    ) -> None:
        self.bar, self.at, self.fills, self.fee_values = bar, at, fills, fee_values
        self.value_before, self.report = value_before, report
        self._reason, self._prices = reason, prices

    @property
    def reason(self) -> str:
        if callable(self._reason):
            self._reason = self._reason()
        return self._reason

    @property
    def prices(self) -> Mapping[str, Decimal]:
        if callable(self._prices):
            self._prices = self._prices()
        return self._prices

    @property
    def traded(self) -> Decimal:
        return sum((f.cost for f in self.fills), ZERO)

    @property
    def fees(self) -> Decimal:
        return sum(self.fee_values, ZERO)

    def __repr__(self) -> str:
        return f"Fire(bar={self.bar}, at={self.at.isoformat()}, fills={len(self.fills)})"


@dataclass
class Run:
    """One engine run: every firing bar, per-bar equity and weights, the trades.

    ``equity`` (quote) and ``weights`` (one column per asset, then the quote) are per bar
    after that bar's trades; ``engine`` names the engine that ran it; ``ties``: the compiled
    engine's truncations within 1e-9 of a step boundary, where its amount may be one step
    from the Decimal replay's (counted, never hidden; 0 on the replay).
    """

    name: str
    strategy: Strategy
    times: pd.DatetimeIndex
    equity: FloatArray
    weights: pd.DataFrame
    fires: list[Fire]
    initial: dict[str, Decimal]
    initial_value: Decimal
    final_balances: dict[str, Decimal]
    final_value: Decimal
    metrics: Metrics
    engine: Engine
    ties: int = 0

    @property
    def fired_bars(self) -> list[int]:
        """Bars whose decision fired (traded or not)."""
        return [c.bar for c in self.fires]

    @property
    def rebalance_bars(self) -> list[int]:
        """Bars where at least one order filled."""
        return [c.bar for c in self.fires if c.fills]

    @property
    def fees(self) -> Decimal:
        return sum((c.fees for c in self.fires), ZERO)

    @property
    def traded(self) -> Decimal:
        return sum((c.traded for c in self.fires), ZERO)

    @property
    def trades(self) -> list[Trade]:
        return [
            Trade(
                c.bar,
                c.at,
                f.asset,
                f.side.value,
                f.amount,
                f.price,
                f.cost,
                f.fee,
                f.fee_asset,
                fee,
                c.reason,
            )
            for c in self.fires
            for f, fee in zip(c.fills, c.fee_values, strict=True)
        ]

    def realised_gains(self, method: Method = "fifo") -> dict[int, YearGains]:
        """Realised gains and losses per year of the run's fills, in tax lots by ``method``;
        starting holdings are lots bought at the first bar's closes."""
        quote = self.strategy.quote
        lots: dict[str, tuple[Lot, ...]] = {}
        for a, amt in self.initial.items():
            if a == quote or amt <= 0 or a not in self.weights.columns:
                continue
            if self.fires and self.fires[0].bar == 0:  # bar 0 fired: its own prices
                cost = amt * self.fires[0].prices[a]
            else:  # untouched at bar 0: its value there is its weight of the equity
                share = float(self.weights[a].iloc[0]) * float(self.equity[0])
                cost = Decimal(repr(share))
            lots[a] = (Lot(f"start:{a}", a, amt, cost, self.times[0]),)
        fills = [TimedFill(c.at, f, quote) for c in self.fires for f in c.fills]
        return gains_by_year(realise(fills, method, LotBook(lots))[1])

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        gains = self.realised_gains()
        return {
            "name": self.name,
            "engine": self.engine,
            "step_ties": self.ties,
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
            "orders": sum(len(c.fills) for c in self.fires),
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
    def engine(self) -> Engine:
        return self.run.engine

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
            "engine": r.engine,
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


# -- shared helpers ----------------------------------------------------------------------------


def close_times(index: pd.Index, bar: timedelta) -> list[datetime]:
    """``[t.to_pydatetime() + bar for t in index]``, converted in one vectorised step
    (the per-element form took tens of ms on 30k-bar panels); same objects, same tzinfo."""
    if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
        return list((index + bar).to_pydatetime())
    return [t.to_pydatetime() + bar for t in index]


def _dec(x: float) -> Decimal:
    """A float as the Decimal of its shortest repr (what the CSV said, not binary noise)."""
    return Decimal(repr(float(x)))


def _dec_row(prices: FloatArray, assets: Sequence[str]) -> dict[str, Decimal]:
    return {a: _dec(v) for a, v in zip(assets, prices, strict=True)}


def fee_in_quote(fill: Fill, quote: str, prices: Mapping[str, Decimal]) -> Decimal:
    """``fill``'s fee valued in the quote as :meth:`CycleReport.fees_in_quote` values it:
    the quote at 1, the traded asset at its fill price, another asset at ``prices``."""
    if fill.fee_asset == quote:
        return fill.fee
    if fill.fee_asset == fill.asset:
        return fill.fee * fill.price
    return fill.fee * prices.get(fill.fee_asset, ZERO)


def _time_index(index: pd.Index, bar: timedelta) -> pd.DatetimeIndex:
    """The close times as a DatetimeIndex (unit ``us``, no name, no freq)."""
    if isinstance(index, pd.DatetimeIndex) and not np.any(index.asi8 % 1000):
        shifted = (index + bar).as_unit("us")
        return pd.DatetimeIndex(shifted, freq=None).rename(None)  # type: ignore[arg-type]
    return pd.DatetimeIndex([pd.Timestamp(t) for t in close_times(index, bar)])


def _weights(
    closes: pd.DataFrame, strategy: Strategy, units: FloatArray, cash: FloatArray
) -> tuple[FloatArray, pd.DataFrame]:
    """Per-bar equity and weights from per-bar amounts (``units`` per asset, ``cash``)."""
    assets = list(strategy.assets)
    prices = closes[assets].to_numpy(dtype=np.float64)
    values = units * prices
    equity = values.sum(axis=1) + cash
    safe = np.where(equity > 0, equity, np.nan)
    legs = np.empty((len(prices), len(assets) + 1))  # the quotients of [values, cash] / equity
    np.divide(values, safe[:, None], out=legs[:, :-1])
    np.divide(cash, safe, out=legs[:, -1])
    weights = pd.DataFrame(legs, index=closes.index, columns=[*assets, strategy.quote])
    return np.asarray(equity, dtype=np.float64), weights


@dataclass(frozen=True)
class _Raw:
    """What an engine returns before metrics: fires, per-bar amounts, final balances."""

    fires: list[Fire]
    units: FloatArray  # (bars, assets) after each bar's trades
    cash: FloatArray  # (bars,)
    final: dict[str, Decimal]
    ties: int = 0


# -- the replay --------------------------------------------------------------------------------


def _replay_engine(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    maker_fee: Decimal | None,
    ranges: Ranges | None,
    venue: VenueModel = REFERENCE,
    targets: TargetPath | None = None,
) -> _Raw:
    """:func:`replay.replay` bar by bar; every firing cycle becomes a :class:`Fire`."""
    fires: list[Fire] = []
    quote = strategy.quote

    def keep(i: int, report: CycleReport) -> None:
        if report.decision.fire:
            prices = dict(report.snapshot.prices)
            fires.append(
                Fire(
                    i,
                    report.at,
                    report.decision.reason,
                    tuple(report.fills),
                    tuple(fee_in_quote(f, quote, prices) for f in report.fills),
                    prices,
                    report.drift.total_value,
                    report,
                )
            )

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
        targets=targets,
        venue=venue,
    )
    units, cash = _amounts_from_fills(len(closes), strategy, initial, fires)
    return _Raw(fires, units, cash, result.final_balances)


def _amounts_from_fills(
    n_bars: int, strategy: Strategy, initial: Mapping[str, Decimal], fires: list[Fire]
) -> tuple[FloatArray, FloatArray]:
    """Per-bar amounts (after each bar's trades) replayed from the fills."""
    assets = list(strategy.assets)
    quote = strategy.quote
    units = np.zeros((n_bars, len(assets)))
    cash = np.zeros(n_bars)
    balances = dict(initial)
    changes = {c.bar: c for c in fires if c.fills}
    start = 0
    for i in [*sorted(changes), n_bars]:
        units[start:i] = [float(balances.get(a, ZERO)) for a in assets]
        cash[start:i] = float(balances.get(quote, ZERO))
        if i == n_bars:
            break
        for f in changes[i].fills:
            balances = apply_fill(balances, f, quote)
        start = i
    return units, cash


# -- the compiled engine -----------------------------------------------------------------------


def market_rules(
    strategy: Strategy,
    closes: pd.DataFrame,
    taker_fee: Decimal,
    rules: Mapping[str, MarketRules] | None,
) -> dict[str, MarketRules]:
    """Each asset's market rules as the replay's paper exchange sets them on the first bar:
    the given ``rules``, else Binance-like ones from the first close and ``taker_fee``."""
    from rebalancer.adapters.paper import default_rules

    out: dict[str, MarketRules] = {}
    for a in strategy.assets:
        given = (rules or {}).get(a)
        out[a] = given or default_rules(a, strategy.quote, _dec(closes[a].iloc[0]), taker_fee)
    return out


def _check_compiled(strategy: Strategy, slippage: Decimal) -> None:
    """Refuse, naming ``--engine replay``, what the compiled engine does not model."""
    from rebalancer.backtest.compiled.program import UnsupportedRule

    def refuse(what: str) -> UnsupportedRule:
        return UnsupportedRule(
            f"the compiled engine does not implement {what}; run it with `--engine replay` "
            "(the Decimal replay of the live loop)"
        )

    ex = strategy.execution
    if ex.limit_inside:
        raise refuse(
            '[execution] order_type = "limit_inside" (limit orders inside the spread, '
            "filled against the next bar's range)"
        )
    if ex.slice_above is not None:
        raise refuse(f"[execution] slice_above = {ex.slice_above} (sliced orders)")
    if not ex.plain:
        raise refuse("the [execution] policy (only plain market orders are compiled)")
    if slippage != strategy.policy.slippage:
        raise refuse(
            f"a fill slippage ({slippage}) other than the planner's rebalance.slippage "
            f"({strategy.policy.slippage}): it models one slippage, planned and filled"
        )


def _compiled_engine(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    maker_fee: Decimal | None,
    ranges: Ranges | None,
    venue: VenueModel = REFERENCE,
    targets: TargetPath | None = None,
) -> _Raw:
    """One compiled run (:func:`compiled.engine.run`) with its trade log and curves; the
    fee on ``venue``'s side (the asset received or the quote), exact."""
    from rebalancer.backtest.compiled.engine import run as compiled_run

    _check_compiled(strategy, slippage)
    if venue.fee_currency is not None:
        from rebalancer.backtest.compiled.program import UnsupportedRule

        raise UnsupportedRule(
            f"the compiled engine does not value fees paid in {venue.fee_currency}; turn "
            f"{venue.fee_currency} fees off or run it with `--engine replay`"
        )
    market = market_rules(strategy, closes, taker_fee, rules)
    got = compiled_run(
        closes,
        strategy,
        initial,
        rules=market,
        bar=bar,
        equity=True,
        skip_log=False,
        targets=targets,
        fee_currency=venue.fee_in,
    )
    assert got.holdings is not None and got.equity is not None
    legs = list(got.legs)
    assets = list(strategy.assets)
    held = got.holdings
    units = np.ascontiguousarray(held[:, [legs.index(a) for a in assets]])
    cash = np.ascontiguousarray(held[:, legs.index(strategy.quote)])
    steps = {a: market[a].amount_step for a in assets}
    fires = _compiled_fires(closes, strategy, initial, bar, got, steps)
    final = {a: _dec(x) for a, x in got.final_amounts.items()}
    return _Raw(fires, units, cash, final, got.ties)


def _compiled_fires(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    got: CompiledResult,
    steps: Mapping[str, Decimal | None],
) -> list[Fire]:
    """The compiled run's firing bars as :class:`Fire` records.

    Orders become Decimal fills: amounts as whole multiples of the market's step (what the
    kernel's ``k x step`` stands for), the rest as the floats' shortest repr; in the
    planner's order (sells, then buys, each by cost descending, then asset). Each bar's
    reason is the trigger's own ``check`` on the holdings before that bar's trades, with
    the replay's context (last check, last firing, history), computed when first read."""
    assert got.holdings is not None
    quote = strategy.quote
    assets = list(strategy.assets)
    legs = list(got.legs)
    fired = np.asarray(got.fired, dtype=np.int64)
    if fired.size == 0:
        return []
    index = pd.DatetimeIndex(closes.index)
    at = list((index[fired] + bar).to_pydatetime())
    prev_at = list((index[np.maximum(fired - 1, 0)] + bar).to_pydatetime())
    prices = closes[assets].to_numpy(dtype=np.float64)
    leg_prices = np.ones((len(fired), len(legs)))
    for j, leg in enumerate(legs):
        if leg != quote:
            leg_prices[:, j] = prices[fired, assets.index(leg)]
    start = np.array([float(initial.get(a, ZERO)) for a in legs])
    before = np.where((fired > 0)[:, None], got.holdings[np.maximum(fired - 1, 0)], start)
    values = (before * leg_prices).sum(axis=1).tolist()
    by_bar: dict[int, list[Any]] = {}
    for o in sorted(got.orders, key=lambda o: (o.bar, o.side != "sell", -o.cost, o.asset)):
        by_bar.setdefault(o.bar, []).append(o)
    reasons = _Reasons(closes, strategy, initial, bar, got, at, prev_at)
    fires: list[Fire] = []
    with _paused_gc():  # tens of thousands of small acyclic objects: no collection passes
        _build_fires(fires, fired, by_bar, at, reasons, prices, assets, values, quote, steps)
    return fires


@contextmanager
def _paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while building many small acyclic objects (its
    passes over a heap holding the panel took half the time), restored after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _build_fires(
    fires: list[Fire],
    fired: IntArray,
    by_bar: Mapping[int, list[Any]],
    at: list[datetime],
    reasons: _Reasons,
    prices: FloatArray,
    assets: list[str],
    values: list[float],
    quote: str,
    steps: Mapping[str, Decimal | None],
) -> None:
    for k, t in enumerate(fired.tolist()):
        orders = by_bar.get(t, ())
        fills = tuple(_fill(o, j, t, quote, steps[o.asset]) for j, o in enumerate(orders))
        fees = tuple(_dec(o.fee_quote) for o in orders)
        fires.append(
            Fire(
                t,
                at[k],
                partial(reasons.of, k),
                fills,
                fees,
                partial(_dec_row, prices[t], assets),
                _dec(values[k]),
            )
        )


class _Reasons:
    """Each firing bar's reason from the trigger's own ``check`` (see :func:`_compiled_fires`):
    a float decision at the band's very edge that the Decimal check would not take is said
    so (never seen on the tested data)."""

    def __init__(
        self,
        closes: pd.DataFrame,
        strategy: Strategy,
        initial: Mapping[str, Decimal],
        bar: timedelta,
        got: CompiledResult,
        at: list[datetime],
        prev_at: list[datetime],
    ) -> None:
        self.strategy, self.initial, self.got = strategy, initial, got
        self.at, self.prev_at = at, prev_at
        self.assets = list(strategy.assets)
        self.prices = closes[self.assets].to_numpy(dtype=np.float64)
        self.bars = history_bars(strategy.trigger)
        self.history = FrameHistory(closes[self.assets], bar) if self.bars else None

    def of(self, k: int) -> str:
        got, assets = self.got, self.assets
        assert got.holdings is not None
        t = got.fired[k]
        now = self.at[k]
        row = _dec_row(self.prices[t], assets)
        if t == 0:
            held = {a: self.initial.get(a, ZERO) for a in got.legs}
        else:
            held = _dec_row(got.holdings[t - 1], got.legs)
        snapshot = Snapshot(self.strategy.quote, held, row, {}, now)
        drift = compute_drift(snapshot, self.strategy.targets)
        history = self.history.closes(assets, now, self.bars) if self.history else None
        ctx = TriggerContext(
            now, None if t == 0 else self.prev_at[k], self.at[k - 1] if k else None, history
        )
        decision = self.strategy.trigger.check(drift, ctx)
        if decision.fire:
            return decision.reason
        return f"compiled decision at the band's edge ({decision.reason})"


def _fill(o: Any, k: int, bar: int, quote: str, step: Decimal | None) -> Fill:
    amount = _dec(o.amount) if not step else round(o.amount / float(step)) * step
    return Fill(
        client_order_id=f"bt-{bar}-{k}",
        asset=o.asset,
        symbol=f"{o.asset}/{quote}",
        side=Side(o.side),
        amount=amount,
        price=_dec(o.price),
        cost=_dec(o.cost),
        fee=_dec(o.fee),
        fee_asset=o.fee_asset,
    )


# -- one run -----------------------------------------------------------------------------------


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
    engine: Engine,
    maker_fee: Decimal | None = None,
    ranges: Ranges | None = None,
    targets: TargetPath | None = None,
    venue: VenueModel = REFERENCE,
) -> Run:
    kw: dict[str, Any] = {
        "taker_fee": taker_fee,
        "slippage": slippage,
        "rules": rules,
        "maker_fee": maker_fee,
        "ranges": ranges,
        "venue": venue,
    }
    if engine == "compiled":
        raw = _compiled_engine(closes, strategy, initial, bar, **kw, targets=targets)
    else:
        raw = _replay_engine(closes, strategy, initial, bar, **kw, targets=targets)
    assets = list(strategy.assets)
    prices = closes[assets].to_numpy(dtype=np.float64)
    initial_value = value(initial, _dec_row(prices[0], assets), strategy.quote)
    final_value = value(raw.final, _dec_row(prices[-1], assets), strategy.quote)
    equity, weights = _weights(closes, strategy, raw.units, raw.cash)
    traded = [c for c in raw.fires if c.fills]
    turnover = sum(float(c.traded / c.value_before) for c in traded)
    time_index = _time_index(closes.index, bar)
    metrics = compute_metrics(
        equity,
        bar,
        times=time_index,
        initial=float(initial_value),
        n_rebalances=len(traded),
        fees=float(sum((c.fees for c in traded), ZERO)),
        traded=float(sum((c.traded for c in traded), ZERO)),
        turnover=turnover,
    )
    return Run(
        name,
        strategy,
        time_index,
        equity,
        weights,
        raw.fires,
        dict(initial),
        initial_value,
        raw.final,
        final_value,
        metrics,
        engine,
        raw.ties,
    )


def hold_run(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    bar: timedelta,
    engine: Engine = "compiled",
) -> Run:
    """The starting holdings held untouched (no trade, no fee)."""
    held = replace(strategy, trigger=Never())
    slip = held.policy.slippage
    return _run(
        "hold_start", closes, held, initial, bar, taker_fee=ZERO, slippage=slip, rules=None,
        engine=engine,
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


def check_engine(engine: str) -> Engine:
    """``engine`` if it is one of :data:`ENGINES`, else a :class:`ConfigError` naming them."""
    if engine not in ENGINES:
        raise ConfigError(
            f"--engine must be one of {', '.join(ENGINES)}, not {engine!r} (compiled: the "
            "default; replay: the Decimal replay of the live loop, for audits)"
        )
    return engine


def run_backtest(
    closes: pd.DataFrame,
    strategy: Strategy,
    *,
    capital: Decimal | None = None,
    initial: Mapping[str, Decimal] | None = None,
    taker_fee: Decimal,
    slippage: Decimal | None = None,
    bar: timedelta,
    rules: Mapping[str, MarketRules] | None = None,
    calendar: Trigger | None = None,
    benchmarks: bool = True,
    engine: str = "compiled",
    progress: Callable[[str], None] | None = None,
    maker_fee: Decimal | None = None,
    ranges: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    targets: TargetPath | None = None,
    venue: VenueModel = REFERENCE,
) -> BacktestResult:
    """Backtest ``strategy`` over ``closes`` (UTC index = candle open times; one column per
    asset) with the live cycle's model, plus the benchmarks and metrics described in the
    module doc.

    ``taker_fee`` (a fraction) is the fee of markets without ``rules``; ``rules`` overrides
    the paper exchange's Binance-like market rules per asset (fee included). ``slippage``:
    the fill's (None: the planner's ``strategy.policy.slippage``). ``calendar``: the
    calendar benchmark's trigger (default: monthly). ``engine``: ``"compiled"`` (default)
    or ``"replay"`` (see the module doc); the benchmarks run on the same engine.

    ``maker_fee`` (None: the taker fee) and ``ranges`` (each bar's lows and highs, frames
    like ``closes``) serve ``strategy.execution.order_type = "limit_inside"`` on the replay:
    a limit placed at a bar's close fills at its price and the maker fee when the next
    bar's range reaches it (one bar of waiting: optimistic on daily bars), else its rest
    goes at market or waits (:mod:`rebalancer.backtest.replay`). Without ``ranges`` no
    limit ever fills.

    ``targets``: a target path (scheduled optimised targets, :mod:`rebalancer.optimise.path`)
    the strategy follows, applied as the live retarget step does; the benchmarks keep the
    strategy's own targets.
    ``venue``: how the paper exchange fills (:mod:`rebalancer.core.venue`; the fee side).
    """
    which = check_engine(engine)
    frame = check_closes(closes, strategy)
    start = start_balances(strategy, capital, initial)
    slip = strategy.policy.slippage if slippage is None else slippage
    kw: dict[str, Any] = {
        "taker_fee": taker_fee,
        "slippage": slip,
        "rules": rules,
        "engine": which,
        "maker_fee": maker_fee,
        "ranges": None if ranges is None else Ranges.from_frames(*ranges, frame),
        "venue": venue,
    }
    note = progress or (lambda _msg: None)
    note("strategy")
    main = _run("strategy", frame, strategy, start, bar, **kw, targets=targets)
    result = BacktestResult(main, {}, bar, taker_fee, slip)
    if not benchmarks:
        return result
    note("buy-and-hold")
    bh = _run("buy_and_hold", frame, replace(strategy, trigger=FirstBar()), start, bar, **kw)
    cal_trigger = calendar or Calendar(cron=Cron.parse(MONTHLY))
    note("calendar")
    cal = _run("calendar", frame, replace(strategy, trigger=cal_trigger), start, bar, **kw)
    result.benchmarks = {"buy_and_hold": bh, "calendar": cal}
    if initial is not None:
        result.benchmarks["hold_start"] = hold_run(frame, strategy, start, bar, which)
    result.premium = rebalancing_premium(main.metrics, bh.metrics)
    if not math.isfinite(main.metrics.sharpe):
        result.notes.append("Sharpe undefined (no variation in equity)")
    return result
