"""Wiring the Telegram commands from the config: the token, the allow-list, the actions.

``/status`` and ``/plan`` read the exchange as ``rebalancer status`` / ``plan`` do (nothing
is journaled or sent); ``/report`` reads the journal; ``/rebalance`` runs one forced cycle
through the given ``rebalance`` (standalone: with the account's lock, so it is refused
while a daemon trades; beside the daemon: refused, the daemon owns the account).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rebalancer.bootstrap import build, telegram_poller
from rebalancer.config import Settings
from rebalancer.config.schema import parse_duration
from rebalancer.config.secrets import read_dotenv
from rebalancer.core.errors import ConfigError
from rebalancer.daemon import HeartbeatFile, heartbeat_path
from rebalancer.service import evaluate
from rebalancer.web import chat_text
from rebalancer.web.chat import ChatActions, ChatCommands, CommandJournal
from rebalancer.web.view import load_rows, summary

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
REPORT_SPAN = timedelta(days=30)


def telegram_token(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> str:
    """``TELEGRAM_BOT_TOKEN`` from ``env`` (default the environment) or the ``dotenv`` file
    (pass ``settings.dotenv_path``: the ``.env`` next to the config, yours and mode 600);
    ConfigError when missing or not shaped like a bot token."""
    env = os.environ if env is None else env
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        token = (read_dotenv(dotenv).get(TOKEN_ENV) or "").strip()
    if not token:
        where = "the environment" + ("" if dotenv is None else f" or {dotenv} (chmod 600)")
        raise ConfigError(
            f"{TOKEN_ENV} is not set: create a bot with @BotFather and put its token in {where}"
        )
    bot_id, _, rest = token.partition(":")
    if not bot_id.isdigit() or len(rest) < 30:
        raise ConfigError(
            f"{TOKEN_ENV} does not look like a bot token (digits, a colon, then at least 30 "
            "characters): copy it again from @BotFather"
        )
    return token


def chat_actions(
    settings: Settings, reader: Any, rebalance: Callable[[], str], *, live: bool
) -> ChatActions:
    """The read views (fresh runtime per question, nothing journaled) and ``rebalance``."""

    def runtime() -> Any:
        return build(settings, confirm_live=live)

    def status() -> str:
        rt = runtime()
        try:
            now = rt.clock.now()
            _, drift, decision = evaluate(rt.exchange, rt.journal, rt.strategy, now, rt.history)
            beat = HeartbeatFile(heartbeat_path(settings.state_dir, rt.mode)).read()
            halt = rt.journal.halt_status().active
        finally:
            rt.close()
        quote = rt.strategy.quote
        return chat_text.status_text(rt.mode, drift, decision, quote, halt, beat, now)

    def plan() -> str:
        rt = runtime()
        try:
            report = rt.cycle(execute=False)
        finally:
            rt.close()
        return chat_text.plan_text(rt.mode, report.decision, report.plan, rt.strategy.quote)

    def report() -> str:
        since = datetime.now(UTC) - REPORT_SPAN
        rows = load_rows(reader, since)
        return chat_text.report_text(summary(rows, settings.quote), f"{REPORT_SPAN.days} days")

    return ChatActions(status, plan, report, rebalance)


def chat_commands(
    settings: Settings, reader: CommandJournal, rebalance: Callable[[], str], *, live: bool
) -> ChatCommands:
    """The allow-listed command handler. With an empty allow-list every chat is refused,
    and told its id (how an operator learns what to list)."""
    allowed = frozenset(settings.telegram.allowed_chats)
    return ChatCommands(
        chat_actions(settings, reader, rebalance, live=live),
        reader,
        allowed,
        lambda: datetime.now(UTC),
        parse_duration(settings.telegram.confirm_within),
    )


def telegram_bot(
    settings: Settings,
    reader: CommandJournal,
    rebalance: Callable[[], str],
    *,
    live: bool,
) -> Any:
    """The poller answering this config's allowed chats (``.run(stop)`` or
    ``.start_in_thread(stop)``)."""
    commands = chat_commands(settings, reader, rebalance, live=live)
    token = telegram_token(dotenv=settings.dotenv_path)
    return telegram_poller(token, commands.answer, base_url=settings.telegram.api_url)
