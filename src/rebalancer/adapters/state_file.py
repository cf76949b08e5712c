"""A small JSON state file: the paper account's balances and the trigger's memory.

Written atomically (temp file + rename) so a crash never leaves half a file. The SQL
journal of the safety work replaces it for cycles and orders.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.core.errors import DataError
from rebalancer.ports import TriggerTimes

KEEP_CYCLES = 500


@dataclass
class StateFile:
    path: Path

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(
                f"state file {self.path} is unreadable ({exc}); move it away or run "
                "`rebalancer paper reset` to start afresh"
            ) from None
        if not isinstance(data, dict):
            raise DataError(f"state file {self.path} does not hold a JSON object")
        return data

    def write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def update(self, **values: Any) -> None:
        data = self.read()
        data.update(values)
        self.write(data)

    def balances(self) -> dict[str, Decimal] | None:
        raw = self.read().get("balances")
        return None if raw is None else {k: Decimal(v) for k, v in raw.items()}

    def save_balances(self, balances: dict[str, Decimal]) -> None:
        self.update(balances={k: str(v) for k, v in sorted(balances.items())})


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class FileJournal:
    """Journal port over a :class:`StateFile`: trigger times and recent cycle summaries."""

    state: StateFile

    def trigger_times(self) -> TriggerTimes:
        data = self.state.read()
        return TriggerTimes(_time(data.get("last_check")), _time(data.get("last_fired")))

    def record_cycle(self, report: Any) -> None:
        data = self.state.read()
        data["last_check"] = report.at.isoformat()
        if report.decision.fire and report.executed:
            data["last_fired"] = report.at.isoformat()
        cycles = [*data.get("cycles", []), report.summary()][-KEEP_CYCLES:]
        data["cycles"] = cycles
        self.state.write(data)


class MemoryJournal:
    """Journal port in memory (replays, tests)."""

    def __init__(self) -> None:
        self.times = TriggerTimes()
        self.cycles: list[Any] = []

    def trigger_times(self) -> TriggerTimes:
        return self.times

    def record_cycle(self, report: Any) -> None:
        fired = report.at if report.decision.fire and report.executed else self.times.last_fired
        self.times = TriggerTimes(report.at, fired)
        self.cycles.append(report)
