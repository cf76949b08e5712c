"""A strategy: what to hold, when to act, how to trade. A pure value built from the config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from rebalancer.core.execution import MARKET, ExecutionPolicy
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.triggers import Threshold, Trigger, find_threshold


@dataclass(frozen=True)
class Strategy:
    """``targets``: asset -> weight (sum 1, quote included as the cash leg).

    ``execution``: how the planned orders are sent (default: plain market orders).
    """

    quote: str
    targets: Mapping[str, Decimal]
    trigger: Trigger
    policy: PlanPolicy
    execution: ExecutionPolicy = MARKET

    @property
    def assets(self) -> tuple[str, ...]:
        """Non-quote target assets, in the targets' order."""
        return tuple(a for a in self.targets if a != self.quote)

    @property
    def threshold(self) -> Threshold | None:
        return find_threshold(self.trigger)
