"""The fill model shared by the paper exchange and the backtester.

A market order fills completely at the executable price moved against the taker by
``slippage`` (a fraction): sells at ``bid * (1 - slippage)``, buys at
``ask * (1 + slippage)``. The fee is charged as the venue charges it
(:mod:`rebalancer.core.venue`): by default as Binance does, in the asset received (base for
a buy, quote for a sell), ``fee_rate`` of the amount received; in the quote on top of the
cost on Kraken (``fciq``) and Coinbase, whose buys spend a fee-inclusive quote amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from rebalancer.core.errors import InsufficientFunds, OrderRejected
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side
from rebalancer.core.rules import truncate, violation
from rebalancer.core.venue import REFERENCE, VenueModel, fill_fee


def fill_market_order(
    order: OrderRequest,
    rules: MarketRules,
    bid: Decimal,
    ask: Decimal,
    slippage: Decimal,
    balances: Mapping[str, Decimal],
    venue: VenueModel = REFERENCE,
    fee_price: Decimal | None = None,
) -> Fill:
    """Fill ``order`` against ``balances`` or raise as ``venue`` would.

    The fee rate is the market's ``taker_fee``; who pays it and how a buy is sent follow
    ``venue`` (:mod:`rebalancer.core.venue`): a buy sent by amount with the fee in the
    quote (Kraken) needs ``cost + fee`` of cash; a buy sent by a fee-inclusive quote
    amount (Coinbase) spends ``quote = expected_cost + expected_fee`` (truncated to the
    cost step) and receives ``quote / (1 + fee) / price``; a third fee currency (BNB) is
    charged at ``fee_price`` (quote per unit) while it lasts, else the fee falls back to
    the venue's usual asset. A buy sent by cost otherwise (Binance ``quoteOrderQty``) fills
    the whole steps its quote amount, cut to the cost step, buys (never more than
    ``order.amount``: an order whose expected cost is dearer than its amount at the fill
    price is taken at its amount). Raises
    :class:`OrderRejected` for a market-rule violation and :class:`InsufficientFunds` when
    the balance does not cover the order.
    """
    price = bid * (1 - slippage) if order.side is Side.SELL else ask * (1 + slippage)
    if order.side is Side.BUY and venue.buy_by == "cost" and venue.cost_includes_fee:
        return _fill_buy_by_quote(order, rules, price, balances, venue)
    if order.side is Side.BUY and venue.buy_by == "cost" and order.expected_cost > 0:
        # the quote amount sent is cut to the cost step; the exchange buys whole steps
        quote = venue.buy_quote(rules, order.expected_cost, order.expected_fee)
        bought = truncate(quote / price, rules.amount_step)
        order = replace(order, amount=min(order.amount, bought))
    problem = violation(rules, order.amount, price)
    if problem is not None:
        raise OrderRejected(f"{order.symbol} {order.side.value} rejected: {problem[1]}")
    cost = order.amount * price
    fee, fee_asset = _fee(venue, rules, order, cost, balances, fee_price)
    if order.side is Side.SELL:
        held = balances.get(rules.base, ZERO)
        if order.amount > held:
            raise InsufficientFunds(
                f"{order.symbol} sell of {order.amount} {rules.base}: only {held} free"
            )
    else:
        cash = balances.get(rules.quote, ZERO)
        need = cost + fee if fee_asset == rules.quote else cost
        if need > cash:
            extra = f" + fee {fee}" if fee_asset == rules.quote else ""
            raise InsufficientFunds(
                f"{order.symbol} buy costs {cost}{extra} {rules.quote}: only {cash} free"
            )
    return _fill(order, order.amount, price, cost, fee, fee_asset)


def _fee(
    venue: VenueModel,
    rules: MarketRules,
    order: OrderRequest,
    cost: Decimal,
    balances: Mapping[str, Decimal],
    fee_price: Decimal | None,
) -> tuple[Decimal, str]:
    """The venue's fee; a third fee currency only while its balance covers it."""
    fee, asset = fill_fee(venue, rules, order.side, order.amount, cost, rules.taker_fee, fee_price)
    if venue.fee_currency is not None and fee > balances.get(asset, ZERO):
        plain = replace(venue, fee_currency=None)
        return fill_fee(plain, rules, order.side, order.amount, cost, rules.taker_fee)
    return fee, asset


def _fill_buy_by_quote(
    order: OrderRequest,
    rules: MarketRules,
    price: Decimal,
    balances: Mapping[str, Decimal],
    venue: VenueModel,
) -> Fill:
    """A market buy sent as a fee-inclusive quote amount (Coinbase ``quote_size``)."""
    quote = venue.buy_quote(rules, order.expected_cost, order.expected_fee)
    if quote <= 0 or quote < rules.min_notional:
        raise OrderRejected(
            f"{order.symbol} buy rejected: quote size {quote} < market minimum "
            f"{rules.min_notional} {rules.quote}"
        )
    cash = balances.get(rules.quote, ZERO)
    if quote > cash:
        raise InsufficientFunds(
            f"{order.symbol} buy of {quote} {rules.quote} (fee included): only {cash} free"
        )
    spend = quote / (1 + rules.taker_fee)
    return _fill(order, spend / price, price, spend, quote - spend, rules.quote)


def _fill(
    order: OrderRequest, amount: Decimal, price: Decimal, cost: Decimal, fee: Decimal, asset: str
) -> Fill:
    return Fill(
        client_order_id=order.client_order_id,
        asset=order.asset,
        symbol=order.symbol,
        side=order.side,
        amount=amount,
        price=price,
        cost=cost,
        fee=fee,
        fee_asset=asset,
    )


def apply_fill(balances: Mapping[str, Decimal], fill: Fill, quote: str) -> dict[str, Decimal]:
    """Balances after ``fill``: the base and quote move, each fee leaves its asset.

    Invariant: no balance goes below zero (the fill was checked against the balances).
    """
    out = dict(balances)
    sign = Decimal(1) if fill.side is Side.BUY else Decimal(-1)
    out[fill.asset] = out.get(fill.asset, ZERO) + sign * fill.amount
    out[quote] = out.get(quote, ZERO) - sign * fill.cost
    for asset, fee in fill.fees().items():
        out[asset] = out.get(asset, ZERO) - fee
    return out
