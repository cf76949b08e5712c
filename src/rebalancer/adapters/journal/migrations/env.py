"""Alembic environment: runs on the connection the journal hands over (no alembic.ini).

To add a revision after changing ``models.py``::

    python -m rebalancer.adapters.journal.revise "what changed"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from rebalancer.adapters.journal.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the journal's migrations run through rebalancer.adapters.journal")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
