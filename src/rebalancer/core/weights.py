"""Desired weights: back to target, or only back to the band edge.

``band_edge`` clips every weight into its band ``[max(0, target - w), target + w]`` (``w``
from :meth:`Threshold.band_width`) and then restores a sum of 1:

1. the quote (the cash leg, when it is a target) absorbs the difference first, as far as its
   own band allows -- so assets inside their band do not move and do not trade;
2. whatever is left is taken from the weights on the side of the excess, each moved towards
   its target in proportion to its distance from it (never past it, so it stays in band).

Every result lies inside its band and the weights sum to exactly 1 in exact arithmetic: the
last Decimal rounding residue is put on one weight with room for it (one moved in step 2,
else the quote, else one it moves towards its target), computed without rounding (so that
weight may carry more digits than the context's precision).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from typing import Literal

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.model import ONE, ZERO
from rebalancer.core.triggers import Threshold

Style = Literal["target", "band_edge"]

_EXACT_PREC = 400  # digits for exact sums and residues of a few 28-digit weights


def desired_weights(
    drift: PortfolioDrift,
    style: Style,
    threshold: Threshold | None,
    quote: str | None = None,
) -> dict[str, Decimal]:
    """Weights to trade towards (asset -> fraction of the managed total, summing to 1).

    ``style="target"`` (or no threshold, or an empty portfolio): the targets themselves.
    ``style="band_edge"``: each weight only back to its band edge; ``quote`` names the cash
    leg that absorbs the difference first (see the module docstring).
    """
    targets = {a.asset: a.target for a in drift.assets}
    if style == "target" or threshold is None or drift.total_value <= 0:
        return targets
    bands: dict[str, tuple[Decimal, Decimal]] = {}
    out: dict[str, Decimal] = {}
    for a in drift.assets:
        width = threshold.band_width(a.target)
        bands[a.asset] = (max(ZERO, a.target - width), a.target + width)
        out[a.asset] = _clamp(a.weight, bands[a.asset])
    with localcontext() as ctx:  # exact: a quote that fits exactly at its band edge fits
        ctx.prec = _EXACT_PREC
        excess = sum(out.values(), ZERO) - ONE
        if excess != 0 and quote in out:
            q = out[quote]
            wanted = q - excess
            out[quote] = _clamp(wanted, bands[quote])
            excess = ZERO if out[quote] == wanted else excess - (q - out[quote])
    moved: list[str] = []
    if excess != 0:
        gaps = {a: w - targets[a] for a, w in out.items() if (w - targets[a]) * excess > 0}
        room = sum(gaps.values(), ZERO)
        if room != 0:
            k = min(ONE, excess / room)
            for asset, gap in gaps.items():
                # a moved weight stays between where it was clipped and its target, also
                # when the rounding residue is settled on it below
                clipped, target = out[asset], targets[asset]
                bands[asset] = (min(clipped, target), max(clipped, target))
                out[asset] = _clamp(clipped - k * gap, bands[asset])
            moved = list(gaps)
    return _settle(out, targets, bands, [*moved, quote])


def _clamp(x: Decimal, band: tuple[Decimal, Decimal]) -> Decimal:
    return min(max(x, band[0]), band[1])


def _settle(
    out: dict[str, Decimal],
    targets: Mapping[str, Decimal],
    bands: Mapping[str, tuple[Decimal, Decimal]],
    first: list[str | None],
) -> dict[str, Decimal]:
    """Put the rounding residue ``1 - sum`` (exact) on one weight with room for it in its
    band: the ones in ``first``, else one the residue moves towards its target."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_PREC
        residue = ONE - sum(out.values(), ZERO)
        if residue == 0:
            return out
        towards = [a for a in out if (targets[a] - out[a]) * residue > 0]
        for a in [*first, *towards, *out]:
            if a is not None and a in out:
                lo, hi = bands[a]
                if lo <= out[a] + residue <= hi:
                    out[a] = out[a] + residue
                    break
    return out
