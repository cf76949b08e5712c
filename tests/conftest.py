"""Shared test set-up: no test writes outside its tmp dir or reaches the network."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests: derandomised by default (CI and a newcomer's `scripts/dev test` see the same
# examples every run, and no stored failure from an earlier run changes the outcome);
# `HYPOTHESIS_PROFILE=thorough` explores at random with five times the examples, locally.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", parent=settings.get_profile("ci"), derandomize=False, max_examples=500
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the user's data/config dirs into tmp so paper state never leaks between tests."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("REBALANCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    assert path.is_dir(), f"../shared/data not found at {path}: clone with ../shared beside it"
    return path


class _Hook(BaseHTTPRequestHandler):
    """Answers 200 to every POST and keeps its JSON body."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on loopback; yields (apprise json:// URL, received JSON bodies)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"json://127.0.0.1:{server.server_port}/rebalancer"
        yield url, server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
