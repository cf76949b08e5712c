"""The ``paper_run`` fixture: one paper daemon run over real history, shared (read-only)."""

from __future__ import annotations

import pytest

from web.paper_run import PaperRun, run_paper_daemon


@pytest.fixture(scope="session")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> PaperRun:
    """One 120-check paper run shared by the read-only tests (do not write to it)."""
    return run_paper_daemon(tmp_path_factory.mktemp("paper-run"))
