"""Write a new Alembic revision from the models: ``python -m rebalancer.adapters.journal.revise
"message"`` (compares the models with a scratch SQLite database migrated to the head)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from rebalancer.adapters.journal.schema import alembic_config, make_engine, upgrade


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.sqlite'}")
        upgrade(engine)
        cfg = alembic_config()
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.revision(cfg, message=message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "change")
