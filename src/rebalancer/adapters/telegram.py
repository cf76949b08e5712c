"""Telegram transport: long-polls the Bot API (python-telegram-bot) and sends the replies.

What a message means is not decided here: each text message is handed to ``answer(chat_id,
text)`` (in a worker thread, since answers may read the exchange) and its reply, if any, is
sent back to that chat. ``base_url`` points the library at another Bot API server (tests use
one on loopback). A network failure is logged and retried after ``retry_after`` seconds; a
token the API refuses stops the loop with :class:`~rebalancer.core.errors.AuthError`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from rebalancer.core.errors import AuthError

log = logging.getLogger("rebalancer.telegram")

STOP_CHECK = 0.2  # seconds between looks at the stop flag during a long poll
T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.telegram.org/bot"  # python-telegram-bot's own default
Answer = Callable[[int, str], "str | None"]


@dataclass
class TelegramPoller:
    """``poll_timeout``: seconds one getUpdates call waits for a message (also how long a
    stop may take to be noticed)."""

    token: str
    answer: Answer
    base_url: str | None = None
    poll_timeout: int = 25
    retry_after: float = 5.0

    def run(self, stop: threading.Event) -> None:
        """Answer messages until ``stop`` is set."""
        # httpx logs every request's URL at INFO, and a Bot API URL carries the token
        logging.getLogger("httpx").setLevel(logging.WARNING)
        asyncio.run(self._run(stop))

    def start_in_thread(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self._run_logged, args=(stop,), name="rebalancer-telegram", daemon=True
        )
        thread.start()
        return thread

    def _run_logged(self, stop: threading.Event) -> None:
        try:
            self.run(stop)
        except Exception:
            log.exception("the Telegram bot stopped")

    def _bot(self) -> Bot:
        request = HTTPXRequest(read_timeout=self.poll_timeout + 10, connect_timeout=10)
        base_url = self.base_url or DEFAULT_BASE_URL
        return Bot(self.token, base_url, request=request, get_updates_request=request)

    async def _run(self, stop: threading.Event) -> None:
        try:
            async with self._bot() as bot:
                me = await bot.get_me()
                log.info("Telegram bot @%s answering", me.username)
                await self._poll(bot, stop)
        except InvalidToken:
            raise AuthError(
                "Telegram refused the bot token: check TELEGRAM_BOT_TOKEN (from @BotFather)"
            ) from None

    async def _poll(self, bot: Bot, stop: threading.Event) -> None:
        offset: int | None = None
        while not stop.is_set():
            try:
                updates = await _unless_stopped(
                    bot.get_updates(
                        offset=offset, timeout=self.poll_timeout, allowed_updates=["message"]
                    ),
                    stop,
                )
            except InvalidToken:
                raise
            except (NetworkError, TelegramError) as exc:
                log.warning("Telegram: %s; retrying in %.0f s", exc, self.retry_after)
                await asyncio.to_thread(stop.wait, self.retry_after)
                continue
            for update in updates or ():
                offset = update.update_id + 1
                await self._handle(bot, update.effective_message)

    async def _handle(self, bot: Bot, message: object) -> None:
        text = getattr(message, "text", None)
        chat_id = getattr(message, "chat_id", None)
        if not text or chat_id is None:
            return
        reply = await asyncio.to_thread(self.answer, int(chat_id), text)
        if reply:
            try:
                await bot.send_message(chat_id, reply)
            except TelegramError as exc:
                log.warning("Telegram: the reply to chat %s was not sent: %s", chat_id, exc)


async def _unless_stopped(call: Coroutine[Any, Any, T], stop: threading.Event) -> T | None:
    """``await call``, cancelled (None) as soon as ``stop`` is set: a long poll must not
    hold a stop for its whole timeout. Unconfirmed updates are simply fetched again."""
    task = asyncio.ensure_future(call)
    while not task.done():
        if stop.is_set():
            task.cancel()
            return None
        await asyncio.wait({task}, timeout=STOP_CHECK)
    return task.result()
