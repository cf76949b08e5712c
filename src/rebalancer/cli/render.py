"""Rendering of reports as rich tables and as JSON (Decimal as strings, exact)."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rebalancer.core.numbers import plain

if TYPE_CHECKING:  # annotations only: `--help` need not import the decision core
    from rebalancer.core.drift import PortfolioDrift
    from rebalancer.core.planner import Plan
    from rebalancer.core.triggers import Decision
    from rebalancer.service import CycleReport


def esc(value: object) -> str:
    """``value`` as text that Rich prints as written: ``[targets]`` is not taken for markup
    (every message holding user, config or exchange text goes through it)."""
    return escape(str(value))


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return plain(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2)


def pct(x: Decimal | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{float(x) * 100:+.2f}%" if signed else f"{float(x) * 100:.2f}%"


def money(x: Decimal) -> str:
    return f"{float(x):,.2f}"


def amount(x: Decimal) -> str:
    return f"{x.normalize():f}" if x == x.to_integral_value() or abs(x) < 1 else f"{float(x):,.8g}"


def drift_dict(drift: PortfolioDrift) -> dict[str, Any]:
    return {
        "total_value": drift.total_value,
        "assets": [
            {
                "asset": a.asset,
                "amount": a.amount,
                "price": a.price,
                "value": a.value,
                "weight": a.weight,
                "target": a.target,
                "drift": a.drift,
                "relative_drift": a.relative_drift,
            }
            for a in drift.assets
        ],
    }


def decision_dict(d: Decision) -> dict[str, Any]:
    return {"fire": d.fire, "reason": d.reason, "out_of_band": list(d.out_of_band)}


def drift_table(drift: PortfolioDrift, quote: str, out_of_band: tuple[str, ...] = ()) -> Table:
    t = Table(title=f"Portfolio — total {money(drift.total_value)} {quote}")
    for col in (
        "asset",
        "amount",
        "price",
        "value",
        "weight",
        "target",
        "drift",
        "rel. drift",
        "band",
    ):
        t.add_column(col, justify="left" if col in ("asset", "band") else "right")
    for a in drift.assets:
        t.add_row(
            a.asset,
            amount(a.amount),
            money(a.price),
            money(a.value),
            pct(a.weight),
            pct(a.target),
            pct(a.drift, True),
            pct(a.relative_drift, True),
            "[red]out[/red]" if a.asset in out_of_band else "in",
        )
    return t


def print_decision(console: Console, d: Decision) -> None:
    verdict = "[bold red]fires[/bold red]" if d.fire else "[green]does not fire[/green]"
    console.print(f"Rule {esc(verdict)}: {esc(d.reason)}")


def plan_dict(p: Plan) -> dict[str, Any]:
    def order(o: Any) -> dict[str, Any]:
        return {
            "side": o.side.value,
            "symbol": o.symbol,
            "amount": o.amount,
            "expected_price": o.expected_price,
            "expected_cost": o.expected_cost,
            "expected_fee": o.expected_fee,
        }

    return {
        "orders": [order(o) for o in p.orders],
        "skipped": [
            {
                "asset": s.asset,
                "side": s.side.value,
                "amount": s.amount,
                "value": s.value,
                "reason": s.reason,
                "detail": s.detail,
            }
            for s in p.skipped
        ],
        "weights_after": dict(p.weights),
        "total_after": p.total_after,
        "traded_value": p.traded_value,
        "expected_fees": p.expected_fees,
        "buy_scale": p.buy_scale,
    }


def plan_table(p: Plan, quote: str) -> Table:
    t = Table(title="Orders, in sending order (sells first)")
    for col in (
        "#",
        "side",
        "symbol",
        "amount",
        "exp. price",
        f"exp. cost {quote}",
        f"exp. fee {quote}",
    ):
        t.add_column(col, justify="right" if col not in ("side", "symbol") else "left")
    for i, o in enumerate(p.orders, 1):
        t.add_row(
            str(i),
            o.side.value,
            o.symbol,
            amount(o.amount),
            money(o.expected_price),
            money(o.expected_cost),
            f"{float(o.expected_fee):,.4f}",
        )
    return t


def skipped_table(p: Plan, quote: str) -> Table:
    t = Table(title="Skipped legs (left for the next cycle)")
    for col in ("asset", "side", "amount", f"wanted {quote}", "reason", "detail"):
        t.add_column(col)
    for s in p.skipped:
        t.add_row(
            s.asset, s.side.value, amount(s.amount), money(s.value), esc(s.reason), esc(s.detail)
        )
    return t


def print_plan(console: Console, p: Plan, quote: str) -> None:
    if p.orders:
        console.print(plan_table(p, quote))
        console.print(
            f"Traded value {money(p.traded_value)} {quote}, expected fees "
            f"{float(p.expected_fees):,.4f} {quote}; total after ≈ "
            f"{money(p.total_after)} {quote}"
        )
    else:
        console.print("No order to send.")
    if p.skipped:
        console.print(skipped_table(p, quote))


def cycle_dict(r: CycleReport) -> dict[str, Any]:
    return {
        "at": r.at,
        "decision": decision_dict(r.decision),
        "drift_before": drift_dict(r.drift),
        "plan": plan_dict(r.plan) if r.plan else None,
        "buy_plan": plan_dict(r.buy_plan) if r.buy_plan else None,
        "fills": [r.fill_with_slippage(f) for f in r.fills],
        "failed": [
            {"symbol": x.order.symbol, "side": x.order.side.value, "error": x.error, "kind": x.kind}
            for x in r.failed
        ],
        "drift_after": drift_dict(r.drift_after) if r.drift_after else None,
        "stopped": r.stopped,
        "limits": [x.as_dict() for x in r.limits],
        "suggestions": list(r.suggestions),
        "targets_note": r.targets_note,
    }


def fills_table(r: CycleReport) -> Table:
    t = Table(title="Fills")
    for col in ("client id", "side", "symbol", "amount", "price", "cost", "fee", "slip bps"):
        t.add_column(col)
    for f in r.fills:
        bps = r.slippage_bps(f)
        t.add_row(
            f.client_order_id,
            f.side.value,
            f.symbol,
            amount(f.amount),
            money(f.price),
            money(f.cost),
            f"{amount(f.fee)} {f.fee_asset}",
            "—" if bps is None else f"{bps:+.1f}",
        )
    return t
