"""Tax lots: cost basis per lot, lot selection on sells, realised gains per year.

Every buy opens a lot: ``amount`` received (less a fee paid in the base asset) at a cost
basis of the quote spent plus a fee paid in the quote. Every sell closes lots -- chosen by
the method -- and realises ``proceeds - cost basis`` per lot closed, where the proceeds are
the quote received less a fee paid in the quote (a fee paid in the base asset is disposed
of with the sold amount, at no proceeds). A fee in a third asset (e.g. BNB) is not in the
basis; it is kept on the disposal for the export.

Methods (which open lots a sell closes first):

* ``fifo`` -- oldest first;
* ``lifo`` -- newest first;
* ``hifo`` -- highest cost per unit first: for a given amount sold this realises the
  smallest gain (or the largest loss), i.e. it minimises realised gains and harvests
  losses first;
* ``specific`` -- the lot ids given with the sell, in that order (then FIFO for the rest).

Pure: values in, values out; amounts and money are Decimal, times aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from rebalancer.core.model import ZERO, Fill, Side

Method = Literal["fifo", "lifo", "hifo", "specific"]
METHODS: tuple[str, ...] = ("fifo", "lifo", "hifo", "specific")


@dataclass(frozen=True)
class Lot:
    """An open lot: ``amount`` of ``asset`` bought at ``acquired`` for ``cost`` (quote)."""

    lot_id: str
    asset: str
    amount: Decimal
    cost: Decimal
    acquired: datetime

    @property
    def unit_cost(self) -> Decimal:
        return self.cost / self.amount if self.amount else ZERO


@dataclass(frozen=True)
class Disposal:
    """Part or all of one lot sold: ``gain = proceeds - cost``."""

    lot_id: str
    asset: str
    amount: Decimal
    proceeds: Decimal
    cost: Decimal
    acquired: datetime
    disposed: datetime

    @property
    def gain(self) -> Decimal:
        return self.proceeds - self.cost


@dataclass(frozen=True)
class YearGains:
    year: int
    proceeds: Decimal
    cost: Decimal
    gains: Decimal  # sum of the positive gains
    losses: Decimal  # sum of the negative gains (<= 0)

    @property
    def net(self) -> Decimal:
        return self.gains + self.losses


@dataclass(frozen=True)
class TimedFill:
    """A fill and when it happened (the journal's time of the fill)."""

    at: datetime
    fill: Fill
    quote: str
    lot_ids: tuple[str, ...] = ()  # specific identification: the lots to close first
    fill_id: str = ""  # the lot id of a buy (default: the client order id)


@dataclass(frozen=True)
class LotBook:
    """Open lots per asset, in acquisition order."""

    lots: Mapping[str, tuple[Lot, ...]] = field(default_factory=dict)

    def open_lots(self, asset: str) -> tuple[Lot, ...]:
        return tuple(self.lots.get(asset, ()))

    def held(self, asset: str) -> Decimal:
        return sum((lot.amount for lot in self.lots.get(asset, ())), ZERO)

    def basis(self, asset: str) -> Decimal:
        return sum((lot.cost for lot in self.lots.get(asset, ())), ZERO)


def order_lots(lots: Sequence[Lot], method: Method, chosen: Sequence[str] = ()) -> list[Lot]:
    """``lots`` in the order ``method`` closes them (ties keep acquisition order)."""
    if method == "lifo":
        return list(reversed(lots))
    if method == "hifo":
        return sorted(lots, key=lambda lot: -lot.unit_cost)
    if method == "specific":
        rank = {lot_id: i for i, lot_id in enumerate(chosen)}
        return sorted(lots, key=lambda lot: rank.get(lot.lot_id, len(rank)))
    return list(lots)


def add_fill(book: LotBook, tf: TimedFill, method: Method) -> tuple[LotBook, list[Disposal]]:
    """``book`` after one fill and the disposals it realised (none for a buy)."""
    f = tf.fill
    lots = dict(book.lots)
    current = list(lots.get(f.asset, ()))
    fees = f.fees()  # every fee, also those charged in a second currency
    if f.side is Side.BUY:
        amount = f.amount - fees.get(f.asset, ZERO)
        cost = f.cost + fees.get(tf.quote, ZERO)
        lot_id = tf.fill_id or f.client_order_id or f.exchange_order_id or tf.at.isoformat()
        taken = {lot.lot_id for lot in current}
        k = 1
        while lot_id in taken:  # several fills of one order: lot ids stay unique
            k += 1
            lot_id = f"{tf.fill_id or f.client_order_id or tf.at.isoformat()}#{k}"
        if amount > 0:
            current.append(Lot(lot_id, f.asset, amount, cost, tf.at))
        lots[f.asset] = tuple(current)
        return LotBook(lots), []
    sold = f.amount + fees.get(f.asset, ZERO)
    proceeds = f.cost - fees.get(tf.quote, ZERO)
    disposals: list[Disposal] = []
    remaining = sold
    closing = order_lots(current, method, tf.lot_ids)
    left: dict[str, Lot] = {lot.lot_id: lot for lot in current}
    for lot in closing:
        if remaining <= 0:
            break
        take = min(lot.amount, remaining)
        part_cost = lot.cost if take == lot.amount else lot.cost * take / lot.amount
        part_proceeds = proceeds * take / sold if sold else ZERO
        disposals.append(
            Disposal(lot.lot_id, f.asset, take, part_proceeds, part_cost, lot.acquired, tf.at)
        )
        remaining -= take
        if take == lot.amount:
            del left[lot.lot_id]
        else:
            left[lot.lot_id] = replace(lot, amount=lot.amount - take, cost=lot.cost - part_cost)
    if remaining > 0:  # sold more than the lots hold (e.g. holdings from before the journal)
        part_proceeds = proceeds * remaining / sold
        disposals.append(Disposal("unknown", f.asset, remaining, part_proceeds, ZERO, tf.at, tf.at))
    lots[f.asset] = tuple(left[lot.lot_id] for lot in current if lot.lot_id in left)
    return LotBook(lots), disposals


def realise(
    fills: Iterable[TimedFill], method: Method, book: LotBook | None = None
) -> tuple[LotBook, list[Disposal]]:
    """Replay ``fills`` (oldest first) into lots; every disposal, in order.

    A sell beyond the open lots (holdings bought before the journal began) is disposed of
    with cost basis 0 and lot id ``unknown``: the export shows it so it can be corrected.
    """
    book = book or LotBook()
    out: list[Disposal] = []
    for tf in sorted(fills, key=lambda x: x.at):
        book, disposals = add_fill(book, tf, method)
        out.extend(disposals)
    return book, out


def gains_by_year(disposals: Iterable[Disposal]) -> dict[int, YearGains]:
    """Realised proceeds, cost, gains and losses per calendar year (UTC) of disposal."""
    acc: dict[int, list[Decimal]] = {}
    for d in disposals:
        row = acc.setdefault(d.disposed.year, [ZERO, ZERO, ZERO, ZERO])
        row[0] += d.proceeds
        row[1] += d.cost
        if d.gain >= 0:
            row[2] += d.gain
        else:
            row[3] += d.gain
    return {y: YearGains(y, *row) for y, row in sorted(acc.items())}


def unrealised(book: LotBook, prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Per asset: value at ``prices`` minus the open lots' cost basis."""
    return {
        asset: book.held(asset) * prices[asset] - book.basis(asset)
        for asset in book.lots
        if asset in prices and book.held(asset) > 0
    }
