"""Shared test set-up: no test writes outside its tmp dir or reaches the network."""

from __future__ import annotations

import errno
import inspect
import ipaddress
import json
import os
import re
import socket
import sys
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
# REBALANCER_TEST_SHARED points elsewhere (tests/test_markers.py: a clone without ../shared)
SHARED = Path(os.environ.get("REBALANCER_TEST_SHARED") or ROOT.parent / "shared")
SHARED_DATA_REASON = (
    "needs the real candles of ../shared/data, not found at {path}: clone with ../shared "
    "beside the repository (`-m 'not shared_data'` deselects these tests)"
)


def _reads_shared_data(fn: Any, depth: int = 2) -> bool:
    """Whether ``fn``'s source names ``../shared`` (a ``"shared"`` path part) or one of its
    module's Path constants that lie under it, itself or through a helper function of its
    module that it calls (``depth`` levels)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    if '"shared"' in source or "SHARED" in source:
        return True
    module = vars(sys.modules.get(getattr(fn, "__module__", ""), None) or object())
    named = [n for n in module if re.search(rf"\b{re.escape(n)}\b", source)]
    if any(isinstance(module[n], Path) and "shared" in module[n].parts for n in named):
        return True
    helpers = [
        module[n]
        for n in named
        if inspect.isfunction(module[n])
        and module[n] is not fn
        and module[n].__module__ == getattr(fn, "__module__", None)
    ]
    return depth > 0 and any(_reads_shared_data(h, depth - 1) for h in helpers)


def _needs_shared_data(item: pytest.Item) -> bool:
    if item.get_closest_marker("shared_data") is not None:
        return True
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        if name == "shared_data":
            return True
        for fixturedef in (info.name2fixturedefs.get(name, ()) if info else ()):
            functions.append(fixturedef.func)
    return any(_reads_shared_data(fn) for fn in functions if fn is not None)


#: the slowest tests (10 s or more each on the 2-core development machine, from
#: `pytest --durations=60`), by node id without parameters, or a whole file; `-m "not slow"`
#: skips them. A test may also carry ``@pytest.mark.slow`` itself.
SLOW = (
    "tests/backtest/test_executors.py::test_dask_sweep_equals_the_local_one",
    "tests/backtest/test_grid.py::test_worker_processes_give_the_same_rows",
    "tests/backtest/test_engine.py::test_parity_with_the_planner",
    "tests/core/test_planner_properties.py",
    "tests/core/test_weights.py::test_band_edge_properties",
    "tests/core/test_execution.py::test_slices_sum_exactly_are_legal_and_under_the_cap",
    "tests/faults/test_crash.py::test_killed_then_restarted",
    "tests/adapters/test_journal.py::test_the_lock_holds_across_processes_and_dies_with_its_holder",
    "tests/test_daemon.py::test_sigterm_stops_the_real_process_cleanly_and_a_restart_resumes",
    "tests/test_done_when_daemon.py::test_paper_daemon_notifies_survives_sigkill_and_reports",
    "tests/cli/test_startup.py::test_the_bot_runs_without_any_extra",
)


def _is_slow(item: pytest.Item) -> bool:
    node = item.nodeid.split("[")[0]
    return any(node == s or node.startswith(s + "::") for s in SLOW)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that reads ``../shared/data`` with ``shared_data`` (explicitly, by the
    ``shared_data`` fixture, or by naming the path in its source or its fixtures'); skip them
    with the reason when the folder is absent, instead of failing. Mark the :data:`SLOW`
    ones ``slow``."""
    missing = not (SHARED / "data").is_dir()
    skip = pytest.mark.skip(reason=SHARED_DATA_REASON.format(path=SHARED / "data"))
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
        if _needs_shared_data(item):
            item.add_marker(pytest.mark.shared_data)
            if missing:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the user's data/config dirs into tmp so paper state never leaks between tests."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("REBALANCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _loopback(host: Any) -> bool:
    """Whether ``host`` (a name or an address) is this machine."""
    if host is None or host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host).endswith(".localhost")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """No test reaches the network. ``REBALANCER_OFFLINE`` is set (for this process and the
    ones it starts), so ``[paper] prices = "auto"`` takes the candles without a network
    attempt; a test of the online case unsets it and passes an exchange double. Resolving a
    name or connecting a socket anywhere but loopback is refused (as without a network) and
    fails the test at its end, naming the host: a probe that slipped through is caught even
    when the code under test handles the refusal. Yields the attempts (the guard's own test
    empties it)."""
    monkeypatch.setenv("REBALANCER_OFFLINE", "1")
    tried: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def remote(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or _loopback(address[0]):
            return False
        tried.append(f"connect {address[0]}:{address[1]}")
        return True

    def connect(sock: socket.socket, address: Any) -> None:
        if remote(sock, address):
            raise OSError(errno.ENETUNREACH, f"tests never reach the network ({address[0]})")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        return errno.ENETUNREACH if remote(sock, address) else real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if not _loopback(host.decode() if isinstance(host, bytes) else host):
            tried.append(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, f"tests never reach the network ({host})")
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield tried
    assert not tried, f"this test tried to reach the network: {tried}"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (tests using it are marked ``shared_data`` and skip without it)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(SHARED_DATA_REASON.format(path=path))
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
