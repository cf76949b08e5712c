"""The account lock cannot be lost unnoticed (issue 12, item 1).

On a real PostgreSQL server (REBALANCER_TEST_PG_URL, as in test_journal.py; skipped with the
reason without it) the lock's session is terminated as a database restart, a failover or an
idle timeout would: the holder stops before its next order with :class:`LockLost`, a second
instance takes the account and trades the rest, and the first one's stale writes are
refused by the fencing token. The SQLite lock (a ``flock``ed file) is covered the same way.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import AlreadyRunning, LockLost, SqlJournal, open_journal
from rebalancer.adapters.journal.lock import FileLock, advisory_key, take_token
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.daemon.loop import EXIT_STOPPED_BY_ERROR, Daemon, DaemonPolicy
from rebalancer.daemon.schedule import Schedule
from rebalancer.service import run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PG_URL = os.environ.get("REBALANCER_TEST_PG_URL", "")
PG_SKIP = (
    "REBALANCER_TEST_PG_URL is not set, so the lock is not tested on PostgreSQL here: "
    "run `scripts/dev test` (it starts one with scripts/postgres.sh) or set the URL"
)
needs_pg = pytest.mark.skipif(not PG_URL, reason=PG_SKIP)



@pytest.fixture
def account() -> str:
    return f"lock:{uuid.uuid4().hex[:12]}"  # rows and lock keys of each test apart


def strategy() -> Strategy:
    targets = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}
    return Strategy("USDT", targets, Threshold(D("0.05")), PlanPolicy(min_trade=D(10)))


def market(balanced: bool = False) -> PaperExchange:
    """One exchange account both instances trade: all cash, so a cycle buys BTC and ETH
    (``balanced``: at the targets already, so a cycle trades nothing)."""
    held = {"BTC": D("0.125"), "ETH": D("1.5"), "USDT": D(2000)} if balanced else {}
    ex = PaperExchange("USDT", held or {"USDT": D(10000)}, D("0.001"))
    ex.set_prices({"BTC": D(40000), "ETH": D(2000)}, T0)
    return ex


@dataclass
class Seen:
    """The exchange as one instance sees it: every create request is logged with who sent
    it; ``after_create`` runs once the exchange has filled an order."""

    inner: PaperExchange
    who: str
    sent: list[tuple[str, str, str]]  # (instance, client order id, asset), shared
    after_create: list[object] = field(default_factory=list)
    name: str = "paper"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.sent.append((self.who, order.client_order_id, order.asset))
        fill = self.inner.create_market_order(order)
        for hook in self.after_create:
            hook()  # type: ignore[operator]
        return fill

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        raise AssertionError("market orders only here")

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.cancel_order(client_order_id, symbol)


def order(cid: str) -> OrderRequest:
    return OrderRequest("BTC", "BTC/USDT", Side.BUY, D("0.01"), D(1), D(1), D(0), cid)


def kill_lock_session(account: str) -> int:
    """``pg_terminate_backend`` on the session holding ``account``'s advisory lock (what a
    server restart, a failover or an idle timeout does); how many sessions it ended."""
    key = advisory_key(account)
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND objsubid = 1 "
                        "AND classid::bigint = :hi AND objid::bigint = :lo"
                    ),
                    {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
                ).all()
            )
    finally:
        admin.dispose()


def lock_holders(account: str) -> list[int]:
    """The backend pids holding ``account``'s advisory lock right now."""
    key = advisory_key(account)
    admin = create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objsubid = 1 AND classid::bigint = :hi AND objid::bigint = :lo"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            )
            return [int(r[0]) for r in rows]
    finally:
        admin.dispose()


def take_over(url: str, account: str) -> SqlJournal:
    """A second instance takes the lock; the server frees a terminated session's lock as
    soon as the backend has exited (bounded wait, not a timing assumption)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return open_journal(url, account, lock=True)
        except AlreadyRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def opened() -> Iterator[list[SqlJournal]]:
    journals: list[SqlJournal] = []
    yield journals
    for j in journals:
        j.close()  # a lost lock closes without raising


# --- PostgreSQL: the lock session killed -----------------------------------------------------


@needs_pg
def test_a_lock_session_killed_between_two_orders_leaves_exactly_one_instance_sending(
    account: str, opened: list[SqlJournal]
) -> None:
    exchange = market()
    sent: list[tuple[str, str, str]] = []
    first = open_journal(PG_URL, account, lock=True)
    opened.append(first)
    killed: list[int] = []
    a = Seen(exchange, "A", sent, [lambda: killed.append(kill_lock_session(account))])

    with pytest.raises(LockLost, match=rf"account '{account}'.*no longer holds"):
        run_cycle(a, first, MemoryNotifier(), strategy(), T0, force=True)
    assert killed[0] == 1
    assert [who for who, _, _ in sent] == ["A"], "A stopped before sending its second order"
    a_assets = {asset for _, _, asset in sent}

    second = take_over(PG_URL, account)  # the account is free again: B takes it
    opened.append(second)
    b = Seen(exchange, "B", sent)
    report = run_cycle(b, second, MemoryNotifier(), strategy(), T0 + timedelta(hours=1))
    assert report.reconciled is not None and report.reconciled.clear
    b_sent = [(cid, asset) for who, cid, asset in sent if who == "B"]
    assert b_sent, "B sends the rest of the plan"
    assert not a_assets & {asset for _, asset in b_sent}, "nothing A bought is bought again"
    assert len({cid for _, cid, _ in sent}) == len(sent), "no client order id sent twice"
    assert not second.unresolved_intents()

    # A's stale writes are refused, and it never takes the lock back
    with pytest.raises(LockLost):
        first.record_intent(order("rb-stale-a"), T0 + timedelta(hours=2))
    with pytest.raises(LockLost):
        first.confirm_lock()
    second.confirm_lock()  # B holds it, and only B
    assert lock_holders(account) == [second._lock.backend_pid]  # type: ignore[attr-defined]
    second.record_intent(order("rb-b-accepted"), T0 + timedelta(hours=2))
    assert [o.client_order_id for o in second.unresolved_intents()] == ["rb-b-accepted"]


@needs_pg
def test_a_lost_lock_is_never_taken_back_silently(account: str, opened: list[SqlJournal]) -> None:
    holder = open_journal(PG_URL, account, lock=True)
    opened.append(holder)
    holder.confirm_lock()
    assert kill_lock_session(account) == 1
    for _ in range(2):  # lost for good: no reconnect takes it back behind the user's back
        with pytest.raises(LockLost, match="database session was dropped"):
            holder.confirm_lock()
    with pytest.raises(LockLost):
        holder.record_intent(order("rb-after-loss"), T0)
    assert lock_holders(account) == []
    assert holder.unresolved_intents() == []


def lose_lock(journal: SqlJournal) -> None:
    """Take ``journal``'s lock away under it: its PostgreSQL session terminated, its SQLite
    lock file removed."""
    lock = journal._lock
    if isinstance(lock, FileLock):
        lock.path.unlink()
    else:
        assert kill_lock_session(journal.account) == 1


def test_the_daemon_stops_on_a_lost_lock_without_halting_the_new_holder(
    url: str, account: str, opened: list[SqlJournal]
) -> None:
    exchange = market(balanced=True)  # a check that would trade nothing is not run either
    sent: list[tuple[str, str, str]] = []
    first = open_journal(url, account, lock=True)
    opened.append(first)
    lose_lock(first)
    second = take_over(url, account)
    opened.append(second)
    daemon = Daemon(
        Seen(exchange, "A", sent),
        first,
        MemoryNotifier(),
        strategy(),
        ManualClock(T0),
        DaemonPolicy(Schedule(period=timedelta(hours=4)), max_ticks=3),
        waiter=NoWait(),
    )
    result = daemon.run(handle_signals=False)
    assert result.exit_code == EXIT_STOPPED_BY_ERROR and "LockLost" in result.reason
    assert result.ticks == 1 and sent == []
    assert first.history()["cycles"] == [], "not even a cycle without orders ran"
    assert second.halt_status().active is None, "A's halt would stop B: it is refused"


# --- the fencing token (both backends) -------------------------------------------------------


def test_the_fencing_token_refuses_an_intent_after_a_take_over_the_check_missed(
    url: str, account: str, opened: list[SqlJournal]
) -> None:
    """Even when the holder's own check raced the take-over, the intent's transaction sees
    the newer generation and writes nothing."""
    holder = open_journal(url, account, lock=True)
    opened.append(holder)
    holder.record_intent(order("rb-before"), T0)
    take_token(holder.engine, account)  # what a new holder's acquisition does
    with pytest.raises(LockLost, match="fencing generation 2, this process holds 1"):
        holder.record_intent(order("rb-after"), T0)
    assert [o.client_order_id for o in holder.unresolved_intents()] == ["rb-before"]


def test_each_acquisition_takes_a_higher_generation(url: str, account: str) -> None:
    tokens = []
    for _ in range(3):
        j = open_journal(url, account, lock=True)
        tokens.append(j._lock.token)
        j.close()
    assert tokens == [tokens[0], tokens[0] + 1, tokens[0] + 2]
    reader = open_journal(url, account)  # a read-only journal takes no token
    assert reader._lock.token is None
    reader.close()


# --- SQLite: the lock file removed or replaced ------------------------------------------------


def test_a_removed_lock_file_is_noticed_before_the_next_order(
    tmp_path: Path, account: str, opened: list[SqlJournal]
) -> None:
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    exchange = market()
    sent: list[tuple[str, str, str]] = []
    first = open_journal(url, account, lock=True)
    opened.append(first)
    lock = first._lock
    assert isinstance(lock, FileLock)
    a = Seen(exchange, "A", sent, [lambda: lock.path.unlink()])
    with pytest.raises(LockLost, match="was removed"):
        run_cycle(a, first, MemoryNotifier(), strategy(), T0, force=True)
    assert len(sent) == 1

    second = open_journal(url, account, lock=True)  # a new file: it can be locked again
    opened.append(second)
    later = T0 + timedelta(hours=1)
    report = run_cycle(Seen(exchange, "B", sent), second, MemoryNotifier(), strategy(), later)
    assert report.reconciled is not None and report.reconciled.clear
    assert [who for who, _, _ in sent] == ["A", "B"]
    with pytest.raises(LockLost):
        first.record_intent(order("rb-stale"), T0)


def test_a_replaced_lock_file_is_noticed(tmp_path: Path, account: str) -> None:
    holder = open_journal(f"sqlite:///{tmp_path}/journal.sqlite", account, lock=True)
    lock = holder._lock
    assert isinstance(lock, FileLock)
    lock.path.unlink()
    lock.path.write_text("someone else\n")
    with pytest.raises(LockLost, match="was replaced"):
        holder.confirm_lock()
    holder.close()


@dataclass
class NoWait:
    def wait_until(self, when: datetime, stop: object) -> None:
        return None
