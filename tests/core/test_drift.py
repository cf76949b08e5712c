"""Valuation and drift."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given

from rebalancer.core.drift import check_price, compute_drift
from rebalancer.core.errors import DataError, StopAndTell
from rebalancer.core.model import Snapshot

from .strategies import CORE, QUOTE, T0, Case, cases

D = Decimal


def snap(balances: dict[str, str], prices: dict[str, str]) -> Snapshot:
    return Snapshot(
        QUOTE, {a: D(x) for a, x in balances.items()}, {a: D(x) for a, x in prices.items()}, {}, T0
    )


def test_drift_hand_checked() -> None:
    """0.5 BTC at 40 000 = 20 000, 10 ETH at 2 000 = 20 000, 10 000 USDT: V = 50 000.
    Weights 40 / 40 / 20 against targets 50 / 30 / 20."""
    s = snap(
        {"BTC": "0.5", "ETH": "10", QUOTE: "10000", "DOGE": "1000"},
        {"BTC": "40000", "ETH": "2000", "DOGE": "1"},
    )
    d = compute_drift(s, {"BTC": D("0.5"), "ETH": D("0.3"), QUOTE: D("0.2")})
    assert d.total_value == D(50000)  # DOGE is not a target: not counted
    assert [a.asset for a in d.assets] == ["BTC", "ETH", QUOTE]
    btc, eth, usdt = d.assets
    assert (btc.value, btc.weight, btc.drift) == (D(20000), D("0.4"), D("-0.1"))
    assert btc.relative_drift == D("-0.2")
    assert (eth.weight, eth.drift) == (D("0.4"), D("0.1"))
    assert eth.relative_drift == D("0.1") / D("0.3")
    assert (usdt.price, usdt.weight, usdt.drift) == (D(1), D("0.2"), D(0))
    assert d.max_abs_drift() == D("0.1")
    assert d.by_asset()["ETH"] is eth


def test_relative_drift_is_none_for_target_zero() -> None:
    d = compute_drift(snap({"BTC": "1", QUOTE: "1"}, {"BTC": "1"}), {"BTC": D(0), QUOTE: D(1)})
    assert d.by_asset()["BTC"].relative_drift is None


def test_missing_holding_counts_as_zero_and_empty_total_gives_zero_weights() -> None:
    d = compute_drift(snap({}, {"BTC": "5"}), {"BTC": D("0.5"), QUOTE: D("0.5")})
    assert d.total_value == 0
    assert all(a.weight == 0 and a.amount == 0 for a in d.assets)


@pytest.mark.parametrize("bad", ["NaN", "0", "-3", "Infinity", "sNaN", "-0"])
def test_unusable_price_is_a_data_error_naming_asset_and_value(bad: str) -> None:
    s = snap({"BTC": "1", "ETH": "1"}, {"BTC": "100", "ETH": bad})
    with pytest.raises(DataError) as info:
        compute_drift(s, {"BTC": D("0.5"), "ETH": D("0.5")})
    message = str(info.value)
    assert "ETH" in message
    assert str(D(bad)) in message
    assert isinstance(info.value, StopAndTell)


def test_missing_price_is_a_data_error_naming_the_asset() -> None:
    s = snap({"BTC": "1"}, {"BTC": "100"})
    with pytest.raises(DataError, match="no price for SOL"):
        compute_drift(s, {"BTC": D("0.5"), "SOL": D("0.5")})


def test_quote_needs_no_price() -> None:
    d = compute_drift(snap({QUOTE: "7"}, {}), {QUOTE: D(1)})
    assert d.total_value == 7
    assert d.assets[0].weight == 1


def test_check_price_passes_good_prices() -> None:
    assert check_price("BTC", D("0.00000001")) == D("0.00000001")


@CORE
@given(cases())
def test_weights_sum_to_one_and_drifts_to_zero(case: Case) -> None:
    d = compute_drift(case.snapshot, case.targets)
    expected_total = sum(
        (case.snapshot.amount(a) * case.snapshot.price(a) for a in case.targets), D(0)
    )
    assert d.total_value == expected_total
    if d.total_value > 0:
        assert abs(sum((a.weight for a in d.assets), D(0)) - 1) < D("1e-25")
        assert abs(sum((a.drift for a in d.assets), D(0))) < D("1e-25")
