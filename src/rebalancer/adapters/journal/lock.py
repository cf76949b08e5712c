"""One instance per account: a lock held for as long as a trading journal is open.

SQLite (a file): an exclusive ``fcntl`` lock on ``<database>.<account>.lock`` beside it --
released by the kernel when the process dies, so a crash never leaves a stale lock.
PostgreSQL: a session-level advisory lock keyed by the account, held on a connection of its
own, so two daemons on different machines sharing one database never trade one account.
Other backends (and in-memory SQLite) get no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from rebalancer.core.errors import StopAndTell


class AlreadyRunning(StopAndTell):
    """Another process holds the account's lock."""


class AccountLock(Protocol):
    def release(self) -> None: ...


class NoLock:
    def release(self) -> None:
        return None


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise AlreadyRunning(
                f"another rebalancer process holds {path}: one instance per account. "
                "Stop the other one first (the lock goes with its process)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class AdvisoryLock:
    def __init__(self, engine: Engine, account: str) -> None:
        self.key = advisory_key(account)
        self._conn: Connection | None = engine.connect()
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        if not got.scalar():
            self._conn.close()
            self._conn = None
            raise AlreadyRunning(
                f"another rebalancer process trades account {account!r} on this database "
                f"(PostgreSQL advisory lock {self.key} is held): one instance per account"
            )
        self._conn.commit()

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
            self._conn.close()
            self._conn = None


def advisory_key(account: str) -> int:
    """A stable signed 64-bit key for ``account``."""
    digest = hashlib.sha256(f"rebalancer:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_account(engine: Engine, account: str) -> AccountLock:
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return AdvisoryLock(engine, account)
    database = engine.url.database
    if backend == "sqlite" and database and database != ":memory:":
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", account)
        return FileLock(Path(f"{database}.{safe}.lock"))
    return NoLock()
