"""Run the compiled full-semantics engine: one backtest with its trade log, or many
combinations at once (statistics only, across cores).

:func:`run` is the compiled counterpart of :func:`rebalancer.backtest.replay.replay` for a
market-order strategy; :func:`run_many` sweeps parameter rows (``kernel.P_*`` columns) over
one panel. Both refuse what the kernel does not implement (:class:`UnsupportedRule`,
naming ``--engine replay``).

Per-bar curves from one compiled run (what reports, regimes and advice need)::

    res = run(closes, strategy, initial, rules=rules, bar=bar, equity=True)
    res.equity      # float64 (T,): the portfolio's value after each bar's trades (quote)
    res.holdings    # float64 (T, L): each leg's amount after each bar's trades
    res.legs        # the L leg names (the targets' order, the quote among them)
    res.orders      # Order(bar, asset, side, amount, price, cost, fee, fee_asset, fee_quote)

Without ``equity=True`` both curves are None and nothing per bar is kept (the sweep path,
:func:`run_many`, never keeps them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.backtest.compiled import kernel as K
from rebalancer.backtest.compiled.program import (
    FeeCurrency,
    FloatArray,
    Inputs,
    build_inputs,
    params_row,
)
from rebalancer.backtest.metrics import ReturnMoments, period_seconds, ratios_from_moments
from rebalancer.core.model import MarketRules
from rebalancer.core.strategy import Strategy


@dataclass(frozen=True)
class Order:
    """One filled order: bar index, asset, ``"buy"``/``"sell"``, amount (base units), fill
    price (quote per base, slippage included), cost (``amount x price``, quote), the fee
    (``fee`` units of ``fee_asset``: the asset received, or the quote on a venue that
    charges it there) and the fee valued in the quote (``fee_quote``; a fee in the base at
    the fill price)."""

    bar: int
    asset: str
    side: str
    amount: float
    price: float = math.nan
    cost: float = math.nan
    fee: float = math.nan
    fee_asset: str = ""
    fee_quote: float = math.nan


@dataclass(frozen=True)
class Skip:
    """One skipped leg: bar index, asset, side and the planner's reason code."""

    bar: int
    asset: str
    side: str
    reason: str


@dataclass(frozen=True)
class CompiledResult:
    """A compiled run: firing bars, orders, skipped legs, final amounts and statistics.

    ``ties``: truncations whose amount lay within 1e-9 (relative) of a step boundary (where
    the float amount may be one step from the Decimal one). ``legs``: the leg names (the
    targets' order). ``equity`` (T,) and ``holdings`` (T x legs): per bar, after that
    bar's trades, only when asked (``run(..., equity=True)``), else None.
    """

    fired: tuple[int, ...]
    orders: tuple[Order, ...]
    skips: tuple[Skip, ...]
    final_amounts: dict[str, float]
    final_value: float
    fees: float
    traded: float
    max_drawdown: float
    ties: int
    legs: tuple[str, ...] = ()
    equity: FloatArray | None = None
    holdings: FloatArray | None = None
    stats: FloatArray | None = None


def _side(x: float) -> str:
    return "buy" if x > 0 else "sell"


def run(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    *,
    rules: Mapping[str, MarketRules],
    bar: timedelta,
    fee_currency: FeeCurrency = "received",
    equity: bool = False,
) -> CompiledResult:
    """One backtest of ``strategy`` with its trade log (see :func:`replay.replay`);
    ``equity``: also keep the per-bar equity and holdings (see the module doc)."""
    inputs, program = build_inputs(closes, strategy, initial, rules, bar, fee_currency)
    return run_inputs(inputs, params_row(strategy, program), equity=equity)


def run_inputs(inputs: Inputs, params: FloatArray, *, equity: bool = False) -> CompiledResult:
    """:func:`run` on prepared inputs and one parameter row (``kernel.P_*`` columns)."""
    T, n = inputs.prices.shape
    cap = 256 * n + 16  # grown and rerun once when a long run fills more
    eq = np.zeros(T if equity else 0)
    held = np.zeros((T, n) if equity else (0, n))
    while True:
        fired = np.zeros(T, dtype=np.bool_)
        orders = np.zeros((cap, K.ORDER_COLS))
        skips = np.zeros((cap, 4), dtype=np.int64)
        finals = np.zeros(n)
        stats = np.zeros(K.STATS)
        simulate: Any = K.simulate
        simulate(
            *inputs.args(), params, *inputs.trigger_args(), fired, orders, skips, finals, stats,
            eq, held,
        )
        if stats[K.N_ORDERS] <= cap and stats[K.N_SKIPS] <= cap:
            break
        cap = int(max(stats[K.N_ORDERS], stats[K.N_SKIPS])) + 1
    legs = inputs.legs
    n_orders, n_skips = int(stats[K.N_ORDERS]), int(stats[K.N_SKIPS])
    return CompiledResult(
        fired=tuple(int(i) for i in np.flatnonzero(fired)),
        orders=tuple(_order(r, legs) for r in orders[:n_orders].tolist()),
        skips=tuple(
            Skip(int(r[0]), legs[int(r[1])], _side(r[2]), K.REASONS[int(r[3])])
            for r in skips[:n_skips]
        ),
        final_amounts={a: float(x) for a, x in zip(legs, finals, strict=True)},
        final_value=float(stats[K.FINAL]),
        fees=float(stats[K.FEES]),
        traded=float(stats[K.TRADED]),
        max_drawdown=float(stats[K.MAX_DD]),
        ties=int(stats[K.TIES]),
        legs=legs,
        equity=eq if equity else None,
        holdings=held if equity else None,
        stats=stats,
    )


def _order(r: list[float], legs: tuple[str, ...]) -> Order:
    return Order(
        int(r[K.O_BAR]),
        legs[int(r[K.O_LEG])],
        _side(r[K.O_SIDE]),
        r[K.O_AMOUNT],
        r[K.O_PRICE],
        r[K.O_COST],
        r[K.O_FEE],
        legs[int(r[K.O_FEE_LEG])],
        r[K.O_FEE_QUOTE],
    )


def metric_rows(
    stats: FloatArray, initial_value: float, bar: timedelta, span: timedelta | None = None
) -> list[dict[str, Any]]:
    """Per row of :func:`run_many`'s statistics, the metrics of
    :func:`rebalancer.backtest.metrics.compute_metrics` (same names and definitions, from
    the running forms), ``initial_value`` the portfolio's value before bar 0's trades.
    ``span``: the calendar time from the first bar to the last (missing bars count in the
    years of CAGR and Calmar); None: the bar count times the bar length."""
    secs = period_seconds(bar)
    rows: list[dict[str, Any]] = []
    for row in stats:
        n_ret = int(row[K.N_RET])
        elapsed = n_ret * secs if span is None else span.total_seconds()
        years = elapsed / (365 * 86400)
        moments = ReturnMoments(
            n=n_ret, mean=float(row[K.MEAN]), m2=float(row[K.M2]), down_ss=float(row[K.DOWN_SS])
        )
        vol, sharpe, sortino = ratios_from_moments(moments, secs)
        growth = float(row[K.FINAL]) / initial_value
        cagr = growth ** (1 / years) - 1 if years > 0 else math.nan
        max_dd = float(row[K.MAX_DD])
        rows.append(
            {
                "final_value": float(row[K.FINAL]),
                "total_return": growth - 1,
                "cagr": cagr,
                "volatility": vol,
                "sharpe": sharpe,
                "sortino": sortino,
                "max_drawdown": max_dd,
                "max_drawdown_bars": int(row[K.DD_BARS]),
                "calmar": cagr / max_dd if max_dd > 0 else math.nan,
                "n_rebalances": int(row[K.N_REB]),
                "fees": float(row[K.FEES]),
                "traded": float(row[K.TRADED]),
                "turnover": float(row[K.TURNOVER]),
            }
        )
    return rows


def run_many(inputs: Inputs, params: FloatArray) -> FloatArray:
    """Statistics (``kernel.STATS`` columns) of every parameter row, across cores."""
    if params.ndim != 2 or params.shape[1] != K.PARAMS:
        raise ValueError(f"params must be (combinations, {K.PARAMS}), got {params.shape}")
    many: Any = K.simulate_many
    out: FloatArray = many(
        *inputs.args(), np.ascontiguousarray(params), *inputs.trigger_args()
    )
    return out
