"""The venue model: how each exchange executes a market order, in one place.

What differs between Binance, Kraken and Coinbase Advanced once an order is sent:

* **which asset pays the fee** -- ``fee_in = "received"``: the asset the order brings in
  (a buy pays in the base, a sell in the quote; Binance's default), ``"quote"``: always
  the quote, charged *on top of* a buy's cost (Kraken under ``oflags=fciq``, Coinbase
  Advanced); ``fee_currency`` a third asset paying every fee at its price (Binance with
  BNB fees enabled, at ``fee_currency_discount`` of the rate);
* **how a market buy is sent** -- ``buy_by = "cost"``: as a quote amount (Binance
  ``quoteOrderQty``, Coinbase ``quote_size``), ``"amount"``: as base units (Kraken);
  ``cost_includes_fee``: the quote amount sent is the whole spend, fee included (Coinbase:
  ``filled_value = quote_size / (1 + rate)``, the fee is the rest);
* **the fee rounding** -- ``fee_rounding = "half_up"``: to the market's ``cost_step``
  (Kraken's ``cost_decimals``; captured: 7.105741 USDT at 0.26 % -> fee 0.018475),
  ``"down"``: truncated to 8 decimals whatever the asset (Binance's ``commission``), else
  exact;
* **the quote precision of a buy by cost** -- the quote amount is truncated to the
  market's ``cost_step`` (CCXT's ``cost_to_precision``: Binance's price tick, Coinbase's
  ``quote_increment``) and the exchange fills what it buys, whole steps only on Binance
  (so one step less than planned where the truncation bites);
* **the maker/taker fees** of the lowest tier (fractions), used where the config names
  none.

The market rules themselves are per market (:class:`~rebalancer.core.model.MarketRules`);
:meth:`VenueModel.market` stamps the venue's fee side and rates on them, so the planner,
which only sees rules, sizes buys under the venue: a market with ``fee_in_quote`` gets the
fee reserved from cash, exactly. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Literal

from rebalancer.core.errors import ConfigError, DataError
from rebalancer.core.model import ONE, ZERO, MarketRules, Side

FeeIn = Literal["received", "quote"]
BuyBy = Literal["cost", "amount"]


@dataclass(frozen=True)
class VenueModel:
    """How one exchange executes market orders (see the module doc)."""

    name: str
    fee_in: FeeIn
    buy_by: BuyBy
    taker_fee: Decimal
    maker_fee: Decimal
    cost_includes_fee: bool = False
    fee_rounding: Literal["exact", "half_up", "down"] = "exact"
    fee_currency: str | None = None
    fee_currency_discount: Decimal = ONE

    def market(
        self, rules: MarketRules, taker_fee: Decimal | None = None, maker_fee: Decimal | None = None
    ) -> MarketRules:
        """``rules`` as this venue executes them: its fee side, and the given rates (None:
        the rules' own taker fee when set, else the venue's)."""
        taker = taker_fee if taker_fee is not None else (rules.taker_fee or self.taker_fee)
        maker = maker_fee if maker_fee is not None else self.maker_fee
        return replace(rules, fee_in_quote=self.fee_in == "quote", taker_fee=taker, maker_fee=maker)

    def with_fee_currency(self, asset: str, discount: Decimal) -> VenueModel:
        """This venue paying every fee in ``asset`` (Binance: BNB, 25 % off -> 0.75)."""
        return replace(self, fee_currency=asset.upper(), fee_currency_discount=discount)

    def round_fee(self, fee: Decimal, rules: MarketRules) -> Decimal:
        """``fee`` (quote units) as the venue books it."""
        if self.fee_rounding == "half_up" and rules.cost_step:
            return fee.quantize(rules.cost_step, rounding=ROUND_HALF_UP)
        if self.fee_rounding == "down":
            return fee.quantize(COMMISSION, rounding=ROUND_DOWN)
        return fee

    def buy_quote(self, rules: MarketRules, cost: Decimal, fee: Decimal) -> Decimal:
        """The quote amount a buy by cost sends for an expected ``cost`` and ``fee``: the
        cost (plus the fee where the venue takes it from the amount sent), truncated to the
        market's ``cost_step`` as CCXT's ``cost_to_precision`` does."""
        quote = cost + fee if self.cost_includes_fee else cost
        step = rules.cost_step
        if step:
            quote = (quote / step).to_integral_value(rounding=ROUND_DOWN) * step
        return quote


def fee_reserve(rules: MarketRules, cost: Decimal, rate: Decimal) -> Decimal:
    """The most quote a buy costing ``cost`` pays in fees on a fee-in-quote market (its
    fee rounded *up* to the cost step): what the planner reserves from cash."""
    fee = cost * rate
    if rules.cost_step:
        fee = fee.quantize(rules.cost_step, rounding=ROUND_UP)
    return fee


COMMISSION = Decimal("1e-8")
"""Binance books every commission in 8 decimals, truncated."""

BINANCE = VenueModel(
    "binance", "received", "cost", Decimal("0.001"), Decimal("0.001"), fee_rounding="down"
)
KRAKEN = VenueModel(
    "kraken", "quote", "amount", Decimal("0.0026"), Decimal("0.0016"), fee_rounding="half_up"
)
COINBASE = VenueModel(
    "coinbase", "quote", "cost", Decimal("0.006"), Decimal("0.004"), cost_includes_fee=True
)
REFERENCE = VenueModel("reference", "received", "amount", Decimal("0.001"), Decimal("0.001"))
"""The historical fill model, used where no venue is named (the replay, the backtests):
Binance's fee side (the asset received), buys by amount, fees exact (no rounding)."""

VENUES: dict[str, VenueModel] = {v.name: v for v in (BINANCE, KRAKEN, COINBASE)}
"""The venues the bot trades (lowest-tier fees: Binance spot 0.1 %/0.1 %, Kraken
0.26 %/0.16 % as in CCXT's captured markets, Coinbase Advanced 0.6 %/0.4 %)."""


def venue_model(name: str) -> VenueModel:
    """The model of exchange ``name``; :class:`ConfigError` naming it and the fix."""
    venue = VENUES.get(name.strip().lower())
    if venue is None:
        raise ConfigError(
            f"exchange = {name!r}: no venue model for it (how it charges fees and sends "
            f"buys); models exist for {', '.join(sorted(VENUES))}. Set exchange to one of "
            "them"
        )
    return venue


def fee_currency_price(
    venue: VenueModel, prices: dict[str, Decimal] | None, quote: str
) -> Decimal | None:
    """The price (quote per unit) of the venue's third fee currency, None without one;
    :class:`DataError` naming the asset and the fix when it cannot be valued."""
    if venue.fee_currency is None:
        return None
    if venue.fee_currency == quote:
        return ONE
    price = (prices or {}).get(venue.fee_currency)
    if price is None or price <= ZERO:
        raise DataError(
            f"{venue.name}: fees are paid in {venue.fee_currency} but there is no "
            f"{venue.fee_currency}/{quote} price to value them; add {venue.fee_currency} to "
            f"the priced assets (e.g. a target of 0 or candles for it), or turn "
            f"{venue.fee_currency} fees off"
        )
    return price


def fill_fee(
    venue: VenueModel,
    rules: MarketRules,
    side: Side,
    amount: Decimal,
    cost: Decimal,
    rate: Decimal,
    fee_price: Decimal | None = None,
) -> tuple[Decimal, str]:
    """(fee, asset) of a fill of ``amount`` base for ``cost`` quote at fee ``rate``.

    ``fee_price``: the third fee currency's price in quote (required with one)."""
    if venue.fee_currency is not None:
        if fee_price is None:
            raise DataError(f"{venue.name}: no {venue.fee_currency} price to value the fee")
        fee = cost * rate * venue.fee_currency_discount / fee_price
        return venue.round_fee(fee, rules), venue.fee_currency
    if side is Side.BUY and venue.fee_in == "received":
        return venue.round_fee(amount * rate, rules), rules.base
    return venue.round_fee(cost * rate, rules), rules.quote
