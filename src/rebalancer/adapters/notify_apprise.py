"""Notifications through apprise: one URL per target (Telegram, Discord, Slack, ntfy, e-mail,
JSON webhooks, ...), from ``REBALANCER_NOTIFY_URLS`` in the environment or ``.env``.

The URLs carry tokens: they are never printed or logged; a target is named by its scheme
and position only (``tgram #1``). A failing target is logged and skipped; ``send`` never
raises. :class:`FanOut` sends to several notifiers (the log and apprise) the same way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import apprise

from rebalancer.config.secrets import read_dotenv
from rebalancer.core.errors import ConfigError
from rebalancer.ports import Event, Notifier

log = logging.getLogger("rebalancer.notify")

ENV_VAR = "REBALANCER_NOTIFY_URLS"
_TYPES = {
    "rebalance": apprise.NotifyType.SUCCESS,
    "recovered": apprise.NotifyType.SUCCESS,
    "skip": apprise.NotifyType.WARNING,
    "transfer": apprise.NotifyType.WARNING,  # a transfer between accounts is suggested
    "warning": apprise.NotifyType.WARNING,  # e.g. frozen paper prices at start
    "error": apprise.NotifyType.FAILURE,
    "halt": apprise.NotifyType.FAILURE,
}


def split_urls(text: str) -> list[str]:
    """``"a://x, b://y c://z"`` -> the URLs, in order (commas and/or whitespace)."""
    return [u for u in re.split(r"[,\s]+", text.strip()) if u]


def notify_urls(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> list[str]:
    """The URLs in ``REBALANCER_NOTIFY_URLS``: the environment first, else the ``dotenv``
    file (``settings.dotenv_path``; None: none), which must be yours and mode 600."""
    env = os.environ if env is None else env
    text = env.get(ENV_VAR)
    if text is None:
        text = read_dotenv(dotenv).get(ENV_VAR)
    return split_urls(text or "")


def _label(url: str, index: int) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme} #{index + 1}"


@dataclass
class AppriseNotifier:
    """One apprise target per URL, so each failure is known and logged on its own."""

    urls: Sequence[str]
    timeout: float = 10.0
    targets: list[tuple[str, apprise.Apprise]] = field(init=False, default_factory=list)
    failures: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        bad: list[str] = []
        for i, url in enumerate(self.urls):
            target = apprise.Apprise()
            if not target.add(url):
                bad.append(_label(url, i))
                continue
            self.targets.append((_label(url, i), target))
        if bad:
            raise ConfigError(
                f"{ENV_VAR}: {', '.join(bad)} is not a URL apprise understands (the value "
                "is not shown: it may hold a token). Fix: check it against "
                "https://github.com/caronc/apprise/wiki, e.g. ntfy://TOPIC or "
                "json://HOST:PORT/PATH"
            )

    def __repr__(self) -> str:  # never show the URLs
        return f"AppriseNotifier({', '.join(label for label, _ in self.targets)})"

    def send(self, event: Event) -> None:
        kind = _TYPES.get(event.kind, apprise.NotifyType.INFO)
        for label, target in self.targets:
            try:
                ok = bool(
                    target.notify(
                        body=event.body or event.title,
                        title=event.title,
                        notify_type=kind,
                        timeout=self.timeout,
                    )
                )
            except Exception as exc:  # apprise should not raise; a plugin might
                ok = False
                log.warning("notification to %s raised %s", label, type(exc).__name__)
            if not ok:
                self.failures += 1
                log.warning("notification %r to %s failed; going on", event.title, label)


@dataclass
class FanOut:
    """Sends each event to every notifier; one that raises is logged and skipped."""

    notifiers: Sequence[Notifier]

    def send(self, event: Event) -> None:
        for notifier in self.notifiers:
            try:
                notifier.send(event)
            except Exception as exc:
                log.warning(
                    "notifier %s failed on %r: %s",
                    type(notifier).__name__,
                    event.title,
                    type(exc).__name__,
                )
