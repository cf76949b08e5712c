"""The circuit breaker's rules, pure: each returns why trading must halt, or None.

* drawdown: the portfolio's value fell more than ``max_drawdown`` below its highest
  journaled value within ``window`` (e.g. 15 % in 24 h);
* turnover: one cycle would trade more than ``max_cycle_turnover`` of the portfolio's value
  (sells plus buys, so deploying all cash is 1.0 at most);
* notional caps: an order above ``max_order_notional`` or a cycle above
  ``max_cycle_notional`` (quote units).

A limit set to None is off. "Now" is a parameter; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class RiskLimits:
    max_drawdown: Decimal | None = Decimal("0.15")
    window: timedelta = timedelta(hours=24)
    max_cycle_turnover: Decimal | None = Decimal(2)
    max_order_notional: Decimal | None = None
    max_cycle_notional: Decimal | None = None


def drawdown_breach(
    history: Sequence[tuple[datetime, Decimal]],
    value: Decimal,
    now: datetime,
    limits: RiskLimits,
) -> str | None:
    """Why ``value`` at ``now`` breaches the drawdown limit against ``history`` (or None).

    ``history``: earlier (time, portfolio value) pairs; those older than ``limits.window``
    before ``now`` are ignored.
    """
    if limits.max_drawdown is None:
        return None
    start = now - limits.window
    recent = [(at, v) for at, v in history if start <= at <= now and v > 0]
    if not recent:
        return None
    peak_at, peak = max(recent, key=lambda item: item[1])
    fall = (peak - value) / peak
    if fall <= limits.max_drawdown:
        return None
    return (
        f"portfolio value fell {fall:.2%} (from {peak:.2f} at {peak_at:%Y-%m-%d %H:%M} UTC "
        f"to {value:.2f}) within {_span(limits.window)}; the limit is "
        f"{limits.max_drawdown:.2%} (risk.max_drawdown)"
    )


def plan_breach(
    notionals: Sequence[Decimal],
    total_value: Decimal,
    limits: RiskLimits,
    *,
    already_traded: Decimal = ZERO,
) -> str | None:
    """Why trading ``notionals`` (quote value of each order) breaches a limit (or None).

    ``already_traded``: what this cycle traded before these orders (the sells, when the
    buys are checked), counted towards the cycle's turnover and notional.
    """
    for notional in notionals:
        if limits.max_order_notional is not None and notional > limits.max_order_notional:
            return (
                f"an order of {notional:.2f} exceeds the cap of {limits.max_order_notional} "
                "per order (risk.max_order_notional)"
            )
    cycle = already_traded + sum(notionals, ZERO)
    if limits.max_cycle_notional is not None and cycle > limits.max_cycle_notional:
        return (
            f"the cycle would trade {cycle:.2f}, above the cap of {limits.max_cycle_notional} "
            "per cycle (risk.max_cycle_notional)"
        )
    if limits.max_cycle_turnover is not None and total_value > 0:
        turnover = cycle / total_value
        if turnover > limits.max_cycle_turnover:
            return (
                f"the cycle would trade {turnover:.2%} of the portfolio ({cycle:.2f} of "
                f"{total_value:.2f}); the limit is {limits.max_cycle_turnover:.2%} "
                "(risk.max_cycle_turnover)"
            )
    return None


def _span(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"
