"""Hand-checked planner examples: every expected number is worked out in the comments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rebalancer.core.model import MarketRules, Side, Snapshot
from rebalancer.core.planner import PlanPolicy, plan
from rebalancer.core.triggers import Threshold

from .strategies import QUOTE, T0, Case, execute

D = Decimal


def rules(
    asset: str,
    step: str | None = None,
    fee: str = "0",
    min_amount: str = "0",
    min_notional: str = "0",
) -> MarketRules:
    return MarketRules(
        f"{asset}/{QUOTE}",
        asset,
        QUOTE,
        None if step is None else D(step),
        D(min_amount),
        D(min_notional),
        None,
        D(fee),
    )


def snap(
    balances: dict[str, str], prices: dict[str, str], markets: dict[str, MarketRules]
) -> Snapshot:
    return Snapshot(
        QUOTE,
        {a: D(x) for a, x in balances.items()},
        {a: D(x) for a, x in prices.items()},
        markets,
        T0,
    )


def weight(s: Snapshot, asset: str, assets: list[str]) -> Decimal:
    total = sum((s.amount(a) * s.price(a) for a in assets), D(0))
    return s.amount(asset) * s.price(asset) / total


# -- fees ------------------------------------------------------------------------------------


def test_sell_with_fee_hand_checked() -> None:
    """1 BTC at 40 000 and 20 USDT, target 50/50, taker fee 0.1 %, no slippage.

    V = 40 000 + 20 = 40 020. BTC is over target, so it is sold; selling value s costs
    0.001 s in fees, and s = v_BTC - 0.5 V' = 40 000 - 0.5 V'. Hence
        V' = V - 0.001 (40 000 - 0.5 V')  =>  V' (1 - 0.0005) = 40 020 - 40 = 39 980
        V' = 39 980 / 0.9995 = 40 000.
    Sell s = 40 000 - 20 000 = 20 000 USDT worth = 0.5 BTC; it yields 20 000 - 20 (fee)
    = 19 980, so cash = 20 + 19 980 = 20 000 = BTC's 0.5 * 40 000. Exactly 50/50.
    The fee reduces what the sell yields; the sell is NOT shrunk to 0.5 * 0.999 = 0.4995.
    """
    s = snap({"BTC": "1", QUOTE: "20"}, {"BTC": "40000"}, {"BTC": rules("BTC", "0.00001", "0.001")})
    targets = {"BTC": D("0.5"), QUOTE: D("0.5")}
    p = plan(s, targets, PlanPolicy(min_trade=D(10)))
    assert p.total_after == D(40000)
    assert p.buys == ()
    assert p.skipped == ()
    (sell,) = p.sells
    assert sell.side is Side.SELL
    assert sell.amount == D("0.5")
    assert sell.expected_price == D(40000)
    assert sell.expected_cost == D(20000)
    assert sell.expected_fee == D(20)
    assert p.traded_value == D(20000)
    assert p.expected_fees == D(20)
    assert p.orders == p.sells

    ex = execute(Case(s, targets, PlanPolicy(min_trade=D(10))))
    assert ex.after_sells.amount(QUOTE) == D(20000)
    assert ex.after_sells.amount("BTC") == D("0.5")
    assert ex.buy_plan.orders == ()
    assert ex.buy_plan.skipped == ()
    assert weight(ex.final, "BTC", ["BTC", QUOTE]) == D("0.5")
    total = ex.final.amount("BTC") * 40000 + ex.final.amount(QUOTE)
    assert total == D(40000)  # = V - fee = 40 020 - 20


def test_buy_with_fee_hand_checked() -> None:
    """9 996 USDT, no BTC at 40 000, target BTC 60 % / USDT 40 %, fee 0.1 % paid in BTC.

    Spending c USDT buys c / 40 000 BTC, of which 0.1 % goes to the fee: it adds 0.999 c
    of value, so c = 0.6 V' / 0.999 and V' = 9 996 - 0.001 c:
        V' (1 + 0.0006 / 0.999) = 9 996  =>  V' = 9 996 * 0.999 / 0.9996 = 9 990.
    c = 0.6 * 9 990 / 0.999 = 5 994 / 0.999 = 6 000 USDT -> 0.15 BTC; the fee is 0.00015 BTC,
    so 0.14985 BTC (= 5 994 USDT = 0.6 V') arrive and 3 996 USDT (= 0.4 V') stay.
    The fee reduces what the buy can afford: the order still spends the whole 6 000.
    """
    s = snap({QUOTE: "9996"}, {"BTC": "40000"}, {"BTC": rules("BTC", "0.00001", "0.001")})
    targets = {"BTC": D("0.6"), QUOTE: D("0.4")}
    policy = PlanPolicy(min_trade=D(10))
    p = plan(s, targets, policy)
    assert p.total_after == D(9990)
    (buy,) = p.buys
    assert buy.amount == D("0.15")
    assert buy.expected_cost == D(6000)
    assert buy.expected_fee == D(6)  # the estimate in quote: 0.1 % of 6 000

    ex = execute(Case(s, targets, policy))
    assert ex.final.amount("BTC") == D("0.14985")
    assert ex.final.amount(QUOTE) == D(3996)
    assert weight(ex.final, "BTC", ["BTC", QUOTE]) == D("0.6")


def test_sell_with_slippage_hand_checked() -> None:
    """1 BTC at 40 000, 200 USDT, target 50/50, no fee, slippage allowance 1 %.

    A sell fills at 40 000 * 0.99 = 39 600, losing 1 % of the value sold:
        V' = 40 200 - 0.01 (40 000 - 0.5 V')  =>  0.995 V' = 39 800  =>  V' = 40 000.
    Sell 40 000 - 20 000 = 20 000 worth = 0.5 BTC, yielding 0.5 * 39 600 = 19 800; cash
    200 + 19 800 = 20 000 = 0.5 BTC * 40 000.
    """
    s = snap({"BTC": "1", QUOTE: "200"}, {"BTC": "40000"}, {"BTC": rules("BTC", "0.0001")})
    targets = {"BTC": D("0.5"), QUOTE: D("0.5")}
    policy = PlanPolicy(min_trade=D(10), slippage=D("0.01"))
    p = plan(s, targets, policy)
    assert p.total_after == D(40000)
    (sell,) = p.sells
    assert sell.amount == D("0.5")
    assert sell.expected_price == D(39600)
    assert sell.expected_cost == D(19800)
    ex = execute(Case(s, targets, policy))
    assert ex.final.amount(QUOTE) == D(20000)
    assert ex.final.amount("BTC") == D("0.5")


def test_fees_on_both_sides_hand_checked() -> None:
    """ETH sold, BTC bought with the proceeds, fee 0.1 % on both, prices 1 000 and 10 000.

    Holdings: 3 ETH (E = 3 000), 0.1001999 BTC (B = 1 001.999), no cash; targets 50/50.
    ETH sells s = E - 0.5 V', yielding 0.999 s; all of it buys BTC, c = 0.999 s, which adds
    0.999 c of value. The costs are 0.001 s + 0.001 c = 0.001999 s, so
        V' = E + B - 0.001999 (E - 0.5 V')  =>  V' (1 - 0.0009995) = 0.998001 E + B
        0.9990005 V' = 2 994.003 + 1 001.999 = 3 996.002  =>  V' = 4 000.
    s = 3 000 - 2 000 = 1 000 worth = 1 ETH; proceeds 999 buy 999 / 10 000 = 0.0999 BTC,
    of which 0.0000999 BTC is the fee: BTC ends at 0.1001999 + 0.0998001 = 0.2 BTC = 2 000.
    """
    markets = {"ETH": rules("ETH", "0.0001", "0.001"), "BTC": rules("BTC", "0.0001", "0.001")}
    s = snap({"ETH": "3", "BTC": "0.1001999"}, {"ETH": "1000", "BTC": "10000"}, markets)
    targets = {"ETH": D("0.5"), "BTC": D("0.5"), QUOTE: D(0)}
    policy = PlanPolicy(min_trade=D(10))
    p = plan(s, targets, policy)
    assert p.total_after == D(4000)
    (sell,) = p.sells
    assert (sell.amount, sell.expected_cost, sell.expected_fee) == (D(1), D(1000), D(1))
    (buy,) = p.buys
    assert (buy.amount, buy.expected_cost) == (D("0.0999"), D(999))
    ex = execute(Case(s, targets, policy))
    assert ex.final.amount(QUOTE) == 0
    assert ex.final.amount("ETH") == D(2)
    assert ex.final.amount("BTC") == D("0.2")


# -- cash short, proportional scaling ---------------------------------------------------------


def test_cash_short_buys_scale_down_proportionally() -> None:
    """1 000 XRP at 1 USDT, no cash; targets BTC 50 %, ETH 28 %, SOL 2 %, XRP 20 %; no fees.

    XRP should sell 800, but its market's step is 300 units, so only 600 sell. The buys want
    BTC 500, ETH 280, SOL 20 = 800 but only 600 is there: all scale by 600 / 800 = 0.75 ->
    BTC 375 (0.015 BTC at 25 000), ETH 210 (0.14 ETH at 1 500), SOL 15 < min_trade 16 ->
    skipped, its reason telling that cash was short.
    """
    markets = {
        "BTC": rules("BTC", "0.001"),
        "ETH": rules("ETH", "0.01"),
        "SOL": rules("SOL", "0.01"),
        "XRP": rules("XRP", "300"),
    }
    s = snap({"XRP": "1000"}, {"BTC": "25000", "ETH": "1500", "SOL": "100", "XRP": "1"}, markets)
    targets = {"BTC": D("0.5"), "ETH": D("0.28"), "SOL": D("0.02"), "XRP": D("0.2"), QUOTE: D(0)}
    policy = PlanPolicy(min_trade=D(16))
    for p in (plan(s, targets, policy), execute(Case(s, targets, policy)).buy_plan):
        assert p.total_after == D(1000)
        assert p.buy_scale == D("0.75")
        assert {o.asset: o.amount for o in p.buys} == {"BTC": D("0.015"), "ETH": D("0.14")}
        assert [o.asset for o in p.buys] == ["BTC", "ETH"]  # largest first
        (sol,) = [x for x in p.skipped if x.asset == "SOL"]
        assert sol.side is Side.BUY
        assert sol.reason == "below_min_trade"
        assert sol.value == D(20)  # what it wanted before scaling
        assert "cash short" in sol.detail
    first = plan(s, targets, policy)
    assert [(o.asset, o.amount) for o in first.sells] == [("XRP", D(600))]
    ex = execute(Case(s, targets, policy))
    assert ex.final.amount(QUOTE) == D(15)  # 600 - 375 - 210
    assert ex.final.amount("XRP") == D(400)


def test_buys_phase_sizes_from_cash_as_it_is() -> None:
    """phase="buys" plans no sells and spends only the free cash above the quote's target."""
    markets = {"BTC": rules("BTC"), "ETH": rules("ETH")}
    s = snap({"ETH": "10", QUOTE: "100"}, {"BTC": "100", "ETH": "100"}, markets)
    # V = 1 100; targets BTC 50 %, ETH 40 %, USDT 10 %: ETH would sell 560, BTC buy 550.
    targets = {"BTC": D("0.5"), "ETH": D("0.4"), QUOTE: D("0.1")}
    full = plan(s, targets, PlanPolicy(min_trade=D(1)))
    assert [o.asset for o in full.sells] == ["ETH"]
    assert full.sells[0].amount == D("5.6")
    assert full.buys[0].amount == D("5.5")
    buys = plan(s, targets, PlanPolicy(min_trade=D(1)), phase="buys")
    assert buys.sells == ()
    # cash 100 less the quote's own 10 % of 1 100 = 110 -> nothing to spend
    assert buys.buys == ()
    assert buys.buy_scale == 0
    (skip,) = buys.skipped
    assert (skip.asset, skip.side, skip.reason) == ("BTC", Side.BUY, "dust")


# -- skipped legs and their reasons ------------------------------------------------------------


def test_every_untradeable_leg_is_skipped_with_its_reason() -> None:
    """V = 1 000 at price 1; targets A..E 16 % (160 each), USDT 20 %; min_trade 10.

    A 160.3: sell 0.3 -> step 1 leaves 0                              -> dust
    B 162:   sell 2   -> below min_amount 5                             -> below_min_amount
    C 165:   sell 5   -> 5 USDT below min_notional 10                  -> below_min_notional
    D 165:   sell 5   -> passes the market, below min_trade 10          -> below_min_trade
    E 170:   sell 10  -> no E/USDT market                               -> no_market
    """
    markets = {
        "A": rules("A", "1"),
        "B": rules("B", "1", min_amount="5"),
        "C": rules("C", "1", min_notional="10"),
        "D": rules("D", "1"),
    }
    bal = {"A": "160.3", "B": "162", "C": "165", "D": "165", "E": "170", QUOTE: "177.7"}
    s = snap(bal, dict.fromkeys("ABCDE", "1"), markets)
    targets = {**{a: D("0.16") for a in "ABCDE"}, QUOTE: D("0.2")}
    p = plan(s, targets, PlanPolicy(min_trade=D(10)))
    assert p.orders == ()
    got = {x.asset: (x.side, x.reason, x.amount) for x in p.skipped}
    assert got == {
        "A": (Side.SELL, "dust", D(0)),
        "B": (Side.SELL, "below_min_amount", D(2)),
        "C": (Side.SELL, "below_min_notional", D(5)),
        "D": (Side.SELL, "below_min_trade", D(5)),
        "E": (Side.SELL, "no_market", D(0)),
    }
    assert [x.asset for x in p.skipped] == list("ABCDE")  # in the targets' order
    values = {x.asset: x.value for x in p.skipped}
    assert values == {"A": D("0.3"), "B": D(2), "C": D(5), "D": D(5), "E": D(10)}
    details = {x.asset: x.detail for x in p.skipped}
    assert "min_trade 10" in details["D"]
    assert "E/USDT" in details["E"]


def test_no_market_is_reported_only_when_the_leg_should_trade() -> None:
    s = snap({"A": "50", "E": "50", QUOTE: "0"}, {"A": "1", "E": "1"}, {"A": rules("A")})
    p = plan(s, {"A": D("0.5"), "E": D("0.5"), QUOTE: D(0)}, PlanPolicy(min_trade=D(0)))
    assert p.orders == ()
    assert p.skipped == ()


def test_empty_portfolio_plans_nothing() -> None:
    s = snap({}, {"BTC": "100"}, {"BTC": rules("BTC")})
    p = plan(s, {"BTC": D("0.5"), QUOTE: D("0.5")}, PlanPolicy())
    assert p.orders == ()
    assert p.total_after == 0
    assert p.notes == ("portfolio is empty",)


# -- only the differences trade ---------------------------------------------------------------


def test_underweight_asset_is_not_sold_to_pay_other_legs_fees() -> None:
    """A 7 000 (target 50 %), B 2 999.5 (target 30 %: under by 0.5), USDT 0.5; fee 0.1 %.

    After A's sell pays its fee the total shrinks by ~2, so 30 % of it is ~2 999.4: the exact
    target arithmetic would have B sell ~0.1 -- an underweight asset sold, a fee paid for
    nothing. The planner holds B instead (B ends 0.00003 over its 30 %).
    """
    markets = {"A": rules("A", fee="0.001"), "B": rules("B", fee="0.001")}
    s = snap({"A": "7000", "B": "2999.5", QUOTE: "0.5"}, {"A": "1", "B": "1"}, markets)
    targets = {"A": D("0.5"), "B": D("0.3"), QUOTE: D("0.2")}
    p = plan(s, targets, PlanPolicy(min_trade=D(0)))
    assert [o.asset for o in p.orders] == ["A"]
    assert p.skipped == ()


# -- unmanaged holdings -----------------------------------------------------------------------

UNMANAGED_MARKETS = {"BTC": rules("BTC", "0.0001"), "DOGE": rules("DOGE", "1")}
UNMANAGED = snap(
    {"BTC": "1.2", "DOGE": "10000", QUOTE: "30000"},
    {"BTC": "25000", "DOGE": "0.1"},
    UNMANAGED_MARKETS,
)


def test_unmanaged_ignore_leaves_them_out_of_the_total() -> None:
    """BTC 1.2 * 25 000 = 30 000 and 30 000 USDT: 50/50 already; 1 000 of DOGE is ignored."""
    targets = {"BTC": D("0.5"), QUOTE: D("0.5")}
    p = plan(UNMANAGED, targets, PlanPolicy(unmanaged="ignore"))
    assert p.drift.total_value == D(60000)
    assert [a.asset for a in p.drift.assets] == ["BTC", QUOTE]
    assert p.orders == ()
    assert p.skipped == ()


def test_unmanaged_sell_sells_them_and_counts_them() -> None:
    """With DOGE counted, V = 61 000: DOGE (target 0) sells all 10 000 for 1 000, and BTC
    (target 30 500) buys 500 worth = 0.02 BTC."""
    targets = {"BTC": D("0.5"), QUOTE: D("0.5")}
    policy = PlanPolicy(unmanaged="sell")
    p = plan(UNMANAGED, targets, policy)
    assert p.drift.total_value == D(61000)
    assert p.drift.by_asset()["DOGE"].target == 0
    assert [(o.asset, o.side, o.amount) for o in p.sells] == [("DOGE", Side.SELL, D(10000))]
    assert [(o.asset, o.side, o.amount) for o in p.buys] == [("BTC", Side.BUY, D("0.02"))]
    ex = execute(Case(UNMANAGED, targets, policy))
    assert ex.final.amount("DOGE") == 0
    assert ex.final.amount("BTC") == D("1.22")
    assert ex.final.amount(QUOTE) == D(30500)


# -- band-edge rebalancing through the planner -------------------------------------------------


def test_band_edge_moves_only_out_of_band_assets_and_the_quote_absorbs() -> None:
    """Targets BTC 40 %, ETH 40 %, USDT 20 %, band_abs 5 points; weights 50 / 38 / 12.

    BTC back to its edge 45 % (sell 50 of 1 000); ETH at 38 % is in band and stays; USDT is
    clipped to 15 %, then absorbs the missing 2 points: 17 %, inside [15, 25].
    """
    markets = {"BTC": rules("BTC", "0.0001"), "ETH": rules("ETH", "0.0001")}
    s = snap({"BTC": "0.5", "ETH": "0.38", QUOTE: "120"}, {"BTC": "1000", "ETH": "1000"}, markets)
    targets = {"BTC": D("0.4"), "ETH": D("0.4"), QUOTE: D("0.2")}
    p = plan(s, targets, PlanPolicy(style="band_edge", min_trade=D(1)), Threshold(D("0.05")))
    assert p.weights == {"BTC": D("0.45"), "ETH": D("0.38"), QUOTE: D("0.17")}
    assert [(o.asset, o.side, o.amount) for o in p.orders] == [("BTC", Side.SELL, D("0.05"))]


@pytest.mark.parametrize("style", ["target", "band_edge"])
def test_no_threshold_means_back_to_target(style: str) -> None:
    s = snap({"BTC": "0.5", QUOTE: "500"}, {"BTC": "2000"}, {"BTC": rules("BTC")})
    p = plan(s, {"BTC": D("0.5"), QUOTE: D("0.5")}, PlanPolicy(style=style))  # type: ignore[arg-type]
    assert p.weights == {"BTC": D("0.5"), QUOTE: D("0.5")}
    assert p.sells[0].amount == D("0.125")  # 1 000 - 750 = 250 worth
