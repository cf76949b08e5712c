"""Wiring the dashboard from the config, and serving it with uvicorn (alone or in a thread).

The token comes from ``REBALANCER_WEB_TOKEN``: the environment, else the ``.env`` next to
the config (``settings.dotenv_path``, checked like the keys' file: yours, mode 600); without
one a random token is made for this run and printed once by the caller. A token that is set
but blank, or shorter than :data:`MIN_TOKEN_CHARS`, is refused with a ConfigError.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from rebalancer.bootstrap import account_name, build, journal, paper_price_source
from rebalancer.config import Settings
from rebalancer.config.secrets import read_dotenv
from rebalancer.core.errors import ConfigError, RebalancerError
from rebalancer.daemon import HeartbeatFile, heartbeat_path
from rebalancer.web.app import TOKEN_ENV, Controls, Dashboard, create_app, new_token
from rebalancer.web.view import JournalReader

#: the shortest token accepted (characters); a made one has 32 (24 random bytes, base64)
MIN_TOKEN_CHARS = 16


def web_token(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> tuple[str, bool]:
    """(token, made here): ``REBALANCER_WEB_TOKEN`` from ``env`` (default ``os.environ``),
    else from the ``dotenv`` file (pass ``settings.dotenv_path``; None: no file), else new.

    Raises :class:`~rebalancer.config.secrets.DotenvExposed` for a file another user owns
    or can read, :class:`ConfigError` for a token that is set but blank or too short.
    """
    env = os.environ if env is None else env
    where = "the environment"
    token = env.get(TOKEN_ENV)
    if token is None:
        token, where = read_dotenv(dotenv).get(TOKEN_ENV), str(dotenv)
    if token is None:
        return new_token(), True
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        n = len(token)
        what = "is empty" if not n else f"is {n} character{'' if n == 1 else 's'} long"
        raise ConfigError(
            f"{TOKEN_ENV} (from {where}) {what}; the dashboard needs at least "
            f"{MIN_TOKEN_CHARS}. Fix: set a long random one (e.g. the output of `python -c "
            f"'import secrets; print(secrets.token_urlsafe(24))'`), or remove it and a token "
            "is made and printed at each start"
        )
    return token, False


def dashboard_for(settings: Settings, reader: JournalReader) -> Dashboard:
    beats = HeartbeatFile(heartbeat_path(settings.state_dir, settings.mode))
    return Dashboard(
        reader,
        settings.strategy(),
        settings.mode,
        account_name(settings),
        beats.read,
        lambda: datetime.now(UTC),
        lambda: paper_price_source(settings),  # read per request: a restart may change it
    )


class StandaloneControls:
    """Control from ``rebalancer serve``: resume in the journal; rebalance as
    ``rebalancer rebalance --force`` would (it takes the account's lock, so it is refused
    while a daemon runs; live needs ``serve --live``)."""

    def __init__(self, settings: Settings, reader: JournalReader, confirm_live: bool) -> None:
        self.settings, self.reader, self.confirm_live = settings, reader, confirm_live
        self._one_at_a_time = threading.Lock()

    def resume(self, note: str) -> str:
        return resume_halt(self.reader, note)

    def rebalance(self) -> str:
        with self._one_at_a_time:
            rt = build(self.settings, confirm_live=self.confirm_live, lock=True)
            try:
                report = rt.cycle(force=True)
            finally:
                rt.close()
        done = f"{len(report.fills)} orders filled"
        return f"{done}; stopped: {report.stopped}" if report.stopped else done


class DaemonControls:
    """Control from ``rebalancer run --serve``: the daemon in this process owns the account,
    so a rebalance is not run beside it; resume is journaled (the next check sees it)."""

    def __init__(self, reader: JournalReader) -> None:
        self.reader = reader

    def resume(self, note: str) -> str:
        return resume_halt(self.reader, note)

    def rebalance(self) -> str:
        raise RebalancerError(
            "the daemon in this process trades this account: it rebalances at its next "
            "check when the rule fires (run `rebalancer rebalance --force` with it stopped)"
        )


def resume_halt(reader: JournalReader, note: str) -> str:
    active = reader.halt_status().active
    if active is None:
        return "not halted: nothing to resume"
    reader.record_resume(datetime.now(UTC), note)
    return f"resumed; the halt was: {active.reason}"


@dataclass
class Served:
    """A uvicorn server running in a daemon thread (``stop`` ends it)."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        servers = self.server.servers
        return int(servers[0].sockets[0].getsockname()[1]) if servers else 0

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app: FastAPI, host: str, port: int, timeout: float = 15.0) -> Served:
    """Start ``app`` on ``host:port`` (0: a free port) in a thread; return once it listens."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="rebalancer-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RebalancerError(f"the dashboard could not listen on {host}:{port}")
        time.sleep(0.05)
    return Served(server, thread)


def serve_forever(app: FastAPI, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def open_reader(settings: Settings) -> JournalReader:
    """The journal without the account's lock: the dashboard only reads (and resumes)."""
    return journal(settings)


__all__ = [
    "Controls",
    "DaemonControls",
    "Served",
    "StandaloneControls",
    "create_app",
    "dashboard_for",
    "open_reader",
    "serve_forever",
    "serve_in_thread",
    "web_token",
]
