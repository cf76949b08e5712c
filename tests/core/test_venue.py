"""The venue model in the planner and the fill model: a venue taking a buy's fee in the
quote gets it reserved from cash, exactly (issue 13)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.errors import InsufficientFunds
from rebalancer.core.fills import apply_fill, fill_market_order
from rebalancer.core.model import MarketRules, Snapshot
from rebalancer.core.planner import PlanPolicy, plan
from rebalancer.core.venue import fee_reserve, venue_model

from .strategies import CORE, T0

D = Decimal
KRAKEN = venue_model("kraken")


def rules(asset: str, step: str, fee: str, cost_step: str | None = "0.00001") -> MarketRules:
    raw = MarketRules(
        f"{asset}/USD", asset, "USD", D(step), min_notional=D("0.5"), taker_fee=D(fee),
        cost_step=None if cost_step is None else D(cost_step),
    )  # fmt: skip
    return KRAKEN.market(raw)


def snapshot(cash: Decimal, prices: dict[str, Decimal], fee: str) -> Snapshot:
    markets = {a: rules(a, "0.00000001", fee) for a in prices}
    return Snapshot("USD", {"USD": cash}, prices, markets, T0)


def test_all_cash_to_assets_places_every_buy_with_its_fee_reserved() -> None:
    """No cash target: the buys spend the cash, fee included, and all fit."""
    snap = snapshot(D(3000), {"ETH": D(3000), "SOL": D(150)}, "0.0026")
    targets = {"ETH": D("0.6"), "SOL": D("0.4"), "USD": D(0)}
    planned = plan(snap, targets, PlanPolicy(min_trade=D(10)))
    assert [o.asset for o in planned.buys] == ["ETH", "SOL"] and not planned.skipped
    spend = sum((o.expected_cost + fee_reserve(rules(o.asset, "1e-8", "0.0026"), o.expected_cost,
                 D("0.0026")) for o in planned.buys), D(0))  # fmt: skip
    assert spend <= D(3000)
    assert D(3000) - spend < D("0.01")  # what is left: the steps and the fee rounding
    balances = {"USD": D(3000)}
    for o in planned.buys:  # Kraken fills each one: nothing refused
        price = snap.prices[o.asset]
        fill = fill_market_order(o, snap.markets[o.asset], price, price, D(0), balances, KRAKEN)
        balances = apply_fill(balances, fill, "USD")
    assert D(0) <= balances["USD"] < D("0.01")


def test_the_binance_sizing_on_a_kraken_market_is_refused() -> None:
    """The bug: sized as if the fee came out of the asset received, the last buy needs
    more cash than there is once Kraken adds the fee on top."""
    snap = snapshot(D(3000), {"ETH": D(3000), "SOL": D(150)}, "0.0026")
    binance_way = replace(
        snap, markets={a: replace(r, fee_in_quote=False) for a, r in snap.markets.items()}
    )
    targets = {"ETH": D("0.6"), "SOL": D("0.4"), "USD": D(0)}
    planned = plan(binance_way, targets, PlanPolicy(min_trade=D(10)))
    balances, refused = {"USD": D(3000)}, []
    for o in planned.buys:
        price = snap.prices[o.asset]
        try:
            fill = fill_market_order(o, snap.markets[o.asset], price, price, D(0), balances, KRAKEN)
        except InsufficientFunds:
            refused.append(o.asset)
            continue
        balances = apply_fill(balances, fill, "USD")
    assert refused == ["SOL"]


@CORE
@given(
    cash=st.decimals(min_value=D(20), max_value=D(10**6), places=2),
    fee=st.sampled_from(["0", "0.0016", "0.0026", "0.006", "0.01"]),
    eth=st.decimals(min_value=D(1), max_value=D(10**5), places=2),
    sol=st.decimals(min_value=D("0.01"), max_value=D(10**3), places=4),
    step=st.sampled_from(["0.00000001", "0.001", "0.1"]),
    cost_step=st.sampled_from([None, "0.01", "0.00001"]),
)
def test_fee_in_quote_buys_never_spend_more_than_the_cash(
    cash: Decimal, fee: str, eth: Decimal, sol: Decimal, step: str, cost_step: str | None
) -> None:
    markets = {a: rules(a, step, fee, cost_step) for a in ("ETH", "SOL")}
    snap = Snapshot("USD", {"USD": cash}, {"ETH": eth, "SOL": sol}, markets, T0)
    planned = plan(
        snap, {"ETH": D("0.5"), "SOL": D("0.5"), "USD": D(0)}, PlanPolicy(min_trade=D(0))
    )
    need = sum(
        (
            o.expected_cost + fee_reserve(markets[o.asset], o.expected_cost, D(fee))
            for o in planned.buys
        ),
        D(0),
    )
    assert need <= cash
    balances = {"USD": cash}
    for o in planned.buys:
        price = snap.prices[o.asset]
        fill = fill_market_order(o, markets[o.asset], price, price, D(0), balances, KRAKEN)
        balances = apply_fill(balances, fill, "USD")
    assert balances["USD"] >= 0
