"""Volatility-scaled bands: a threshold whose band widens when prices move more.

Realised volatility is an EWMA of squared log returns (zero mean, as RiskMetrics) over a
fixed window of the most recent returns, weights ``lam**j`` (``j`` = 0 for the newest
return, ``lam = 0.5 ** (1 / half_life)``) normalised to sum to 1::

    sigma**2 = sum(lam**j * r[t-j]**2 for j < m) / sum(lam**j for j < m)

with ``m = min(window, returns available)``. The closes come from
``TriggerContext.history`` (closes per asset, oldest first, the last one the decision
bar's): the trigger never sees a later price, so a backtest has no look-ahead.

The band half-width (absolute, in weight units) is
``clamp(base_band * sigma / reference_vol, floor, cap)``: ``base_band`` when the
volatility is at ``reference_vol`` (per bar of the history), wider when it is higher.
``per_asset``: each asset's band from its own volatility and the quote's (cash) leg from the
portfolio's; otherwise every leg uses the portfolio's volatility, where the portfolio's
return is the target-weighted sum of the assets' log returns. With fewer than two closes
(no return yet) a band is ``clamp(base_band, floor, cap)``.

The volatility is a statistical estimate and is computed in floats (stdlib ``math``); the
band is then compared in Decimal like :class:`~rebalancer.core.triggers.Threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rebalancer.core.drift import AssetDrift, PortfolioDrift
from rebalancer.core.triggers import AllOf, AnyOf, Decision, Trigger, TriggerContext, _pct


def ewma_vol(closes: Sequence[float], half_life: float, window: int) -> float | None:
    """EWMA volatility (per bar) of the log returns of ``closes``; None without a return."""
    if len(closes) < 2:
        return None
    lam = 0.5 ** (1.0 / half_life)
    returns = [math.log(closes[i] / closes[i - 1]) for i in range(1, len(closes))]
    return weighted_vol(returns, lam, window)


def weighted_vol(returns: Sequence[float], lam: float, window: int) -> float | None:
    """``sqrt`` of the normalised ``lam``-weighted mean of the last ``window`` squared returns."""
    recent = list(returns[-window:])
    if not recent:
        return None
    num = den = 0.0
    for j, r in enumerate(reversed(recent)):
        w = lam**j
        num += w * r * r
        den += w
    return math.sqrt(num / den)


def default_window(half_life: float) -> int:
    """Five half-lives (the dropped tail weighs ~3 %)."""
    return max(2, math.ceil(5 * half_life))


@dataclass(frozen=True)
class VolScaledThreshold:
    """Fire when an asset's drift leaves its volatility-scaled band (see the module doc).

    ``reference_vol`` is per bar of the price history (e.g. 0.03 for daily crypto closes);
    ``window`` 0 means :func:`default_window`. A target asset held at zero is always out.
    """

    half_life: float = 20.0
    base_band: Decimal = Decimal("0.05")
    floor: Decimal = Decimal("0.02")
    cap: Decimal = Decimal("0.15")
    reference_vol: float = 0.03
    per_asset: bool = True
    window: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life) and self.half_life > 0):
            raise ValueError(f"half_life must be > 0 bars, got {self.half_life}")
        if not (math.isfinite(self.reference_vol) and self.reference_vol > 0):
            raise ValueError(f"reference_vol must be > 0, got {self.reference_vol}")
        for name in ("base_band", "floor", "cap"):
            v: Decimal = getattr(self, name)
            if not (v.is_finite() and v >= 0):
                raise ValueError(f"VolScaledThreshold {name} must be a number >= 0, got {v}")
        if self.floor > self.cap:
            raise ValueError(f"floor {self.floor} must not exceed cap {self.cap}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0 bars, got {self.window}")

    @property
    def returns_window(self) -> int:
        return self.window or default_window(self.half_life)

    @property
    def history_bars(self) -> int:
        """Closes wanted per asset: one more than the returns window."""
        return self.returns_window + 1

    def band_for(self, vol: float | None) -> Decimal:
        """``clamp(base_band * vol / reference_vol, floor, cap)`` (``base_band`` if None)."""
        raw = self.base_band
        if vol is not None:
            raw = self.base_band * Decimal(repr(vol / self.reference_vol))
        return min(max(raw, self.floor), self.cap)

    def vols(
        self, history: Mapping[str, Sequence[Decimal]] | None, targets: Mapping[str, Decimal]
    ) -> tuple[dict[str, float | None], float | None]:
        """Per-asset volatilities and the portfolio's, from ``history`` (None: unknown)."""
        if not history:
            return {}, None
        lam = 0.5 ** (1.0 / self.half_life)
        rets: dict[str, list[float]] = {}
        for asset, closes in history.items():
            xs = [float(c) for c in closes][-self.history_bars :]
            rets[asset] = [math.log(xs[i] / xs[i - 1]) for i in range(1, len(xs))]
        per = {a: weighted_vol(r, lam, self.returns_window) for a, r in rets.items()}
        weighted = [(float(targets.get(a, 0)), r) for a, r in rets.items()]
        n = min((len(r) for _, r in weighted), default=0)
        port = [sum(w * r[len(r) - n + k] for w, r in weighted) for k in range(n)]
        return per, weighted_vol(port, lam, self.returns_window)

    def bands(self, drift: PortfolioDrift, ctx: TriggerContext) -> dict[str, Decimal]:
        """Band half-width per asset of ``drift`` at this decision."""
        targets = {a.asset: a.target for a in drift.assets}
        per, port = self.vols(ctx.history, targets)
        out: dict[str, Decimal] = {}
        for a in drift.assets:
            vol = per.get(a.asset, port) if self.per_asset else port
            out[a.asset] = self.band_for(vol)
        return out

    def check(self, drift: PortfolioDrift, ctx: TriggerContext) -> Decision:
        bands = self.bands(drift, ctx)

        def is_out(a: AssetDrift) -> bool:
            return (a.target > 0 and a.amount == 0) or abs(a.drift) > bands[a.asset]

        out = [a for a in drift.assets if is_out(a)]
        note = "" if ctx.history else " (no price history: base band)"
        if not out:
            return Decision(False, f"all assets within {self.describe()}{note}")
        parts = [
            f"{a.asset} held at 0"
            if a.target > 0 and a.amount == 0
            else f"{a.asset} drift {_pct(a.drift)} beyond vol band ±{_pct(bands[a.asset])}"
            for a in out
        ]
        return Decision(True, "; ".join(parts) + note, tuple(a.asset for a in out))

    def describe(self) -> str:
        scope = "per asset" if self.per_asset else "portfolio-wide"
        return (
            f"vol-scaled band {_pct(self.base_band)} at vol {self.reference_vol:.2%}/bar "
            f"(half-life {self.half_life:g} bars, {scope}, floor {_pct(self.floor)}, "
            f"cap {_pct(self.cap)})"
        )


def history_bars(trigger: Trigger) -> int:
    """Closes per asset ``trigger`` wants in ``TriggerContext.history`` (0: none)."""
    if isinstance(trigger, VolScaledThreshold):
        return trigger.history_bars
    if isinstance(trigger, AllOf | AnyOf):
        return max((history_bars(p) for p in trigger.parts), default=0)
    return 0
