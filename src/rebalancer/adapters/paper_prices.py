"""Which prices a paper run trades on, decided once at its start and remembered.

``[paper] prices`` is ``"auto"`` (the default), ``"live"`` or ``"candles"``.
``bootstrap`` (the composition root, the only place that may try the network) turns it into
a :class:`PriceSource` when it builds a paper runtime:

* ``"candles"``: the last close of the candle folder (``paper.data_dir``, else the embedded
  demo data). No network attempt. The prices are history: they do not move.
* ``"live"``: the public tickers of the configured exchange, required; without a network the
  start fails at once ("no network, or binance cannot be reached").
* ``"auto"``: one short public call to the exchange (the *probe*); reachable -> live, as
  ``"live"``; not reachable (or ``REBALANCER_OFFLINE`` set: no attempt at all) -> the
  candles, with a loud warning: :attr:`PriceSource.warning`.

The choice holds for the whole run: a daemon that started on live prices and later loses
the network reports each failed price read as a failed check (retried, notified, as with
``"live"``); it never falls back to frozen candles mid-run, which would trade a live account
picture on history without a word. A restart probes again.

:class:`PriceSourceFile` keeps the last choice of a trading run (``<state_dir>/
paper-prices-<exchange>.json``) for the readers that did not make it: the dashboard's banner
and ``rebalancer report``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rebalancer.adapters.state_file import StateFile
from rebalancer.core.errors import DataError

log = logging.getLogger(__name__)

#: set (to anything but "", "0", "false", "no") to never try the network for ``"auto"``
OFFLINE_ENV = "REBALANCER_OFFLINE"
FIX = {
    "auto": 'connect this machine to the network (and unset REBALANCER_OFFLINE) and restart; '
    'set [paper] prices = "live" to refuse to start without live prices, or "candles" to '
    "trade on history on purpose",
    "candles": 'set [paper] prices = "auto" (or "live") to paper trade on the market\'s '
    "live public prices",
}


def offline_requested(env: dict[str, str] | Any) -> bool:
    """Whether ``env`` (a mapping, e.g. ``os.environ``) sets :data:`OFFLINE_ENV`."""
    value = str(env.get(OFFLINE_ENV, "")).strip().lower()
    return value not in ("", "0", "false", "no")


@dataclass(frozen=True)
class PriceSource:
    """The paper run's prices. ``kind``: "live" (public tickers, fresh at every snapshot) or
    "candles" (frozen: the last close of ``first``..``last``, UTC). ``setting``: the
    configured ``[paper] prices``. ``source``: where they come from, in words. ``reason``:
    why ``"auto"`` chose the candles (empty otherwise). ``decided_at``: when (UTC)."""

    kind: Literal["live", "candles"]
    setting: str
    source: str
    decided_at: datetime
    first: datetime | None = None
    last: datetime | None = None
    reason: str = ""

    @property
    def frozen(self) -> bool:
        """The prices do not move during the run (candles, whatever the setting)."""
        return self.kind == "candles"

    def describe(self) -> str:
        """One line for ``status``, ``report`` and the logs."""
        how = "auto: " if self.setting == "auto" else ""
        if not self.frozen:
            return f"{how}{self.source}"
        return f"{how}frozen candles from {self.source}, {self._range()}"

    @property
    def warning(self) -> str:
        """The loud warning of frozen prices ("" for live ones): what, why, and the fix."""
        if not self.frozen:
            return ""
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"paper prices are frozen candles from {self.source}, {self._range()}: the bot "
            f"is not seeing the market{why}. Fix: {FIX.get(self.setting, FIX['candles'])}"
        )

    def _range(self) -> str:
        if self.first is None or self.last is None:
            return "dates unknown"
        return f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}"

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "kind": self.kind,
            "setting": self.setting,
            "source": self.source,
            "decided_at": self.decided_at.isoformat(),
            "first": iso(self.first),
            "last": iso(self.last),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceSource:
        """From :meth:`to_dict`; ValueError (or KeyError, TypeError) for anything else."""
        kind = data["kind"]
        if kind not in ("live", "candles"):
            raise ValueError(f"unknown price kind {kind!r}")

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(str(value))

        decided = when("decided_at")
        if decided is None:
            raise ValueError("no decided_at")
        return cls(
            kind,
            str(data["setting"]),
            str(data["source"]),
            decided,
            when("first"),
            when("last"),
            str(data.get("reason") or ""),
        )


def price_source_path(state_dir: Path, exchange: str) -> Path:
    return state_dir / f"paper-prices-{exchange}.json"


@dataclass
class PriceSourceFile:
    """The last paper run's :class:`PriceSource`, as JSON (written atomically)."""

    path: Path

    def write(self, source: PriceSource) -> None:
        StateFile(self.path).write(source.to_dict())

    def read(self) -> PriceSource | None:
        """The last one written; None when there is none, or it cannot be read (logged: a
        banner is no reason to break the dashboard)."""
        if not self.path.exists():
            return None
        try:
            return PriceSource.from_dict(StateFile(self.path).read())
        except (DataError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the paper price record %s: %s", self.path, exc)
            return None
