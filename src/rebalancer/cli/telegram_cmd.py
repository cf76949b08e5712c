"""``rebalancer telegram``: answer the operator's Telegram commands (parse -> load -> wire).

Standalone, ``/rebalance`` runs one forced cycle with the account's lock (refused while a
daemon trades the account); ``rebalancer run --telegram`` answers beside the daemon instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from rebalancer.cli.options import ConfigOpt, settings_from

if TYPE_CHECKING:
    from rebalancer.config import Settings

LiveOpt = Annotated[
    bool,
    typer.Option(
        "--live", help='Let /rebalance trade (and /status read) when mode = "live".'
    ),
]


def telegram_command(config: ConfigOpt = None, live: LiveOpt = False) -> None:
    """Answer Telegram commands from the chats in `[telegram] allowed_chats`.

    /status, /plan, /report, /halt <reason>, /resume <note>, /rebalance (asks for a one-time
    confirmation code). Every command, answered or refused, is journaled (`rebalancer
    history --kind commands`). The bot token comes from TELEGRAM_BOT_TOKEN (environment or
    .env). Ctrl-C stops it.

    Example: `rebalancer telegram -c rebalancer.toml`
    """
    from rebalancer.bootstrap import journal
    from rebalancer.web.server import StandaloneControls
    from rebalancer.web.telegram import telegram_bot

    settings = settings_from(config)
    reader = journal(settings)  # no lock: the chat reads, halts and resumes
    controls = StandaloneControls(settings, reader, confirm_live=live)
    bot = telegram_bot(settings, reader, controls.rebalance, live=live)
    _announce(settings)
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            bot.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        reader.close()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM set ``stop``: the poller notices it within
    ``adapters.telegram.STOP_CHECK`` and returns cleanly, whatever it was awaiting (a
    ``KeyboardInterrupt`` raised into the event loop could land anywhere)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _announce(settings: Settings) -> None:
    chats = ", ".join(str(c) for c in settings.telegram.allowed_chats)
    if chats:
        typer.echo(f"telegram: answering chats {chats} (Ctrl-C stops)")
    else:
        typer.echo(
            "telegram: no chat is allowed yet: message the bot, it answers with your chat "
            "id; list it in [telegram] allowed_chats and restart"
        )


def telegram_secrets(settings: Settings) -> list[str]:
    """The bot token when one is set (it is part of every Bot API URL), for the logs to mask."""
    from rebalancer.core.errors import ConfigError
    from rebalancer.web.telegram import telegram_token

    try:
        return [telegram_token(dotenv=settings.dotenv_path)]
    except ConfigError:
        return []


@contextmanager
def telegram_beside_daemon(settings: Settings, enabled: bool, live: bool) -> Iterator[None]:
    """``run --telegram``: the bot in a thread with its own journal connection (no lock);
    ``/rebalance`` is refused there (the daemon owns the account)."""
    if not enabled:
        yield
        return
    from rebalancer.bootstrap import journal
    from rebalancer.web.server import DaemonControls
    from rebalancer.web.telegram import telegram_bot

    reader = journal(settings)
    stop = threading.Event()
    try:
        bot = telegram_bot(settings, reader, DaemonControls(reader).rebalance, live=live)
        _announce(settings)
        thread = bot.start_in_thread(stop)
        try:
            yield
        finally:
            stop.set()
            thread.join(10)
    finally:
        reader.close()
