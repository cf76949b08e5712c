"""A small JSON state file (the paper account's balances and orders, the live
confirmations), and the in-memory journal of replays and tests.

Written atomically (temp file + rename) so a crash never leaves half a file; the paper
account's part is checked against a schema on every read. The paper state is written only
by the holder of the account's lock (``bootstrap.build_paper``, ``reset_paper``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rebalancer.core.errors import DataError
from rebalancer.core.model import Fill, OrderRequest, Side
from rebalancer.core.numbers import plain, text
from rebalancer.ports import (
    FlowRecord,
    Halt,
    HaltStatus,
    OrderOutcome,
    TargetChange,
    TriggerTimes,
    flow_records,
)

T = TypeVar("T")


TEMP_SUFFIX = ".tmp-"
LEGACY_TEMP = ".state-"  # the temp prefix of earlier versions, shared by every state file
LEGACY_TEMP_AGE = 60.0  # seconds: a write lasts milliseconds; older temp files are orphans


@dataclass
class StateFile:
    """A JSON object on disk, replaced atomically on every write.

    Writes go through a temp file ``.<name>.tmp-*`` beside it (fsynced, then renamed over
    the file); a writer killed mid-write leaves that temp file behind, which
    :meth:`clean_orphans` removes. Unreadable or unwritable files raise :class:`DataError`
    naming the file and the fix."""

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
            raise DataError(
                f"state file {self.path} does not hold a JSON object; move it away or run "
                "`rebalancer paper reset` to start afresh"
            )
        return data

    def write(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}{TEMP_SUFFIX}")
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):  # a full disk, a folder made read-only meanwhile
                raise self._unwritable(exc) from None
            raise

    def _unwritable(self, exc: OSError) -> DataError:
        return DataError(
            f"cannot write the state file {self.path} ({exc.strerror or exc}): make "
            f"{self.path.parent} writable by the user running rebalancer (with free space), "
            "or set state_dir in the config to a folder that is"
        )

    def update(self, **values: Any) -> None:
        data = self.read()
        data.update(values)
        self.write(data)

    def remove(self) -> None:
        """Delete the file (nothing when it does not exist)."""
        self.path.unlink(missing_ok=True)

    def clean_orphans(self, legacy_age: float = LEGACY_TEMP_AGE) -> list[Path]:
        """Remove the temp files writers killed mid-write left beside this file; returns
        them. Only safe while no other process writes this file (the caller holds the
        account's lock): every ``.<name>.tmp-*`` goes; a ``.state-*`` of earlier versions
        (whose name does not say which file it was for) only once older than
        ``legacy_age`` seconds, so another file's write in progress is never touched."""
        folder = self.path.parent
        if not folder.is_dir():
            return []
        now = time.time()
        removed: list[Path] = []
        for tmp in folder.glob(f".{self.path.name}{TEMP_SUFFIX}*"):
            removed += _unlink(tmp)
        for tmp in folder.glob(f"{LEGACY_TEMP}*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > legacy_age:
                    removed += _unlink(tmp)
        return removed

    def balances(self) -> dict[str, Decimal] | None:
        raw = self.read().get("balances")
        if raw is None:
            return None
        return _validated(self.path, "balances", _BALANCES, raw)

    def save_balances(self, balances: dict[str, Decimal]) -> None:
        self.update(balances={k: plain(v) for k, v in sorted(balances.items())})

    def orders(self) -> dict[str, Fill]:
        """The paper account's orders (client order id -> fill), empty when none."""
        raw = self.read().get("orders") or {}
        orders = _validated(self.path, "orders", _ORDERS, raw)
        return {cid: order.fill() for cid, order in orders.items()}

    def save_account(self, balances: dict[str, Decimal], orders: dict[str, Fill]) -> None:
        """Balances and orders in one atomic write: a crash keeps both or neither."""
        self.update(
            balances={k: plain(v) for k, v in sorted(balances.items())},
            orders={cid: fill_dict(f) for cid, f in orders.items()},
        )


def _unlink(path: Path) -> list[Path]:
    try:
        path.unlink()
    except OSError:
        return []
    return [path]


# --- the paper account's schema, checked on every read ---------------------------------------

Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _StoredFill(BaseModel):
    """One paper order as the state file keeps it (every number as decimal text, >= 0)."""

    model_config = ConfigDict(extra="forbid")

    client_order_id: str
    asset: str
    symbol: str
    side: Side
    amount: Amount
    price: Amount
    cost: Amount
    fee: Amount
    fee_asset: str
    status: str = "closed"
    exchange_order_id: str = ""

    def fill(self) -> Fill:
        return Fill(**self.model_dump())


_BALANCES: TypeAdapter[dict[str, Decimal]] = TypeAdapter(dict[str, Amount])
_ORDERS: TypeAdapter[dict[str, _StoredFill]] = TypeAdapter(dict[str, _StoredFill])


def _validated(path: Path, key: str, schema: TypeAdapter[T], raw: Any) -> T:
    """``raw`` (the file's ``key``) checked against ``schema``; a :class:`DataError` naming
    the file, every wrong field with its value, and the fix."""
    try:
        return schema.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(key, e) for e in exc.errors()[:5])
        raise DataError(
            f"state file {path} holds wrong values: {problems}. Correct them (amounts are "
            "decimal numbers >= 0, as text), or run `rebalancer paper reset` to start the "
            "paper account afresh"
        ) from None


def _problem(key: str, error: Any) -> str:
    """One wrong field: its path in the file, its value and what it should be."""
    where = ".".join([key, *(str(p) for p in error["loc"])])
    if error["type"] == "missing":
        return f"{where}: missing"
    value = json.dumps(error.get("input"), default=str)
    value = value if len(value) <= 40 else value[:37] + "..."
    return f"{where} = {value}: {str(error['msg']).replace('Input should be', 'should be')}"


_FILL_FIELDS = (
    "client_order_id",
    "asset",
    "symbol",
    "side",
    "amount",
    "price",
    "cost",
    "fee",
    "fee_asset",
    "status",
    "exchange_order_id",
)


def fill_dict(fill: Fill) -> dict[str, str]:
    return {k: text(getattr(fill, k)) for k in _FILL_FIELDS}


class MemoryJournal:
    """Journal port in memory (replays, tests): cheap enough for every bar of a backtest."""

    def __init__(self) -> None:
        self.times = TriggerTimes()
        self.cycles: list[Any] = []
        self.intents: dict[str, OrderRequest] = {}
        self.outcomes: list[tuple[str, OrderOutcome]] = []
        self.halts = HaltStatus()
        self.target_changes: list[TargetChange] = []

    def trigger_times(self) -> TriggerTimes:
        return self.times

    def record_cycle(self, report: Any) -> None:
        fired = report.at if report.decision.fire and report.executed else self.times.last_fired
        self.times = TriggerTimes(report.at, fired)
        self.cycles.append(report)

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        self.intents[order.client_order_id] = order

    def record_outcome(self, client_order_id: str, outcome: OrderOutcome, at: datetime) -> None:
        self.outcomes.append((client_order_id, outcome))
        if outcome.resolved:
            self.intents.pop(client_order_id, None)

    def unresolved_intents(self) -> list[OrderRequest]:
        return list(self.intents.values())

    def value_history(self, since: datetime) -> list[tuple[datetime, Decimal]]:
        return [(c.at, c.drift.total_value) for c in self.cycles if c.at >= since]

    def halt_status(self) -> HaltStatus:
        return self.halts

    def record_halt(self, reason: str, at: datetime) -> None:
        self.halts = HaltStatus(Halt(at, reason), self.halts.last_resume)

    def record_resume(self, at: datetime, note: str = "") -> None:
        self.halts = HaltStatus(None, at)

    def latest_target_change(self) -> TargetChange | None:
        return self.target_changes[-1] if self.target_changes else None

    def record_target_change(self, change: TargetChange) -> None:
        self.target_changes.append(change)

    def flows(self) -> list[FlowRecord]:
        """Every cycle's cash flows (the SQL journal's ``flows`` rows), oldest first."""
        return [row for c in self.cycles for row in flow_records(c)]
