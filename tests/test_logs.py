"""Logging: console + rotating file, and no secret ever reaches either."""

from __future__ import annotations

import io
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from rebalancer.logs import LOG_FILE, MASK, redact, reset_logging, setup_logging

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


def _read(log_dir: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (log_dir / LOG_FILE).read_text()


def test_records_go_to_the_console_and_a_rotating_file(tmp_path: Path) -> None:
    console = io.StringIO()
    setup_logging("INFO", tmp_path / "logs", console=console)
    logging.getLogger("rebalancer.daemon").info("tick %d at %s", 3, "2026-01-01 04:00")
    logging.getLogger("rebalancer.daemon").debug("not at INFO")
    text = _read(tmp_path / "logs")
    assert "INFO    rebalancer.daemon: tick 3 at 2026-01-01 04:00" in text
    assert "not at INFO" not in text
    assert "tick 3" in console.getvalue()
    files = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    assert len(files) == 1 and files[0].maxBytes > 0 and files[0].backupCount >= 1


def test_setting_up_again_replaces_the_handlers(tmp_path: Path) -> None:
    setup_logging("INFO", tmp_path / "a", console=False)
    setup_logging("INFO", tmp_path / "b", console=False)
    logging.getLogger("rebalancer").warning("once")
    assert _read(tmp_path / "b").count("once") == 1
    assert "once" not in _read(tmp_path / "a")


def test_secrets_never_reach_the_file_ccxt_style_debug_lines(tmp_path: Path) -> None:
    console = io.StringIO()
    setup_logging("DEBUG", tmp_path / "logs", [KEY, SECRET], console=console)
    ccxt = logging.getLogger("ccxt.base.exchange")
    # the shapes CCXT's verbose/debug logging uses for signed requests
    ccxt.debug(
        "%s %s, Request: %s %s",
        "binance",
        "POST",
        {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"},
        "symbol=BTCUSDT&side=BUY&timestamp=1&signature=9f86d081884c7d659a2feaa0c55ad015",
    )
    ccxt.debug("GET https://api.binance.com/api/v3/account?timestamp=1&signature=abc123def456")
    ccxt.debug("kraken headers {'API-Key': 'krakenkey', 'API-Sign': 'c2lnbmF0dXJl'}")
    ccxt.debug("config {'apiKey': 'AKIA-EXAMPLE', 'secret': 'shh-secret', 'password': 'pw-1'}")
    logging.getLogger("rebalancer.notify").info(
        "targets tgram://123456:BOTTOKEN/987 https://hooks.slack.com/services/T00/B00/"
        "XXXXXXXXXXXXXXXXXXXXXXXX and Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"
    )
    logging.getLogger("rebalancer").info("the key is %s and the secret %s", KEY, SECRET)
    try:
        raise ValueError(f"auth failed for key {KEY}")
    except ValueError:
        logging.getLogger("rebalancer").exception("request failed")
    text = _read(tmp_path / "logs")
    for leaked in (
        KEY,
        SECRET,
        "9f86d081884c7d659a2feaa0c55ad015",
        "abc123def456",
        "krakenkey",
        "c2lnbmF0dXJl",
        "AKIA-EXAMPLE",
        "shh-secret",
        "pw-1",
        "BOTTOKEN",
        "XXXXXXXXXXXXXXXXXXXXXXXX",
        "eyJhbGciOiJIUzI1NiJ9",
    ):
        assert leaked not in text, leaked
        assert leaked not in console.getvalue(), leaked
    # the rest of each line survives, so the log stays useful
    assert "symbol=BTCUSDT&side=BUY&timestamp=1&signature=***" in text
    assert "'X-MBX-APIKEY': '***'" in text
    assert "the key is *** and the secret ***" in text
    assert "ValueError: auth failed for key ***" in text
    assert "tgram://***" in text and "https://hooks.slack.com/services/T00/B00/***" in text


def test_secrets_learnt_later_are_masked_too(tmp_path: Path) -> None:
    redactor = setup_logging("INFO", tmp_path / "logs", console=False)
    redactor.add(["late-secret-value"])
    logging.getLogger("rebalancer").info("value late-secret-value here")
    assert "late-secret-value" not in _read(tmp_path / "logs")


def test_redact_leaves_ordinary_text_alone() -> None:
    line = "tick 3 at 2026-01-01 04:00: rebalance: BTC drift 5.00% beyond ±5.00%; 3 orders"
    assert redact(line) == line
    assert redact("json://127.0.0.1:8080/hook") == f"json://{MASK}"
    assert redact("https://user:pass@example.com/x") == f"https://{MASK}@example.com/x"
    assert redact("short abc", ["abc"]) == "short abc"  # too short to be a secret


def test_opening_the_journal_logs_one_line_per_schema_upgrade_and_no_alembic_noise(
    tmp_path: Path,
) -> None:
    from rebalancer.adapters.journal import open_journal

    alembic = logging.getLogger("alembic")
    level = alembic.level
    try:
        console = io.StringIO()
        setup_logging("INFO", tmp_path / "logs", console=console)
        url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
        for _ in range(2):  # the daemon, and the dashboard of `run --serve`
            open_journal(url, "paper:binance").close()
        text = _read(tmp_path / "logs")
    finally:
        alembic.setLevel(level)
    assert "Context impl" not in text and "non-transactional" not in text
    assert text.count("journal schema upgraded from empty to ") == 1, text
