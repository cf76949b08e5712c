"""The SQL journal: the Journal port over SQLAlchemy, each write its own transaction.

``record_intent`` commits before it returns, so an order's intent is durable before the
request leaves the process (write-ahead). On a locked (trading) journal it first confirms
the account's lock is still held and, in the intent's own transaction, that the lock's
fencing token is still the current one (:mod:`rebalancer.adapters.journal.lock`): a holder
that lost its lock raises :class:`LockLost` and writes nothing. Fills are recorded once per
exchange trade (the exchange's order id, else our client order id), however often an
outcome is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rebalancer.adapters.journal.lock import AccountLock, NoLock, lock_lost
from rebalancer.adapters.journal.models import (
    AccountLockRow,
    CommandRow,
    Cycle,
    FillRow,
    FlowRow,
    HaltEvent,
    Order,
    OrderEvent,
    TargetChangeRow,
)
from rebalancer.core.errors import InvariantBroken
from rebalancer.core.model import Fill, OrderRequest, Side
from rebalancer.core.numbers import plain
from rebalancer.ports import (
    CommandRecord,
    Halt,
    HaltStatus,
    OrderOutcome,
    TargetChange,
    TriggerTimes,
    flow_records,
)

KINDS = ("cycles", "orders", "fills", "halts")
# further kinds :meth:`SqlJournal.history` answers when asked (not in the default set)
EXTRA_KINDS = ("flows", "targets", "commands")


class SqlJournal:
    """Journal port on a database; ``account`` scopes every row (e.g. ``paper:binance``)."""

    def __init__(self, engine: Engine, account: str, lock: AccountLock | None = None) -> None:
        self.engine = engine
        self.account = account
        self._lock = lock or NoLock()
        self.holds_lock = lock is not None  # opened to trade (``open_journal(lock=True)``)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        self._lock.release()
        self.engine.dispose()

    def confirm_lock(self) -> None:
        """Raise :class:`LockLost` unless this journal's account lock is still held (a
        no-op on a journal opened without the lock). Called at the start of every cycle
        and, by :meth:`record_intent`, before every order."""
        self._lock.check()

    def _fence(self, s: Session) -> None:
        """Within ``s``'s transaction: refuse unless the lock's fencing token is still the
        account's current generation. The row stays locked until the transaction ends,
        so a new holder's take-over waits for it (or this write sees the take-over)."""
        token = self._lock.token
        if token is None:
            return
        mine = AccountLockRow.account == self.account
        current = s.execute(
            update(AccountLockRow)
            .where(mine, AccountLockRow.generation == token)
            .values(generation=AccountLockRow.generation)
        )
        if getattr(current, "rowcount", 0) != 1:
            now = s.scalar(select(AccountLockRow.generation).where(mine))
            raise lock_lost(
                self.account,
                f"the lock was taken again since (fencing generation {now}, this process "
                f"holds {token}); the journal refused the write",
            )

    def _session(self) -> Session:
        return self._sessions()

    # --- trigger memory and cycles ------------------------------------------------------

    def trigger_times(self) -> TriggerTimes:
        mine = Cycle.account == self.account
        with self._session() as s:
            last_check = s.scalar(select(func.max(Cycle.at)).where(mine))
            last_fired = s.scalar(
                select(func.max(Cycle.at)).where(mine, Cycle.fire, Cycle.executed)
            )
        return TriggerTimes(_utc(last_check), _utc(last_fired))

    def record_cycle(self, report: Any) -> None:
        with self._session() as s, s.begin():
            s.add(
                Cycle(
                    account=self.account,
                    at=report.at,
                    total_value=report.drift.total_value,
                    fire=report.decision.fire,
                    reason=report.decision.reason,
                    executed=report.executed,
                    stopped=report.stopped,
                    fees_quote=report.fees_in_quote(),
                    snapshot=_snapshot(report.snapshot),
                    drift=_drift(report.drift),
                    plan=_plan(report.plan, report.buy_plan),
                )
            )
            for flow in flow_records(report):  # the same transaction as its cycle
                s.add(
                    FlowRow(
                        account=self.account,
                        at=flow.at,
                        asset=flow.asset,
                        amount=flow.amount,
                        value=flow.value,
                        quote=flow.quote,
                    )
                )

    def value_history(self, since: datetime) -> list[tuple[datetime, Decimal]]:
        query = (
            select(Cycle.at, Cycle.total_value)
            .where(Cycle.account == self.account, Cycle.at >= since)
            .order_by(Cycle.at)
        )
        with self._session() as s:
            return [(at, value) for at, value in s.execute(query)]

    # --- orders: write-ahead intents, outcomes, fills ------------------------------------

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        cid = order.client_order_id
        if not cid:
            raise InvariantBroken("an order intent needs a client order id")
        self.confirm_lock()
        with self._session() as s, s.begin():
            self._fence(s)
            if self._order(s, cid) is not None:
                raise InvariantBroken(
                    f"order {cid} is already journaled: a client order id is never reused"
                )
            s.add(
                Order(
                    account=self.account,
                    client_order_id=cid,
                    created_at=at,
                    updated_at=at,
                    asset=order.asset,
                    symbol=order.symbol,
                    side=order.side.value,
                    amount=order.amount,
                    expected_price=order.expected_price,
                    expected_cost=order.expected_cost,
                    expected_fee=order.expected_fee,
                    status="intent",
                    resolved=False,
                    source="",
                    error="",
                )
            )
            s.add(self._event(cid, at, "intent", "", "journaled before sending"))

    def record_outcome(self, client_order_id: str, outcome: OrderOutcome, at: datetime) -> None:
        with self._session() as s, s.begin():
            row = self._order(s, client_order_id)
            if row is not None:
                row.status = outcome.status
                row.resolved = outcome.resolved
                row.source = outcome.source
                row.error = outcome.error
                row.updated_at = at
            detail = outcome.error or (_fill_text(outcome.fill) if outcome.fill else "")
            s.add(self._event(client_order_id, at, outcome.status, outcome.source, detail))
            if outcome.fill is not None:
                self._add_fill(s, client_order_id, outcome.fill, outcome.source, at)

    def _add_fill(self, s: Session, cid: str, fill: Fill, source: str, at: datetime) -> None:
        trade_id = fill.exchange_order_id or fill.client_order_id or cid
        seen = s.scalar(
            select(FillRow.id).where(FillRow.account == self.account, FillRow.trade_id == trade_id)
        )
        if seen is not None:
            return
        s.add(
            FillRow(
                account=self.account,
                trade_id=trade_id,
                client_order_id=fill.client_order_id or cid,
                at=at,
                asset=fill.asset,
                symbol=fill.symbol,
                side=fill.side.value,
                amount=fill.amount,
                price=fill.price,
                cost=fill.cost,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                other_fees=[[a, plain(v)] for a, v in fill.other_fees] or None,
                status=fill.status,
                source=source,
            )
        )

    def unresolved_intents(self) -> list[OrderRequest]:
        query = (
            select(Order)
            .where(Order.account == self.account, Order.resolved.is_(False))
            .order_by(Order.id)
        )
        with self._session() as s:
            return [_request(row) for row in s.scalars(query)]

    def _order(self, s: Session, cid: str) -> Order | None:
        return s.scalar(
            select(Order).where(Order.account == self.account, Order.client_order_id == cid)
        )

    def _event(self, cid: str, at: datetime, status: str, source: str, detail: str) -> OrderEvent:
        return OrderEvent(
            account=self.account,
            client_order_id=cid,
            at=at,
            status=status,
            source=source,
            detail=detail,
        )

    # --- halts -------------------------------------------------------------------------

    def halt_status(self) -> HaltStatus:
        mine = HaltEvent.account == self.account
        with self._session() as s:
            last = s.scalar(select(HaltEvent).where(mine).order_by(HaltEvent.id.desc()).limit(1))
            resumed = s.scalar(
                select(func.max(HaltEvent.at)).where(mine, HaltEvent.kind == "resume")
            )
        active = Halt(last.at, last.reason) if last is not None and last.kind == "halt" else None
        return HaltStatus(active, _utc(resumed))

    def record_halt(self, reason: str, at: datetime) -> None:
        """A halt (refused from a holder that lost the lock: it would stop the instance
        that took the account over)."""
        self.confirm_lock()
        self._halt_event("halt", reason, at)

    def record_resume(self, at: datetime, note: str = "") -> None:
        self._halt_event("resume", note, at)

    def _halt_event(self, kind: str, reason: str, at: datetime) -> None:
        with self._session() as s, s.begin():
            s.add(HaltEvent(account=self.account, at=at, kind=kind, reason=reason))

    # --- commands from a chat ------------------------------------------------------------

    def record_command(self, record: CommandRecord) -> None:
        """Journal a chat command (answered or refused); text cut to the column sizes."""
        row = CommandRow(
            account=self.account,
            at=record.at,
            channel=record.channel[:16],
            sender=record.sender[:64],
            command=record.command[:200],
            outcome=record.outcome,
        )
        with self._session() as s, s.begin():
            s.add(row)

    # --- target changes (optimised targets) ---------------------------------------------

    def latest_target_change(self) -> TargetChange | None:
        query = (
            select(TargetChangeRow)
            .where(TargetChangeRow.account == self.account)
            .order_by(TargetChangeRow.id.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.scalar(query)
        return None if row is None else _change(row)

    def record_target_change(self, change: TargetChange) -> None:
        with self._session() as s, s.begin():
            s.add(
                TargetChangeRow(
                    account=self.account,
                    at=change.at,
                    method=change.method,
                    old=_weights_text(change.old),
                    new=_weights_text(change.new),
                    explanation=change.explanation,
                    config_targets=_weights_text(change.config_targets),
                    config_method=change.config_method,
                )
            )

    def target_changes(self, since: datetime | None = None) -> list[TargetChange]:
        """Every journaled target change, oldest first."""
        query = select(TargetChangeRow).where(TargetChangeRow.account == self.account)
        if since is not None:
            query = query.where(TargetChangeRow.at >= since)
        with self._session() as s:
            return [_change(r) for r in s.scalars(query.order_by(TargetChangeRow.id))]

    # --- reading it back -----------------------------------------------------------------

    def history(
        self, since: datetime | None = None, kinds: Iterable[str] = KINDS
    ) -> dict[str, list[dict[str, Any]]]:
        """Rows per kind (cycles, orders, fills, halts; ``flows``, ``targets`` and
        ``commands`` when asked), oldest first."""
        tables: dict[str, Any] = {
            "cycles": (Cycle, Cycle.at),
            "orders": (Order, Order.created_at),
            "fills": (FillRow, FillRow.at),
            "halts": (HaltEvent, HaltEvent.at),
            "flows": (FlowRow, FlowRow.at),
            "targets": (TargetChangeRow, TargetChangeRow.at),
            "commands": (CommandRow, CommandRow.at),
        }
        out: dict[str, list[dict[str, Any]]] = {}
        with self._session() as s:
            for kind in kinds:
                model, at = tables[kind]
                query = select(model).where(model.account == self.account)
                if since is not None:
                    query = query.where(at >= since)
                out[kind] = [_row(kind, r) for r in s.scalars(query.order_by(at, model.id))]
        return out

    def cycle_details(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Cycles with what they saw (``snapshot``, ``drift``) and planned, oldest first."""
        query = select(Cycle).where(Cycle.account == self.account)
        if since is not None:
            query = query.where(Cycle.at >= since)
        names = (*_FIELDS["cycles"], "snapshot", "drift", "plan")
        with self._session() as s:
            return [
                {n: getattr(r, n) for n in names}
                for r in s.scalars(query.order_by(Cycle.at, Cycle.id))
            ]

    def order_events(self, client_order_id: str) -> list[dict[str, Any]]:
        query = (
            select(OrderEvent)
            .where(
                OrderEvent.account == self.account, OrderEvent.client_order_id == client_order_id
            )
            .order_by(OrderEvent.id)
        )
        with self._session() as s:
            return [
                {"at": e.at, "status": e.status, "source": e.source, "detail": e.detail}
                for e in s.scalars(query)
            ]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _weights_text(weights: Any) -> dict[str, str]:
    return {a: str(w) for a, w in weights.items()}


def _weights(text: dict[str, str]) -> dict[str, Decimal]:
    return {a: Decimal(w) for a, w in text.items()}


def _change(row: TargetChangeRow) -> TargetChange:
    return TargetChange(
        at=_utc(row.at) or row.at,
        method=row.method,
        old=_weights(row.old),
        new=_weights(row.new),
        explanation=row.explanation,
        config_targets=_weights(row.config_targets),
        config_method=row.config_method,
    )


def _request(row: Order) -> OrderRequest:
    return OrderRequest(
        asset=row.asset,
        symbol=row.symbol,
        side=Side(row.side),
        amount=row.amount,
        expected_price=row.expected_price,
        expected_cost=row.expected_cost,
        expected_fee=row.expected_fee,
        client_order_id=row.client_order_id,
    )


def _fill_text(fill: Fill) -> str:
    return f"{fill.side.value} {fill.amount} {fill.symbol} @ {fill.price} ({fill.status})"


def _snapshot(snap: Any) -> dict[str, Any]:
    return {
        "quote": snap.quote,
        "taken_at": snap.taken_at.isoformat(),
        "balances": {k: str(v) for k, v in snap.balances.items()},
        "prices": {k: str(v) for k, v in snap.prices.items()},
    }


def _drift(drift: Any) -> list[dict[str, Any]]:
    return [
        {
            "asset": a.asset,
            "amount": str(a.amount),
            "value": str(a.value),
            "weight": str(a.weight),
            "target": str(a.target),
            "drift": str(a.drift),
        }
        for a in drift.assets
    ]


def _plan(first: Any, buys: Any) -> dict[str, Any] | None:
    if first is None:
        return None

    def orders(items: Iterable[OrderRequest]) -> list[dict[str, str]]:
        return [
            {
                "symbol": o.symbol,
                "side": o.side.value,
                "amount": str(o.amount),
                "expected_cost": str(o.expected_cost),
            }
            for o in items
        ]

    skipped = [*first.skipped, *(buys.skipped if buys is not None else ())]
    return {
        "orders": orders(first.orders),
        "buys_replanned": None if buys is None else orders(buys.buys),
        "skipped": [
            {"asset": k.asset, "side": k.side.value, "reason": k.reason, "detail": k.detail}
            for k in skipped
        ],
    }


_FIELDS: dict[str, tuple[str, ...]] = {
    "cycles": ("at", "total_value", "fire", "reason", "executed", "stopped", "fees_quote"),
    "orders": (
        "created_at",
        "client_order_id",
        "symbol",
        "side",
        "amount",
        "expected_cost",
        "status",
        "source",
        "error",
        "updated_at",
    ),
    "fills": (
        "at",
        "client_order_id",
        "trade_id",
        "symbol",
        "side",
        "amount",
        "price",
        "cost",
        "fee",
        "fee_asset",
        "other_fees",
        "status",
        "source",
    ),
    "halts": ("at", "kind", "reason"),
    "flows": ("at", "asset", "amount", "value", "quote"),
    "targets": ("at", "method", "old", "new", "explanation", "config_method"),
    "commands": ("at", "channel", "sender", "command", "outcome"),
}


def _row(kind: str, row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _FIELDS[kind]}
