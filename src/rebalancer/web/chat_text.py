"""Plain-text answers for a chat: short lines, no tables (a phone screen is narrow).

Amounts keep the journal's and the planner's exact decimals; weights and returns are
percentages with two decimals.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.planner import Plan
from rebalancer.core.triggers import Decision
from rebalancer.daemon import Heartbeat
from rebalancer.ports import Halt
from rebalancer.web.view import Summary


def _pct(x: Decimal | float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{float(x) * 100:{'+' if signed else ''}.2f} %"


def decision_line(d: Decision) -> str:
    head = "the rule fires" if d.fire else "the rule does not fire"
    return f"{head}: {d.reason}"


def weights_lines(drift: PortfolioDrift, quote: str) -> list[str]:
    lines = [f"total {drift.total_value:,.2f} {quote}"]
    for a in drift.assets:
        lines.append(
            f"{a.asset}: {_pct(a.weight)} (target {_pct(a.target)}, drift {_pct(a.drift, True)})"
        )
    return lines


def halt_line(halt: Halt | None) -> str:
    if halt is None:
        return "trading: not halted"
    return f"HALTED since {halt.at:%Y-%m-%d %H:%M} UTC: {halt.reason} (/resume lifts it)"


def status_text(
    mode: str,
    drift: PortfolioDrift,
    decision: Decision,
    quote: str,
    halt: Halt | None,
    beat: Heartbeat | None,
    now: datetime,
) -> str:
    lines = [f"{mode} · {halt_line(halt)}"]
    lines += ["daemon: never started here"] if beat is None else beat.lines(now)
    lines += weights_lines(drift, quote)
    lines.append(decision_line(decision))
    return "\n".join(lines)


def plan_text(mode: str, decision: Decision, plan: Plan | None, quote: str) -> str:
    lines = [f"{mode} · {decision_line(decision)}"]
    if plan is None:
        lines.append("nothing to send (the rule does not fire)")
        return "\n".join(lines)
    for o in plan.orders:
        lines.append(
            f"{o.side.value} {o.amount} {o.symbol} ≈ {o.expected_cost:,.2f} {quote} "
            f"(fee ≈ {o.expected_fee:.4f})"
        )
    for s in plan.skipped:
        lines.append(f"skipped {s.side.value} {s.asset}: {s.reason}")
    if not plan.orders:
        lines.append("no order: every leg is skipped")
    return "\n".join(lines)


def report_text(s: Summary, since: str) -> str:
    if not s.checks:
        return f"no check journaled in the last {since}"
    return "\n".join(
        [
            f"last {since}: {s.checks} checks, {s.rebalances} rebalances, {s.fills} fills",
            f"value {s.start_value:,.2f} → {s.end_value:,.2f} {s.quote}",
            f"return {_pct(s.total_return, True)} vs buy-and-hold {_pct(s.hold_return, True)} "
            f"(premium {_pct(s.premium, True)})",
            f"fees {s.fees:,.2f} {s.quote} · max drawdown {_pct(-s.max_drawdown)}"
            f" · halts {s.halts}",
        ]
    )
