"""Valuation and drift: what the portfolio is worth and how far each weight strays.

``drift = weight - target`` (absolute, signed, in weight units); ``relative_drift =
drift / target`` (None when the target is 0). Only managed assets (those in the targets,
plus the quote) count towards the total; other holdings are ignored unless the policy
sells them (then they are given target 0 by the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from rebalancer.core.errors import DataError
from rebalancer.core.model import ZERO, Snapshot


@dataclass(frozen=True)
class AssetDrift:
    asset: str
    amount: Decimal
    price: Decimal
    value: Decimal
    weight: Decimal
    target: Decimal

    @property
    def drift(self) -> Decimal:
        return self.weight - self.target

    @property
    def relative_drift(self) -> Decimal | None:
        return None if self.target == 0 else self.drift / self.target


@dataclass(frozen=True)
class PortfolioDrift:
    """Per-asset drift in a fixed order (the targets' order), and the managed total."""

    total_value: Decimal
    assets: tuple[AssetDrift, ...]

    def by_asset(self) -> dict[str, AssetDrift]:
        return {a.asset: a for a in self.assets}

    def max_abs_drift(self) -> Decimal:
        return max((abs(a.drift) for a in self.assets), default=ZERO)


def check_price(asset: str, price: Decimal) -> Decimal:
    """Return ``price`` if usable, else raise :class:`DataError` naming asset and value."""
    if not price.is_finite() or price <= 0:
        raise DataError(
            f"price of {asset} is {price}: a price must be a finite number > 0; "
            "check the data source or the exchange's ticker for this asset"
        )
    return price


def compute_drift(snapshot: Snapshot, targets: Mapping[str, Decimal]) -> PortfolioDrift:
    """Value every target asset at the snapshot's prices and compare with its target.

    Invariant: the weights sum to 1 when the total is positive (all 0 otherwise).
    """
    quote = snapshot.quote
    prices = snapshot.prices
    rows: list[tuple[str, Decimal, Decimal, Decimal]] = []
    total = ZERO
    for asset in targets:
        if asset != quote and asset not in prices:
            raise DataError(f"no price for {asset}: the snapshot lists {sorted(prices)}")
        price = check_price(asset, snapshot.price(asset))
        amount = snapshot.amount(asset)
        value = amount * price
        rows.append((asset, amount, price, value))
        total += value  # the same left-to-right sum as sum(..., ZERO)
    positive = total > 0
    return PortfolioDrift(
        total_value=total,
        assets=tuple(
            [
                AssetDrift(
                    asset=asset,
                    amount=amount,
                    price=price,
                    value=value,
                    weight=(value / total) if positive else ZERO,
                    target=targets[asset],
                )
                for asset, amount, price, value in rows
            ]
        ),
    )
