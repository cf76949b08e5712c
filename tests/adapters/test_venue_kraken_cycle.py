"""Issue 13's Kraken case: 0.05 BTC, 0 USD, targets BTC 0.5 / ETH 0.3 / SOL 0.2 / USD 0.

Kraken takes the fee in the quote (``oflags=fciq``) on top of a buy sent by amount, so a
planner that leaves no cash for it has its last buy refused with ``EOrder:Insufficient
funds`` on every cycle. Two cycles through ``run_cycle`` on the Kraken double place every
buy, and paper with the Kraken venue model ends with the same balances as the double.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.core.venue import venue_model
from rebalancer.service import run_cycle

KEY = "kraken-key-5d2e81"
SECRET = base64.b64encode(b"kraken-secret-bytes-a9f3c7e1").decode()
BOOKS = {
    "XXBTZUSD": ("60000.0", "60000.0"),
    "XETHZUSD": ("3000.00", "3000.00"),
    "SOLUSD": ("150.00", "150.00"),
}
TARGETS = {"BTC": Decimal("0.5"), "ETH": Decimal("0.3"), "SOL": Decimal("0.2"), "USD": Decimal(0)}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def strategy() -> Strategy:
    return Strategy("USD", TARGETS, Threshold(Decimal("0.05")), PlanPolicy(min_trade=Decimal(10)))


def kraken() -> tuple[KrakenDouble, CcxtExchange]:
    client = make_client("kraken", KEY, SECRET, rateLimit=1)
    double = KrakenDouble(KEY, SECRET, balances={"XXBT": "0.05"}, books=BOOKS).mount(client)
    exchange = CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )
    return double, exchange


def two_cycles(exchange: object) -> list[object]:
    journal, notifier = MemoryJournal(), MemoryNotifier()
    return [
        run_cycle(exchange, journal, notifier, strategy(), T0 + timedelta(hours=i), force=True)  # type: ignore[arg-type]
        for i in range(2)
    ]


def test_every_buy_is_placed_on_the_kraken_double() -> None:
    double, exchange = kraken()
    reports = two_cycles(exchange)
    failed = [f for r in reports for f in r.failed]  # type: ignore[attr-defined]
    assert failed == []
    buys = [o for o in double.orders if o.side == "buy"]
    assert {o.pair for o in buys} == {"XETHZUSD", "SOLUSD"}
    idle = double.balances.get("ZUSD", Decimal(0))
    assert Decimal(0) <= idle < Decimal(20)  # less than one min_trade stays idle


NAMES = {"XXBT": "BTC", "XETH": "ETH", "SOL": "SOL", "ZUSD": "USD"}


def test_paper_on_the_kraken_model_ends_with_the_double_balances() -> None:
    double, exchange = kraken()
    snap = exchange.snapshot(["BTC", "ETH", "SOL"], "USD")  # the rules live trading sees
    two_cycles(exchange)
    paper = PaperExchange(
        "USD",
        {"BTC": Decimal("0.05")},
        venue=venue_model("kraken"),
        rule_overrides=snap.markets,
    )
    paper.set_prices({a: snap.prices[a] for a in ("BTC", "ETH", "SOL")}, T0)
    two_cycles(paper)
    live = {NAMES[a]: v for a, v in double.balances.items()}
    sim = {a: paper.balances.get(a, Decimal(0)) for a in live}
    assert sim == live
    assert len([o for o in double.orders if o.side == "buy"]) == len(paper.orders) - 1
