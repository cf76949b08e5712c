"""The fault matrix's world: the real ``ccxt.binance`` over a Binance double, the real
:class:`SqlJournal` on SQLite, the real service; plus the invariants checked after every case.

:class:`FaultDouble` adds to the shared Binance double (by subclassing, never editing it):
a guard that checks, at the moment an order request reaches the wire, that its intent was
journaled first, that no other intent is unresolved and that trading is not halted; a flag
that makes the exchange unreachable; hooks run after an order was processed (balances moved
by someone else, the exchange going away, a crash); ``Retry-After`` on 429/418 answers; a
record of every order the exchange's filters refused; and a JSON file holding its ledger and
orders, so a killed process and its successor trade one and the same account.

:data:`TALLY` counts cases, invariants checked and violations for the run's summary.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from sqlalchemy import select

from doubles.binance import BinanceDouble, Order, body_text
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.journal.models import FillRow, OrderEvent
from rebalancer.adapters.journal.models import Order as OrderRow
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.core.model import ZERO
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.logs import reset_logging, setup_logging
from rebalancer.service import CycleReport, run_cycle

KEY = "fault-api-key-5c1e9a77d2"
SECRET = "fault-secret-0d9b3f12e8"
ACCOUNT = "live:binance"
QUOTE = "USDT"
BOOKS = {
    "BTCUSDT": ("60000.00", "60000.01"),
    "ETHUSDT": ("3000.00", "3000.01"),
    "SOLUSDT": ("150.00", "150.01"),
}
# 7000 USDT in all: BTC 3000 -> 2800 and ETH 3000 -> 2100 are sold, SOL 0 -> 1400 is bought
START = {"USDT": "1000", "BTC": "0.05", "ETH": "1", "SOL": "0"}
TARGETS = {
    "BTC": Decimal("0.4"),
    "ETH": Decimal("0.3"),
    "SOL": Decimal("0.2"),
    "USDT": Decimal("0.1"),
}
ASSETS = ("BTC", "ETH", "SOL")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ORDER_PATH = ("POST", "/api/v3/order")
FILTER_CODES = {-1013, -1111, -1116, -1121}


@dataclass
class Tally:
    cases: int = 0
    invariants: int = 0
    violations: list[str] = field(default_factory=list)
    names: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"fault matrix: {self.cases} cases run, {self.invariants} invariants checked, "
            f"violations: {len(self.violations)}"
        )


TALLY = Tally()


def strategy(assets: Iterable[str] = ASSETS) -> Strategy:
    targets = dict(TARGETS)
    for extra in set(assets) - set(targets):  # an unknown symbol among the targets
        targets[extra] = targets.pop("SOL")
    return Strategy(QUOTE, targets, Threshold(Decimal("0.05")), PlanPolicy(min_trade=Decimal(10)))


class FaultDouble(BinanceDouble):
    """The Binance double with a wire guard, outages, hooks and a persisted ledger."""

    def __init__(self, state_file: Path | None = None, **kw: Any) -> None:
        super().__init__(KEY, SECRET, balances=dict(START), books=dict(BOOKS), **kw)
        self.state_file = state_file
        self.down = False
        self.retry_after: str | None = None
        self.guard: Callable[[str], None] | None = None
        self.after_order: list[Callable[[FaultDouble], None]] = []
        self.filter_rejections: list[str] = []
        self.no_timestamp: set[str] = set()
        if state_file is not None and state_file.exists():
            self.load(state_file)

    # -- the wire ---------------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if self.down:
            raise requests.exceptions.ConnectionError("injected: the exchange is unreachable")
        url = urlsplit(request.url or "")
        is_order = ((request.method or ""), url.path) == ORDER_PATH
        if is_order and self.guard is not None:
            params = dict(parse_qsl(url.query)) | dict(parse_qsl(body_text(request)))
            self.guard(params.get("newClientOrderId", ""))
        try:
            response = super().send(request, **kwargs)
        finally:
            if is_order:
                self.save()
                for hook in list(self.after_order):
                    hook(self)
        if response.status_code in (418, 429) and self.retry_after is not None:
            response.headers["Retry-After"] = self.retry_after
        return response

    def _new_order(self, params: dict[str, str]) -> tuple[int, Any]:
        status, data = super()._new_order(params)
        if status != 200 and isinstance(data, dict) and data.get("code") in FILTER_CODES:
            self.filter_rejections.append(f"{params.get('newClientOrderId')}: {data}")
        return status, data

    def _ticker(self, symbol: str) -> dict[str, Any]:
        ticker = super()._ticker(symbol)
        if symbol in self.no_timestamp:
            ticker.pop("closeTime")
        return ticker

    # -- the ledger, persisted between processes -------------------------------------------

    def save(self) -> None:
        if self.state_file is None:
            return
        orders = [
            {k: v for k, v in asdict(o).items() if k not in ("pending",)} for o in self.orders
        ]
        data = {
            "balances": {a: str(v) for a, v in self.balances.items()},
            "orders": json.loads(json.dumps(orders, default=str)),
            "next_id": self._next_id,
            "next_trade": self._next_trade,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_file)

    def load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.balances = {a: Decimal(v) for a, v in data["balances"].items()}
        self.orders = []
        for raw in data["orders"]:
            for k in ("orig_qty", "executed_qty", "quote_qty", "orig_quote_qty"):
                raw[k] = Decimal(raw[k])
            if raw.get("limit_price") is not None:
                raw["limit_price"] = Decimal(raw["limit_price"])
            self.orders.append(Order(**raw))
        self._next_id = data["next_id"]
        self._next_trade = data["next_trade"]

    def accepted(self) -> Counter[str]:
        """Orders the exchange accepted, per client order id."""
        return Counter(o.client_order_id for o in self.orders)


@dataclass
class World:
    double: FaultDouble
    exchange: CcxtExchange
    journal: SqlJournal
    url: str
    notifier: MemoryNotifier = field(default_factory=MemoryNotifier)
    strategy: Strategy = field(default_factory=strategy)
    start: dict[str, Decimal] = field(
        default_factory=lambda: {a: Decimal(v) for a, v in START.items()}
    )
    external: Counter[str] = field(default_factory=Counter)  # moved by someone else
    sleeps: list[float] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # exception texts, reports, ...
    wire_violations: list[str] = field(default_factory=list)
    guarded: int = 0
    log: io.StringIO = field(default_factory=io.StringIO)

    def cycle(self, minutes: int, **kw: Any) -> CycleReport:
        """One forced cycle at T0 + ``minutes``; its report and any error are kept as output."""
        try:
            report = run_cycle(
                self.exchange,
                self.journal,
                self.notifier,
                self.strategy,
                T0 + timedelta(minutes=minutes),
                force=True,
                **kw,
            )
        except Exception as exc:
            self.outputs.append(f"{type(exc).__name__}: {exc}")
            raise
        self.outputs.append(json.dumps(report.summary()))
        return report

    def move(self, asset: str, delta: str) -> None:
        """Someone else moves ``delta`` of ``asset`` in or out of the account."""
        self.double.balances[asset] = self.double.balances.get(asset, ZERO) + Decimal(delta)
        self.external[asset] += Decimal(delta)  # type: ignore[assignment]

    def close(self) -> None:
        self.journal.close()


def exchange_for(double: FaultDouble, sleeps: list[float]) -> CcxtExchange:
    client = make_client("binance", KEY, SECRET, rateLimit=1)
    double.mount(client)
    return CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=sleeps.append,
        poll_interval=0,
    )


def make_world(tmp: Path, *, state_file: Path | None = None, lock: bool = True) -> World:
    """A fresh (or, with ``state_file``, a persisted) account and the journal in ``tmp``."""
    double = FaultDouble(state_file)
    sleeps: list[float] = []
    exchange = exchange_for(double, sleeps)
    url = f"sqlite:///{tmp / 'journal.sqlite'}"
    journal = open_journal(url, ACCOUNT, lock=lock)
    world = World(double, exchange, journal, url, sleeps=sleeps)
    double.guard = lambda cid: wire_guard(world, cid)
    setup_logging("DEBUG", secrets=[KEY, SECRET], console=world.log)
    return world


def wire_guard(world: World, cid: str) -> None:
    """At the moment an order request reaches the exchange: write-ahead, reconciled, not halted."""
    world.guarded += 1
    unresolved = [o.client_order_id for o in world.journal.unresolved_intents()]
    if unresolved != [cid]:
        world.wire_violations.append(
            f"order {cid} sent while the unresolved intents were {unresolved} "
            "(want exactly its own, journaled first)"
        )
    halt = world.journal.halt_status().active
    if halt is not None:
        world.wire_violations.append(f"order {cid} sent while halted ({halt.reason})")


# -- invariants ------------------------------------------------------------------------------


def journal_rows(world: World) -> tuple[list[OrderRow], list[FillRow], list[OrderEvent]]:
    with world.journal._session() as s:
        mine = world.journal.account
        orders = list(s.scalars(select(OrderRow).where(OrderRow.account == mine)))
        fills = list(s.scalars(select(FillRow).where(FillRow.account == mine)))
        events = list(s.scalars(select(OrderEvent).where(OrderEvent.account == mine)))
    return orders, fills, events


def ledger_from_journal(world: World, fills: list[FillRow]) -> dict[str, Decimal]:
    """Start + what others moved + every journaled fill (base, quote and fee)."""
    out = dict(world.start)
    for asset, delta in world.external.items():
        out[asset] = out.get(asset, ZERO) + Decimal(delta)
    for f in fills:
        sign = 1 if f.side == "buy" else -1
        out[f.asset] = out.get(f.asset, ZERO) + sign * f.amount
        out[QUOTE] = out.get(QUOTE, ZERO) - sign * f.cost
        out[f.fee_asset] = out.get(f.fee_asset, ZERO) - f.fee
    return out


def close_enough(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= Decimal("1e-8")  # CCXT hands amounts over as floats


def check_invariants(
    world: World, case: str, *, journal_ok: bool = True, record: bool = True
) -> list[str]:
    """Every invariant of the matrix for ``world`` after ``case``; returns the violations.

    ``record``: count it in the run's tally (off for the tests of the checker itself).
    """
    found: list[str] = []
    checked = 0
    double = world.double
    double.down = False
    ledger = {a: double.balances.get(a, ZERO) for a in (*ASSETS, QUOTE)}

    # 1. the balances the bot reads are the exchange's ledger
    checked += 1
    seen = world.exchange.snapshot(ASSETS, QUOTE).balances
    bad = {a: (seen.get(a), v) for a, v in ledger.items() if not close_enough(seen.get(a, ZERO), v)}
    if bad:
        found.append(f"snapshot balances differ from the ledger: {bad}")

    if journal_ok:
        orders, fills, events = journal_rows(world)
        # 2. ... and the journal's fills explain the ledger (no trade lost, none doubled)
        checked += 1
        expected = ledger_from_journal(world, fills)
        bad = {
            a: (expected.get(a), v)
            for a, v in ledger.items()
            if not close_enough(expected.get(a, ZERO), v)
        }
        if bad:
            found.append(f"start + journaled fills != ledger: {bad}")
        # 3. at most one accepted order per intent, and none without an intent
        checked += 1
        journaled = {o.client_order_id for o in orders}
        for cid, n in double.accepted().items():
            if n > 1:
                found.append(f"client id {cid}: {n} accepted orders")
            if cid not in journaled:
                found.append(f"order {cid} accepted without a journaled intent")
        # 4. every intent resolved, with its source
        checked += 1
        for o in orders:
            if not o.resolved or not o.source:
                found.append(f"intent {o.client_order_id}: {o.status!r}, source {o.source!r}")
        world.outputs.extend(f"{e.status} {e.source} {e.detail}" for e in events)
        world.outputs.extend(f"{o.status} {o.source} {o.error}" for o in orders)
    else:
        checked += 1
        if double.orders:
            found.append(f"orders sent without a usable journal: {double.accepted()}")

    # 5. no order sent before reconciliation or while halted (checked on the wire)
    checked += 1
    found.extend(world.wire_violations)
    # 6. no order the exchange's filters would reject
    checked += 1
    found.extend(f"filter rejection: {r}" for r in double.filter_rejections)
    # 7. no secret in any output: logs (CCXT's DEBUG lines included), errors, reports, journal
    checked += 1
    world.outputs.extend(f"{e.title} {e.body}" for e in world.notifier.events)
    texts = [world.log.getvalue(), *world.outputs]
    for secret in (KEY, SECRET):
        if any(secret in t for t in texts):
            found.append(f"a secret ({secret[:6]}...) appears in the output")

    if not record:
        return found
    TALLY.cases += 1
    TALLY.invariants += checked
    TALLY.names[case] += 1
    TALLY.violations.extend(f"{case}: {v}" for v in found)
    return found


def finish(world: World, case: str, *, journal_ok: bool = True) -> None:
    """Check every invariant, release everything, and fail the test on any violation."""
    try:
        found = check_invariants(world, case, journal_ok=journal_ok)
    finally:
        reset_logging()
        logging.getLogger().setLevel(logging.WARNING)
        if journal_ok:
            world.close()
    assert not found, "\n".join(found)
