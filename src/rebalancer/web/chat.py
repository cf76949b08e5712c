"""Commands from a chat (Telegram): what each one does and answers, independent of transport.

``ChatCommands.answer(chat_id, text)`` takes one message and returns the reply text. Only
chats on the allow-list are obeyed; every message that looks like a command, obeyed or
refused, is journaled (:class:`~rebalancer.ports.CommandRecord`) before the answer leaves.

Commands: ``/status`` (halt, daemon, weights vs targets, whether the rule fires),
``/plan`` (the orders a rebalance would send now; nothing is sent), ``/report`` (return vs
buy-and-hold, fees, drawdown from the journal), ``/halt <reason>`` (the circuit breaker's
halt: no order until resumed), ``/resume <note>``, ``/rebalance`` (answers with a one-time
code; ``/rebalance <code>`` within ``confirm_within`` runs one forced cycle), ``/help``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from rebalancer.core.errors import RebalancerError
from rebalancer.ports import CommandRecord, HaltStatus

log = logging.getLogger("rebalancer.chat")

CHANNEL = "telegram"
MAX_REPLY = 4000  # Telegram's limit is 4096 characters per message

HELP = (
    "Commands:\n"
    "/status - halt, daemon, weights vs targets, whether the rule fires\n"
    "/plan - the orders a rebalance would send now (nothing is sent)\n"
    "/report - return vs buy-and-hold, fees, drawdown\n"
    "/halt <reason> - stop all trading until /resume\n"
    "/resume <note> - lift the halt\n"
    "/rebalance - one forced rebalance, after a confirmation code"
)


class CommandJournal(Protocol):
    """What the chat needs of the journal: halts, and a record of every command."""

    def halt_status(self) -> HaltStatus: ...

    def record_halt(self, reason: str, at: datetime) -> None: ...

    def record_resume(self, at: datetime, note: str = "") -> None: ...

    def record_command(self, record: CommandRecord) -> None: ...


@dataclass(frozen=True)
class ChatActions:
    """The read views and the one trading action, wired by the caller (each returns text)."""

    status: Callable[[], str]
    plan: Callable[[], str]
    report: Callable[[], str]
    rebalance: Callable[[], str]


@dataclass
class _Pending:
    code: str
    expires: datetime


@dataclass
class ChatCommands:
    """Answers chat messages; ``allowed``: the chat ids that may command this bot."""

    actions: ChatActions
    journal: CommandJournal
    allowed: frozenset[int]
    now: Callable[[], datetime]
    confirm_within: timedelta = timedelta(minutes=2)
    new_code: Callable[[], str] = field(default=lambda: secrets.token_hex(3))
    _pending: dict[int, _Pending] = field(default_factory=dict)

    def answer(self, chat_id: int, text: str) -> str | None:
        """The reply to ``text`` from ``chat_id`` (None: not a command, nothing to say)."""
        name, _, rest = text.strip().partition(" ")
        if not name.startswith("/"):
            return None
        name = name[1:].split("@", 1)[0].lower()  # "/status@my_bot" in group chats
        if chat_id not in self.allowed:
            reply = (
                f"This chat (id {chat_id}) may not command this bot: add it to "
                "[telegram] allowed_chats in the config."
            )
            self._journal(chat_id, text, f"refused: chat not allowed ({name})")
            return reply
        try:
            reply = self._dispatch(chat_id, name, rest.strip())
        except RebalancerError as exc:
            reply = f"/{name} failed: {exc}"
        except Exception as exc:  # the bot must answer and go on; the log keeps the trace
            log.exception("chat command /%s failed", name)
            reply = f"/{name} failed: {type(exc).__name__}"
        self._journal(chat_id, text, reply)
        return reply[:MAX_REPLY]

    def _dispatch(self, chat_id: int, name: str, arg: str) -> str:
        if name == "status":
            return self.actions.status()
        if name == "plan":
            return self.actions.plan()
        if name == "report":
            return self.actions.report()
        if name == "halt":
            return self._halt(chat_id, arg)
        if name == "resume":
            return self._resume(chat_id, arg)
        if name == "rebalance":
            return self._rebalance(chat_id, arg)
        return HELP

    def _halt(self, chat_id: int, reason: str) -> str:
        if self.journal.halt_status().active is not None:
            return "already halted: no order is sent until /resume"
        why = f"halted from Telegram (chat {chat_id})" + (f": {reason}" if reason else "")
        self.journal.record_halt(why, self.now())
        return f"{why}. No order is sent until /resume."

    def _resume(self, chat_id: int, note: str) -> str:
        active = self.journal.halt_status().active
        if active is None:
            return "not halted: nothing to resume"
        self.journal.record_resume(self.now(), note or f"resumed from Telegram (chat {chat_id})")
        return f"resumed; the halt was: {active.reason}"

    def _rebalance(self, chat_id: int, code: str) -> str:
        now = self.now()
        pending = self._pending.pop(chat_id, None)
        if not code:
            fresh = _Pending(self.new_code(), now + self.confirm_within)
            self._pending[chat_id] = fresh
            minutes = int(self.confirm_within.total_seconds() // 60) or 1
            return (
                f"This runs one forced rebalance. To confirm, send /rebalance {fresh.code} "
                f"within {minutes} min."
            )
        if pending is None or now > pending.expires:
            return "no confirmation pending (or it expired): send /rebalance first"
        if not secrets.compare_digest(code, pending.code):
            return "wrong confirmation code: send /rebalance again for a new one"
        return self.actions.rebalance()

    def _journal(self, chat_id: int, text: str, outcome: str) -> None:
        first = outcome.splitlines()[0] if outcome else ""
        record = CommandRecord(self.now(), CHANNEL, str(chat_id), text.strip(), first)
        self.journal.record_command(record)
