"""Hypothesis strategies and helpers shared by the core tests.

Everything here is built from the model's public values only. ``execute`` runs a plan the
way the service does: sells first through the fill model, then the buys re-planned with
``phase="buys"`` on the post-sell balances, then those buys filled.

Profiles: ``core`` (default, quick, derandomised like every property test: see
``tests/conftest.py``) and ``core-thorough`` (random, 1000 examples); ``core-thorough`` is
picked by ``HYPOTHESIS_PROFILE=thorough`` or ``CORE_HYPOTHESIS_PROFILE=core-thorough``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from rebalancer.core.fills import apply_fill, fill_market_order
from rebalancer.core.model import Fill, MarketRules, Side, Snapshot
from rebalancer.core.planner import Plan, PlanPolicy, plan
from rebalancer.core.triggers import Threshold

QUOTE = "USDT"
ASSET_POOL = ("BTC", "ETH", "SOL", "ADA", "DOT", "XRP", "LTC", "BNB")
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

settings.register_profile(
    "core",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "core-thorough", parent=settings.get_profile("core"), max_examples=1000, derandomize=False
)
_THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
CORE = settings.get_profile(
    os.environ.get("CORE_HYPOTHESIS_PROFILE", "core-thorough" if _THOROUGH else "core")
)


def D(x: str | int) -> Decimal:
    return Decimal(x)


# -- numbers -------------------------------------------------------------------------------


def decimals(lo_exp: int, hi_exp: int, digits: int = 6) -> st.SearchStrategy[Decimal]:
    """Positive Decimals ``m * 10**e`` with up to ``digits`` significant digits and ``e`` in
    [lo_exp, hi_exp]: spans many orders of magnitude, which floats-with-bounds do not."""
    return st.builds(
        lambda m, e: Decimal(m).scaleb(e),
        st.integers(1, 10**digits - 1),
        st.integers(lo_exp, hi_exp),
    )


def weights_summing_to_one(n: int, allow_zero: bool = True) -> st.SearchStrategy[list[Decimal]]:
    """``n`` weights in basis points (exact Decimals) whose sum is exactly 1."""
    lo = 0 if allow_zero else 1

    def build(parts: list[int]) -> list[Decimal]:
        total = sum(parts)
        # scale to 10_000 bps, give the remainder to the largest part: sum is exactly 10_000
        bps = [p * 10_000 // total for p in parts]
        bps[parts.index(max(parts))] += 10_000 - sum(bps)
        return [Decimal(b) / 10_000 for b in bps]

    return (
        st.lists(st.integers(lo, 1000), min_size=n, max_size=n)
        .filter(lambda p: sum(p) > 0)
        .map(build)
    )


# -- markets and portfolios ------------------------------------------------------------------


@st.composite
def market_rules(draw: st.DrawFn, asset: str, price: Decimal) -> MarketRules:
    """Realistic random rules: step 1e-5..1 (or none), minimums, taker fee 0..0.5 %."""
    step = draw(st.sampled_from([None, D("0.00001"), D("0.0001"), D("0.001"), D("0.01"), D(1)]))
    min_amount = D(0)
    if step is not None and draw(st.booleans()):
        min_amount = step * draw(st.integers(1, 10))
    min_notional = draw(st.sampled_from([D(0), D(1), D(5), D(10)]))
    fee = Decimal(draw(st.integers(0, 50))) / 10_000
    return MarketRules(
        symbol=f"{asset}/{QUOTE}",
        base=asset,
        quote=QUOTE,
        amount_step=step,
        min_amount=min_amount,
        min_notional=min_notional,
        taker_fee=fee,
    )


def free_market(asset: str, fee: Decimal = D(0)) -> MarketRules:
    return MarketRules(f"{asset}/{QUOTE}", asset, QUOTE, None, D(0), D(0), None, fee)


@dataclass(frozen=True)
class Case:
    """A snapshot, targets summing to 1 (quote included) and a policy."""

    snapshot: Snapshot
    targets: Mapping[str, Decimal]
    policy: PlanPolicy
    threshold: Threshold | None = None

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(a for a in self.targets if a != QUOTE)


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    constrained: bool = True,
    fees: bool = True,
    slippage: bool = True,
    min_trade: bool = True,
    unmanaged: bool = False,
) -> Case:
    """A random portfolio of 2-8 assets plus USDT, random targets and random rules.

    Amounts 1e-6..1e6 (some zero), prices 1e-4..1e5, so values span ~1e-10..1e11 quote.
    With ``slippage``, some snapshots also carry bids/asks up to 0.5 % off the valuation
    price, and the policy a slippage allowance of 0..1 % (the fills slip by the same).
    """
    n = draw(st.integers(2, 8))
    assets = draw(st.permutations(ASSET_POOL))[:n]
    prices = {a: draw(decimals(-4, 4)) for a in assets}
    balances: dict[str, Decimal] = {}
    for a in assets:
        if draw(st.integers(0, 5)) > 0:
            balances[a] = draw(decimals(-6, 5))
    balances[QUOTE] = draw(st.one_of(st.just(D(0)), decimals(-2, 6)))
    w = draw(weights_summing_to_one(n + 1))
    targets = dict(zip((*assets, QUOTE), w, strict=True))
    markets: dict[str, MarketRules] = {}
    for a in assets:
        if constrained:
            rules = draw(market_rules(a, prices[a]))
            if not fees:
                rules = MarketRules(
                    rules.symbol, a, QUOTE, rules.amount_step, rules.min_amount, rules.min_notional
                )
        else:
            fee = Decimal(draw(st.integers(0, 50))) / 10_000 if fees else D(0)
            rules = free_market(a, fee)
        markets[a] = rules
    if unmanaged:
        # one or two held assets outside the targets, priced and tradable
        for extra in draw(st.lists(st.sampled_from(["DOGE", "TRX"]), min_size=1, unique=True)):
            prices[extra] = draw(decimals(-3, 2))
            balances[extra] = draw(decimals(-2, 5))
            markets[extra] = (
                draw(market_rules(extra, prices[extra])) if constrained else free_market(extra)
            )
    bids: dict[str, Decimal] = {}
    asks: dict[str, Decimal] = {}
    if slippage and draw(st.booleans()):
        # executable prices around the valuation price: a spread of up to 0.5 % each side
        for a in assets:
            half = Decimal(draw(st.integers(0, 50))) / 10_000
            bids[a], asks[a] = prices[a] * (1 - half), prices[a] * (1 + half)
    slip = Decimal(draw(st.integers(0, 100))) / 10_000 if slippage else D(0)
    mt = draw(st.sampled_from([D(0), D(1), D(10), D(25)])) if min_trade else D(0)
    policy = PlanPolicy(
        min_trade=mt,
        slippage=slip,
        unmanaged=draw(st.sampled_from(["ignore", "sell"])) if unmanaged else "ignore",
    )
    snap = Snapshot(QUOTE, balances, prices, markets, T0, bids, asks)
    return Case(snap, targets, policy)


# -- running a plan like the service does ----------------------------------------------------


@dataclass
class Execution:
    plan: Plan
    buy_plan: Plan
    after_sells: Snapshot
    final: Snapshot
    fills: list[Fill] = field(default_factory=list)


def with_balances(snapshot: Snapshot, balances: Mapping[str, Decimal]) -> Snapshot:
    return Snapshot(
        snapshot.quote,
        dict(balances),
        snapshot.prices,
        snapshot.markets,
        snapshot.taken_at,
        snapshot.bids,
        snapshot.asks,
    )


def _fill_all(
    snapshot: Snapshot, plan_: Plan, side: Side, slippage: Decimal
) -> tuple[dict[str, Decimal], list[Fill]]:
    balances = dict(snapshot.balances)
    fills = []
    orders = plan_.sells if side is Side.SELL else plan_.buys
    for order in orders:
        rules = snapshot.markets[order.asset]
        fill = fill_market_order(
            order,
            rules,
            snapshot.sell_price(order.asset),
            snapshot.buy_price(order.asset),
            slippage,
            balances,
        )
        balances = apply_fill(balances, fill, snapshot.quote)
        fills.append(fill)
    return balances, fills


def execute(case: Case) -> Execution:
    """Plan, fill the sells, re-plan the buys on the post-sell snapshot, fill the buys."""
    snap, policy = case.snapshot, case.policy
    first = plan(snap, case.targets, policy, case.threshold)
    sold, sell_fills = _fill_all(snap, first, Side.SELL, policy.slippage)
    after_sells = with_balances(snap, sold)
    second = plan(after_sells, case.targets, policy, case.threshold, phase="buys")
    bought, buy_fills = _fill_all(after_sells, second, Side.BUY, policy.slippage)
    return Execution(
        first, second, after_sells, with_balances(snap, bought), sell_fills + buy_fills
    )


def value(snapshot: Snapshot) -> Decimal:
    """Total worth at valuation prices of every priced holding (the quote at 1)."""
    total = D(0)
    for a, amount in snapshot.balances.items():
        if a == snapshot.quote or a in snapshot.prices:
            total += amount * snapshot.price(a)
    return total


def costs_of(fills: list[Fill], snapshot: Snapshot) -> tuple[Decimal, Decimal]:
    """(fees, slippage cost) of ``fills`` in quote units at the snapshot's valuation prices."""
    fees = slip = D(0)
    for f in fills:
        p = snapshot.price(f.asset)
        fees += f.fee * snapshot.price(f.fee_asset)
        slip += f.amount * (p - f.price) if f.side is Side.SELL else f.amount * (f.price - p)
    return fees, slip
