"""The paper exchange: an in-process account behind the same port as the live adapter.

Prices come from outside (a candle replay or, later, a live exchange's public tickers)
through :meth:`PaperExchange.set_prices`; fills use the core's fill model
(:mod:`rebalancer.core.fills`), so paper and backtest trade exactly alike. Deterministic
given its inputs. Balances can be persisted through a callback after every fill; with
``on_order`` the balances *and* the orders (client id -> fill) are handed over together, so
a state file written atomically holds both and reconciliation after a crash finds the
orders the account already traded.

**Limit orders** (:meth:`PaperExchange.create_limit_order`, for ``order_type =
"limit_inside"``): the simulated book is ``bid = price * (1 - slippage)`` and
``ask = price * (1 + slippage)`` (what a market order fills at); with ``quote_book`` the
snapshots carry it as bids/asks so the service can price its limits. A post-only limit fills
completely at its limit price, paying the maker fee, when the price range the market traded
during the wait reaches it (buy: ``low <= limit``, sell: ``high >= limit``), and not at all
otherwise (:func:`rebalancer.core.execution.fill_limit_order`). That range comes from
:meth:`PaperExchange.set_ranges` -- the backtester passes the next bar's low and high --
and is forgotten at every :meth:`set_prices`; without it nothing fills, so paper trading on
the latest candle or on live tickers always falls back to market orders. No time passes:
``timeout`` is not waited for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from rebalancer.core.drift import check_price
from rebalancer.core.errors import DataError, UnknownSymbol
from rebalancer.core.execution import fill_limit_order
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
    """A simulated account. ``slippage`` is the fraction fills move against the taker.

    ``maker_fee``: the fee rate of filled limit orders (None: the market's taker fee).
    ``quote_book``: snapshots carry the simulated book as bids/asks (off by default, so the
    planner sees exactly what it always saw).
    """

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
    maker_fee: Decimal | None = None
    quote_book: bool = False
    lows: dict[str, Decimal] = field(default_factory=dict)
    highs: dict[str, Decimal] = field(default_factory=dict)

    def set_ranges(self, lows: Mapping[str, Decimal], highs: Mapping[str, Decimal]) -> None:
        """The price range (quote per base) each asset trades while a limit order rests,
        until the next :meth:`set_prices`; an asset without one fills no limit order."""
        self.lows, self.highs = dict(lows), dict(highs)

    def set_prices(self, prices: Mapping[str, Decimal], at: datetime) -> None:
        """Move the market: ``prices`` per asset in quote units, valid at ``at``. Forgets
        the ranges of :meth:`set_ranges`."""
        self.lows, self.highs = {}, {}
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
        book = {a: self._book(a) for a in self.prices} if self.quote_book else {}
        return Snapshot(
            quote=quote,
            balances={a: b for a, b in self.balances.items() if a in wanted or b != 0},
            prices={a: self.prices[a] for a in self.prices},
            markets={a: self.markets[a] for a in self.prices},
            taken_at=self.prices_at,
            bids={a: bid for a, (bid, _) in book.items()},
            asks={a: ask for a, (_, ask) in book.items()},
        )

    def _book(self, asset: str) -> tuple[Decimal, Decimal]:
        """The simulated best bid and ask: the prices a market sell and buy fill at."""
        price = self.prices[asset]
        return price * (1 - self.slippage), price * (1 + self.slippage)

    def create_market_order(self, order: OrderRequest) -> Fill:
        rules = self.markets.get(order.asset)
        if rules is None:
            raise UnknownSymbol(f"no market {order.symbol} on the paper exchange")
        price = self.prices[order.asset]
        fill = fill_market_order(order, rules, price, price, self.slippage, self.balances)
        return self._book_fill(order, fill)

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        """A post-only limit at ``price``, filled by the range model of the module doc."""
        rules = self.markets.get(order.asset)
        if rules is None:
            raise UnknownSymbol(f"no market {order.symbol} on the paper exchange")
        bid, ask = self._book(order.asset)
        fill = fill_limit_order(
            order,
            rules,
            price,
            bid=bid,
            ask=ask,
            low=self.lows.get(order.asset),
            high=self.highs.get(order.asset),
            maker_fee=rules.taker_fee if self.maker_fee is None else self.maker_fee,
            balances=self.balances,
        )
        return self._book_fill(order, fill)

    def _book_fill(self, order: OrderRequest, fill: Fill) -> Fill:
        """Apply ``fill`` to the balances, remember the order, persist both."""
        self.balances = apply_fill(self.balances, fill, self.quote)
        self.orders[order.client_order_id] = fill
        if self.on_order is not None:
            self.on_order(dict(self.balances), dict(self.orders))
        elif self.on_change is not None:
            self.on_change(dict(self.balances))
        return fill

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.orders.get(client_order_id)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Paper orders are final when created: nothing rests, so this is a look-up."""
        return self.orders.get(client_order_id)
