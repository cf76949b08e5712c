"""The apprise notifier through apprise's real code path, against HTTP servers on loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.notify_apprise import (
    ENV_VAR,
    AppriseNotifier,
    FanOut,
    notify_urls,
    split_urls,
)
from rebalancer.bootstrap import build_notifier
from rebalancer.config import default_config
from rebalancer.config.secrets import DotenvExposed
from rebalancer.core.errors import ConfigError
from rebalancer.ports import Event


def _server(status: int) -> tuple[ThreadingHTTPServer, list[tuple[str, dict[str, Any]]]]:
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, json.loads(body)))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.fixture
def servers() -> Iterator[tuple[str, list[Any], str, list[Any]]]:
    """A working endpoint and one answering 500: (url_ok, got_ok, url_bad, got_bad)."""
    ok, got_ok = _server(200)
    bad, got_bad = _server(500)
    try:
        yield (
            f"json://127.0.0.1:{ok.server_port}/hook/TOKEN123",
            got_ok,
            f"json://127.0.0.1:{bad.server_port}/hook",
            got_bad,
        )
    finally:
        for s in (ok, bad):
            s.shutdown()
            s.server_close()


def test_event_body_arrives_at_the_endpoint(servers: Any) -> None:
    url, got, _, _ = servers
    AppriseNotifier([url]).send(
        Event("rebalance", "rebalanced: 2 orders", "sell 0.01 BTC/USDT @ 90000\nbuy 1 ETH/USDT")
    )
    assert len(got) == 1
    path, body = got[0]
    assert path == "/hook/TOKEN123"
    assert body["title"] == "rebalanced: 2 orders"
    assert body["message"] == "sell 0.01 BTC/USDT @ 90000\nbuy 1 ETH/USDT"
    assert body["type"] == "success"


def test_kinds_map_to_apprise_types(servers: Any) -> None:
    url, got, _, _ = servers
    n = AppriseNotifier([url])
    for kind in ("halt", "skip", "start"):
        n.send(Event(kind, kind, "x"))
    assert [b["type"] for _, b in got] == ["failure", "warning", "info"]


def test_a_failing_target_is_logged_and_the_others_still_get_it(
    servers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url_ok, got_ok, url_bad, got_bad = servers
    dead = "json://127.0.0.1:1/nobody-listens"
    n = AppriseNotifier([url_bad, dead, url_ok])
    with caplog.at_level(logging.WARNING, logger="rebalancer.notify"):
        n.send(Event("error", "check failed", "RetryLater: 503"))
    assert len(got_bad) == 1 and len(got_ok) == 1  # the bad one was tried, the last reached
    assert n.failures == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "rebalancer.notify"]
    assert warnings == [
        "notification 'check failed' to json #1 failed; going on",
        "notification 'check failed' to json #2 failed; going on",
    ]
    assert "TOKEN123" not in caplog.text and "nobody-listens" not in caplog.text


def test_a_bad_url_is_a_config_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as err:
        AppriseNotifier(["json://127.0.0.1:9/ok", "nosuchscheme://SECRET-TOKEN-1"])
    assert "nosuchscheme #2" in str(err.value) and ENV_VAR in str(err.value)
    assert "SECRET-TOKEN-1" not in str(err.value)


def test_repr_never_shows_urls() -> None:
    n = AppriseNotifier(["tgram://123456:SECRETBOTTOKEN/987", "json://127.0.0.1:9/x"])
    assert repr(n) == "AppriseNotifier(tgram #1, json #2)"
    assert "SECRETBOTTOKEN" not in repr(n)


def test_fan_out_survives_a_raising_notifier(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def send(self, event: Event) -> None:
            raise RuntimeError("boom")

    memory = MemoryNotifier()
    with caplog.at_level(logging.WARNING, logger="rebalancer.notify"):
        FanOut([Broken(), memory]).send(Event("halt", "halted", "why"))
    assert [e.title for e in memory.events] == ["halted"]
    assert "notifier Broken failed on 'halted': RuntimeError" in caplog.text


def test_urls_from_the_environment_or_dotenv(tmp_path: Path) -> None:
    assert split_urls(" a://x, b://y\n c://z ,") == ["a://x", "b://y", "c://z"]
    dotenv = tmp_path / ".env"
    dotenv.write_text(f'{ENV_VAR}="ntfy://topic json://h/p"\n')
    dotenv.chmod(0o600)
    assert notify_urls({}, dotenv) == ["ntfy://topic", "json://h/p"]
    assert notify_urls({ENV_VAR: "discord://a/b"}, dotenv) == ["discord://a/b"]  # env wins
    assert notify_urls({}, tmp_path / "missing") == []
    dotenv.chmod(0o644)  # the URLs hold tokens: checked like the keys' file
    with pytest.raises(DotenvExposed, match="chmod 600"):
        notify_urls({}, dotenv)


def test_build_notifier_adds_apprise_only_when_urls_are_set(
    servers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, got, _, _ = servers
    settings = default_config()
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert type(build_notifier(settings)).__name__ == "LogNotifier"
    monkeypatch.setenv(ENV_VAR, url)
    notifier = build_notifier(settings)
    notifier.send(Event("summary", "daily summary", "all good"))
    assert [b["message"] for _, b in got] == ["all good"]
