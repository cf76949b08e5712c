"""Cash flows: detection against the journal's fills, spreading a flow, time-weighted return."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.drift import compute_drift
from rebalancer.core.flows import (
    detect_flows,
    expected_balances,
    flow_targets,
    time_weighted_return,
)
from rebalancer.core.model import Fill, MarketRules, Side, Snapshot
from rebalancer.core.planner import PlanPolicy, plan

D = Decimal
NOW = datetime(2024, 5, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")}
PRICES = {"BTC": D(100), "ETH": D(10)}
MARKETS = {a: MarketRules(f"{a}/USDT", a, "USDT") for a in PRICES}


def _snap(btc: str, eth: str, cash: str) -> Snapshot:
    return Snapshot("USDT", {"BTC": D(btc), "ETH": D(eth), "USDT": D(cash)}, PRICES, MARKETS, NOW)


def test_fills_explain_trades_and_the_rest_is_a_flow() -> None:
    before = {"BTC": D(1), "USDT": D(500)}
    buy = Fill("b", "BTC", "BTC/USDT", Side.BUY, D("0.5"), D(100), D(50), D("0.05"), "USDT")
    expected = expected_balances(before, [buy], "USDT")
    assert expected == {"BTC": D("1.5"), "USDT": D("449.95")}
    assert detect_flows(expected, {"BTC": D("1.5"), "USDT": D("449.95")}) == {}
    assert detect_flows(expected, {"BTC": D("1.5"), "USDT": D("1449.95")}) == {"USDT": D(1000)}
    assert detect_flows(expected, {"BTC": D("1.2"), "USDT": D("449.95"), "SOL": D(3)}) == {
        "BTC": D("-0.3"),
        "SOL": D(3),
    }
    # rounding noise is not a flow
    assert detect_flows(expected, {"BTC": D("1.5000000000001"), "USDT": D("449.95")}) == {}


def test_deposit_spread_over_the_underweight_assets_only() -> None:
    # before the deposit: BTC 400, ETH 300, USDT 200 (ETH underweight); deposit 100 -> 1000
    drift = compute_drift(_snap("4", "30", "300"), TARGETS)
    weights = flow_targets(drift, D(100), "USDT")
    assert weights is not None and sum(weights.values()) == 1
    assert weights["BTC"] == D("0.4")  # BTC exactly at target: untouched
    # ETH lacks 100; cash above target 100; deposit 100: ETH goes to target
    assert weights["ETH"] == D("0.4") and weights["USDT"] == D("0.2")
    p = plan(_snap("4", "30", "300"), weights, PlanPolicy(min_trade=D(0)))
    assert [(o.asset, o.side, o.amount) for o in p.orders] == [("ETH", Side.BUY, D(10))]


def test_small_deposit_is_split_by_gap() -> None:
    # BTC 300 (lacks 100), ETH 200 (lacks 200), USDT 500 (300 above target); deposit 60
    drift = compute_drift(_snap("3", "20", "500"), TARGETS)
    weights = flow_targets(drift, D(60), "USDT")
    assert weights is not None
    assert weights["BTC"] == D("0.32") and weights["ETH"] == D("0.24")


def test_withdrawal_taken_from_the_overweight_assets() -> None:
    # BTC 500 (100 over), ETH 400, USDT 100 (100 short): withdrawal of 150 already happened
    drift = compute_drift(_snap("5", "40", "100"), TARGETS)
    weights = flow_targets(drift, D(-150), "USDT")
    assert weights is not None
    assert weights["BTC"] == D("0.4") and weights["ETH"] == D("0.4")
    assert flow_targets(drift, D(0), "USDT") is None
    # cash already at or above target after a withdrawal: nothing to sell
    assert flow_targets(compute_drift(_snap("4", "30", "300"), TARGETS), D(-5), "USDT") is None


@given(
    st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(-5000, 5000)
)
def test_flow_weights_never_overshoot_targets(btc: int, eth: int, cash: int, flow: int) -> None:
    snap = _snap(str(D(btc) / 100), str(D(eth) / 10), str(cash))
    drift = compute_drift(snap, TARGETS)
    weights = flow_targets(drift, D(flow), "USDT")
    if weights is None:
        return
    assert abs(sum(weights.values()) - 1) < D("1e-25")
    for a in drift.assets:
        if a.asset == "USDT":
            continue
        moved = weights[a.asset] - a.weight
        assert moved * D(flow) >= 0  # buys on a deposit, sells on a withdrawal
        assert abs(weights[a.asset] - a.target) <= abs(a.weight - a.target) + D("1e-25")
    traded = sum(
        (abs(weights[a.asset] - a.weight) for a in drift.assets if a.asset != "USDT"), D(0)
    )
    assert traded * drift.total_value <= abs(flow) * (1 + D("1e-20")) + D("1e-20")


def test_time_weighted_return_ignores_flows() -> None:
    # +10 %, then a deposit of 1000, then +10 % again: TWR = 1.1 * 1.1 - 1
    values = [D(1000), D(1100), D(2100), D(2310)]
    flows = [D(0), D(0), D(1000), D(0)]
    assert time_weighted_return(values, flows) == D("0.21")
    with pytest.raises(ValueError, match="flows"):
        time_weighted_return(values, flows[:2])


def test_performance_separates_a_deposit_from_the_profit() -> None:
    from rebalancer.core.flows import Observation, performance

    t = [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    buy = Fill("b", "BTC", "BTC/USDT", Side.BUY, D(1), D(100), D(100), D(0), "USDT")
    obs = [
        Observation(t[0], {"USDT": D(1000)}, {"BTC": D(100)}),
        # a buy of 1 BTC at the first cycle, then BTC +10 %
        Observation(t[1], {"BTC": D(1), "USDT": D(900)}, {"BTC": D(110)}),
        # 500 USDT deposited, prices flat
        Observation(t[2], {"BTC": D(1), "USDT": D(1400)}, {"BTC": D(110)}),
        # BTC +10 % again
        Observation(t[3], {"BTC": D(1), "USDT": D(1400)}, {"BTC": D(121)}),
    ]
    perf = performance(obs, [(t[0], buy)], "USDT")
    assert perf.flows == ((t[2], "USDT", D(500), D(500)),)
    assert perf.start_value == D(1000) and perf.end_value == D(1521)
    assert perf.net_flows == D(500) and perf.pnl == D(21)
    assert perf.twr == (D(1010) / D(1000)) * (D(1521) / D(1510)) - 1
