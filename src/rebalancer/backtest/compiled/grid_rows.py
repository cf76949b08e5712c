"""Sweep rows through the compiled engine: the rows :func:`grid.replay_one` would give,
from :func:`engine.run_many` (one kernel call per trigger kind and style, all cores).

Each combination gets the strategy the replay row would get (its trigger and style, the
strategy's own policy: ``min_trade``, slippage, cost-aware legs), the market's rules and
fee side (:class:`grid.Market`), the fee as the combination's rate; the metrics come from
the running statistics (:func:`engine.metric_rows`). Realised gains by lot need the trade
log: NaN here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rebalancer.backtest.compiled import kernel as K
from rebalancer.backtest.compiled.engine import metric_rows, run_many
from rebalancer.backtest.compiled.program import build_inputs, params_row, trigger_program

if TYPE_CHECKING:
    from rebalancer.backtest.grid import Combo, Market
    from rebalancer.core.strategy import Strategy


def compiled_rows(
    todo: Sequence[Combo],
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    market: Market,
    progress: Callable[[int], None],
    span: timedelta | None = None,
) -> list[dict[str, Any]]:
    """One row per combination of ``todo`` (in its order), as :func:`grid.replay_one`;
    ``span``: the panel's calendar time (the years of CAGR, see :func:`metric_rows`)."""
    from rebalancer.backtest.grid import combo_strategy

    initial = {base.quote: capital}
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for i, c in enumerate(todo):
        groups.setdefault((c.kind, c.style, math.isinf(c.band)), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in todo]
    for members in groups.values():
        strategies = [combo_strategy(todo[i], base) for i in members]
        inputs, _ = build_inputs(
            closes, strategies[0], initial, market.rules, bar, market.fee_currency
        )
        params = np.array(
            [params_row(s, trigger_program(s.trigger)) for s in strategies], dtype=np.float64
        )
        params[:, K.P_FEE_SCALE] = [todo[i].fee_rate for i in members]
        rows = metric_rows(run_many(inputs, params), float(capital), bar, span)
        for i, row in zip(members, rows, strict=True):
            out[i] = row
        progress(len(members))
    return out
