"""A test per venue: the exchange double's fills and the paper fills of the same cycles
leave the same balances (the venue model of :mod:`rebalancer.core.venue` is what paper
trades under; the doubles are held against CCXT's captured responses).

Each case runs two forced cycles through ``run_cycle`` on the double (through the real
CCXT client and :class:`CcxtExchange`), then the same on a :class:`PaperExchange` with the
venue's model, the rules the live snapshot read and the same prices (books with bid = ask,
so one price serves both), and compares every balance exactly.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from doubles.binance import BinanceDouble
from doubles.coinbase import CoinbaseDouble, new_key_pair
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.core.venue import VenueModel, venue_model
from rebalancer.service import run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ASSETS = ("BTC", "ETH", "SOL")


def _exchange(client: Any) -> CcxtExchange:
    return CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )


def kraken() -> tuple[CcxtExchange, Callable[[], dict[str, Decimal]], str]:
    secret = base64.b64encode(b"kraken-parity-secret").decode()
    client = make_client("kraken", "kraken-parity", secret, rateLimit=1)
    books = {"XXBTZUSD": ("60000.0",) * 2, "XETHZUSD": ("3000.00",) * 2, "SOLUSD": ("150.00",) * 2}
    double = KrakenDouble("kraken-parity", secret, balances={"XXBT": "0.05"}, books=books)  # type: ignore[arg-type]
    double.mount(client)
    names = {"XXBT": "BTC", "XETH": "ETH", "SOL": "SOL", "ZUSD": "USD"}
    return _exchange(client), lambda: {names[a]: v for a, v in double.balances.items()}, "USD"


def coinbase() -> tuple[CcxtExchange, Callable[[], dict[str, Decimal]], str]:
    private, public = new_key_pair()
    key = "organizations/parity/apiKeys/parity"
    client = make_client("coinbase", key, private, rateLimit=1)
    books = {"BTC-USD": ("60000.00",) * 2, "ETH-USD": ("3000.00",) * 2, "SOL-USD": ("150.00",) * 2}
    double = CoinbaseDouble(key, public, balances={"BTC": "0.05"}, books=books)  # type: ignore[arg-type]
    double.mount(client)
    return _exchange(client), lambda: dict(double.balances), "USD"


def binance(bnb: bool = False) -> tuple[CcxtExchange, Callable[[], dict[str, Decimal]], str]:
    client = make_client("binance", "parity-key", "parity-secret", rateLimit=1)
    books = {
        "BTCUSDT": ("60000.01",) * 2,
        "ETHUSDT": ("3000.01",) * 2,
        "SOLUSDT": ("150.01",) * 2,
        "BNBUSDT": ("600.0",) * 2,
    }
    balances = {"BTC": "0.05", "BNB": "0.1"} if bnb else {"BTC": "0.05"}
    double = BinanceDouble(
        "parity-key",
        "parity-secret",
        balances=balances,
        books=books,
        bnb_fees=bnb,  # type: ignore[arg-type]
    )
    double.mount(client)
    return (
        _exchange(client),
        lambda: {a: v for a, v in double.balances.items() if v or a != "BNB"},
        "USDT",
    )


def cycles(exchange: Any, quote: str, assets: tuple[str, ...]) -> list[Any]:
    targets = {
        "BTC": Decimal("0.5"),
        "ETH": Decimal("0.3"),
        "SOL": Decimal("0.2"),
        quote: Decimal(0),
    }
    if "BNB" in assets:
        targets["BNB"] = Decimal(0)
        targets["BTC"] = Decimal("0.5")
    strategy = Strategy(
        quote, targets, Threshold(Decimal("0.05")), PlanPolicy(min_trade=Decimal(10))
    )
    journal, notifier = MemoryJournal(), MemoryNotifier()
    return [
        run_cycle(exchange, journal, notifier, strategy, T0 + timedelta(hours=i), force=True)
        for i in range(2)
    ]


def parity(
    build: Callable[[], tuple[CcxtExchange, Callable[[], dict[str, Decimal]], str]],
    venue: VenueModel,
    assets: tuple[str, ...] = ASSETS,
    start: dict[str, Decimal] | None = None,
) -> tuple[dict[str, Decimal], dict[str, Decimal], list[Any]]:
    exchange, balances, quote = build()
    snap = exchange.snapshot(list(assets), quote)
    reports = cycles(exchange, quote, assets)
    paper = PaperExchange(
        quote, dict(start or {"BTC": Decimal("0.05")}), venue=venue, rule_overrides=snap.markets
    )
    paper.set_prices(dict(snap.prices), T0)
    cycles(paper, quote, assets)
    live = balances()
    sim = {a: paper.balances.get(a, Decimal(0)) for a in live}
    return live, sim, reports


@pytest.mark.parametrize(
    ("name", "build"), [("kraken", kraken), ("coinbase", coinbase), ("binance", binance)]
)
def test_double_and_paper_fills_leave_the_same_balances(name: str, build: Any) -> None:
    live, sim, reports = parity(build, venue_model(name))
    assert not [f for r in reports for f in r.failed]
    assert len(reports[0].fills) == 3  # one sell, two buys: every buy placed
    assert sim == live


def test_binance_with_bnb_fees_paper_matches_the_double() -> None:
    venue = venue_model("binance").with_fee_currency("BNB", Decimal("0.75"))
    start = {"BTC": Decimal("0.05"), "BNB": Decimal("0.1")}
    live, sim, reports = parity(lambda: binance(bnb=True), venue, (*ASSETS, "BNB"), start)
    assert {f.fee_asset for f in reports[0].fills} == {"BNB"}
    assert sim == live


def test_paper_under_the_binance_model_on_kraken_rules_misses_the_kraken_fee() -> None:
    """The model matters: the Binance way (fee in the asset received) on the same Kraken
    cycles does not leave the Kraken double's balances."""
    live, sim, _ = parity(kraken, venue_model("binance"))
    assert sim != live


def test_the_live_venue_rows_agree_with_the_venue_model() -> None:
    from rebalancer.adapters.ccxt.venues import VENUES

    for name, row in VENUES.items():
        model = venue_model(name)
        assert row.buy_by_cost == (model.buy_by == "cost"), name
        fee_flag = row.order_params.get("oflags")
        if fee_flag is not None:  # Kraken: the flag is what puts the fee in the quote
            assert (fee_flag == "fciq") == (model.fee_in == "quote")
