"""Volatility-scaled bands: the EWMA, the clamp, per-asset vs portfolio-wide, the context."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.drift import compute_drift
from rebalancer.core.model import MarketRules, Snapshot
from rebalancer.core.triggers import AllOf, AnyOf, Calendar, Threshold, TriggerContext
from rebalancer.core.vol_bands import VolScaledThreshold, ewma_vol, history_bars

D = Decimal
NOW = datetime(2024, 1, 10, tzinfo=UTC)


def _drift(btc: str, eth: str, cash: str) -> object:
    prices = {"BTC": D(100), "ETH": D(10)}
    markets = {a: MarketRules(f"{a}/USDT", a, "USDT") for a in prices}
    snap = Snapshot("USDT", {"BTC": D(btc), "ETH": D(eth), "USDT": D(cash)}, prices, markets, NOW)
    return compute_drift(snap, {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")})


def test_ewma_hand_checked() -> None:
    # half-life 1 bar: lam = 0.5; newest return weight 1, the one before 0.5
    r1, r2 = math.log(1.1), math.log(0.9)
    expected = math.sqrt((r2 * r2 + 0.5 * r1 * r1) / 1.5)
    assert ewma_vol([100, 110, 99], half_life=1, window=10) == pytest.approx(expected, rel=1e-15)
    # the window keeps only the newest return
    assert ewma_vol([100, 110, 99], half_life=1, window=1) == pytest.approx(abs(r2), rel=1e-15)
    assert ewma_vol([100], half_life=1, window=10) is None


def test_band_is_clamped_between_floor_and_cap() -> None:
    t = VolScaledThreshold(base_band=D("0.05"), floor=D("0.02"), cap=D("0.10"), reference_vol=0.02)
    assert t.band_for(None) == D("0.05")
    assert t.band_for(0.02) == D("0.05")
    assert t.band_for(0.03) == D("0.05") * D(repr(0.03 / 0.02))
    assert t.band_for(0.001) == D("0.02")
    assert t.band_for(1.0) == D("0.10")


def test_quiet_history_narrows_the_band_and_fires() -> None:
    # BTC 0.45 vs target 0.40: drift 5 points; ETH 0.35 (drift -5), cash 0.20
    drift = _drift("0.45", "3.5", "20")
    t = VolScaledThreshold(
        half_life=5, base_band=D("0.06"), floor=D("0.01"), cap=D("0.2"), reference_vol=0.03
    )
    calm = {"BTC": [D(100) * D("1.001") ** i for i in range(30)], "ETH": [D(10)] * 30}
    wild = {"BTC": [D(100) * D("1.08") ** (i % 2) for i in range(30)], "ETH": [D(10)] * 30}
    no_history = t.check(drift, TriggerContext(NOW))  # type: ignore[arg-type]
    assert not no_history.fire and "no price history" in no_history.reason
    fired = t.check(drift, TriggerContext(NOW, history=calm))  # type: ignore[arg-type]
    assert fired.fire and fired.out_of_band[0] == "BTC"
    # ETH's flat history gives the floor too: it is out as well
    assert "ETH" in fired.out_of_band
    quiet = t.check(drift, TriggerContext(NOW, history=wild))  # type: ignore[arg-type]
    # BTC's own vol ~7.7 %/bar -> capped band 20 %: BTC in band; ETH flat -> floor -> out
    assert quiet.fire and quiet.out_of_band == ("ETH",)
    wide = VolScaledThreshold(
        half_life=5,
        base_band=D("0.06"),
        floor=D("0.01"),
        cap=D("0.2"),
        reference_vol=0.03,
        per_asset=False,
    )
    # portfolio-wide: every leg uses the portfolio's vol (0.4 x BTC's): ~0.06 x 1.03 > 5 pts
    assert not wide.check(drift, TriggerContext(NOW, history=wild)).fire  # type: ignore[arg-type]


def test_portfolio_vol_is_target_weighted() -> None:
    t = VolScaledThreshold(half_life=3, per_asset=False, window=4)
    hist = {"A": [D(1), D(2), D(1)], "B": [D(1), D(1), D(1)]}
    per, port = t.vols(hist, {"A": D("0.5"), "B": D("0.5")})
    assert per["B"] == 0.0
    assert per["A"] is not None and port is not None
    assert port == pytest.approx(0.5 * per["A"], rel=1e-12)


@given(st.lists(st.floats(0.5, 2.0), min_size=2, max_size=40), st.floats(0.5, 50))
def test_only_the_last_window_counts(factors: list[float], half_life: float) -> None:
    closes = [100.0]
    for f in factors:
        closes.append(closes[-1] * f)
    t = VolScaledThreshold(half_life=half_life)
    n = t.history_bars
    hist = {"A": [D(repr(c)) for c in closes]}
    longer = {"A": [D(7), D(9), *hist["A"]]}
    if len(closes) >= n:  # earlier closes beyond the window change nothing
        assert t.vols(hist, {"A": D(1)}) == t.vols(longer, {"A": D(1)})
    vol = t.vols(hist, {"A": D(1)})[0]["A"]
    assert vol is not None and vol >= 0


def test_history_bars_walks_combinators() -> None:
    v = VolScaledThreshold(half_life=4)
    assert v.history_bars == 21
    assert history_bars(Threshold()) == 0
    assert history_bars(AllOf((Calendar(period=timedelta(days=1)), v))) == 21
    assert history_bars(AnyOf((Threshold(), VolScaledThreshold(window=50)))) == 51


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        VolScaledThreshold(floor=D("0.2"), cap=D("0.1"))
    with pytest.raises(ValueError, match="half_life"):
        VolScaledThreshold(half_life=0)
    with pytest.raises(ValueError, match="reference_vol"):
        VolScaledThreshold(reference_vol=0)
