"""Full-fidelity replay: the live loop (``service.run_cycle``) run bar by bar over history.

Each bar: the paper exchange's prices move to the bar's close, the manual clock to the
bar's close time, and one cycle runs with the same core as live. This is the engine of
``rebalancer demo`` and the reference the fast kernels are checked against.

With ``order_type = "limit_inside"`` and :class:`Ranges` (the candles' lows and highs) a
limit placed at a bar's close fills, at its price and the maker fee, when the *next* bar
traded through it (:mod:`rebalancer.adapters.paper`): the wait is modelled as one bar,
which is optimistic on daily bars (a real limit rests ``limit_timeout``, not a day).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np
import pandas as pd

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.model import ZERO, MarketRules
from rebalancer.core.strategy import Strategy
from rebalancer.core.venue import REFERENCE, VenueModel
from rebalancer.data.history import FrameHistory
from rebalancer.optimise.path import AtTimes, PathOptimiser, TargetPath
from rebalancer.service import CycleReport, Retarget, run_cycle

BarCallback = Callable[[int, CycleReport], None]


@dataclass(frozen=True, eq=False)
class Ranges:
    """Each bar's low and high per asset (quote per base), rows aligned with the closes."""

    assets: tuple[str, ...]
    lows: np.ndarray[Any, np.dtype[np.float64]]
    highs: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def from_frames(cls, lows: pd.DataFrame, highs: pd.DataFrame, closes: pd.DataFrame) -> Ranges:
        """The ranges of ``closes``' assets and bars (``lows``/``highs`` on its index)."""
        assets = [str(a) for a in closes.columns]
        low = lows.reindex(index=closes.index, columns=assets).to_numpy(dtype=np.float64)
        high = highs.reindex(index=closes.index, columns=assets).to_numpy(dtype=np.float64)
        return cls(tuple(assets), low, high)

    def after(self, i: int) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """Lows and highs of bar ``i + 1`` (the wait of a limit placed at bar ``i``'s
        close); none past the last bar or where the data has a gap."""
        if i + 1 >= len(self.lows):
            return {}, {}
        lows, highs = self.lows[i + 1], self.highs[i + 1]
        ok = [j for j in range(len(self.assets)) if np.isfinite(lows[j] + highs[j])]
        return (
            {self.assets[j]: Decimal(repr(float(lows[j]))) for j in ok},
            {self.assets[j]: Decimal(repr(float(highs[j]))) for j in ok},
        )


@dataclass
class ReplayResult:
    """Per-bar equity of the strategy and of buy-and-hold of the starting holdings."""

    times: list[datetime] = field(default_factory=list)
    equity: list[Decimal] = field(default_factory=list)
    hold_equity: list[Decimal] = field(default_factory=list)
    rebalances: list[CycleReport] = field(default_factory=list)
    final_balances: dict[str, Decimal] = field(default_factory=dict)
    traded_value: Decimal = ZERO
    fees: Decimal = ZERO
    skipped_legs: int = 0

    def summary(self) -> dict[str, Any]:
        start, final, hold = self.hold_equity[0], self.equity[-1], self.hold_equity[-1]
        return {
            "bars": len(self.times),
            "start": self.times[0].isoformat(),
            "end": self.times[-1].isoformat(),
            "initial_value": float(start),
            "final_value": float(final),
            "buy_and_hold_final_value": float(hold),
            "return": float(final / start - 1),
            "buy_and_hold_return": float(hold / start - 1),
            "rebalances": len(self.rebalances),
            "orders": sum(len(r.fills) for r in self.rebalances),
            "skipped_legs": self.skipped_legs,
            "traded_value": float(self.traded_value),
            "fees": float(self.fees),
            "final_balances": {k: float(v) for k, v in self.final_balances.items()},
        }


def decimal_rows(closes: pd.DataFrame) -> list[dict[str, Decimal]]:
    """Close prices as exact Decimals (the CSV's shortest float repr, not binary noise)."""
    cols = list(closes.columns)
    return [
        {c: Decimal(repr(float(v))) for c, v in zip(cols, row, strict=True)}
        for row in closes.itertuples(index=False, name=None)
    ]


def holdings_from_weights(
    weights: Mapping[str, Decimal], prices: Mapping[str, Decimal], capital: Decimal, quote: str
) -> dict[str, Decimal]:
    """Amounts worth ``capital * weight`` at ``prices`` (8 decimals, rounded down)."""
    step = Decimal("0.00000001")
    out: dict[str, Decimal] = {}
    for asset, w in weights.items():
        price = Decimal(1) if asset == quote else prices[asset]
        out[asset] = (capital * w / price).quantize(step, rounding=ROUND_DOWN)
    return out


def value(balances: Mapping[str, Decimal], prices: Mapping[str, Decimal], quote: str) -> Decimal:
    return sum(
        (amt * (Decimal(1) if a == quote else prices.get(a, ZERO)) for a, amt in balances.items()),
        ZERO,
    )


def replay(
    closes: pd.DataFrame,
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    *,
    taker_fee: Decimal,
    slippage: Decimal,
    bar: timedelta,
    rules: Mapping[str, MarketRules] | None = None,
    on_bar: BarCallback | None = None,
    maker_fee: Decimal | None = None,
    ranges: Ranges | None = None,
    targets: TargetPath | None = None,
    venue: VenueModel = REFERENCE,
) -> ReplayResult:
    """Replay ``closes`` (UTC index = candle open times, one column per asset).

    ``initial``: starting balances. Each cycle runs at the bar's close time (open + ``bar``).
    ``maker_fee`` (None: the taker fee) and ``ranges``: limit orders, see the module doc.
    ``targets``: a target path (scheduled optimised targets), applied by the live
    ``retarget`` step (:func:`path_retarget`).
    ``venue``: how the paper exchange fills (:mod:`rebalancer.core.venue`).
    """
    exchange = paper_exchange(strategy, initial, taker_fee, slippage, rules, maker_fee, venue)
    journal, notifier = MemoryJournal(), MemoryNotifier()
    result = ReplayResult()
    rows = decimal_rows(closes[list(strategy.assets)])
    history = FrameHistory(closes[list(strategy.assets)], bar)
    retarget = path_retarget(targets, strategy, closes.index, bar)
    for i, (opened, prices) in enumerate(zip(closes.index, rows, strict=True)):
        now = opened.to_pydatetime() + bar
        exchange.set_prices(prices, now)
        if ranges is not None:
            exchange.set_ranges(*ranges.after(i))
        report = run_cycle(
            exchange, journal, notifier, strategy, now, history=history, retarget=retarget
        )
        if report.fills:
            result.rebalances.append(report)
            result.traded_value += report.traded_value
            result.fees += report.fees_in_quote()
        result.skipped_legs += len(report.failed) + _skips(report)
        result.times.append(now)
        result.equity.append(value(exchange.balances, prices, strategy.quote))
        result.hold_equity.append(value(initial, prices, strategy.quote))
        if on_bar is not None:
            on_bar(i, report)
    result.final_balances = dict(exchange.balances)
    return result


def path_retarget(
    path: TargetPath | None, strategy: Strategy, index: pd.Index, bar: timedelta
) -> Retarget | None:
    """The live retarget step's wiring that replays ``path``: its times as the schedule,
    its targets handed out in order, a window of one close (None without a path). The
    path is checked against the bars first (:meth:`TargetPath.bars`)."""
    if not path:
        return None
    path = path.aligned(list(strategy.targets))
    path.bars([t.to_pydatetime() + bar for t in index])
    times = AtTimes(times=tuple(when for when, _ in path.changes))
    return Retarget(PathOptimiser(path), times, window=0)


def paper_exchange(
    strategy: Strategy,
    initial: Mapping[str, Decimal],
    taker_fee: Decimal,
    slippage: Decimal,
    rules: Mapping[str, MarketRules] | None,
    maker_fee: Decimal | None = None,
    venue: VenueModel = REFERENCE,
) -> PaperExchange:
    """The simulated account of a replay; it quotes its book (bids/asks) only for
    ``limit_inside``, so the default market path plans exactly as it always did."""
    return PaperExchange(
        strategy.quote,
        dict(initial),
        taker_fee,
        slippage,
        dict(rules or {}),
        maker_fee=maker_fee,
        quote_book=strategy.execution.limit_inside,
        venue=venue,
    )


def _skips(report: CycleReport) -> int:
    plans = [p for p in (report.plan, report.buy_plan) if p is not None]
    return len({(s.asset, s.side) for p in plans for s in p.skipped})
