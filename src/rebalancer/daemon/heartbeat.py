"""The daemon's heartbeat: what it is doing, when it last ticked and ticks next.

Written atomically after every tick to ``<state_dir>/heartbeat-<mode>.json``, so a status
command (or a monitoring script) can tell a stuck or dead daemon from a waiting one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

_TIMES = ("started_at", "last_tick", "last_ok", "next_tick", "stopped_at")
STALE_AFTER = timedelta(minutes=10)


def heartbeat_path(state_dir: Path, mode: str) -> Path:
    return state_dir / f"heartbeat-{mode}.json"


@dataclass
class Heartbeat:
    """``state``: running, stopped (asked to), or failed (stopped by an error that needs you)."""

    mode: str
    schedule: str
    pid: int
    started_at: datetime
    state: str = "running"
    ticks: int = 0
    last_tick: datetime | None = None
    last_ok: datetime | None = None
    next_tick: datetime | None = None
    stopped_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str = ""
    last_result: str = ""

    def stale(self, now: datetime, grace: timedelta = STALE_AFTER) -> bool:
        """Says running, but its next check is overdue by more than ``grace`` (it died)."""
        return (
            self.state == "running" and self.next_tick is not None and now - self.next_tick > grace
        )

    def lines(self, now: datetime) -> list[str]:
        """What ``status`` shows: state, last and next check, failures, the last error."""

        def at(t: datetime | None) -> str:
            return "-" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"

        if self.stale(now):
            head = (
                f"daemon ({self.mode}): NOT RESPONDING: pid {self.pid} said it would check "
                f"at {at(self.next_tick)}"
            )
        elif self.state == "running":
            head = f"daemon ({self.mode}): running (pid {self.pid}), checks {self.schedule}"
        else:
            head = f"daemon ({self.mode}): {self.state} at {at(self.stopped_at)}"
        out = [head, f"last check: {at(self.last_tick)}; {self.last_result or 'no result yet'}"]
        if self.state == "running":
            out.append(f"next check: {at(self.next_tick)}")
        if self.consecutive_failures:
            out.append(f"failing: {self.consecutive_failures} checks in a row")
        if self.last_error:
            out.append(f"last error: {self.last_error}")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _TIMES:
            value = data[name]
            data[name] = None if value is None else value.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Heartbeat:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in _TIMES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


@dataclass
class HeartbeatFile:
    path: Path

    def write(self, beat: Heartbeat) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".heartbeat-")
        with os.fdopen(fd, "w") as fh:
            json.dump(beat.to_dict(), fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def read(self) -> Heartbeat | None:
        """The last heartbeat, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return Heartbeat.from_dict(data) if isinstance(data, dict) else None
