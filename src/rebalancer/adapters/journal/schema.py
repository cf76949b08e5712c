"""Opening a journal database: engine, Alembic migrations to head, and the schema check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from rebalancer.adapters.journal.lock import unwritable
from rebalancer.adapters.journal.models import Base
from rebalancer.core.errors import DataError

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("rebalancer.journal")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync and a 30 s busy timeout.

    The tables declare no foreign keys: an order's events and fills are tied to it by
    ``(account, client_order_id)``, and only :class:`SqlJournal`'s own writes keep them
    consistent (nothing in the database enforces it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise unwritable(folder, exc) from None
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Apply every migration up to the head (a no-op on an up-to-date database)."""
    cfg = alembic_config()
    try:
        with engine.begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
            after = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:
        raise DataError(
            f"cannot open the journal at {engine.url.render_as_string(hide_password=True)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if after != before:
        log.info("journal schema upgraded from %s to %s", before or "empty", after)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(engine: Engine) -> list[Any]:
    """What differs between the migrated database and the models ([] when in step)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
