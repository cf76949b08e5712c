"""The SQL journal, on SQLite and on a real PostgreSQL server, driven through the service.

PostgreSQL: set REBALANCER_TEST_PG_URL (``scripts/dev test`` starts a server with
``scripts/postgres.sh`` and sets it); without it those cases skip and say so.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from rebalancer.adapters.journal import AlreadyRunning, SqlJournal, open_journal
from rebalancer.adapters.journal.schema import (
    current_revision,
    head_revision,
    make_engine,
    schema_differences,
)
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.core.errors import InvariantBroken, OrderOutcomeUnknown, RetryLater
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.ports import OrderOutcome
from rebalancer.service import reconcile, run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}
PG_SKIP = (
    "REBALANCER_TEST_PG_URL is not set, so the journal is not tested on PostgreSQL here: "
    "run `scripts/dev test` (it starts one with scripts/postgres.sh) or set the URL"
)



@pytest.fixture
def account() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"  # rows of each test apart on a shared database


@pytest.fixture
def journal(url: str, account: str) -> Iterator[SqlJournal]:
    j = open_journal(url, account)
    yield j
    j.close()


def strategy() -> Strategy:
    return Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))


def paper(balances: dict[str, str]) -> PaperExchange:
    ex = PaperExchange("USDT", {k: D(v) for k, v in balances.items()}, D("0.001"))
    ex.set_prices({"BTC": D(40000), "ETH": D(2000)}, T0)
    return ex


@dataclass
class FaultyExchange:
    """The paper exchange with faults: a request lost or accepted before a timeout, a
    look-up that fails; and a hook that runs when a create request arrives."""

    inner: PaperExchange
    timeout_after_accept: set[str] = field(default_factory=set)
    timeout_before_accept: set[str] = field(default_factory=set)
    lookup_fails: bool = False
    on_create: list[object] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    name: str = "faulty"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        for hook in self.on_create:
            hook(order)  # type: ignore[operator]
        self.created.append(order.client_order_id)
        if order.asset in self.timeout_before_accept:
            raise OrderOutcomeUnknown("timeout before the exchange saw it", order.client_order_id)
        fill = self.inner.create_market_order(order)
        if order.asset in self.timeout_after_accept:
            raise OrderOutcomeUnknown("timeout after the exchange took it", order.client_order_id)
        return fill

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        if self.lookup_fails:
            raise RetryLater("exchange busy")
        return self.inner.fetch_order(client_order_id, symbol)


def reopen(j: SqlJournal, **kw: bool) -> SqlJournal:
    """The same database and account through a new engine (another process, in effect)."""
    return open_journal(j.engine.url.render_as_string(hide_password=False), j.account, **kw)


# --- migrations ----------------------------------------------------------------------------


def test_opening_migrates_to_the_head_and_the_head_matches_the_models(journal: SqlJournal) -> None:
    head = head_revision()
    assert head is not None
    assert current_revision(journal.engine) == head
    assert schema_differences(journal.engine) == []


def test_an_old_database_is_migrated_on_open(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite"
    engine = make_engine(url)
    with engine.begin() as conn:  # a database from before the journal: no tables at all
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    assert current_revision(engine) is None
    engine.dispose()
    j = open_journal(url, "a")
    assert current_revision(j.engine) == head_revision()
    j.close()


def test_the_schema_check_sees_a_model_out_of_step(tmp_path: object) -> None:
    j = open_journal(f"sqlite:///{tmp_path}/drift.sqlite", "a")  # scratch: shared DBs stay intact
    with j.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE halts ADD COLUMN extra VARCHAR(10)")
    diffs = schema_differences(j.engine)
    j.close()
    assert any("extra" in str(d) for d in diffs), diffs


# --- write-ahead -----------------------------------------------------------------------------


def test_each_intent_is_committed_before_its_request_reaches_the_exchange(
    journal: SqlJournal,
) -> None:
    other = reopen(journal)  # sees only what is committed
    seen: list[tuple[str, bool]] = []

    def check(order: OrderRequest) -> None:
        pending = {o.client_order_id for o in other.unresolved_intents()}
        seen.append((order.client_order_id, order.client_order_id in pending))

    ex = FaultyExchange(paper({"BTC": "0.2", "USDT": "0"}), on_create=[check])
    report = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    other.close()
    assert len(seen) == 2 and all(ok for _, ok in seen), seen  # sell BTC, buy ETH
    assert [f.client_order_id for f in report.fills] == [cid for cid, _ in seen]
    assert journal.unresolved_intents() == []
    orders = journal.history(kinds=["orders"])["orders"]
    assert [(o["status"], o["source"]) for o in orders] == [("filled", "exchange reply")] * 2
    events = journal.order_events(seen[0][0])
    assert [e["status"] for e in events] == ["intent", "filled"]


def test_a_client_order_id_is_never_journaled_twice(journal: SqlJournal) -> None:
    order = OrderRequest("BTC", "BTC/USDT", Side.SELL, D(1), D(1), D(1), D(0), "rb1")
    journal.record_intent(order, T0)
    with pytest.raises(InvariantBroken, match="already journaled"):
        journal.record_intent(order, T0)


# --- reconciliation ---------------------------------------------------------------------------


def test_an_order_accepted_before_a_timeout_is_reconciled_as_filled(journal: SqlJournal) -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    ex = FaultyExchange(inner, timeout_after_accept={"BTC"})
    first = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    assert first.stopped and ex.created == [first.failed[0].order.client_order_id]
    [pending] = journal.unresolved_intents()
    assert pending.asset == "BTC" and pending.side is Side.SELL

    ex.timeout_after_accept.clear()
    result = reconcile(ex, journal, T0 + timedelta(minutes=1))
    assert result.clear
    assert result.resolved[pending.client_order_id].source == "reconciled: filled"
    assert journal.unresolved_intents() == []
    [fill] = journal.history(kinds=["fills"])["fills"]
    assert fill["source"] == "reconciled: filled" and fill["side"] == "sell"
    assert fill["amount"] == inner.orders[pending.client_order_id].amount
    events = [e["status"] for e in journal.order_events(pending.client_order_id)]
    assert events == ["intent", "unknown", "filled"]


def test_an_order_lost_before_the_exchange_is_reconciled_as_never_placed(
    journal: SqlJournal,
) -> None:
    ex = FaultyExchange(paper({"BTC": "0.2", "USDT": "0"}), timeout_before_accept={"BTC"})
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    [pending] = journal.unresolved_intents()
    result = reconcile(ex, journal, T0 + timedelta(minutes=1))
    assert result.resolved[pending.client_order_id].status == "not_found"
    [order] = journal.history(kinds=["orders"])["orders"]
    assert (order["status"], order["source"]) == ("not_found", "not found: never placed")
    assert journal.history(kinds=["fills"])["fills"] == []


def test_no_order_is_sent_while_an_outcome_stays_unknown(journal: SqlJournal) -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    ex = FaultyExchange(inner, timeout_after_accept={"BTC"})
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    sent = list(ex.created)

    ex.timeout_after_accept.clear()
    ex.lookup_fails = True  # the look-up itself fails: the outcome stays unknown
    blocked = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0 + timedelta(hours=1))
    assert ex.created == sent, "an order was sent while an outcome was unknown"
    assert "still unknown" in blocked.stopped and not blocked.fills
    assert len(journal.unresolved_intents()) == 1

    ex.lookup_fails = False  # next cycle: reconciled first, then it trades again (the buys)
    later = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0 + timedelta(hours=2))
    assert not later.stopped and journal.unresolved_intents() == []
    assert [f.side for f in later.fills] == [Side.BUY]
    assert inner.balances["USDT"] >= 0


def test_reconciliation_runs_before_the_snapshot_so_a_found_sell_is_not_sent_again(
    journal: SqlJournal,
) -> None:
    ex = FaultyExchange(paper({"BTC": "0.2", "USDT": "0"}), timeout_after_accept={"BTC"})
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    ex.timeout_after_accept.clear()
    report = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0 + timedelta(minutes=1))
    assert journal.unresolved_intents() == []
    assert report.snapshot.amount("BTC") < D("0.2")  # the accepted sell is in the balances
    sells = [cid for cid in ex.created if cid[10] == "s"]  # rb + 8-digit stamp + side
    assert len(sells) == 1, ex.created  # ... so it was not sent a second time
    assert report.summary()["reconciled"] == {sells[0]: "reconciled: filled"}
    assert [f.side for f in report.fills] == [Side.BUY]


@dataclass
class LookupOnly:
    """An exchange whose look-up answers with a chosen order state."""

    found: Fill | None
    name: str = "lookup"
    cancelled: list[str] = field(default_factory=list)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.found

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """A venue that cannot cancel (the order stays as found)."""
        self.cancelled.append(client_order_id)
        return self.found


@pytest.mark.parametrize(
    ("status", "amount", "outcome", "source", "fills", "clear"),
    [
        ("closed", "0.1", "filled", "reconciled: filled", 1, True),
        ("canceled", "0.04", "filled", "reconciled: partially filled", 1, True),
        ("canceled", "0", "canceled", "reconciled: canceled, nothing filled", 0, True),
        ("open", "0.04", "unknown", "reconciled: still open", 0, False),
    ],
)
def test_reconciliation_records_what_the_exchange_says_with_its_source(
    journal: SqlJournal,
    status: str,
    amount: str,
    outcome: str,
    source: str,
    fills: int,
    clear: bool,
) -> None:
    order = OrderRequest("BTC", "BTC/USDT", Side.BUY, D("0.1"), D(40000), D(4000), D(4), "rb9")
    journal.record_intent(order, T0)
    found = Fill(
        "rb9",
        "BTC",
        "BTC/USDT",
        Side.BUY,
        D(amount),
        D(40000),
        D(amount) * 40000,
        D(0),
        "BTC",
        status,
        "X9",
    )
    exchange = LookupOnly(found)
    result = reconcile(exchange, journal, T0)  # type: ignore[arg-type]
    assert exchange.cancelled == (["rb9"] if status == "open" else [])  # only a resting one
    assert result.clear is clear
    [row] = journal.history(kinds=["orders"])["orders"]
    assert (row["status"], row["source"]) == (outcome, source)
    assert len(journal.history(kinds=["fills"])["fills"]) == fills
    assert len(journal.unresolved_intents()) == (0 if clear else 1)


# --- fills -------------------------------------------------------------------------------------


def _fill(cid: str, exchange_id: str = "") -> Fill:
    return Fill(
        cid,
        "BTC",
        "BTC/USDT",
        Side.BUY,
        D("0.1"),
        D(40000),
        D(4000),
        D(4),
        "USDT",
        "closed",
        exchange_id,
    )


def test_fills_are_recorded_once_per_exchange_trade(journal: SqlJournal) -> None:
    order = OrderRequest("BTC", "BTC/USDT", Side.BUY, D("0.1"), D(40000), D(4000), D(4), "rb1")
    journal.record_intent(order, T0)
    journal.record_outcome("rb1", OrderOutcome("filled", "exchange reply", _fill("rb1", "X1")), T0)
    journal.record_outcome(
        "rb1", OrderOutcome("filled", "reconciled: filled", _fill("rb1", "X1")), T0
    )
    journal.record_outcome("rb2", OrderOutcome("filled", "exchange reply", _fill("rb2")), T0)
    journal.record_outcome("rb2", OrderOutcome("filled", "exchange reply", _fill("rb2")), T0)
    fills = journal.history(kinds=["fills"])["fills"]
    assert sorted(f["trade_id"] for f in fills) == ["X1", "rb2"]
    assert {f["fee"] for f in fills} == {D(4)} and {f["fee_asset"] for f in fills} == {"USDT"}


def test_fees_in_two_currencies_are_all_journaled_and_counted(journal: SqlJournal) -> None:
    """Part of the fee in BTC, part in BNB (and a dust part in USDT): every one is kept, the
    holdings after the check lose each, and the tax lots and the Koinly rows count them."""
    from dataclasses import replace

    from rebalancer.cli.gains_cmd import fills_from_rows
    from rebalancer.core.lots import LotBook, add_fill
    from rebalancer.core.tax_export import koinly_rows
    from rebalancer.web.view import holdings_after

    fill = replace(
        _fill("rb3", "X3"),
        fee=D("0.0001"),
        fee_asset="BTC",
        other_fees=(("BNB", D("0.00000007")), ("USDT", D("0.5"))),
    )
    order = OrderRequest("BTC", "BTC/USDT", Side.BUY, D("0.1"), D(40000), D(4000), D(4), "rb3")
    journal.record_intent(order, T0)
    journal.record_outcome("rb3", OrderOutcome("filled", "exchange reply", fill), T0)
    [row] = journal.history(kinds=["fills"])["fills"]
    assert row["fee"] == D("0.0001") and row["fee_asset"] == "BTC"
    assert row["other_fees"] == [["BNB", "0.00000007"], ["USDT", "0.5"]]  # plain decimals
    cycle = {"at": T0, "snapshot": {"quote": "USDT", "balances": {"USDT": "5000"}}}
    held = holdings_after(cycle, [row])
    assert held == {"USDT": D(5000) - D(4000) - D("0.5"), "BTC": D("0.0999"), "BNB": -D("7E-8")}
    [timed] = fills_from_rows([row], "USDT")
    assert timed.fill.fees() == {"BTC": D("0.0001"), "BNB": D("7E-8"), "USDT": D("0.5")}
    book, realised = add_fill(LotBook({}), timed, "fifo")
    [lot] = book.lots["BTC"]
    assert lot.amount == D("0.0999") and lot.cost == D("4000.5") and realised == []
    rows = koinly_rows([timed])
    assert [r["Fee Currency"] for r in rows] == ["BTC", "", ""]
    extra = {(r["Sent Amount"], r["Sent Currency"], r["Label"]) for r in rows[1:]}
    assert extra == {("0.00000007", "BNB", "cost"), ("0.5", "USDT", "cost")}


# --- cycles and trigger memory ----------------------------------------------------------------


def test_cycles_are_journaled_with_snapshot_drift_decision_and_plan(journal: SqlJournal) -> None:
    ex = paper({"BTC": "0.2", "USDT": "0"})
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0 + timedelta(hours=1))
    times = journal.trigger_times()
    assert times.last_check == T0 + timedelta(hours=1) and times.last_fired == T0
    [first, second] = journal.history(kinds=["cycles"])["cycles"]
    assert first["fire"] and first["executed"] and not second["fire"]
    assert first["total_value"] == D(8000) and first["fees_quote"] > 0
    with journal._session() as s:  # the full snapshot and plan are there too
        from rebalancer.adapters.journal.models import Cycle

        row = s.query(Cycle).filter_by(account=journal.account).order_by(Cycle.id).first()
        assert row is not None
        assert row.snapshot["balances"] == {"BTC": "0.2", "USDT": "0"}
        assert {d["asset"] for d in row.drift} == {"BTC", "ETH", "USDT"}
        assert row.plan is not None and row.plan["orders"][0]["side"] == "sell"
    assert journal.value_history(T0 + timedelta(minutes=1))[0][0] == T0 + timedelta(hours=1)


def test_history_filters_by_time(journal: SqlJournal) -> None:
    ex = paper({"BTC": "0.2", "USDT": "0"})
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0)
    run_cycle(ex, journal, MemoryNotifier(), strategy(), T0 + timedelta(days=2))
    later = journal.history(T0 + timedelta(days=1))
    assert len(later["cycles"]) == 1 and later["fills"] == [] and later["orders"] == []


# --- circuit breaker ----------------------------------------------------------------------------


def test_a_drop_trips_the_breaker_the_halt_survives_reopening_and_resume_lifts_it(
    journal: SqlJournal,
) -> None:
    risk = RiskLimits(max_drawdown=D("0.15"), window=timedelta(hours=24))
    inner = paper({"BTC": "0.125", "ETH": "1.5", "USDT": "2000"})  # 5000/3000/2000: on target
    ex = FaultyExchange(inner)
    calm = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0, risk=risk)
    assert not calm.stopped and not calm.decision.fire
    inner.set_prices({"BTC": D(20000), "ETH": D(2000)}, T0 + timedelta(hours=2))  # -25 %
    notifier = MemoryNotifier()
    crash = run_cycle(ex, journal, notifier, strategy(), T0 + timedelta(hours=2), risk=risk)
    assert crash.decision.fire and "risk.max_drawdown" in crash.stopped
    assert ex.created == [] and crash.fills == []
    assert [e.kind for e in notifier.events] == ["halt"]

    again = reopen(journal)  # a restart
    assert again.halt_status().active is not None
    after = run_cycle(ex, again, MemoryNotifier(), strategy(), T0 + timedelta(hours=3), risk=risk)
    assert "halted since" in after.stopped and ex.created == []

    again.record_resume(T0 + timedelta(hours=4), "checked")
    assert again.halt_status().active is None
    resumed = run_cycle(ex, again, MemoryNotifier(), strategy(), T0 + timedelta(hours=5), risk=risk)
    assert not resumed.stopped and resumed.fills, resumed.stopped
    kinds = [h["kind"] for h in again.history(kinds=["halts"])["halts"]]
    assert kinds == ["halt", "resume"]
    again.close()


def test_a_plan_trading_too_much_of_the_portfolio_trips_the_breaker(journal: SqlJournal) -> None:
    ex = FaultyExchange(paper({"USDT": "10000"}))  # all cash: the plan trades 80 %
    report = run_cycle(
        ex, journal, MemoryNotifier(), strategy(), T0, risk=RiskLimits(max_cycle_turnover=D("0.5"))
    )
    assert "risk.max_cycle_turnover" in report.stopped and ex.created == []
    assert journal.halt_status().active is not None


def test_an_order_above_the_notional_cap_trips_the_breaker(journal: SqlJournal) -> None:
    ex = FaultyExchange(paper({"USDT": "10000"}))
    risk = RiskLimits(max_order_notional=D(4000))  # the BTC buy is ~5000
    report = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0, risk=risk)
    assert "risk.max_order_notional" in report.stopped and ex.created == []


def test_within_the_limits_the_breaker_lets_the_cycle_trade(journal: SqlJournal) -> None:
    ex = FaultyExchange(paper({"USDT": "10000"}))
    risk = RiskLimits(max_order_notional=D(6000), max_cycle_notional=D(9000))
    report = run_cycle(ex, journal, MemoryNotifier(), strategy(), T0, risk=risk)
    assert not report.stopped and len(report.fills) == 2
    assert journal.halt_status().active is None


# --- one instance per account -------------------------------------------------------------------


def test_a_second_instance_on_the_same_account_is_refused(journal: SqlJournal) -> None:
    first = reopen(journal, lock=True)
    with pytest.raises(AlreadyRunning, match="one instance per account"):
        reopen(journal, lock=True)
    other_account = open_journal(
        journal.engine.url.render_as_string(hide_password=False), journal.account + "-b", lock=True
    )
    other_account.close()
    first.close()
    third = reopen(journal, lock=True)  # released on close
    third.close()


HOLD = """
import sys, time
from rebalancer.adapters.journal import open_journal
j = open_journal(sys.argv[1], sys.argv[2], lock=True)
print("locked", flush=True)
time.sleep(60)
"""


def test_the_lock_holds_across_processes_and_dies_with_its_holder(journal: SqlJournal) -> None:
    url = journal.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, journal.account], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning):
            reopen(journal, lock=True)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:  # the server notices the dropped connection promptly, the kernel at once
        try:
            reopen(journal, lock=True).close()
            break
        except AlreadyRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
