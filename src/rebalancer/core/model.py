"""Immutable domain values shared by every layer.

Units: ``amount`` in base units of the asset, ``price`` in quote per base, ``cost`` and
``value`` in quote units, ``weight`` and ``target`` fractions of the managed total (0..1),
fee rates as fractions (0.001 = 0.1 %). Money is :class:`~decimal.Decimal` throughout.
Times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)
ONE = Decimal(1)


class Side(StrEnum):
    SELL = "sell"
    BUY = "buy"


@dataclass(frozen=True)
class MarketRules:
    """What the exchange accepts for one market (``base``/``quote``).

    ``amount_step`` None means any amount is accepted (unconstrained). ``min_amount`` is in
    base units, ``min_notional`` in quote units, ``taker_fee`` a fraction of the traded value
    (``maker_fee`` None: the taker's). ``fee_in_quote``: a buy pays its fee in the quote on
    top of its cost (Kraken ``fciq``, Coinbase), so the planner reserves it from cash;
    False: in the asset received (Binance). ``cost_step``: the precision of quote amounts
    (fees rounded, buys by cost truncated to it; None: exact). See
    :mod:`rebalancer.core.venue`.
    """

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    min_amount: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_amount: Decimal | None = None
    taker_fee: Decimal = ZERO
    maker_fee: Decimal | None = None
    fee_in_quote: bool = False
    cost_step: Decimal | None = None


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of an account: what is held and what it is worth.

    ``balances``: free amount per asset (quote included). ``prices``: valuation price per
    non-quote asset in quote units (the quote's own price is 1 and need not be given).
    ``bids`` / ``asks``: optional executable prices for sells / buys; the valuation price is
    used where they are missing. ``markets``: rules per non-quote asset.
    """

    quote: str
    balances: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]
    markets: Mapping[str, MarketRules]
    taken_at: datetime
    bids: Mapping[str, Decimal] = field(default_factory=dict)
    asks: Mapping[str, Decimal] = field(default_factory=dict)

    def price(self, asset: str) -> Decimal:
        """Valuation price of ``asset`` in quote units (1 for the quote itself)."""
        if asset == self.quote:
            return ONE
        return self.prices[asset]

    def sell_price(self, asset: str) -> Decimal:
        return self.bids.get(asset, self.price(asset))

    def buy_price(self, asset: str) -> Decimal:
        return self.asks.get(asset, self.price(asset))

    def amount(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)


@dataclass(frozen=True)
class OrderRequest:
    """A market order the planner wants: ``amount`` base units of ``asset``.

    ``expected_price`` and ``expected_cost`` (quote) include the slippage allowance;
    ``expected_fee`` is in quote units (an estimate: the exchange decides the fee asset).
    ``client_order_id`` is filled in by the service (deterministic per run and leg).
    """

    asset: str
    symbol: str
    side: Side
    amount: Decimal
    expected_price: Decimal
    expected_cost: Decimal
    expected_fee: Decimal
    client_order_id: str = ""


@dataclass(frozen=True)
class Fill:
    """What really happened to an order: filled ``amount`` at average ``price``.

    ``cost`` = amount * price in quote units; the fee is ``fee`` units of ``fee_asset``,
    plus ``other_fees`` ((asset, amount) pairs) where the exchange charged the order's fees
    in more than one currency (e.g. part in BNB, part in USDT); :meth:`fees` has them all.
    """

    client_order_id: str
    asset: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    status: str = "closed"
    exchange_order_id: str = ""
    other_fees: tuple[tuple[str, Decimal], ...] = ()

    def fees(self) -> dict[str, Decimal]:
        """Every fee of the fill, summed per asset (units of that asset)."""
        out: dict[str, Decimal] = {}
        for asset, amount in ((self.fee_asset, self.fee), *self.other_fees):
            if asset:
                out[asset] = out.get(asset, ZERO) + amount
        return out
