"""Logging: the console and a rotating file, every record scrubbed of secrets first.

::

    setup_logging("INFO", settings.state_dir / "logs", secrets=[api_key, secret, *urls])

Each handler carries a :class:`RedactFilter`, so records of every logger (ours, CCXT's,
which logs request headers and signed URLs at DEBUG, apprise's) are masked before any
handler writes them: the given secret values anywhere, and by pattern API-key headers
(``X-MBX-APIKEY``, ``API-Key``, ``OK-ACCESS-KEY`` ...), ``apiKey=``, ``secret=``,
``signature=``, ``token=`` and ``password=`` values, ``Authorization`` headers, user:password
in URLs, notification URLs (``tgram://...``) and long token-like segments of http(s) URLs.
Tracebacks are masked too. Standard library only.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

MASK = "***"
LOG_FILE = "rebalancer.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MIN_SECRET = 4

_KEY_NAME = (
    r"[\w.-]*?(?:api[-_]?key|api[-_]?sign|apisecret|api[-_]secret|secret|signature|token"
    r"|passphrase|password|passwd|access[-_]?key|access[-_]?sign|private[-_]?key)[\w-]*"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / 'Authorization': 'Basic abc'
    (
        re.compile(
            r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic|token)\s+)?[^'\"\s,}&]+"
        ),
        r"\1\2 " + MASK,
    ),
    # X-MBX-APIKEY: abc, 'secret': 'abc', apiKey=abc, &signature=abc, "token": "abc"
    (
        re.compile(rf"(?i)\b({_KEY_NAME})(['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^'\"\s,}}&;]+"),
        r"\1\2" + MASK,
    ),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^/\s@'\"]+@"), r"\1" + MASK + "@"),
    # notification URLs (tgram://TOKEN/CHAT, discord://ID/TOKEN, ...): keep only the scheme
    (
        re.compile(r"(?i)\b((?!https?://|wss?://|file://)[a-z][a-z0-9+.-]{1,20}://)[^\s'\"]+"),
        r"\1" + MASK,
    ),
    # long token-like path or query segments of http(s) URLs (webhook tokens)
    (re.compile(r"(?i)(https?://[^\s'\"]*?/)[A-Za-z0-9_-]{24,}"), r"\1" + MASK),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the ``secrets`` values and secret-looking patterns replaced by ***."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= MIN_SECRET:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    # a pattern may leave "Bearer" out when absent: "Authorization: ***" reads better
    return text.replace(":  " + MASK, ": " + MASK).replace("=  " + MASK, "= " + MASK)


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message, arguments and traceback (never drops it)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        setattr(record, "_redacted", True)  # noqa: B010
        return True


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def setup_logging(
    level: str = "INFO",
    log_dir: Path | None = None,
    secrets: Iterable[str] = (),
    *,
    console: TextIO | bool | None = True,
) -> RedactFilter:
    """Send every record at ``level`` or above to ``console`` and ``log_dir/rebalancer.log``.

    ``console``: True for stderr, a stream, or False/None for no console. Replaces the
    handlers an earlier call installed (safe to call again). Returns the filter, so secrets
    learnt later can be added with ``.add([...])``.
    """
    reset_logging()
    root = logging.getLogger()
    redactor = RedactFilter(secrets)
    handlers: list[logging.Handler] = []
    if console is True:
        handlers.append(logging.StreamHandler(sys.stderr))
    elif console:
        handlers.append(logging.StreamHandler(console))
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / LOG_FILE, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(_UtcFormatter(FORMAT))
        handler.addFilter(redactor)
        handler._rebalancer = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # apprise logs its target URLs (tokens included) at DEBUG; keep it to warnings
    logging.getLogger("apprise").setLevel(max(logging.WARNING, root.level))
    # alembic says "Context impl SQLiteImpl" at every journal open (twice with --serve); the
    # journal logs the one line that matters, a schema upgrade (adapters.journal.schema)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    return redactor


def reset_logging() -> None:
    """Remove (and close) the handlers :func:`setup_logging` installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rebalancer", False):
            root.removeHandler(handler)
            handler.close()


def log_file(log_dir: Path) -> Path:
    return log_dir / LOG_FILE
