"""Desired weights: back to target, or only back to the band edge.

``band_edge`` clips every weight into its band ``[target - w, target + w]`` and then
restores a sum of 1 by moving the clipped weights that sit on the far side of their target
proportionally towards it; every result lies inside its band and the sum is exactly 1.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.model import ZERO
from rebalancer.core.triggers import Threshold

Style = Literal["target", "band_edge"]


def desired_weights(
    drift: PortfolioDrift, style: Style, threshold: Threshold | None
) -> dict[str, Decimal]:
    targets = {a.asset: a.target for a in drift.assets}
    if style == "target" or threshold is None or drift.total_value <= 0:
        return targets
    clipped: dict[str, Decimal] = {}
    for a in drift.assets:
        width = threshold.band_width(a.target)
        lo, hi = max(ZERO, a.target - width), a.target + width
        clipped[a.asset] = min(max(a.weight, lo), hi)
    excess = sum(clipped.values(), ZERO) - 1
    if excess == 0:
        return clipped
    # move the weights on the side of the excess back towards their targets
    movable = {k: v - targets[k] for k, v in clipped.items() if (v - targets[k]) * excess > 0}
    room = sum(movable.values(), ZERO)
    k = excess / room
    return {a: (w - k * movable[a]) if a in movable else w for a, w in clipped.items()}
