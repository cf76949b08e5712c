"""What a market order would cost against an order book, before it is sent.

Pure arithmetic on one side of a book (``[(price, size), ...]`` best first): the average fill
price of an order, its slippage against the best price, and the largest part of it that
fills within a slippage cap (the average of a walk only gets worse as it goes deeper, so
that part is found in one pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from rebalancer.core.model import ZERO, Side


@dataclass(frozen=True)
class BookEstimate:
    """``best``: the top of the side walked. ``average``/``slippage``: of the whole order,
    None when the book (as far as it was fetched) cannot fill it. ``fits_amount`` and
    ``fits_cost``: the largest part whose average slippage stays within the cap."""

    best: Decimal
    average: Decimal | None
    slippage: Decimal | None
    fits_amount: Decimal
    fits_cost: Decimal

    def within(self, cap: Decimal) -> bool:
        return self.slippage is not None and self.slippage <= cap

    def describe(self) -> str:
        if self.average is None or self.slippage is None:
            return f"more than the fetched book holds (best {self.best})"
        return (
            f"an average {self.average:.8g} vs best {self.best}, slippage "
            f"{float(self.slippage * 100):.3g} %"
        )


def _slip(side: Side, best: Decimal, average: Decimal) -> Decimal:
    return average / best - 1 if side is Side.BUY else 1 - average / best


def estimate_fill(
    levels: Sequence[tuple[Decimal, Decimal]],
    side: Side,
    cap: Decimal,
    *,
    amount: Decimal | None = None,
    cost: Decimal | None = None,
) -> BookEstimate:
    """Walk ``levels`` for ``amount`` base units, or for ``cost`` quote (a buy by cost).

    ``side``: BUY walks asks, SELL walks bids (the caller passes the right side).
    """
    if not levels:
        return BookEstimate(ZERO, None, None, ZERO, ZERO)
    best = levels[0][0]
    # the most an average may reach within the cap
    bound = best * (1 + cap) if side is Side.BUY else best * (1 - cap)
    got_amount = got_cost = ZERO
    fits_amount = fits_cost = ZERO
    capped = False
    for price, size in levels:
        if size <= 0:
            continue
        take = size
        if amount is not None:
            take = min(take, amount - got_amount)
        if cost is not None:
            take = min(take, (cost - got_cost) / price)
        if take <= 0:
            break
        if not capped:
            worse = price > bound if side is Side.BUY else price < bound
            if worse:
                # the part x of this level that keeps (C + x p) / (Q + x) on the bound
                room = (bound * got_amount - got_cost) / (price - bound)
                if room < take:
                    part = max(ZERO, room)
                    fits_amount, fits_cost = got_amount + part, got_cost + part * price
                    capped = True
        got_amount += take
        got_cost += take * price
        if not capped:
            fits_amount, fits_cost = got_amount, got_cost
    wanted_done = (amount is not None and got_amount >= amount) or (
        cost is not None and got_cost >= cost
    )
    if not wanted_done or got_amount <= 0:
        return BookEstimate(best, None, None, fits_amount, fits_cost)
    average = got_cost / got_amount
    return BookEstimate(best, average, _slip(side, best, average), fits_amount, fits_cost)
