"""Market rules: amount steps, minimum amount, minimum notional.

Amounts are truncated to the step (never rounded up), so an order never asks for more
than was planned or held.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from rebalancer.core.model import ZERO, MarketRules


def truncate(amount: Decimal, step: Decimal | None) -> Decimal:
    """Largest multiple of ``step`` not above ``amount`` (``amount`` >= 0)."""
    if amount <= 0:
        return ZERO
    if step is None or step <= 0:
        return amount
    return (amount / step).to_integral_value(rounding=ROUND_DOWN) * step


def violation(rules: MarketRules, amount: Decimal, price: Decimal) -> tuple[str, str] | None:
    """Why the exchange would reject ``amount`` at ``price``, as (code, detail), or None.

    Codes: ``dust`` (nothing left after the step), ``off_step``, ``below_min_amount``,
    ``above_max_amount``, ``below_min_notional``.
    """
    if amount <= 0:
        return "dust", f"amount rounds to 0 at step {rules.amount_step}"
    if rules.amount_step is not None and truncate(amount, rules.amount_step) != amount:
        return "off_step", f"amount {amount} is not a multiple of step {rules.amount_step}"
    if amount < rules.min_amount:
        return "below_min_amount", f"amount {amount} < market minimum {rules.min_amount}"
    if rules.max_amount is not None and amount > rules.max_amount:
        return "above_max_amount", f"amount {amount} > market maximum {rules.max_amount}"
    notional = amount * price
    if notional < rules.min_notional:
        return (
            "below_min_notional",
            f"notional {notional:.2f} < market minimum {rules.min_notional} {rules.quote}",
        )
    return None
