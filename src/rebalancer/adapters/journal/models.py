"""The journal's tables as typed SQLAlchemy 2 models (one schema for SQLite and PostgreSQL).

Every row carries the ``account`` it belongs to (e.g. ``paper:binance``), so several
portfolios can share one database. Money is stored as decimal text (exact on every
backend); times as timezone-aware UTC. A change here needs an Alembic revision under
``migrations/versions`` (a test compares the migrated schema with these models).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal stored as its exact text."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime (SQLite hands back naive values: they are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given to the journal: times are UTC-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


ACCOUNT = 100
ORDER_ID = 64


class Cycle(Base):
    """One cycle: what it saw (snapshot, drift), decided (decision, plan) and did."""

    __tablename__ = "cycles"
    __table_args__ = (Index("ix_cycles_account_at", "account", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    total_value: Mapped[Decimal] = mapped_column(DecimalText())
    fire: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    executed: Mapped[bool]
    stopped: Mapped[str] = mapped_column(Text)
    fees_quote: Mapped[Decimal] = mapped_column(DecimalText())
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    drift: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Order(Base):
    """An order intent (written before the request is sent) and its latest state."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("account", "client_order_id", name="uq_orders_client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    client_order_id: Mapped[str] = mapped_column(String(ORDER_ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    asset: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    expected_price: Mapped[Decimal] = mapped_column(DecimalText())
    expected_cost: Mapped[Decimal] = mapped_column(DecimalText())
    expected_fee: Mapped[Decimal] = mapped_column(DecimalText())
    status: Mapped[str] = mapped_column(String(16))
    resolved: Mapped[bool]
    source: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)


class OrderEvent(Base):
    """Every state change of an order: intent, filled, rejected, unknown, not_found."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "account", "client_order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    client_order_id: Mapped[str] = mapped_column(String(ORDER_ID))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)


class FillRow(Base):
    """A fill and its fee, once per exchange trade (the order id, else our client id)."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("account", "trade_id", name="uq_fills_trade"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    trade_id: Mapped[str] = mapped_column(String(ORDER_ID * 2))
    client_order_id: Mapped[str] = mapped_column(String(ORDER_ID))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    asset: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    price: Mapped[Decimal] = mapped_column(DecimalText())
    cost: Mapped[Decimal] = mapped_column(DecimalText())
    fee: Mapped[Decimal] = mapped_column(DecimalText())
    fee_asset: Mapped[str] = mapped_column(String(32))
    # fees charged in further currencies: [[asset, amount as decimal text], ...] (or none)
    other_fees: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)


class HaltEvent(Base):
    """A halt by the circuit breaker (``kind`` "halt") or its lifting ("resume")."""

    __tablename__ = "halts"
    __table_args__ = (Index("ix_halts_account", "account", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)


class TargetChangeRow(Base):
    """A change of the targets in use (``ports.TargetChange``), written before they trade.

    ``old`` / ``new`` / ``config_targets``: asset -> weight as decimal text (each sums to 1,
    the quote included); ``method`` "config" when the configured targets were (re)applied.
    """

    __tablename__ = "target_changes"
    __table_args__ = (Index("ix_target_changes_account", "account", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(32))
    old: Mapped[dict[str, str]] = mapped_column(JSON)
    new: Mapped[dict[str, str]] = mapped_column(JSON)
    explanation: Mapped[str] = mapped_column(Text)
    config_targets: Mapped[dict[str, str]] = mapped_column(JSON)
    config_method: Mapped[str] = mapped_column(String(32))


class FlowRow(Base):
    """A deposit (amount > 0) or withdrawal (< 0) found by a cycle, valued in the quote at
    that cycle's price (``value``, quote units); ``at`` is the cycle's time."""

    __tablename__ = "flows"
    __table_args__ = (Index("ix_flows_account_at", "account", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    asset: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    value: Mapped[Decimal] = mapped_column(DecimalText())
    quote: Mapped[str] = mapped_column(String(32))


class AccountLockRow(Base):
    """The fencing token of each account's lock: ``generation`` rises by one every time a
    process takes the lock (``lock.take_token``); an order intent is journaled only in a
    transaction that finds the writer's own generation still current."""

    __tablename__ = "account_locks"

    account: Mapped[str] = mapped_column(String(ACCOUNT), primary_key=True)
    generation: Mapped[int]
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CommandRow(Base):
    """A command given from a chat (``channel`` "telegram"), answered or refused.

    ``sender``: the chat id; ``command``: the text as received (at most 200 characters);
    ``outcome``: the first line of the answer, or why it was refused.
    """

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_account_at", "account", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(Text)
