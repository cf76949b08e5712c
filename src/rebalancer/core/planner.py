"""The planner: desired weights -> orders the exchange will accept.

Money arithmetic (all Decimal, quote units):

* every leg has a cost rate per side, from its fee and the gap between the valuation price
  ``p`` and the executable price with the slippage allowance: a sell of value ``s`` yields
  ``s * (1 - k_sell)``; a buy spending ``c`` adds value ``c * (1 - k_buy)``;
* the total after trading ``V'`` solves ``V' = V - sum(k_sell * s_i) - sum(k_buy * c_i)``
  with ``s_i = v_i - w_i V'`` and ``c_i = (w_i V' - v_i) / (1 - k_buy)`` -- linear in V' once
  the sides are known, so it is solved exactly (sides re-checked until stable);
* sells come first, truncated to the market's step and capped at the balance; buys are sized
  from the free quote plus what the sells really yield, minus the quote's own target, and
  scaled down together when that cash is short. Cash never goes negative: buys spend at most
  the budget less a relative ``1e-18`` (room for 28-digit Decimal rounding in the sums), and
  amounts are divided out rounding down, so ``amount * price`` never exceeds the spend.

A leg that cannot trade is kept as a :class:`SkippedLeg` with its reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Literal

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.model import ONE, ZERO, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.rules import truncate, violation
from rebalancer.core.triggers import Threshold
from rebalancer.core.weights import Style, desired_weights

ROUNDING_MARGIN = Decimal("1e-18")
"""Relative share of the buy budget left unspent to absorb Decimal rounding."""


@dataclass(frozen=True)
class PlanPolicy:
    """``min_trade`` in quote units; ``slippage`` a fraction added against us to prices."""

    min_trade: Decimal = Decimal(10)
    slippage: Decimal = ZERO
    style: Style = "target"
    unmanaged: Literal["ignore", "sell"] = "ignore"


@dataclass(frozen=True)
class SkippedLeg:
    """A trade the plan wanted but cannot make: ``value`` in quote, ``reason`` a code."""

    asset: str
    side: Side
    amount: Decimal
    value: Decimal
    reason: str
    detail: str


@dataclass(frozen=True)
class Plan:
    """Orders in sending order (sells, then buys) and every skipped leg with its reason."""

    sells: tuple[OrderRequest, ...]
    buys: tuple[OrderRequest, ...]
    skipped: tuple[SkippedLeg, ...]
    drift: PortfolioDrift
    weights: Mapping[str, Decimal]
    total_after: Decimal
    buy_scale: Decimal = ONE
    notes: tuple[str, ...] = field(default=())

    @property
    def orders(self) -> tuple[OrderRequest, ...]:
        return self.sells + self.buys

    @property
    def traded_value(self) -> Decimal:
        return sum((o.expected_cost for o in self.orders), ZERO)

    @property
    def expected_fees(self) -> Decimal:
        return sum((o.expected_fee for o in self.orders), ZERO)


@dataclass(frozen=True)
class _Leg:
    asset: str
    value: Decimal
    weight: Decimal
    price: Decimal
    sell_price: Decimal
    buy_price: Decimal
    rules: MarketRules

    @property
    def k_sell(self) -> Decimal:
        return ONE - (self.sell_price / self.price) * (ONE - self.rules.taker_fee)

    @property
    def k_buy(self) -> Decimal:
        return ONE - (self.price / self.buy_price) * (ONE - self.rules.taker_fee)


def effective_targets(
    snapshot: Snapshot, targets: Mapping[str, Decimal], policy: PlanPolicy
) -> dict[str, Decimal]:
    """The targets, plus target 0 for held, priced, tradable assets when selling unmanaged."""
    out = dict(targets)
    if policy.unmanaged == "sell":
        for asset, amount in sorted(snapshot.balances.items()):
            if (
                asset not in out
                and asset != snapshot.quote
                and amount > 0
                and asset in snapshot.prices
                and asset in snapshot.markets
            ):
                out[asset] = ZERO
    return out


def solve_total_after(legs: list[_Leg], total: Decimal) -> tuple[Decimal, dict[str, int]]:
    """Exact post-trade total ``V'`` and each leg's side (+1 buy, -1 sell, 0 none)."""
    after = total
    sides: dict[str, int] = {}
    for _ in range(len(legs) + 2):
        new_sides = {leg.asset: _sign(leg.weight * after - leg.value) for leg in legs}
        num, den = total, ONE
        for leg in legs:
            s = new_sides[leg.asset]
            if s < 0:
                num -= leg.k_sell * leg.value
                den -= leg.k_sell * leg.weight
            elif s > 0:
                g = leg.k_buy / (ONE - leg.k_buy)
                num += g * leg.value
                den += g * leg.weight
        after = num / den
        if new_sides == sides:
            break
        sides = new_sides
    return after, sides


def _divide_down(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` rounded towards zero, so ``(a / b) * b`` never exceeds ``a``."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_DOWN
        return a / b


def _sign(x: Decimal) -> int:
    return (x > 0) - (x < 0)


def plan(
    snapshot: Snapshot,
    targets: Mapping[str, Decimal],
    policy: PlanPolicy,
    threshold: Threshold | None = None,
    phase: Literal["all", "buys"] = "all",
) -> Plan:
    """Plan a rebalance of ``snapshot`` towards ``targets``.

    ``phase="buys"`` plans only the buys, from the free quote as it is now (used after the
    sells settled, so buys are sized from the cash the sells really produced).
    """
    eff = effective_targets(snapshot, targets, policy)
    drift = compute_drift(snapshot, eff)
    weights = desired_weights(drift, policy.style, threshold)
    skipped: list[SkippedLeg] = []
    legs: list[_Leg] = []
    for a in drift.assets:
        if a.asset == snapshot.quote:
            continue
        rules = snapshot.markets.get(a.asset)
        if rules is None:
            skipped.append(
                SkippedLeg(
                    a.asset,
                    Side.BUY if weights[a.asset] > a.weight else Side.SELL,
                    ZERO,
                    ZERO,
                    "no_market",
                    f"no {a.asset}/{snapshot.quote} market",
                )
            )
            continue
        sp = snapshot.sell_price(a.asset) * (ONE - policy.slippage)
        bp = snapshot.buy_price(a.asset) * (ONE + policy.slippage)
        legs.append(_Leg(a.asset, a.value, weights[a.asset], a.price, sp, bp, rules))
    if drift.total_value <= 0:
        return Plan((), (), tuple(skipped), drift, weights, ZERO, ONE, ("portfolio is empty",))
    after, sides = solve_total_after(legs, drift.total_value)
    sells: list[OrderRequest] = []
    if phase == "all":
        sells = _plan_sells(snapshot, legs, sides, after, policy, skipped)
    proceeds = sum((o.expected_cost - o.expected_fee for o in sells), ZERO)
    reserve = weights.get(snapshot.quote, ZERO) * after
    budget = max(ZERO, snapshot.amount(snapshot.quote) + proceeds - reserve)
    buys, scale = _plan_buys(legs, sides, after, budget, policy, skipped)
    order = {a.asset: i for i, a in enumerate(drift.assets)}
    skipped.sort(key=lambda s: order.get(s.asset, len(order)))
    return Plan(tuple(sells), tuple(buys), tuple(skipped), drift, weights, after, scale)


def _order(leg: _Leg, side: Side, amount: Decimal, price: Decimal) -> OrderRequest:
    cost = amount * price
    return OrderRequest(
        leg.asset, leg.rules.symbol, side, amount, price, cost, cost * leg.rules.taker_fee
    )


def _check(
    leg: _Leg, side: Side, amount: Decimal, price: Decimal, wanted: Decimal, policy: PlanPolicy
) -> SkippedLeg | None:
    problem = violation(leg.rules, amount, price)
    if problem is None and amount * price < policy.min_trade:
        problem = (
            "below_min_trade",
            f"value {amount * price:.2f} < min_trade {policy.min_trade} {leg.rules.quote}",
        )
    if problem is None:
        return None
    return SkippedLeg(leg.asset, side, amount, wanted, problem[0], problem[1])


def _plan_sells(
    snapshot: Snapshot,
    legs: list[_Leg],
    sides: dict[str, int],
    after: Decimal,
    policy: PlanPolicy,
    skipped: list[SkippedLeg],
) -> list[OrderRequest]:
    sells: list[OrderRequest] = []
    for leg in legs:
        if sides[leg.asset] >= 0:
            continue
        held = snapshot.amount(leg.asset)
        want = leg.value - leg.weight * after
        raw = held if leg.weight == 0 else min(held, want / leg.price)
        amount = truncate(raw, leg.rules.amount_step)
        problem = _check(leg, Side.SELL, amount, leg.sell_price, want, policy)
        if problem:
            skipped.append(problem)
        else:
            sells.append(_order(leg, Side.SELL, amount, leg.sell_price))
    return sorted(sells, key=lambda o: (-o.expected_cost, o.asset))


def _plan_buys(
    legs: list[_Leg],
    sides: dict[str, int],
    after: Decimal,
    budget: Decimal,
    policy: PlanPolicy,
    skipped: list[SkippedLeg],
) -> tuple[list[OrderRequest], Decimal]:
    wanted = {
        leg.asset: (leg.weight * after - leg.value) / (ONE - leg.k_buy)
        for leg in legs
        if sides[leg.asset] > 0
    }
    need = sum(wanted.values(), ZERO)
    spendable = budget * (ONE - ROUNDING_MARGIN)
    scale = min(ONE, spendable / need) if need > 0 else ONE
    buys: list[OrderRequest] = []
    for leg in legs:
        if leg.asset not in wanted:
            continue
        spend = wanted[leg.asset] * scale
        amount = truncate(_divide_down(spend, leg.buy_price), leg.rules.amount_step)
        problem = _check(leg, Side.BUY, amount, leg.buy_price, wanted[leg.asset], policy)
        if problem:
            if scale < 1:
                problem = SkippedLeg(
                    problem.asset,
                    problem.side,
                    problem.amount,
                    problem.value,
                    problem.reason,
                    f"{problem.detail} (cash short: buys scaled to {scale:.4f})",
                )
            skipped.append(problem)
        else:
            buys.append(_order(leg, Side.BUY, amount, leg.buy_price))
    return sorted(buys, key=lambda o: (-o.expected_cost, o.asset)), scale
