"""A backtest whose targets change on a schedule (optimised targets): one run over the whole
panel with the schedule's target path.

:func:`optimised_path` asks :func:`rebalancer.optimise.schedule.target_schedule` (the live
due function and optimiser, no look-ahead) for the changes; :func:`backtest_optimised`
runs the threshold rule over every bar with that path as input -- on the compiled engine
by default, or on the Decimal replay, where the live ``retarget`` step applies it (an
audit). Both read the path as the live service does (:mod:`rebalancer.optimise.path`): a
change forces a full rebalance to the new targets at its bar, the band holds in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from rebalancer.core.errors import ConfigError
from rebalancer.core.lots import Method, TimedFill, gains_by_year, realise
from rebalancer.core.model import ZERO, Fill, MarketRules, Side
from rebalancer.core.retarget import MONTHLY, Cadence
from rebalancer.optimise.path import TargetPath
from rebalancer.optimise.schedule import target_schedule
from rebalancer.optimise.weights import Constraints, FloatArray, OptMethod, to_targets

Engine = Literal["compiled", "replay"]
DAY = timedelta(days=1)


@dataclass
class OptimisedRun:
    """A backtest with scheduled optimised targets: per-bar equity (after each bar's
    trades), metrics, every fill, the targets in force from each bar where they changed
    (the first: the starting targets at the first bar; times are candle open times), the
    realised gains per year, the path and the engine that ran it."""

    equity: FloatArray
    metrics: Any
    fills: list[TimedFill]
    schedule: list[tuple[pd.Timestamp, dict[str, Decimal]]]
    gains: dict[int, Any]
    path: TargetPath
    engine: Engine


def optimised_path(
    closes: pd.DataFrame,
    start_targets: Mapping[str, Decimal],
    method: OptMethod,
    constraints: Constraints,
    *,
    quote: str = "USDT",
    window: int = 90,
    every: Cadence | str = MONTHLY,
    bar: timedelta = DAY,
    daily: pd.DataFrame | None = None,
) -> TargetPath:
    """The target changes of ``method`` over ``closes`` (see :func:`target_schedule`;
    ``daily``: the daily closes the optimiser's window is read from, when ``closes`` is not
    daily), as Decimal targets summing to 1 (:func:`to_targets`)."""
    assets = [a for a in start_targets if a != quote]
    initial = {a: float(start_targets[a]) for a in assets}
    plan = target_schedule(
        closes[assets],
        method,
        constraints,
        window=window,
        every=every,
        initial=initial,
        bar=bar,
        daily=None if daily is None else daily[assets],
    )
    return TargetPath.of(
        [(when, to_targets(assets, w, quote, constraints)) for when, w in plan], method
    )


def backtest_optimised(
    closes: pd.DataFrame,
    start_targets: Mapping[str, Decimal],
    method: OptMethod,
    constraints: Constraints,
    *,
    quote: str = "USDT",
    window: int = 90,
    every: Cadence | str = MONTHLY,
    band: Decimal = Decimal("0.05"),
    capital: Decimal = Decimal(10000),
    taker_fee: Decimal = Decimal("0.001"),
    slippage: Decimal = Decimal("0.0005"),
    lots: Method = "fifo",
    engine: Engine = "compiled",
    bar: timedelta = DAY,
) -> OptimisedRun:
    """Start from ``capital`` in cash with ``start_targets`` and an absolute ``band``
    (``min_trade`` 10, the paper exchange's Binance-like market rules from the first bar's
    prices); at each of the optimiser's changes, rebalance fully to its targets. One run
    over every bar of ``closes`` (daily closes, UTC open times) on ``engine``."""
    from rebalancer.backtest.metrics import compute_metrics

    if engine not in ("compiled", "replay"):
        raise ConfigError(f"engine must be 'compiled' or 'replay', got {engine!r}")
    assets = [a for a in start_targets if a != quote]
    closes = closes[assets]
    targets = {**start_targets, quote: start_targets.get(quote, ZERO)}
    path = optimised_path(
        closes, targets, method, constraints, quote=quote, window=window, every=every, bar=bar
    )
    account = (_compiled if engine == "compiled" else _replayed)(
        closes, targets, path, quote, band, capital, taker_fee, slippage, bar
    )
    close_times = pd.DatetimeIndex(closes.index) + bar
    traded = [(v, f) for v, f in account.cycles if f]
    metrics = compute_metrics(
        account.equity,
        bar,
        times=close_times,
        initial=float(capital),
        n_rebalances=len(traded),
        fees=float(sum((_fee_value(f) for _, fs in traded for f in fs), ZERO)),
        traded=float(sum((f.cost for _, fs in traded for f in fs), ZERO)),
        turnover=sum(float(sum((f.cost for f in fs), ZERO) / v) for v, fs in traded),
    )
    fills = [TimedFill(at, f, quote) for at, f in account.fills]
    _, disposals = realise(fills, lots)
    times = [t.to_pydatetime() + bar for t in closes.index]
    schedule = [
        (pd.Timestamp(closes.index[lo]), t)
        for lo, _, t in path.segments(times, list(targets), targets)
    ]
    return OptimisedRun(
        account.equity, metrics, fills, schedule, gains_by_year(disposals), path, engine
    )


@dataclass
class _Account:
    """What a run did: per-bar equity, per firing bar (value before its trades, fills), and
    every fill with its time."""

    equity: FloatArray
    cycles: list[tuple[Decimal, list[Fill]]]
    fills: list[tuple[datetime, Fill]]


def _setup(
    closes: pd.DataFrame,
    targets: Mapping[str, Decimal],
    quote: str,
    band: Decimal,
    taker_fee: Decimal,
    slippage: Decimal,
) -> tuple[Any, dict[str, MarketRules]]:
    """The strategy (threshold ``band``, ``min_trade`` 10) and the paper exchange's
    made-up market rules from the first bar's prices, for both engines."""
    from rebalancer.adapters.paper import default_rules
    from rebalancer.backtest.replay import decimal_rows
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold

    policy = PlanPolicy(min_trade=Decimal(10), slippage=slippage)
    strategy = Strategy(quote, dict(targets), Threshold(band), policy)
    first = decimal_rows(closes.iloc[:1])[0]
    rules = {a: default_rules(a, quote, first[a], taker_fee) for a in closes.columns}
    return strategy, rules


def _replayed(
    closes: pd.DataFrame,
    targets: Mapping[str, Decimal],
    path: TargetPath,
    quote: str,
    band: Decimal,
    capital: Decimal,
    taker_fee: Decimal,
    slippage: Decimal,
    bar: timedelta,
) -> _Account:
    """The Decimal replay of the live loop, the path applied by its retarget step."""
    from rebalancer.backtest.replay import replay

    strategy, rules = _setup(closes, targets, quote, band, taker_fee, slippage)
    result = replay(
        closes,
        strategy,
        {quote: capital},
        taker_fee=taker_fee,
        slippage=slippage,
        bar=bar,
        rules=rules,
        targets=path,
    )
    cycles = [(r.drift.total_value, list(r.fills)) for r in result.rebalances]
    fills = [(r.at, f) for r in result.rebalances for f in r.fills]
    equity = np.array([float(v) for v in result.equity], dtype=np.float64)
    return _Account(equity, cycles, fills)


def _compiled(
    closes: pd.DataFrame,
    targets: Mapping[str, Decimal],
    path: TargetPath,
    quote: str,
    band: Decimal,
    capital: Decimal,
    taker_fee: Decimal,
    slippage: Decimal,
    bar: timedelta,
) -> _Account:
    """The compiled engine; its order log filled again in Decimal by the core's fill
    model (price moved by ``slippage``, the venue's fee) for the trade list and the lots."""
    from rebalancer.backtest.compiled.engine import run
    from rebalancer.backtest.replay import decimal_rows, value
    from rebalancer.core.fills import apply_fill

    strategy, rules = _setup(closes, targets, quote, band, taker_fee, slippage)
    result = run(closes, strategy, {quote: capital}, rules=rules, bar=bar, targets=path)
    rows = decimal_rows(closes)
    by_bar: dict[int, list[Any]] = {}
    for order in result.orders:
        by_bar.setdefault(order.bar, []).append(order)
    balances: dict[str, Decimal] = {quote: capital}
    held: list[tuple[int, dict[str, Decimal]]] = [(0, dict(balances))]
    cycles: list[tuple[Decimal, list[Fill]]] = []
    fills: list[tuple[datetime, Fill]] = []
    for i, orders in sorted(by_bar.items()):
        before = value(balances, rows[i], quote)
        done = [_fill(o, rows[i][o.asset], rules[o.asset], slippage) for o in orders]
        for f in done:
            balances = apply_fill(balances, f, quote)
        cycles.append((before, done))
        when = closes.index[i].to_pydatetime() + bar
        fills += [(when, f) for f in done]
        held.append((i, dict(balances)))
    return _Account(_equity(closes, quote, held), cycles, fills)


def _fill(order: Any, close: Decimal, rules: MarketRules, slippage: Decimal) -> Fill:
    """The fill of a compiled order at ``close``: the core's price, cost and fee."""
    from rebalancer.core.venue import REFERENCE, fill_fee

    side = Side.BUY if order.side == "buy" else Side.SELL
    price = close * (1 + slippage) if side is Side.BUY else close * (1 - slippage)
    amount = Decimal(repr(order.amount))
    cost = amount * price
    fee, fee_asset = fill_fee(REFERENCE, rules, side, amount, cost, rules.taker_fee)
    oid = f"bt-{order.bar}-{order.asset}-{order.side}"
    return Fill(oid, order.asset, rules.symbol, side, amount, price, cost, fee, fee_asset)


def _equity(
    closes: pd.DataFrame, quote: str, held: Sequence[tuple[int, Mapping[str, Decimal]]]
) -> FloatArray:
    """Per-bar value of the holdings ``held`` from each listed bar on (after its trades)."""
    assets = list(closes.columns)
    prices = closes.to_numpy(dtype=np.float64)
    units = np.zeros_like(prices)
    cash = np.zeros(len(prices))
    for lo, balances in held:  # in bar order: each from its bar on, until the next
        units[lo:] = [float(balances.get(a, ZERO)) for a in assets]
        cash[lo:] = float(balances.get(quote, ZERO))
    return np.asarray((units * prices).sum(axis=1) + cash, dtype=np.float64)


def _fee_value(f: Fill) -> Decimal:
    """A fill's fee in the quote: the traded asset's fee at the fill price."""
    return f.fee * f.price if f.fee_asset == f.asset else f.fee
