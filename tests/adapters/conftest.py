"""The journal's database URL for the adapter tests: SQLite in tmp, and the PostgreSQL of
``REBALANCER_TEST_PG_URL`` (``scripts/dev test`` starts one; skipped with the reason without)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PG_URL = os.environ.get("REBALANCER_TEST_PG_URL", "")
PG_SKIP = (
    "REBALANCER_TEST_PG_URL is not set, so the journal and its lock are not tested on "
    "PostgreSQL here: run `scripts/dev test` (it starts one with scripts/postgres.sh) or set "
    "the URL"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.sqlite"
    if not PG_URL:
        pytest.skip(PG_SKIP)
    return PG_URL
