"""The accounts the soak trades on: the three exchange doubles under the real CCXT classes,
a paper account, and Binance + Kraken as one two-account portfolio.

Every account here is *the exchange*: it outlives the daemon (a kill and restart builds a new
CCXT client, or a new paper exchange from its state file, on the same account). Each one
says what the soak needs to know about it: how to move its book, which faults it can suffer
(Kraken's tickers carry no time, so no stale ticker; it fills market orders completely, so
no partial fill), its balances under the journal's asset names, and every order it accepted
per client order id.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from doubles.binance import BinanceDouble
from doubles.coinbase import CoinbaseDouble, new_key_pair
from doubles.faults import FaultyExchange, FaultyWire
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import StateFile
from rebalancer.core.model import ZERO
from rebalancer.ports import Exchange

ASSETS = ("BTC", "ETH", "SOL")
PRICES = {"BTC": Decimal(60000), "ETH": Decimal(3000), "SOL": Decimal(150)}
HALF_SPREAD = Decimal("0.0001")
B_KEY, B_SECRET = "soak-binance-key-7f3a91c2", "soak-binance-secret-e48d20b6"
K_KEY = "soak-kraken-key-2b9c4e71"
K_SECRET = base64.b64encode(b"soak-kraken-secret-bytes-c3d1").decode()
C_KEY = "organizations/soak-org-5e7a/apiKeys/soak-key-91d0"
C_PRIVATE, C_PUBLIC = new_key_pair()
SECRETS = (B_KEY, B_SECRET, K_KEY, K_SECRET, C_KEY, C_PRIVATE)

# which faults each kind of account can suffer (the soak's generator draws from these)
WIRE_FAULTS = ("timeout_before", "timeout_after", "http_5xx_order", "http_5xx_read")
WIRE_FAULTS += ("http_429_order", "http_429_read", "http_418_read", "kill_before", "kill_after")
MARKET_FAULTS = ("price_jump", "price_gap", "crash")
ACCOUNT_FAULTS = ("deposit", "withdrawal", "db_drop")


@dataclass
class Account:
    """One account on one exchange double, behind a :class:`FaultyWire`."""

    name: str
    exchange_id: str
    quote: str
    double: Any
    wire: FaultyWire | None
    asset_ids: Mapping[str, str]  # journal asset -> the double's balance key
    book_ids: Mapping[str, str]  # asset -> the double's market id
    ticks: Mapping[str, Decimal]  # asset -> price step
    accepted: Callable[[], Counter[str]]
    key: str = ""
    secret: str = ""
    stale: Callable[[str, bool], None] | None = None
    partial: Callable[[str, Decimal | None], None] | None = None
    sleeps: list[float] = field(default_factory=list)

    def set_book(
        self, asset: str, mid: Decimal, *, crossed: bool = False, at: datetime | None = None
    ) -> None:
        if asset not in self.book_ids:
            return
        step = self.ticks[asset]
        bid = (mid * (1 - HALF_SPREAD) / step).to_integral_value(ROUND_FLOOR) * step
        ask = max(
            (mid * (1 + HALF_SPREAD) / step).to_integral_value(ROUND_CEILING) * step, bid + step
        )
        if crossed:
            bid, ask = ask + step, bid
        self.double.books[self.book_ids[asset]] = (bid, ask)

    def balances(self) -> dict[str, Decimal]:
        """The account's balances under the journal's asset names."""
        held = self.double.balances
        return {a: Decimal(held.get(key, ZERO)) for a, key in self.asset_ids.items()}

    def deposit(self, asset: str, amount: Decimal) -> None:
        key = self.asset_ids[asset]
        self.double.balances[key] = Decimal(self.double.balances.get(key, ZERO)) + amount

    def client(self) -> CcxtExchange:
        """A new CCXT client on this account (a restart builds a new one)."""
        # rateLimit 0: CCXT's throttle never sleeps (the doubles have no limit to respect)
        client = make_client(self.exchange_id, self.key, self.secret, rateLimit=0)
        assert self.wire is not None
        self.wire.mount(client)
        return CcxtExchange(
            client,
            max_ticker_age=timedelta(seconds=30),
            max_price_jump=Decimal("0.2"),
            sleep=self.sleeps.append,
            poll_interval=0,
        )


def binance(start: Mapping[str, str]) -> Account:
    double = BinanceDouble(B_KEY, B_SECRET, balances=dict(start), books={})
    wire = FaultyWire(double, lambda m, p: (m, p) == ("POST", "/api/v3/order"))
    account = Account(
        "binance",
        "binance",
        "USDT",
        double,
        wire,
        {a: a for a in (*ASSETS, "USDT")},
        {a: f"{a}USDT" for a in ASSETS},
        {a: Decimal("0.01") for a in ASSETS},
        lambda: Counter(o.client_order_id for o in double.orders),
        B_KEY,
        B_SECRET,
    )
    account.stale = lambda a, on: _set(double.ticker_age_ms, f"{a}USDT", 120_000 if on else None)
    account.partial = lambda a, cap: _set(double.liquidity, f"{a}USDT", cap)
    return account


def kraken(start: Mapping[str, str], *, quote: str = "USD") -> Account:
    ids = {"BTC": "XXBT", "ETH": "XETH", "SOL": "SOL", "USD": "ZUSD", "USDT": "USDT"}
    if quote == "USD":
        books = {"BTC": "XXBTZUSD", "ETH": "XETHZUSD", "SOL": "SOLUSD"}
    else:  # the multi-account portfolio: Kraken lists BTC and ETH against USDT
        books = {"BTC": "XBTUSDT", "ETH": "ETHUSDT"}
    balances = {ids[a]: v for a, v in start.items()}
    double = KrakenDouble(K_KEY, K_SECRET, balances=balances, books={})
    wire = FaultyWire(double, lambda m, p: p == "/0/private/AddOrder")
    return Account(
        "kraken",
        "kraken",
        quote,
        double,
        wire,
        {a: ids[a] for a in (*books, quote)},
        books,
        {a: Decimal("0.1") if a == "BTC" else Decimal("0.01") for a in books},
        lambda: Counter(o.cl_ord_id for o in double.orders),
        K_KEY,
        K_SECRET,
    )


def coinbase(start: Mapping[str, str]) -> Account:
    double = CoinbaseDouble(C_KEY, C_PUBLIC, balances=dict(start), books={})
    orders = "/api/v3/brokerage/orders"
    wire = FaultyWire(double, lambda m, p: (m, p) == ("POST", orders))
    account = Account(
        "coinbase",
        "coinbase",
        "USD",
        double,
        wire,
        {a: a for a in (*ASSETS, "USD")},
        {a: f"{a}-USD" for a in ASSETS},
        {a: Decimal("0.01") for a in ASSETS},
        lambda: Counter(o.client_order_id for o in double.orders),
        C_KEY,
        C_PRIVATE,
    )
    account.stale = lambda a, on: _set(double.book_age_s, f"{a}-USD", 120.0 if on else None)
    account.partial = lambda a, cap: _set(double.liquidity, f"{a}-USD", cap)
    return account


def _set(table: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


class PaperAccount:
    """The paper account: its state file is the exchange; a restart rebuilds it from there."""

    name = "paper"
    quote = "USDT"
    exchange_id = "paper"

    def __init__(self, folder: Path, start: Mapping[str, str]) -> None:
        self.book_ids = {a: a for a in ASSETS}
        self.state = StateFile(folder / "paper-soak.json")
        self.state.save_balances({a: Decimal(v) for a, v in start.items()})
        self.prices = dict(PRICES)
        self.at = datetime(2026, 1, 1, tzinfo=UTC)
        self.port: FaultyExchange | None = None
        self.inner: PaperExchange | None = None
        self.stale = None
        self.partial = None
        self.wire = None
        self.sleeps: list[float] = []

    def set_book(
        self, asset: str, mid: Decimal, *, crossed: bool = False, at: datetime | None = None
    ) -> None:
        self.prices[asset] = mid
        self.at = at or self.at
        if self.inner is not None:
            self.inner.set_prices({asset: mid}, self.at)

    def balances(self) -> dict[str, Decimal]:
        held = self.state.balances() or {}
        return {a: held.get(a, ZERO) for a in (*ASSETS, self.quote)}

    def deposit(self, asset: str, amount: Decimal) -> None:
        held = self.state.balances() or {}
        held[asset] = held.get(asset, ZERO) + amount
        orders = self.state.orders()
        self.state.save_account(held, orders)
        if self.inner is not None:
            self.inner.balances[asset] = held[asset]

    def accepted(self) -> Counter[str]:
        """Counted at the port (the state file keeps one fill per client id)."""
        return Counter() if self.port is None else Counter(self.port.accepted)

    def client(self) -> FaultyExchange:
        """A new paper exchange read from the state file (a restart)."""
        inner = PaperExchange(
            self.quote,
            self.state.balances() or {},
            Decimal("0.001"),
            on_change=self.state.save_balances,
            on_order=self.state.save_account,
            orders=self.state.orders(),
        )
        inner.set_prices(self.prices, self.at)
        self.inner = inner
        port = FaultyExchange(inner)
        if self.port is not None:  # armed faults and the guard outlive the process
            port.armed, port.hits = self.port.armed, self.port.hits
            port.guard, port.accepted = self.port.guard, self.port.accepted
        self.port = port
        return port


@dataclass
class Venue:
    """What the soak trades: one or two accounts, seen by the bot as one Exchange."""

    name: str
    quote: str
    accounts: list[Any]
    faults: tuple[str, ...]
    secrets: tuple[str, ...] = SECRETS

    def exchange(self) -> Exchange:
        if len(self.accounts) == 1:
            port: Exchange = self.accounts[0].client()
            return port
        return MultiAccountExchange({a.name: a.client() for a in self.accounts})

    def balances(self) -> dict[str, Decimal]:
        total: dict[str, Decimal] = {a: ZERO for a in (*ASSETS, self.quote)}
        for account in self.accounts:
            for asset, value in account.balances().items():
                total[asset] = total.get(asset, ZERO) + value
        return total

    def accepted(self) -> dict[str, Counter[str]]:
        return {a.name: a.accepted() for a in self.accounts}

    def set_prices(self, mids: Mapping[str, Decimal], at: datetime, crossed: str = "") -> None:
        for account in self.accounts:
            for asset, mid in mids.items():
                account.set_book(asset, mid, crossed=asset == crossed, at=at)


def start_balances(quote: str) -> dict[str, str]:
    return {quote: "10000", "BTC": "0.1", "ETH": "1", "SOL": "10"}


def venue(name: str, folder: Path) -> Venue:
    """The soak's venue ``name``: binance, kraken, coinbase, paper or multi."""
    market = (*MARKET_FAULTS, "crossed_book")
    if name == "binance":
        faults = (*WIRE_FAULTS, *market, *ACCOUNT_FAULTS, "stale_ticker", "partial_fill")
        return Venue(name, "USDT", [binance(start_balances("USDT"))], faults)
    if name == "kraken":
        return Venue(
            name, "USD", [kraken(start_balances("USD"))], (*WIRE_FAULTS, *market, *ACCOUNT_FAULTS)
        )
    if name == "coinbase":
        faults = (*WIRE_FAULTS, *market, *ACCOUNT_FAULTS, "stale_ticker", "partial_fill")
        return Venue(name, "USD", [coinbase(start_balances("USD"))], faults)
    if name == "paper":
        return Venue(
            name,
            "USDT",
            [PaperAccount(folder, start_balances("USDT"))],
            (*WIRE_FAULTS, *MARKET_FAULTS, *ACCOUNT_FAULTS),
        )
    if name == "multi":
        half = {"USDT": "5000", "BTC": "0.05", "ETH": "0.5"}
        b = binance({**half, "SOL": "10"})
        b.name = "binance"
        k = kraken(half, quote="USDT")
        return Venue(name, "USDT", [b, k], (*WIRE_FAULTS, *market, *ACCOUNT_FAULTS))
    raise ValueError(f"unknown soak venue {name!r}: binance, kraken, coinbase, paper or multi")


VENUES = ("binance", "kraken", "coinbase", "paper", "multi")
