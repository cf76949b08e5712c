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
        self.update(balances={k: plain(v) for k, v in sorted(balances.items())})

    def orders(self) -> dict[str, Fill]:
        """The paper account's orders (client order id -> fill), empty when none."""
        raw = self.read().get("orders") or {}
        return {cid: fill_from(d) for cid, d in raw.items()}

    def save_account(self, balances: dict[str, Decimal], orders: dict[str, Fill]) -> None:
        """Balances and orders in one atomic write: a crash keeps both or neither."""
        self.update(
            balances={k: plain(v) for k, v in sorted(balances.items())},
            orders={cid: fill_dict(f) for cid, f in orders.items()},
        )


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


def fill_from(data: dict[str, str]) -> Fill:
    return Fill(
        client_order_id=data["client_order_id"],
        asset=data["asset"],
        symbol=data["symbol"],
        side=Side(data["side"]),
        amount=Decimal(data["amount"]),
        price=Decimal(data["price"]),
        cost=Decimal(data["cost"]),
        fee=Decimal(data["fee"]),
        fee_asset=data["fee_asset"],
        status=data.get("status", "closed"),
        exchange_order_id=data.get("exchange_order_id", ""),
    )


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def order_dict(order: OrderRequest) -> dict[str, str]:
    return {k: text(getattr(order, k)) for k in _ORDER_FIELDS}


def order_from(data: dict[str, str]) -> OrderRequest:
    return OrderRequest(
        asset=data["asset"],
        symbol=data["symbol"],
        side=Side(data["side"]),
        amount=Decimal(data["amount"]),
        expected_price=Decimal(data["expected_price"]),
        expected_cost=Decimal(data["expected_cost"]),
        expected_fee=Decimal(data["expected_fee"]),
        client_order_id=data["client_order_id"],
    )


_ORDER_FIELDS = (
    "asset",
    "symbol",
    "side",
    "amount",
    "expected_price",
    "expected_cost",
    "expected_fee",
    "client_order_id",
)


@dataclass
class FileJournal:
    """Journal port over a :class:`StateFile`: trigger times, recent cycle summaries,
    unresolved order intents and the halt (the SQL journal keeps the full history)."""

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

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        data = self.state.read()
        data.setdefault("intents", {})[order.client_order_id] = order_dict(order)
        self.state.write(data)

    def record_outcome(self, client_order_id: str, outcome: OrderOutcome, at: datetime) -> None:
        if outcome.resolved:
            data = self.state.read()
            data.get("intents", {}).pop(client_order_id, None)
            self.state.write(data)

    def unresolved_intents(self) -> list[OrderRequest]:
        return [order_from(d) for d in self.state.read().get("intents", {}).values()]

    def value_history(self, since: datetime) -> list[tuple[datetime, Decimal]]:
        rows = [
            (datetime.fromisoformat(c["at"]), Decimal(c["total_value"]))
            for c in self.state.read().get("cycles", [])
        ]
        return [(at, v) for at, v in rows if at >= since]

    def halt_status(self) -> HaltStatus:
        data = self.state.read()
        halt = data.get("halt")
        active = None if halt is None else Halt(datetime.fromisoformat(halt["at"]), halt["reason"])
        return HaltStatus(active, _time(data.get("last_resume")))

    def record_halt(self, reason: str, at: datetime) -> None:
        self.state.update(halt={"at": at.isoformat(), "reason": reason})

    def record_resume(self, at: datetime, note: str = "") -> None:
        self.state.update(halt=None, last_resume=at.isoformat())


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
