"""The fill model shared by the paper exchange and the backtester.

A market order fills completely at the executable price moved against the taker by
``slippage`` (a fraction): sells at ``bid * (1 - slippage)``, buys at
``ask * (1 + slippage)``. The fee is charged as Binance charges it by default: in the
asset received (base for a buy, quote for a sell), ``fee_rate`` of the amount received.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from rebalancer.core.errors import InsufficientFunds, OrderRejected
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side
from rebalancer.core.rules import violation


def fill_market_order(
    order: OrderRequest,
    rules: MarketRules,
    bid: Decimal,
    ask: Decimal,
    slippage: Decimal,
    balances: Mapping[str, Decimal],
) -> Fill:
    """Fill ``order`` against ``balances`` or raise as an exchange would.

    Raises :class:`OrderRejected` for a market-rule violation and
    :class:`InsufficientFunds` when the balance does not cover the order.
    """
    price = bid * (1 - slippage) if order.side is Side.SELL else ask * (1 + slippage)
    problem = violation(rules, order.amount, price)
    if problem is not None:
        raise OrderRejected(f"{order.symbol} {order.side.value} rejected: {problem[1]}")
    cost = order.amount * price
    if order.side is Side.SELL:
        held = balances.get(rules.base, ZERO)
        if order.amount > held:
            raise InsufficientFunds(
                f"{order.symbol} sell of {order.amount} {rules.base}: only {held} free"
            )
        fee, fee_asset = cost * rules.taker_fee, rules.quote
    else:
        cash = balances.get(rules.quote, ZERO)
        if cost > cash:
            raise InsufficientFunds(
                f"{order.symbol} buy costs {cost} {rules.quote}: only {cash} free"
            )
        fee, fee_asset = order.amount * rules.taker_fee, rules.base
    return Fill(
        client_order_id=order.client_order_id,
        asset=order.asset,
        symbol=order.symbol,
        side=order.side,
        amount=order.amount,
        price=price,
        cost=cost,
        fee=fee,
        fee_asset=fee_asset,
    )


def apply_fill(balances: Mapping[str, Decimal], fill: Fill, quote: str) -> dict[str, Decimal]:
    """Balances after ``fill``: the base and quote move, the fee leaves its asset.

    Invariant: no balance goes below zero (the fill was checked against the balances).
    """
    out = dict(balances)
    sign = Decimal(1) if fill.side is Side.BUY else Decimal(-1)
    out[fill.asset] = out.get(fill.asset, ZERO) + sign * fill.amount
    out[quote] = out.get(quote, ZERO) - sign * fill.cost
    out[fill.fee_asset] = out.get(fill.fee_asset, ZERO) - fill.fee
    return out
