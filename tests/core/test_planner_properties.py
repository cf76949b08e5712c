"""Property tests of the planner over random portfolios, targets, market rules and costs.

Each plan is executed the way the service executes it (``strategies.execute``): sells through
the fill model, then buys re-planned with ``phase="buys"`` on the post-sell balances.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import assume, given, note
from hypothesis import strategies as st

from rebalancer.core.model import Side, Snapshot
from rebalancer.core.planner import Plan, plan
from rebalancer.core.rules import violation
from rebalancer.core.triggers import Threshold

from .strategies import CORE, QUOTE, Case, cases, costs_of, execute, value, with_balances

SKIP_REASONS = {"dust", "below_min_amount", "below_min_notional", "below_min_trade", "no_market"}


def tol(v: Decimal) -> Decimal:
    """Decimal noise allowance: 28 significant digits leave ~1e-26 relative per operation."""
    return abs(v) * Decimal("1e-20") + Decimal("1e-20")


def managed_value(snapshot: Snapshot, assets: list[str]) -> Decimal:
    return sum((snapshot.amount(a) * snapshot.price(a) for a in assets), Decimal(0))


# -- money ------------------------------------------------------------------------------------


@CORE
@given(cases(unmanaged=False) | cases(unmanaged=True))
def test_value_conserved_except_fees_and_slippage(case: Case) -> None:
    ex = execute(case)
    before, after = value(case.snapshot), value(ex.final)
    fees, slip = costs_of(ex.fills, case.snapshot)
    note(f"before={before} after={after} fees={fees} slip={slip}")
    assert fees >= 0
    assert slip >= 0
    assert abs(after - (before - fees - slip)) <= tol(before)


@CORE
@given(cases(constrained=False, fees=False, slippage=False, min_trade=False))
def test_free_markets_without_costs_land_exactly_on_target(case: Case) -> None:
    assets = list(case.targets)
    assume(managed_value(case.snapshot, assets) > 0)
    ex = execute(case)
    total = managed_value(ex.final, assets)
    assert abs(total - managed_value(case.snapshot, assets)) <= tol(total)
    for a in assets:
        weight = ex.final.amount(a) * ex.final.price(a) / total
        assert abs(weight - case.targets[a]) <= Decimal("1e-9"), a


def leg_slack(case: Case, asset: str) -> Decimal:
    """Most that market rules and min_trade can leave one leg away from its target, in quote.

    A leg is left untraded when its order would be below ``max(min_trade, min_notional)`` in
    value (measured at the executable price, hence ``* price / bid``) or below
    ``min_amount``; and a traded leg misses by less than one ``amount_step``.
    """
    snap = case.snapshot
    rules = snap.markets[asset]
    p, s = snap.price(asset), case.policy.slippage
    bid, ask = snap.sell_price(asset) * (1 - s), snap.buy_price(asset) * (1 + s)
    floor = max(case.policy.min_trade, rules.min_notional) * p / bid
    return floor + (rules.min_amount + (rules.amount_step or 0)) * ask


@CORE
@given(cases())
def test_real_rules_land_within_what_rules_allow(case: Case) -> None:
    """Every final weight is within the slack the rules allow of its target.

    Bound (quote units), with ``slack_j`` from :func:`leg_slack` and C the realised costs:
    a non-quote leg misses by its own slack, plus its share of cash the buys lack because
    other legs' sells were skipped or truncated (at most the sum of all slacks), plus what
    costs move (at most C twice: once through V', once by the weight of a held leg). The
    quote is the residual: its miss is minus the sum of the others', hence the same bound.
    """
    assets = list(case.targets)
    assume(managed_value(case.snapshot, assets) > 0)
    ex = execute(case)
    fees, slip = costs_of(ex.fills, case.snapshot)
    slacks = {a: leg_slack(case, a) for a in case.assets}
    total_slack = sum(slacks.values(), Decimal(0))
    total = managed_value(ex.final, assets)
    for a in assets:
        miss = ex.final.amount(a) * ex.final.price(a) - case.targets[a] * total
        bound = slacks.get(a, Decimal(0)) + total_slack + 2 * (fees + slip) + tol(total)
        note(f"{a}: miss={miss} bound={bound}")
        if a == QUOTE:
            bound = 2 * total_slack + 2 * (fees + slip) + tol(total)
        assert abs(miss) <= bound, a


# -- orders respect the rules ----------------------------------------------------------------


def check_orders_are_valid(p: Plan, snapshot: Snapshot, case: Case) -> None:
    s = case.policy.slippage
    for o in p.orders:
        rules = snapshot.markets[o.asset]
        expected_price = (
            snapshot.sell_price(o.asset) * (1 - s)
            if o.side is Side.SELL
            else snapshot.buy_price(o.asset) * (1 + s)
        )
        assert o.expected_price == expected_price
        assert o.expected_cost == o.amount * o.expected_price
        assert o.symbol == rules.symbol
        assert violation(rules, o.amount, o.expected_price) is None, o
        if rules.amount_step is not None:
            assert o.amount % rules.amount_step == 0, o
        assert o.amount > 0
        assert o.amount >= rules.min_amount
        assert o.expected_cost >= rules.min_notional
        assert o.expected_cost >= case.policy.min_trade, o
        assert o.expected_fee == o.expected_cost * rules.taker_fee
        if o.side is Side.SELL:
            assert o.amount <= snapshot.amount(o.asset)


@CORE
@given(cases() | cases(unmanaged=True))
def test_no_planned_order_breaks_a_market_rule(case: Case) -> None:
    ex = execute(case)
    check_orders_are_valid(ex.plan, case.snapshot, case)
    check_orders_are_valid(ex.buy_plan, ex.after_sells, case)


@CORE
@given(cases() | cases(unmanaged=True))
def test_sells_first_cash_never_negative(case: Case) -> None:
    ex = execute(case)  # the fill model raises InsufficientFunds if cash or coins run short
    p, bp = ex.plan, ex.buy_plan
    assert all(o.side is Side.SELL for o in p.sells)
    assert all(o.side is Side.BUY for o in p.buys)
    assert p.orders == p.sells + p.buys
    assert bp.sells == ()
    # the first plan's buys are affordable from the cash plus what its sells would yield
    proceeds = sum((o.expected_cost - o.expected_fee for o in p.sells), Decimal(0))
    cash = case.snapshot.amount(QUOTE)
    assert sum((o.expected_cost for o in p.buys), Decimal(0)) <= cash + proceeds
    # the real buys are affordable from the real cash after the sells
    assert sum((o.expected_cost for o in bp.buys), Decimal(0)) <= ex.after_sells.amount(QUOTE)
    for snap in (ex.after_sells, ex.final):
        for a, amount in snap.balances.items():
            assert amount >= 0, (a, amount)
    assert 0 <= p.buy_scale <= 1
    assert 0 <= bp.buy_scale <= 1


# -- determinism ------------------------------------------------------------------------------


def reordered(snapshot: Snapshot) -> Snapshot:
    def rev(m: dict) -> dict:  # type: ignore[type-arg]
        return dict(reversed(list(m.items())))

    return Snapshot(
        snapshot.quote,
        rev(dict(snapshot.balances)),
        rev(dict(snapshot.prices)),
        rev(dict(snapshot.markets)),
        snapshot.taken_at,
        rev(dict(snapshot.bids)),
        rev(dict(snapshot.asks)),
    )


@CORE
@given(cases() | cases(unmanaged=True))
def test_plan_is_deterministic(case: Case) -> None:
    one = plan(case.snapshot, case.targets, case.policy)
    two = plan(case.snapshot, dict(case.targets), case.policy)
    assert one == two
    three = plan(reordered(case.snapshot), case.targets, case.policy)
    assert three.orders == one.orders
    assert three.skipped == one.skipped
    assert three.total_after == one.total_after
    assert three == one


# -- nothing dropped, only differences trade --------------------------------------------------


def check_skips_and_sides(p: Plan, snapshot: Snapshot, case: Case) -> None:
    targets = dict(case.targets)
    if case.policy.unmanaged == "sell":
        for a, amount in snapshot.balances.items():
            if a not in targets and a != QUOTE and amount > 0:
                targets[a] = Decimal(0)
    total = managed_value(snapshot, list(targets))
    s = case.policy.slippage
    for o in p.orders:
        v = snapshot.amount(o.asset) * snapshot.price(o.asset)
        if o.side is Side.SELL:  # never sell an underweight asset
            assert v > targets[o.asset] * total, o
        else:  # never buy an overweight asset
            assert v < targets[o.asset] * total, o
    for leg in p.skipped:
        assert leg.reason in SKIP_REASONS, leg
        assert leg.asset in targets
        v = snapshot.amount(leg.asset) * snapshot.price(leg.asset)
        if leg.side is Side.SELL:
            assert v > targets[leg.asset] * total, leg
        else:
            assert v < targets[leg.asset] * total, leg
        # the reason is true
        rules = snapshot.markets[leg.asset]
        price = (
            snapshot.sell_price(leg.asset) * (1 - s)
            if leg.side is Side.SELL
            else snapshot.buy_price(leg.asset) * (1 + s)
        )
        if leg.reason == "dust":
            assert leg.amount == 0
        elif leg.reason == "below_min_amount":
            assert leg.amount < rules.min_amount
        elif leg.reason == "below_min_notional":
            assert leg.amount * price < rules.min_notional
        elif leg.reason == "below_min_trade":
            assert leg.amount * price < case.policy.min_trade
        assert leg.asset not in {o.asset for o in p.orders}
        assert leg.detail


@CORE
@given(cases() | cases(unmanaged=True))
def test_only_differences_trade_and_every_missing_leg_is_skipped(case: Case) -> None:
    ex = execute(case)
    check_skips_and_sides(ex.plan, case.snapshot, case)
    check_skips_and_sides(ex.buy_plan, ex.after_sells, case)
    # every leg clearly off target is either ordered or skipped with a reason
    p = ex.plan
    total = p.drift.total_value
    sold = {o.asset for o in p.sells} | {s.asset for s in p.skipped if s.side is Side.SELL}
    for a in p.drift.assets:
        if a.asset == QUOTE:
            continue
        if a.value - a.target * total > tol(total):
            assert a.asset in sold, a
    bought = {o.asset for o in ex.buy_plan.buys} | {
        s.asset for s in ex.buy_plan.skipped if s.side is Side.BUY
    }
    after_total = ex.buy_plan.total_after
    for a in ex.buy_plan.drift.assets:
        if a.asset != QUOTE and a.target * after_total - a.value > tol(after_total):
            assert a.asset in bought, a


@CORE
@given(cases(unmanaged=True))
def test_unmanaged_assets_sold_or_ignored(case: Case) -> None:
    extras = [a for a in case.snapshot.balances if a not in case.targets and a != QUOTE]
    ex = execute(case)
    drift_assets = {a.asset for a in ex.plan.drift.assets}
    for a in extras:
        if case.policy.unmanaged == "ignore":
            assert ex.final.amount(a) == case.snapshot.amount(a)
            assert a not in drift_assets
            assert a not in {o.asset for o in ex.plan.orders}
        else:
            assert a in drift_assets
            rules = case.snapshot.markets[a]
            sold = [o for o in ex.plan.sells if o.asset == a]
            skipped = [s for s in ex.plan.skipped if s.asset == a]
            assert len(sold) + len(skipped) == 1
            if sold:  # everything held, down to the step
                left = ex.final.amount(a)
                assert left >= 0
                assert left < (rules.amount_step or Decimal("1e-30"))
    unmanaged_value = sum((case.snapshot.amount(a) * case.snapshot.price(a) for a in extras), 0)
    if case.policy.unmanaged == "ignore":
        assert ex.plan.drift.total_value == managed_value(case.snapshot, list(case.targets))
    else:
        assert (
            ex.plan.drift.total_value
            == managed_value(case.snapshot, list(case.targets)) + unmanaged_value
        )


@CORE
@given(cases(), st.data())
def test_buys_phase_sizes_from_the_cash_there_is(case: Case, data: st.DataObject) -> None:
    """Whatever the cash after the sells, the buys never spend more than it."""
    cash = data.draw(st.one_of(st.just(Decimal(0)), st.decimals(0, 10**6, places=4)))
    snap = with_balances(case.snapshot, {**case.snapshot.balances, QUOTE: cash})
    p = plan(snap, case.targets, case.policy, phase="buys")
    assert p.sells == ()
    assert sum((o.expected_cost for o in p.buys), Decimal(0)) <= cash


# -- band-edge rebalancing end to end ---------------------------------------------------------


@CORE
@given(cases(constrained=False, fees=False, slippage=False, min_trade=False), st.data())
def test_band_edge_lands_in_band_and_leaves_in_band_assets_alone(
    case: Case, data: st.DataObject
) -> None:
    band_abs = data.draw(st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.1")]))
    threshold = Threshold(band_abs=band_abs)
    case = replace(case, policy=replace(case.policy, style="band_edge"), threshold=threshold)
    assets = list(case.targets)
    assume(managed_value(case.snapshot, assets) > 0)
    ex = execute(case)
    before = ex.plan.drift.by_asset()
    # can the quote absorb everything? (computed here from the bands' definition)
    clipped = {
        a: min(max(d.weight, max(Decimal(0), d.target - band_abs)), d.target + band_abs)
        for a, d in before.items()
    }
    q = before[QUOTE]
    excess = sum(clipped.values(), Decimal(0)) - 1
    absorbs = max(Decimal(0), q.target - band_abs) <= clipped[QUOTE] - excess <= q.target + band_abs
    traded = {o.asset for o in ex.plan.orders + ex.buy_plan.orders}
    total = managed_value(ex.final, assets)
    for a in assets:
        d = before[a]
        w = ex.final.amount(a) * ex.final.price(a) / total
        assert abs(w - d.target) <= band_abs + Decimal("1e-9"), a
        if absorbs and a != QUOTE and abs(d.drift) <= band_abs and d.amount > 0:
            assert a not in traded, a
