"""One instance per account: a lock held for as long as a trading journal is open, that
cannot be lost unnoticed.

SQLite (a file): an exclusive ``fcntl`` lock on ``<database>.<account>.lock`` beside it --
released by the kernel when the process dies, so a crash never leaves a stale lock.
PostgreSQL: a session-level advisory lock keyed by the account, held on a connection of its
own, so two daemons on different machines sharing one database never trade one account.
Other backends (and in-memory SQLite) get no lock.

A lock can be lost while its process lives: the PostgreSQL session is terminated (a server
restart, a failover, an idle timeout, ``pg_terminate_backend``), or the lock file is
removed or replaced. :meth:`AccountLock.check` confirms the lock is still held -- for
PostgreSQL by asking the server on the lock's own session whether *that session* holds the
advisory lock -- and raises :class:`LockLost` when it is not. A lost lock stays lost: the
holder never reconnects and takes it again behind the user's back (another instance may
have it by then); the process must be restarted.

Each acquisition also takes a **fencing token**: the account's ``generation`` in the
``account_locks`` table, raised by one on every acquisition. The journal checks it in the
same transaction as every order intent it writes (:meth:`SqlJournal.record_intent`), so a
holder whose lock was taken over is refused even if its own check raced the take-over.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, insert, select, text, update

from rebalancer.adapters.journal.models import AccountLockRow
from rebalancer.core.errors import DataError, StopAndTell


class AlreadyRunning(StopAndTell):
    """Another process holds the account's lock."""


class LockLost(StopAndTell):
    """This process held the account's lock and no longer does: it must stop acting."""


def lock_lost(account: str, why: str) -> LockLost:
    return LockLost(
        f"account {account!r}: this process no longer holds the account's lock ({why}), so "
        "another instance may be trading the account; it stopped before sending anything "
        "more. Check which rebalancer process runs for this account, keep only one, then "
        "start this one again (it reconciles every order it journaled first)"
    )


class AccountLock(Protocol):
    account: str
    token: int | None  # the fencing generation taken on acquisition (None: no fencing)

    def check(self) -> None:
        """Raise :class:`LockLost` unless the lock is still held."""
        ...

    def release(self) -> None: ...


class NoLock:
    """No lock (a read-only journal, in-memory SQLite, another backend): no fencing."""

    account = ""
    token: int | None = None

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None


class FileLock:
    def __init__(self, path: Path, account: str) -> None:
        self.path, self.account = path, account
        self.token: int | None = None
        self._lost = ""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unwritable(path.parent, exc) from None
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

    def check(self) -> None:
        """The lock file at ``path`` must still be the one this process locked (removed or
        replaced, another process could lock a new file and trade too)."""
        if not self._lost:
            if self._fd is None:
                self._lost = "it was released"
            else:
                mine = os.fstat(self._fd)
                try:
                    there = os.stat(self.path)
                except OSError:
                    self._lost = f"the lock file {self.path} was removed"
                else:
                    if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                        self._lost = f"the lock file {self.path} was replaced"
        if self._lost:
            raise lock_lost(self.account, self._lost)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class AdvisoryLock:
    def __init__(self, engine: Engine, account: str) -> None:
        self.account = account
        self.key = advisory_key(account)
        self.token: int | None = None
        self._lost = ""
        self._conn: Connection | None = engine.connect()
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        if not got.scalar():
            self._conn.close()
            self._conn = None
            raise AlreadyRunning(
                f"another rebalancer process trades account {account!r} on this database "
                f"(PostgreSQL advisory lock {self.key} is held): one instance per account"
            )
        self.backend_pid = int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self._conn.commit()

    def check(self) -> None:
        """Ask the server, on the lock's own session, whether that session still holds the
        advisory lock. A dropped session is never re-opened (SQLAlchemy would hand out a
        fresh connection that holds nothing): the lock is lost for good."""
        if not self._lost:
            self._lost = self._ask()
        if self._lost:
            raise lock_lost(self.account, self._lost)

    def _ask(self) -> str:
        """"" when the lock is held, else why not."""
        conn = self._conn
        if conn is None:
            return "it was released"
        if conn.invalidated:
            return "its database session was dropped"
        hi, lo = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        try:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND pid = :pid AND objsubid = 1 "
                    "AND classid::bigint = :hi AND objid::bigint = :lo"
                ),
                {"pid": self.backend_pid, "hi": hi, "lo": lo},
            ).scalar_one()
            conn.commit()
        except Exception as exc:  # the session is gone (terminated, server restarted)
            self._drop()
            return f"its database session was dropped: {type(exc).__name__}"
        return "" if held else "the database no longer shows it held by this session"

    def _drop(self) -> None:
        """Forget the dead session without returning it to the pool."""
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # already broken: nothing left to clean
                pass
            self._conn = None

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
            self._conn.close()
        except Exception:  # the session is gone: so is its lock
            self._drop()
        self._conn = None


def advisory_key(account: str) -> int:
    """A stable signed 64-bit key for ``account``."""
    digest = hashlib.sha256(f"rebalancer:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_account(engine: Engine, account: str) -> FileLock | AdvisoryLock | NoLock:
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return AdvisoryLock(engine, account)
    database = engine.url.database
    if backend == "sqlite" and database and database != ":memory:":
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", account)
        return FileLock(Path(f"{database}.{safe}.lock"), account)
    return NoLock()


def take_token(engine: Engine, account: str) -> int:
    """Raise the account's fencing generation by one (a row of its own the first time) and
    return it: the token of the lock just acquired."""
    values = {"holder": f"{socket.gethostname()}:{os.getpid()}", "acquired_at": datetime.now(UTC)}
    mine = AccountLockRow.account == account
    with engine.begin() as conn:
        bumped = conn.execute(
            update(AccountLockRow)
            .where(mine)
            .values(generation=AccountLockRow.generation + 1, **values)
        )
        if bumped.rowcount == 0:
            conn.execute(insert(AccountLockRow).values(account=account, generation=1, **values))
        return int(conn.execute(select(AccountLockRow.generation).where(mine)).scalar_one())


def unwritable(folder: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot write to the state folder {folder} ({exc.strerror or exc}): make it "
        "writable by the user running rebalancer, or set state_dir in the config to a "
        "folder that is"
    )
