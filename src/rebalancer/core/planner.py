"""The planner: desired weights -> orders the exchange will accept.

Money arithmetic (all Decimal, quote units):

* every leg has a cost rate per side, from its fee and the gap between the valuation price
  ``p`` and the executable price with the slippage allowance: a sell of value ``s`` yields
  ``s * (1 - k_sell)``; a buy spending ``c`` adds value ``c * (1 - k_buy)``;
* the total after trading ``V'`` solves ``V' = V - sum(k_sell * s_i) - sum(k_buy * c_i)``
  with ``s_i = v_i - w_i V'`` and ``c_i = (w_i V' - v_i) / (1 - k_buy)`` -- linear in V' once
  the sides are known, so it is solved exactly. Sides come from the current weights (only
  the differences trade); a leg that the costs would push across its target is held, and
  a difference below ``NOISE`` (1e-20) of the total is Decimal rounding, not a trade;
* sells come first, truncated to the market's step and capped at the balance; buys are sized
  from the free quote plus what the sells really yield, minus the quote's own target, and
  scaled down together when that cash is short. Cash never goes negative: the buy sizing
  rounds every step against spending (need up; scale, spend and amount down), so the sum of
  ``amount * price`` over the buys never exceeds the budget, even in the last Decimal digit;
* the venue decides who pays a buy's fee (:mod:`rebalancer.core.venue`): on a market with
  ``fee_in_quote`` (Kraken ``fciq``, Coinbase) the fee is charged in the quote on top of
  ``amount * price``, so a buy spending ``c`` adds value ``c * (p / buy_price) / (1 + fee)``
  and its amount is ``c / (buy_price * (1 + fee))``; the fee, rounded up to the market's
  ``cost_step``, is reserved from the same budget, so ``amount * price + fee`` of the buys
  never exceeds it either. Elsewhere the fee comes out of the asset received.

A leg that cannot trade is kept as a :class:`SkippedLeg` with its reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from typing import Literal

from rebalancer.core.drift import PortfolioDrift, compute_drift
from rebalancer.core.model import ONE, ZERO, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.rules import truncate, violation
from rebalancer.core.triggers import Threshold
from rebalancer.core.venue import fee_reserve
from rebalancer.core.weights import Style, desired_weights


@dataclass(frozen=True)
class PlanPolicy:
    """``min_trade`` in quote units; ``slippage`` a fraction added against us to prices.

    ``cost_aware``: hold a leg whose expected cost exceeds the tracking error it removes
    (reason ``cost_exceeds_benefit``, see :func:`cost_benefit`), ``risk_aversion`` the
    weight of the tracking error against the cost. ``cash_flows = "spread"``: a deposit
    or withdrawal of the quote is traded on its own (see :mod:`rebalancer.core.flows`).
    """

    min_trade: Decimal = Decimal(10)
    slippage: Decimal = ZERO
    style: Style = "target"
    unmanaged: Literal["ignore", "sell"] = "ignore"
    cost_aware: bool = False
    risk_aversion: Decimal = ONE
    cash_flows: Literal["ignore", "spread"] = "ignore"


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
        if self.rules.fee_in_quote:  # the fee is paid on top, in the quote
            return ONE - (self.price / self.buy_price) / (ONE + self.rules.taker_fee)
        return ONE - (self.price / self.buy_price) * (ONE - self.rules.taker_fee)

    def buy_amount(self, spend: Decimal) -> Decimal:
        """The base amount a buy spending ``spend`` quote (fee included) asks for, before
        the step: rounded down (called in a ROUND_DOWN context)."""
        if not self.rules.fee_in_quote:
            return spend / self.buy_price
        with localcontext() as ctx:
            ctx.rounding = ROUND_UP
            unit = self.buy_price * (ONE + self.rules.taker_fee)
        return spend / unit

    def fits(self, amount: Decimal, spend: Decimal) -> Decimal:
        """``amount`` (on the market's step) lowered until its cost plus the fee reserved
        in the quote fits ``spend`` (only fee-in-quote markets need it): the excess over
        ``spend`` is taken off in whole steps (or exactly, without a step), rounded up."""
        if not self.rules.fee_in_quote:
            return amount
        step = self.rules.amount_step
        unit = self.buy_price * (ONE + self.rules.taker_fee)
        for _ in range(4):
            excess = _quote_need(self.rules, amount, self.buy_price) - spend
            if amount <= 0 or excess <= 0:
                return max(amount, ZERO)
            cut = excess / unit + (self.rules.cost_step or ZERO) / unit
            if step:
                cut = (cut / step).to_integral_value(rounding=ROUND_UP) * step
            amount -= cut
        return ZERO


def _quote_need(rules: MarketRules, amount: Decimal, price: Decimal) -> Decimal:
    """Quote a buy of ``amount`` at ``price`` takes on a fee-in-quote market."""
    cost = amount * price
    return cost + fee_reserve(rules, cost, rules.taker_fee)


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


NOISE = Decimal("1e-20")
"""Differences below this share of the total are Decimal rounding noise, not trades."""


def solve_total_after(legs: list[_Leg], total: Decimal) -> tuple[Decimal, dict[str, int]]:
    """Exact post-trade total ``V'`` and each leg's side (+1 buy, -1 sell, 0 none).

    Only the differences trade: a leg's side is where its current weight lies from its
    desired weight (above: sell, below: buy). A leg whose value is on the other side of
    ``w_i V'`` than of ``w_i V`` -- an asset a hair under target that only the costs of
    the other trades would make "over" -- is held (side 0): selling an underweight asset
    (or buying an overweight one) to pay for other legs' costs would only add costs.
    Legs only ever move from their side to 0, so the loop ends; ``V'`` matches the sides.
    """
    noise = abs(total) * NOISE
    pre = {leg.asset: _sign(leg.weight * total - leg.value, noise) for leg in legs}
    sides = dict(pre)
    after = _total_after(legs, total, sides)
    for _ in range(len(legs)):
        held = {
            leg.asset
            for leg in legs
            if sides[leg.asset] != 0
            and _sign(leg.weight * after - leg.value, noise) != sides[leg.asset]
        }
        if not held:
            break
        sides.update(dict.fromkeys(held, 0))
        after = _total_after(legs, total, sides)
    return after, sides


def _total_after(legs: list[_Leg], total: Decimal, sides: Mapping[str, int]) -> Decimal:
    """``V'`` for known sides, with one division only (so short inputs give exact results).

    With ``u_b = 1 - k_buy`` of each buy, ``P`` their product and ``P_b = P / u_b`` (a
    product, not a division): ``V' (P - P sum_sells k w + sum_buys k P_b w) = P (V -
    sum_sells k v) + sum_buys k P_b v``.
    """
    buys = [leg for leg in legs if sides[leg.asset] > 0]
    sells = [leg for leg in legs if sides[leg.asset] < 0]
    # each k computed once (the same Decimal operations as reading the property each time)
    k_buys = [leg.k_buy for leg in buys]
    u_buys = [ONE - k for k in k_buys]
    k_sells = [leg.k_sell for leg in sells]
    prod = ONE
    for u in u_buys:
        prod *= u
    num = total - sum((k * leg.value for k, leg in zip(k_sells, sells, strict=True)), ZERO)
    den = ONE - sum((k * leg.weight for k, leg in zip(k_sells, sells, strict=True)), ZERO)
    num, den = prod * num, prod * den
    for j, leg in enumerate(buys):
        others = ONE
        for m, u in enumerate(u_buys):
            if m != j:
                others *= u
        num += k_buys[j] * others * leg.value
        den += k_buys[j] * others * leg.weight
    return num / den


def _sign(x: Decimal, noise: Decimal = ZERO) -> int:
    return (x > noise) - (x < -noise)


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
    weights = desired_weights(drift, policy.style, threshold, snapshot.quote)
    skipped: list[SkippedLeg] = []
    legs: list[_Leg] = []
    for a in drift.assets:
        if a.asset == snapshot.quote:
            continue
        rules = snapshot.markets.get(a.asset)
        if rules is None:
            gap = weights[a.asset] * drift.total_value - a.value
            if abs(gap) > drift.total_value * NOISE:  # only a leg that should trade
                side = Side.BUY if gap > 0 else Side.SELL
                skipped.append(
                    SkippedLeg(
                        a.asset,
                        side,
                        ZERO,
                        abs(gap),
                        "no_market",
                        f"no {a.asset}/{snapshot.quote} market to {side.value} "
                        f"{abs(gap):.2f} {snapshot.quote} of {a.asset}",
                    )
                )
            continue
        sp = snapshot.sell_price(a.asset) * (ONE - policy.slippage)
        bp = snapshot.buy_price(a.asset) * (ONE + policy.slippage)
        legs.append(_Leg(a.asset, a.value, weights[a.asset], a.price, sp, bp, rules))
    if drift.total_value <= 0:
        return Plan((), (), tuple(skipped), drift, weights, ZERO, ONE, ("portfolio is empty",))
    if policy.cost_aware:
        legs, weights = _hold_costly_legs(legs, weights, drift, policy, skipped)
    after, sides = solve_total_after(legs, drift.total_value)
    sells: list[OrderRequest] = []
    if phase == "all":
        sells = _plan_sells(snapshot, legs, sides, after, policy, skipped)
    budget = _buy_budget(
        snapshot.amount(snapshot.quote), sells, weights.get(snapshot.quote, ZERO) * after
    )
    buys, scale = _plan_buys(legs, sides, after, budget, policy, skipped)
    order = {a.asset: i for i, a in enumerate(drift.assets)}
    skipped.sort(key=lambda s: order.get(s.asset, len(order)))
    return Plan(tuple(sells), tuple(buys), tuple(skipped), drift, weights, after, scale)


def cost_benefit(
    leg_value: Decimal,
    weight: Decimal,
    desired: Decimal,
    target: Decimal,
    total: Decimal,
    k_buy: Decimal,
    k_sell: Decimal,
    risk_aversion: Decimal,
) -> tuple[Decimal, Decimal]:
    """(expected cost, tracking-error benefit) in quote units of trading one leg.

    The leg trades ``g = desired * total - leg_value``: a sell costs ``k_sell * |g|`` (fee,
    spread and slippage), a buy ``k_buy * g / (1 - k_buy)`` (the spend that adds ``g`` of
    value). The benefit is the squared-drift reduction valued in quote units and weighted
    by the risk aversion: ``risk_aversion * total * ((weight - target)**2 - (desired -
    target)**2)``. Back to target, a leg is held when ``|drift| < k / risk_aversion``.
    """
    gap = desired * total - leg_value
    cost = k_sell * -gap if gap < 0 else k_buy * gap / (ONE - k_buy)
    benefit = risk_aversion * total * ((weight - target) ** 2 - (desired - target) ** 2)
    return cost, benefit


def _hold_costly_legs(
    legs: list[_Leg],
    weights: dict[str, Decimal],
    drift: PortfolioDrift,
    policy: PlanPolicy,
    skipped: list[SkippedLeg],
) -> tuple[list[_Leg], dict[str, Decimal]]:
    """Legs (and weights) with each leg not worth its cost held at its current weight.

    A held leg does not trade; the quote absorbs the difference (a held buy leaves its cash
    in the quote, a held sell brings no proceeds, so the buys are scaled to the cash).
    """
    total = drift.total_value
    by_asset = drift.by_asset()
    out_legs: list[_Leg] = []
    out_weights = dict(weights)
    for leg in legs:
        a = by_asset[leg.asset]
        gap = leg.weight * total - leg.value
        if abs(gap) <= total * NOISE:
            out_legs.append(leg)
            continue
        cost, benefit = cost_benefit(
            leg.value,
            a.weight,
            leg.weight,
            a.target,
            total,
            leg.k_buy,
            leg.k_sell,
            policy.risk_aversion,
        )
        if cost <= benefit:
            out_legs.append(leg)
            continue
        side = Side.BUY if gap > 0 else Side.SELL
        skipped.append(
            SkippedLeg(
                leg.asset,
                side,
                abs(gap) / leg.price,
                abs(gap),
                "cost_exceeds_benefit",
                f"{side.value} {abs(gap):.2f} {leg.rules.quote} of {leg.asset}: expected cost "
                f"{cost:.4f} > tracking-error benefit {benefit:.4f} (drift "
                f"{float(a.weight - a.target) * 100:.2f}%)",
            )
        )
        held = replace(leg, weight=a.weight)
        out_legs.append(held)
        out_weights[leg.asset] = a.weight
    return out_legs, out_weights


def _buy_budget(cash: Decimal, sells: list[OrderRequest], reserve: Decimal) -> Decimal:
    """Quote the buys may spend: free cash plus what the sells yield net of their fees,
    less the quote's own target ``reserve``; rounded down, never below 0."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_DOWN
        proceeds = sum((o.expected_cost - o.expected_fee for o in sells), ZERO)
        return max(ZERO, cash + proceeds - reserve)


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


def _passes_unscaled(leg: _Leg, want: Decimal, policy: PlanPolicy) -> bool:
    """Whether the buy would have been placed had cash not been short."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_DOWN
        raw = leg.buy_amount(want)
    amount = leg.fits(truncate(raw, leg.rules.amount_step), want)
    return _check(leg, Side.BUY, amount, leg.buy_price, want, policy) is None


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
    with localcontext() as ctx:  # round against spending: need up; scale, spend, amount down
        ctx.rounding = ROUND_UP
        need = sum(wanted.values(), ZERO)
        ctx.rounding = ROUND_DOWN
        scale = min(ONE, budget / need) if need > 0 else ONE
        spends = {asset: w * scale for asset, w in wanted.items()}
        by_asset = {leg.asset: leg for leg in legs}
        amounts = {asset: by_asset[asset].buy_amount(spend) for asset, spend in spends.items()}
    buys: list[OrderRequest] = []
    for leg in legs:
        if leg.asset not in wanted:
            continue
        amount = leg.fits(truncate(amounts[leg.asset], leg.rules.amount_step), spends[leg.asset])
        problem = _check(leg, Side.BUY, amount, leg.buy_price, wanted[leg.asset], policy)
        if problem:
            if scale < 1 and _passes_unscaled(leg, wanted[leg.asset], policy):
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
