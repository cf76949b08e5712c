"""The SQL journal (SQLAlchemy 2, Alembic migrations): the bot's durable memory.

SQLite by default (``journal.sqlite`` in the state folder), any SQLAlchemy URL through
``journal_url`` (e.g. ``postgresql+psycopg://user@host/db``). Opening applies pending
migrations; ``lock=True`` (trading) also takes the account's lock (one instance per account)
and its fencing token; :meth:`SqlJournal.confirm_lock` and every order intent check it.
"""

from __future__ import annotations

from rebalancer.adapters.journal.lock import (
    AlreadyRunning,
    LockLost,
    NoLock,
    lock_account,
    take_token,
)
from rebalancer.adapters.journal.schema import make_engine, upgrade
from rebalancer.adapters.journal.store import KINDS, SqlJournal

__all__ = ["KINDS", "AlreadyRunning", "LockLost", "SqlJournal", "open_journal"]


def open_journal(url: str, account: str, *, lock: bool = False) -> SqlJournal:
    """Open (and migrate) the journal at ``url`` for ``account``; ``lock`` for trading."""
    engine = make_engine(url)
    held = lock_account(engine, account) if lock else None
    try:
        upgrade(engine)
        if held is not None and not isinstance(held, NoLock):
            held.token = take_token(engine, account)
    except Exception:
        if held is not None:
            held.release()
        engine.dispose()
        raise
    return SqlJournal(engine, account, held)
