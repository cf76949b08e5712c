"""Sweep rows through the compiled engine: the rows :func:`grid.replay_one` would give,
from :func:`engine.run_many` (one kernel call per trigger kind and style, all cores).

Each combination gets the strategy, market rules and frictions the replay row would get
(``semantics="reference"``: no ``min_trade``, no slippage, no step or minimum; ``"full"``:
the strategy's policy and the paper exchange's Binance-like rules from the first bar's
prices), the fee as the combination's rate; the metrics come from the running statistics
(:func:`engine.metric_rows`). Realised gains by lot need the trade log: NaN here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rebalancer.backtest.compiled import kernel as K
from rebalancer.backtest.compiled.engine import metric_rows, run_many
from rebalancer.backtest.compiled.program import build_inputs, params_row, trigger_program
from rebalancer.core.model import ZERO, MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Trigger

if TYPE_CHECKING:
    from rebalancer.backtest.grid import Combo


def _rules(
    closes: pd.DataFrame, strategy: Strategy, semantics: str
) -> dict[str, MarketRules]:
    """Rules with fee 1 (the kernel scales it by each row's rate): the reference's free
    markets, or the paper exchange's made-up rules from the first bar's prices."""
    from rebalancer.adapters.paper import default_rules
    from rebalancer.backtest.replay import decimal_rows

    one = Decimal(1)
    if semantics == "reference":
        return {
            a: MarketRules(f"{a}/{strategy.quote}", a, strategy.quote, taker_fee=one)
            for a in strategy.assets
        }
    first = decimal_rows(closes[list(strategy.assets)].iloc[:1])[0]
    return {a: default_rules(a, strategy.quote, first[a], one) for a in strategy.assets}


def _strategy(combo: Combo, base: Strategy, semantics: str) -> Strategy:
    """The strategy :func:`grid.replay_one` runs for ``combo``."""
    from rebalancer.backtest.engine import FirstBar

    trigger: Trigger = FirstBar() if math.isinf(combo.band) else combo.trigger()
    if semantics == "reference":
        policy = combo.policy(PlanPolicy(min_trade=ZERO, slippage=ZERO))
    else:
        policy = combo.policy(base.policy)
    return replace(base, trigger=trigger, policy=policy)


def compiled_rows(
    todo: Sequence[Combo],
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    semantics: str,
    progress: Callable[[int], None],
    span: timedelta | None = None,
) -> list[dict[str, Any]]:
    """One row per combination of ``todo`` (in its order), as :func:`grid.replay_one`;
    ``span``: the panel's calendar time (the years of CAGR, see :func:`metric_rows`)."""
    rules = _rules(closes, base, semantics)
    initial = {base.quote: capital}
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for i, c in enumerate(todo):
        groups.setdefault((c.kind, c.style, math.isinf(c.band)), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in todo]
    for members in groups.values():
        strategies = [_strategy(todo[i], base, semantics) for i in members]
        inputs, _ = build_inputs(closes, strategies[0], initial, rules, bar)
        params = np.array(
            [params_row(s, trigger_program(s.trigger)) for s in strategies], dtype=np.float64
        )
        params[:, K.P_FEE_SCALE] = [todo[i].fee_rate for i in members]
        rows = metric_rows(run_many(inputs, params), float(capital), bar, span)
        for i, row in zip(members, rows, strict=True):
            out[i] = row
        progress(len(members))
    return out
