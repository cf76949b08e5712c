"""Rows of the yearly tax exports (pure: the CLI writes them as CSV).

* :func:`koinly_rows` -- every fill of the year in the Koinly "universal" layout (also read
  by CoinTracker and most tax tools): ``Date, Sent Amount, Sent Currency, Received Amount,
  Received Currency, Fee Amount, Fee Currency, Net Worth Amount, Net Worth Currency, Label,
  Description, TxHash``. A buy sends the quote and receives the asset; a sell the reverse.
  The tax tool computes the gains from these with its own method.
* :func:`disposal_rows` -- the gains we computed, one row per lot closed (the Form 8949
  shape): ``Date Acquired, Date Sold, Asset, Amount, Proceeds, Cost Basis, Gain, Lot``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rebalancer.core.lots import Disposal, TimedFill
from rebalancer.core.model import Side
from rebalancer.core.numbers import plain

KOINLY_DATE = "%Y-%m-%d %H:%M UTC"  # the importer's documented "YYYY-MM-DD HH:MM UTC"
KOINLY_COLUMNS = (
    "Date",
    "Sent Amount",
    "Sent Currency",
    "Received Amount",
    "Received Currency",
    "Fee Amount",
    "Fee Currency",
    "Net Worth Amount",
    "Net Worth Currency",
    "Label",
    "Description",
    "TxHash",
)
DISPOSAL_COLUMNS = (
    "Date Acquired",
    "Date Sold",
    "Asset",
    "Amount",
    "Proceeds",
    "Cost Basis",
    "Gain",
    "Lot",
)


def koinly_rows(fills: Iterable[TimedFill], year: int | None = None) -> list[dict[str, str]]:
    """One row per fill (of ``year`` when given), oldest first."""
    rows: list[dict[str, str]] = []
    for tf in sorted(fills, key=lambda x: x.at):
        if year is not None and tf.at.year != year:
            continue
        f = tf.fill
        buy = f.side is Side.BUY
        rows.append(
            {
                "Date": tf.at.strftime(KOINLY_DATE),
                "Sent Amount": plain(f.cost if buy else f.amount),
                "Sent Currency": tf.quote if buy else f.asset,
                "Received Amount": plain(f.amount if buy else f.cost),
                "Received Currency": f.asset if buy else tf.quote,
                "Fee Amount": plain(f.fee) if f.fee else "",
                "Fee Currency": f.fee_asset if f.fee else "",
                "Net Worth Amount": plain(f.cost),
                "Net Worth Currency": tf.quote,
                "Label": "",
                "Description": f"rebalancer {f.side.value} {f.symbol}",
                "TxHash": f.exchange_order_id or f.client_order_id,
            }
        )
        rows += _other_fee_rows(tf)
    return rows


def _other_fee_rows(tf: TimedFill) -> list[dict[str, str]]:
    """A fill's fees in further currencies (part in BNB, say): Koinly's row has one fee
    column, so each other fee is its own outgoing row labelled ``cost``."""
    f = tf.fill
    tx = f.exchange_order_id or f.client_order_id
    return [
        {
            **dict.fromkeys(KOINLY_COLUMNS, ""),
            "Date": tf.at.strftime(KOINLY_DATE),
            "Sent Amount": plain(amount),
            "Sent Currency": asset,
            "Label": "cost",
            "Description": f"rebalancer fee of {f.side.value} {f.symbol} in {asset}",
            "TxHash": f"{tx}-fee-{i}",
        }
        for i, (asset, amount) in enumerate(f.other_fees, start=1)
        if amount
    ]


def disposal_rows(disposals: Iterable[Disposal], year: int | None = None) -> list[dict[str, str]]:
    """One row per lot closed (in ``year`` when given)."""
    return [
        {
            "Date Acquired": d.acquired.strftime("%Y-%m-%d"),
            "Date Sold": d.disposed.strftime("%Y-%m-%d"),
            "Asset": d.asset,
            "Amount": plain(d.amount),
            "Proceeds": f"{d.proceeds:.2f}",
            "Cost Basis": f"{d.cost:.2f}",
            "Gain": f"{d.gain:.2f}",
            "Lot": d.lot_id,
        }
        for d in disposals
        if year is None or d.disposed.year == year
    ]
