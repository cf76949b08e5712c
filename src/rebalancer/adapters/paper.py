"""The paper exchange: an in-process account behind the same port as the live adapter.

Prices come from outside (a candle replay or, later, a live exchange's public tickers)
through :meth:`PaperExchange.set_prices`; fills use the core's fill model
(:mod:`rebalancer.core.fills`), so paper and backtest trade exactly alike. Deterministic
given its inputs. Balances can be persisted through a callback after every fill; with
``on_order`` the balances *and* the orders (client id -> fill) are handed over together, so
a state file written atomically holds both and reconciliation after a crash finds the
orders the account already traded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from rebalancer.core.drift import check_price
from rebalancer.core.errors import DataError, UnknownSymbol
from rebalancer.core.fills import apply_fill, fill_market_order
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Snapshot

MIN_NOTIONAL = Decimal(5)


def default_rules(asset: str, quote: str, price: Decimal, taker_fee: Decimal) -> MarketRules:
    """Binance-like rules for ``asset``: a step of 10^floor(log10(1/price)) base units
    (BTC at 100k -> 0.00001, ETH at 3k -> 0.0001, SOL at 200 -> 0.001) and a 5-quote
    minimum notional, as Binance's NOTIONAL filter on USDT markets."""
    exponent = (Decimal(1) / price).adjusted()
    return MarketRules(
        symbol=f"{asset}/{quote}",
        base=asset,
        quote=quote,
        amount_step=Decimal(1).scaleb(exponent),
        min_amount=Decimal(1).scaleb(exponent),
        min_notional=MIN_NOTIONAL,
        taker_fee=taker_fee,
    )


@dataclass
class PaperExchange:
    """A simulated account. ``slippage`` is the fraction fills move against the taker."""

    quote: str
    balances: dict[str, Decimal]
    taker_fee: Decimal = Decimal("0.001")
    slippage: Decimal = ZERO
    rule_overrides: Mapping[str, MarketRules] = field(default_factory=dict)
    on_change: Callable[[dict[str, Decimal]], None] | None = None
    on_order: Callable[[dict[str, Decimal], dict[str, Fill]], None] | None = None
    name: str = "paper"
    prices: dict[str, Decimal] = field(default_factory=dict)
    prices_at: datetime | None = None
    markets: dict[str, MarketRules] = field(default_factory=dict)
    orders: dict[str, Fill] = field(default_factory=dict)

    def set_prices(self, prices: Mapping[str, Decimal], at: datetime) -> None:
        """Move the market: ``prices`` per asset in quote units, valid at ``at``."""
        for asset, price in prices.items():
            check_price(asset, price)
            if asset not in self.markets:
                self.markets[asset] = self.rule_overrides.get(asset) or default_rules(
                    asset, self.quote, price, self.taker_fee
                )
        self.prices.update(prices)
        self.prices_at = at

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        if quote != self.quote:
            raise UnknownSymbol(f"paper account is quoted in {self.quote}, not {quote}")
        if self.prices_at is None:
            raise DataError("paper exchange has no prices yet: call set_prices first")
        missing = [a for a in assets if a not in self.prices]
        if missing:
            raise UnknownSymbol(
                f"no price for {', '.join(missing)} in the paper price source; it has "
                f"{', '.join(sorted(self.prices))}"
            )
        wanted = set(assets) | {quote}
        return Snapshot(
            quote=quote,
            balances={a: b for a, b in self.balances.items() if a in wanted or b != 0},
            prices={a: self.prices[a] for a in self.prices},
            markets={a: self.markets[a] for a in self.prices},
            taken_at=self.prices_at,
        )

    def create_market_order(self, order: OrderRequest) -> Fill:
        rules = self.markets.get(order.asset)
        if rules is None:
            raise UnknownSymbol(f"no market {order.symbol} on the paper exchange")
        price = self.prices[order.asset]
        fill = fill_market_order(order, rules, price, price, self.slippage, self.balances)
        self.balances = apply_fill(self.balances, fill, self.quote)
        self.orders[order.client_order_id] = fill
        if self.on_order is not None:
            self.on_order(dict(self.balances), dict(self.orders))
        elif self.on_change is not None:
            self.on_change(dict(self.balances))
        return fill

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.orders.get(client_order_id)
