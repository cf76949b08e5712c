"""CCXT market dicts -> symbols and :class:`MarketRules`; CCXT numbers -> Decimal.

CCXT reports precision in one of three modes (``client.precisionMode``): TICK_SIZE (4,
Binance in CCXT 4.5: ``precision.amount`` is a step such as ``1e-05``), DECIMAL_PLACES (2:
``precision.amount`` is a count of decimals, 5 -> step 0.00001) and SIGNIFICANT_DIGITS (3:
no fixed step; left unconstrained here, CCXT still truncates the amount it sends).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from rebalancer.core.errors import DataError, UnknownSymbol
from rebalancer.core.model import ZERO, MarketRules, Side

DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4


def dec(value: Any) -> Decimal | None:
    """``value`` (float, int, str or None from CCXT) as a finite Decimal, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return Decimal(repr(value))
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() else None


def symbol_for(asset: str, quote: str) -> str:
    """CCXT's unified spot symbol: BTC + USDT -> "BTC/USDT"."""
    return f"{asset.upper()}/{quote.upper()}"


def resolve(markets: Mapping[str, Any], symbol: str) -> Mapping[str, Any]:
    """The spot market for ``symbol``; UnknownSymbol (with near matches) otherwise."""
    market = markets.get(symbol)
    if market is None:
        near = difflib.get_close_matches(symbol, list(markets), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UnknownSymbol(f"market {symbol!r} is not listed on the exchange{hint}")
    if market.get("spot") is False:
        raise UnknownSymbol(f"market {symbol!r} is not a spot market (type {market.get('type')})")
    if market.get("active") is False:
        status = (market.get("info") or {}).get("status", "inactive")
        raise UnknownSymbol(f"market {symbol!r} is listed but not trading (status {status})")
    out: Mapping[str, Any] = market
    return out


def step_from_precision(value: Any, precision_mode: int) -> Decimal | None:
    """The amount step of ``precision.amount`` read in ``precision_mode``."""
    p = dec(value)
    if p is None:
        return None
    if precision_mode == TICK_SIZE:
        return p if p > 0 else None
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(p))
    return None


def passive_price(price: Decimal, side: Side, precision: Any, precision_mode: int) -> Decimal:
    """``price`` (quote per base) on the market's price precision, never more aggressive.

    ``precision`` is the market's ``precision.price`` read in ``precision_mode`` (as
    :func:`step_from_precision` reads the amount): a buy rounds DOWN to the tick, a sell UP,
    so a limit meant to rest inside the spread never crosses further than asked. In
    SIGNIFICANT_DIGITS mode the price keeps that many significant digits, rounded the same
    way. Unknown precision: ``price`` unchanged. Exact (Decimal, no float).
    """
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    if price <= 0:
        return ZERO
    if precision_mode == SIGNIFICANT_DIGITS:
        digits = dec(precision)
        if digits is None or digits < 1:
            return price
        quantum = Decimal(1).scaleb(price.adjusted() - int(digits) + 1)
        return price.quantize(quantum, rounding=rounding)
    tick = step_from_precision(precision, precision_mode)
    if tick is None:
        return price
    ticks, rest = divmod(price, tick)  # exact: price > 0, so a floor and a remainder >= 0
    if side is Side.SELL and rest != 0:
        ticks += 1
    return ticks * tick


def rules_from_market(market: Mapping[str, Any], precision_mode: int) -> MarketRules:
    """What the exchange accepts for one CCXT market, in Decimal."""
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    market_limits = limits.get("market") or {}
    cost_limits = limits.get("cost") or {}
    maxima = [
        m for m in (dec(amount_limits.get("max")), dec(market_limits.get("max"))) if m and m > 0
    ]
    return MarketRules(
        symbol=str(market["symbol"]),
        base=str(market["base"]),
        quote=str(market["quote"]),
        amount_step=step_from_precision(precision.get("amount"), precision_mode),
        min_amount=dec(amount_limits.get("min")) or ZERO,
        min_notional=dec(cost_limits.get("min")) or ZERO,
        max_amount=min(maxima) if maxima else None,
        taker_fee=dec(market.get("taker")) or ZERO,
        maker_fee=dec(market.get("maker")),
        cost_step=cost_step(market, precision_mode),
    )


def cost_step(market: Mapping[str, Any], precision_mode: int) -> Decimal | None:
    """The precision of quote amounts on ``market``: Kraken's ``cost_decimals`` (its fees
    are rounded to it), else what CCXT's ``cost_to_precision`` truncates a buy by cost to
    (``precision.cost``, else ``precision.price``: Binance's tick, Coinbase's
    ``quote_increment``); None when unknown."""
    info = market.get("info") or {}
    decimals = dec(info.get("cost_decimals")) if isinstance(info, Mapping) else None
    if decimals is not None:
        return Decimal(1).scaleb(-int(decimals))
    precision = market.get("precision") or {}
    value = precision.get("cost")
    return step_from_precision(precision.get("price") if value is None else value, precision_mode)


def positive(value: Any, what: str) -> Decimal:
    """``value`` as a Decimal > 0, else DataError naming ``what``."""
    out = dec(value)
    if out is None or out <= 0:
        raise DataError(f"{what}: expected a positive number, got {value!r}")
    return out


def sum_by_currency(fees: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """CCXT fee dicts summed per currency (None costs skipped)."""
    out: dict[str, Decimal] = {}
    for fee in fees:
        cost = dec(fee.get("cost"))
        currency = fee.get("currency")
        if cost is None or not currency:
            continue
        out[str(currency)] = out.get(str(currency), ZERO) + cost
    return out
