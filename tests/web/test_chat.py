"""Chat commands (what /status, /halt, /rebalance ... do), on a real SQLite journal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.core.errors import RebalancerError
from rebalancer.web.chat import HELP, ChatActions, ChatCommands

OPERATOR, STRANGER = 1001, 666
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


class Actions:
    """Counts what ran; ``fail`` makes the next action raise."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.fail: Exception | None = None

    def _do(self, name: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.ran.append(name)
        return f"{name} done\nsecond line"

    def wired(self) -> ChatActions:
        return ChatActions(
            lambda: self._do("status"),
            lambda: self._do("plan"),
            lambda: self._do("report"),
            lambda: self._do("rebalance"),
        )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqlJournal]:
    jr = open_journal(f"sqlite:///{tmp_path / 'journal.sqlite'}", "paper:binance")
    yield jr
    jr.close()


def _chat(journal: SqlJournal, actions: Actions, clock: Clock) -> ChatCommands:
    codes = iter(["c0de01", "c0de02", "c0de03"])
    return ChatCommands(
        actions.wired(), journal, frozenset({OPERATOR}), clock, timedelta(minutes=2),
        new_code=lambda: next(codes),
    )  # fmt: skip


def _commands(journal: SqlJournal) -> list[dict[str, object]]:
    return journal.history(None, ("commands",))["commands"]


def test_only_allowed_chats_are_obeyed_and_strangers_are_journaled(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    refused = chat.answer(STRANGER, "/halt because I can")
    assert refused is not None and f"id {STRANGER}" in refused
    assert "allowed_chats" in refused
    assert journal.halt_status().active is None  # nothing happened
    assert chat.answer(STRANGER, "/status") is not None
    assert actions.ran == []
    rows = _commands(journal)
    assert [(r["sender"], r["command"]) for r in rows] == [
        (str(STRANGER), "/halt because I can"),
        (str(STRANGER), "/status"),
    ]
    assert all(str(r["outcome"]).startswith("refused: chat not allowed") for r in rows)


def test_read_views_answer_and_every_command_is_journaled(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    assert chat.answer(OPERATOR, "/status") == "status done\nsecond line"
    assert chat.answer(OPERATOR, "/plan@rb_test_bot") == "plan done\nsecond line"
    assert chat.answer(OPERATOR, "/report") == "report done\nsecond line"
    assert chat.answer(OPERATOR, "/what") == HELP
    assert chat.answer(OPERATOR, "hello there") is None  # not a command: no reply, no row
    assert actions.ran == ["status", "plan", "report"]
    rows = _commands(journal)
    assert [r["command"] for r in rows] == ["/status", "/plan@rb_test_bot", "/report", "/what"]
    assert rows[0]["outcome"] == "status done"  # the first line of the answer
    assert {r["channel"] for r in rows} == {"telegram"}


def test_halt_and_resume_go_through_the_journal(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    assert chat.answer(OPERATOR, "/resume") == "not halted: nothing to resume"
    reply = chat.answer(OPERATOR, "/halt exchange looks odd")
    assert reply is not None and "No order is sent until /resume" in reply
    active = journal.halt_status().active
    assert active is not None and "exchange looks odd" in active.reason
    assert f"chat {OPERATOR}" in active.reason
    assert chat.answer(OPERATOR, "/halt again") == "already halted: no order is sent until /resume"
    clock.at += timedelta(minutes=5)
    reply = chat.answer(OPERATOR, "/resume checked, fine")
    assert reply is not None and reply.startswith("resumed; the halt was:")
    status = journal.halt_status()
    assert status.active is None and status.last_resume == clock.at
    halts = journal.history(None, ("halts",))["halts"]
    assert [(h["kind"], h["reason"]) for h in halts][-1] == ("resume", "checked, fine")


def test_rebalance_needs_the_fresh_code_from_the_same_chat(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    assert chat.answer(OPERATOR, "/rebalance c0de01") is not None  # no code asked for yet
    assert actions.ran == []
    prompt = chat.answer(OPERATOR, "/rebalance")
    assert prompt is not None and "/rebalance c0de01" in prompt
    assert "wrong confirmation code" in str(chat.answer(OPERATOR, "/rebalance nope00"))
    assert actions.ran == []  # a wrong code spends the pending one
    assert "no confirmation pending" in str(chat.answer(OPERATOR, "/rebalance c0de01"))
    chat.answer(OPERATOR, "/rebalance")  # code c0de02
    assert chat.answer(OPERATOR, "/rebalance c0de02") == "rebalance done\nsecond line"
    assert actions.ran == ["rebalance"]
    assert "no confirmation pending" in str(chat.answer(OPERATOR, "/rebalance c0de02"))
    assert actions.ran == ["rebalance"]  # a code works once


def test_a_confirmation_code_expires(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    chat.answer(OPERATOR, "/rebalance")  # c0de01, valid for 2 minutes
    clock.at += timedelta(minutes=2, seconds=1)
    assert "expired" in str(chat.answer(OPERATOR, "/rebalance c0de01"))
    assert actions.ran == []


def test_a_failing_action_is_answered_and_journaled(journal: SqlJournal) -> None:
    actions, clock = Actions(), Clock()
    chat = _chat(journal, actions, clock)
    actions.fail = RebalancerError("binance cannot be reached")
    assert chat.answer(OPERATOR, "/status") == "/status failed: binance cannot be reached"
    actions.fail = KeyError("x")
    assert chat.answer(OPERATOR, "/plan") == "/plan failed: KeyError"
    outcomes = [r["outcome"] for r in _commands(journal)]
    assert outcomes == ["/status failed: binance cannot be reached", "/plan failed: KeyError"]
