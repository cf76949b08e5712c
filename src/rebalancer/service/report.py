"""What a cycle saw, decided and did: :class:`CycleReport` and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.model import ZERO, Fill, OrderRequest, Side, Snapshot
from rebalancer.core.numbers import plain
from rebalancer.core.planner import Plan
from rebalancer.core.triggers import Decision
from rebalancer.ports import OrderOutcome


@dataclass(frozen=True)
class FailedOrder:
    """An order not placed (or placed with an unknown outcome): the ``error`` and its
    ``kind`` (the exception's class name, e.g. ``InsufficientFunds``)."""

    order: OrderRequest
    error: str
    kind: str


@dataclass(frozen=True)
class LimitOrder:
    """A post-only limit placed inside the spread (``order_type = "limit_inside"``).

    ``amount`` asked and ``filled`` (as maker) in base units at ``price`` (quote per base).
    ``fallback``: what became of the rest -- ``""`` (nothing left), ``"market <id>"`` (sent
    at market with that client order id), ``"none"`` (left for the next cycle) or
    ``"skipped: <why>"`` (below the market's minimum).
    """

    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    filled: Decimal
    fallback: str = ""

    def describe(self) -> str:
        head = (
            f"limit {self.side.value} {self.amount} {self.symbol} @ {self.price:.6g}: "
            f"{self.filled} filled as maker"
        )
        if not self.fallback:
            return head
        if self.fallback.startswith("market"):
            return f"{head}; the rest at market ({self.fallback.split()[-1]})"
        if self.fallback == "none":
            return f"{head}; the rest left for the next cycle"
        return f"{head}; the rest {self.fallback}"

    def as_dict(self) -> dict[str, str]:
        return {
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "amount": plain(self.amount),
            "price": plain(self.price),
            "filled_as_maker": plain(self.filled),
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class CycleReport:
    """Everything one cycle saw, decided and did, built once when the cycle ends (by
    :meth:`rebalancer.service.context.Cycle.report`); ``summary()`` is its JSON form.

    ``snapshot``/``drift``: the account as read at ``at`` (before trading); ``plan``: the
    orders planned from it, ``buy_plan``: the buys re-planned from the balances read after
    the sells; ``drift_after``: the account read after the buys (None when not read).
    ``executed``: sending began; ``stopped``: why the cycle ended early ("" when it did
    not). ``sent``: every order sent, by client order id. It is the
    :class:`rebalancer.ports.CycleRecord` the journal keeps.
    """

    at: datetime
    snapshot: Snapshot
    drift: PortfolioDrift
    decision: Decision
    plan: Plan | None = None
    buy_plan: Plan | None = None
    fills: list[Fill] = field(default_factory=list)
    failed: list[FailedOrder] = field(default_factory=list)
    drift_after: PortfolioDrift | None = None
    executed: bool = False
    stopped: str = ""
    reconciled: ReconcileReport | None = None
    sent: dict[str, OrderRequest] = field(default_factory=dict)
    # limits placed inside the spread and what became of them (order_type "limit_inside")
    limits: list[LimitOrder] = field(default_factory=list)
    # deposits (> 0) and withdrawals (< 0) found in the balances, per asset
    flows: dict[str, Decimal] = field(default_factory=dict)
    # transfers between accounts that would let the plan execute in full (several accounts:
    # MultiAccountExchange.suggestions()); never made by the bot, only reported
    suggestions: list[str] = field(default_factory=list)
    # optimised targets ([optimise]): what became of them this cycle ("" when off)
    targets_note: str = ""

    def fill_with_slippage(self, fill: Fill) -> dict[str, str]:
        """``fill_dict`` plus the order's expected price and the realised slippage (bps)."""
        order, bps = self.sent.get(fill.client_order_id), self.slippage_bps(fill)
        return {
            **fill_dict(fill),
            "expected_price": "" if order is None else plain(order.expected_price),
            "slippage_bps": "" if bps is None else f"{bps:.2f}",
        }

    def slippage_bps(self, fill: Fill) -> Decimal | None:
        """Realised slippage of ``fill`` against the price its order expected, in basis
        points, positive when the fill was worse (bought dearer or sold cheaper)."""
        order = self.sent.get(fill.client_order_id)
        if order is None or order.expected_price <= 0:
            return None
        moved = fill.price / order.expected_price - 1
        return (moved if fill.side is Side.BUY else -moved) * 10000

    @property
    def traded_value(self) -> Decimal:
        return sum((f.cost for f in self.fills), ZERO)

    def fees_in_quote(self) -> Decimal:
        """Fees valued in the quote: the quote itself at 1, the traded asset at its fill
        price, any other asset (e.g. BNB) at the snapshot's price, or 0 when unpriced."""
        return sum((self._fee_value(f) for f in self.fills), ZERO)

    def _fee_value(self, f: Fill) -> Decimal:
        if f.fee_asset == self.snapshot.quote:
            return f.fee
        if f.fee_asset == f.asset:
            return f.fee * f.price
        return f.fee * self.snapshot.prices.get(f.fee_asset, ZERO)

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "total_value": plain(self.drift.total_value),
            "fire": self.decision.fire,
            "reason": self.decision.reason,
            "executed": self.executed,
            "stopped": self.stopped,
            "fills": [self.fill_with_slippage(f) for f in self.fills],
            "failed": [
                {
                    "symbol": x.order.symbol,
                    "side": x.order.side.value,
                    "amount": plain(x.order.amount),
                    "error": x.error,
                    "kind": x.kind,
                }
                for x in self.failed
            ],
            "fees_quote": plain(self.fees_in_quote()),
            "limits": [x.as_dict() for x in self.limits],
            "reconciled": {
                cid: outcome.source
                for cid, outcome in (self.reconciled.resolved if self.reconciled else {}).items()
            },
            "suggestions": list(self.suggestions),
            "targets_note": self.targets_note,
        }


def fill_dict(f: Fill) -> dict[str, str]:
    """A fill as JSON strings (Decimals exact)."""
    return {
        "client_order_id": f.client_order_id,
        "symbol": f.symbol,
        "side": f.side.value,
        "amount": plain(f.amount),
        "price": plain(f.price),
        "cost": plain(f.cost),
        "fee": plain(f.fee),
        "fee_asset": f.fee_asset,
        "status": f.status,
    }


@dataclass
class ReconcileReport:
    """What reconciliation found: resolved intents (id -> outcome) and those still unknown."""

    resolved: dict[str, OrderOutcome] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        return not self.unknown
