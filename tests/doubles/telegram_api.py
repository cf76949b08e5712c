"""A Telegram Bot API server on loopback: enough of getMe, getUpdates and sendMessage.

Messages are queued with :meth:`BotApi.say` (as if a user had sent them from ``chat_id``);
``getUpdates`` hands them out after its ``offset`` and holds the request up to its
``timeout`` while the queue is empty, as the real long poll does; ``sendMessage`` is
recorded in :attr:`BotApi.sent`. Parameters arrive form-encoded (python-telegram-bot's way)
or as JSON; both are read. A request with another token answers 401, as Telegram does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "123456789:AAF-test-token-of-enough-length-0123456789"
BOT = {"id": 123456789, "is_bot": True, "first_name": "rebalancer", "username": "rb_test_bot"}


@dataclass
class BotApi:
    """The state the handler serves: queued updates, sent messages, a condition to wait on."""

    token: str = TOKEN
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    next_update: int = 1
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def say(self, chat_id: int, text: str) -> None:
        """Queue a text message from ``chat_id`` (a private chat)."""
        with self.cond:
            n = self.next_update
            self.next_update += 1
            message = {
                "message_id": n,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "op"},
                "text": text,
            }
            self.updates.append({"update_id": n, "message": message})
            self.cond.notify_all()

    def wait_sent(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Block until ``count`` messages were sent (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.sent) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.sent)} of {count} replies after {timeout} s"
                self.cond.wait(left)
            return list(self.sent)

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.methods.append(method)
        if method == "getMe":
            return 200, {"ok": True, "result": BOT}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._updates(params)}
        if method == "sendMessage":
            return 200, {"ok": True, "result": self._send(params)}
        return 200, {"ok": True, "result": True}

    def _updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), 5.0)
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                ready = [u for u in self.updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return ready
                self.cond.wait(left)

    def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        with self.cond:
            self.sent.append({"chat_id": chat_id, "text": str(params["text"])})
            self.cond.notify_all()
            n = len(self.sent)
        return {
            "message_id": 10_000 + n,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT,
            "text": str(params["text"]),
        }


def _params(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        loaded: dict[str, Any] = json.loads(body)
        return loaded
    out: dict[str, Any] = {}
    for key, values in parse_qs(body.decode()).items():
        try:
            out[key] = json.loads(values[0])
        except ValueError:
            out[key] = values[0]
    return out


class _Handler(BaseHTTPRequestHandler):
    api: BotApi

    def do_POST(self) -> None:
        _, bot, method = self.path.split("/", 2)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if bot != f"bot{self.api.token}":
            status, payload = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        else:
            params = _params(body, self.headers.get("Content-Type", ""))
            status, payload = self.api.call(method, params)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def bot_api(token: str = TOKEN) -> Iterator[BotApi]:
    """A Bot API server on a free loopback port, stopped on exit."""
    api = BotApi(token=token)
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    api.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
