"""Telegram both ways, against a Bot API server on loopback (never the network).

The real python-telegram-bot client long-polls the double; the commands run on a real paper
account (embedded demo prices) and a real SQLite journal.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from doubles.telegram_api import TOKEN, BotApi, bot_api
from rebalancer.adapters.telegram import TelegramPoller
from rebalancer.bootstrap import journal
from rebalancer.cli.telegram_cmd import telegram_beside_daemon
from rebalancer.config import load_config
from rebalancer.core.errors import AuthError
from rebalancer.web.telegram import TOKEN_ENV, telegram_bot, telegram_token

OPERATOR, STRANGER = 1001, 666
ROOT = Path(__file__).resolve().parents[2]
MAIN = "from rebalancer.cli.app import main; main()"


def _config(tmp_path: Path, api: BotApi) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
        "[paper]\ninitial_balances = { BTC = 0.05, USDT = 1000 }\n"
        f'[telegram]\nallowed_chats = [{OPERATOR}]\napi_url = "{api.base_url}"\n'
    )
    return path


@pytest.fixture
def api() -> Iterator[BotApi]:
    with bot_api() as served:
        yield served


def _serve(poller: TelegramPoller) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    return stop, poller.start_in_thread(stop)


def test_the_poller_answers_each_message_and_stops(
    api: BotApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen: list[tuple[int, str]] = []

    def answer(chat: int, text: str) -> str | None:
        seen.append((chat, text))
        return None if text == "quiet" else f"echo {text}"

    stop, thread = _serve(TelegramPoller(TOKEN, answer, base_url=api.base_url, poll_timeout=1))
    api.say(OPERATOR, "/status")
    api.say(OPERATOR, "quiet")
    api.say(STRANGER, "/plan")
    sent = api.wait_sent(2)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert seen == [(OPERATOR, "/status"), (OPERATOR, "quiet"), (STRANGER, "/plan")]
    assert sent == [
        {"chat_id": OPERATOR, "text": "echo /status"},
        {"chat_id": STRANGER, "text": "echo /plan"},
    ]
    assert api.methods[0] == "getMe"
    assert "getUpdates" in api.methods and TOKEN not in caplog.text  # the URL holds the token


def test_a_refused_token_is_an_auth_error(api: BotApi) -> None:
    poller = TelegramPoller("42:" + "x" * 35, lambda c, t: None, base_url=api.base_url)
    with pytest.raises(AuthError, match="TELEGRAM_BOT_TOKEN"):
        poller.run(threading.Event())


def test_the_token_is_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="TELEGRAM_BOT_TOKEN is not set"):
        telegram_token({}, tmp_path / ".env")
    with pytest.raises(Exception, match="does not look like a bot token"):
        telegram_token({TOKEN_ENV: "short"}, tmp_path / ".env")
    exposed = tmp_path / ".env"
    exposed.write_text(f"{TOKEN_ENV}={TOKEN}\n")
    exposed.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        telegram_token({}, exposed)
    exposed.chmod(0o600)
    assert telegram_token({}, exposed) == TOKEN


def test_commands_on_a_paper_account_end_to_end(
    api: BotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    settings = load_config(_config(tmp_path, api))
    reader = journal(settings)
    rebalanced: list[str] = []
    try:
        bot = telegram_bot(settings, reader, lambda: rebalanced.append("x") or "done", live=False)
        bot.poll_timeout = 1
        stop, thread = _serve(bot)
        for text in ("/status", "/plan", "/halt checking", "/report", "/rebalance"):
            api.say(OPERATOR, text)
        api.say(STRANGER, "/resume")
        sent = api.wait_sent(6)
        stop.set()
        thread.join(10)
        status, plan, halt, report, confirm, stranger = (m["text"] for m in sent)
        assert status.startswith("paper · trading: not halted")
        for asset in ("BTC", "ETH", "SOL", "USDT"):
            assert f"{asset}: " in status and "target" in status
        assert "the rule fires" in plan and "buy " in plan and "/USDT" in plan
        assert halt.startswith(f"halted from Telegram (chat {OPERATOR}): checking")
        assert report == "no check journaled in the last 30 days"
        assert "To confirm, send /rebalance " in confirm
        assert "may not command this bot" in stranger and sent[-1]["chat_id"] == STRANGER
        active = reader.halt_status().active
        assert active is not None and "checking" in active.reason  # the stranger resumed nothing
        rows = reader.history(None, ("commands",))["commands"]
        assert [r["command"] for r in rows] == [
            "/status", "/plan", "/halt checking", "/report", "/rebalance", "/resume"
        ]  # fmt: skip
        assert rebalanced == []  # not confirmed
    finally:
        reader.close()


def test_rebalancer_telegram_command_answers_and_stops_on_ctrl_c(
    api: BotApi, tmp_path: Path
) -> None:
    config = _config(tmp_path, api)
    env = {**os.environ, TOKEN_ENV: TOKEN, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "telegram", "-c", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        api.say(OPERATOR, "/halt from the CLI test")
        (reply,) = api.wait_sent(1, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert reply["text"].startswith("halted from Telegram"), out
    assert proc.returncode == 0, out  # Ctrl-C stops it cleanly
    assert f"telegram: answering chats {OPERATOR}" in out
    assert TOKEN not in out


def test_beside_the_daemon_the_bot_answers_but_refuses_rebalance(
    api: BotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    settings = load_config(_config(tmp_path, api))
    monkeypatch.setattr("rebalancer.web.chat.secrets.token_hex", lambda n: "abc123")
    with telegram_beside_daemon(settings, True, live=False):
        api.say(OPERATOR, "/rebalance")
        api.say(OPERATOR, "/rebalance abc123")
        sent = [m["text"] for m in api.wait_sent(2)]
    assert sent[0].startswith("This runs one forced rebalance")
    assert sent[1].startswith("/rebalance failed: the daemon in this process trades")


def test_run_has_a_telegram_switch() -> None:
    from typer.testing import CliRunner

    from rebalancer.cli.app import app

    result = CliRunner().invoke(app, ["run", "--help"])
    assert "--telegram" in result.output
