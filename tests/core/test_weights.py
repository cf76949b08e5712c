"""Desired weights: back to target, or to the band edge with the quote absorbing."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.drift import AssetDrift, PortfolioDrift, compute_drift
from rebalancer.core.triggers import Threshold
from rebalancer.core.weights import desired_weights

from .strategies import CORE, QUOTE, Case, cases

D = Decimal


def portfolio(*rows: tuple[str, str, str]) -> PortfolioDrift:
    """Rows of (asset, weight, target) for a total of 1."""
    return PortfolioDrift(
        D(1), tuple(AssetDrift(a, D(w), D(1), D(w), D(w), D(t)) for a, w, t in rows)
    )


def exact_sum(values: list[Decimal]) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 1000
        return sum(values, D(0))


def test_target_style_returns_the_targets() -> None:
    p = portfolio(("BTC", "0.7", "0.5"), (QUOTE, "0.3", "0.5"))
    expected = {"BTC": D("0.5"), QUOTE: D("0.5")}
    assert desired_weights(p, "target", Threshold(D("0.05")), QUOTE) == expected
    assert desired_weights(p, "band_edge", None, QUOTE) == expected


def test_quote_absorbs_so_in_band_assets_do_not_move() -> None:
    """Targets 40 / 40 / 20, band ±5 points, weights 50 / 38 / 12.
    BTC clipped to 45; ETH (38, in [35, 45]) stays; USDT clipped to 15 then absorbs the
    missing 2 points: 17, inside [15, 25]. 45 + 38 + 17 = 100."""
    p = portfolio(("BTC", "0.5", "0.4"), ("ETH", "0.38", "0.4"), (QUOTE, "0.12", "0.2"))
    got = desired_weights(p, "band_edge", Threshold(D("0.05")), QUOTE)
    assert got == {"BTC": D("0.45"), "ETH": D("0.38"), QUOTE: D("0.17")}


def test_when_the_quote_cannot_absorb_the_rest_moves_proportionally() -> None:
    """Targets A 30, B 30, C 30, USDT 10 (%); band_rel 50 % -> widths 15, 15, 15, 5 points.
    Weights A 80, B 10, C 10, USDT 0 -> clipped A 45, B 15, C 15, USDT 5: sum 80, 20 short.
    USDT absorbs up to its edge 15 (10 points); the other 10 come from B and C, the weights
    below their targets, each 15 away: both move 5 -> 20. Result 45 / 20 / 20 / 15."""
    p = portfolio(
        ("A", "0.8", "0.3"), ("B", "0.1", "0.3"), ("C", "0.1", "0.3"), (QUOTE, "0", "0.1")
    )
    got = desired_weights(p, "band_edge", Threshold(None, D("0.5")), QUOTE)
    assert got == {"A": D("0.45"), "B": D("0.2"), "C": D("0.2"), QUOTE: D("0.15")}


def test_without_a_quote_the_weights_on_the_excess_side_move() -> None:
    """Same as the 40/40/20 case but nobody is named quote: ETH (2 under) and USDT (5
    under, after clipping) share the 2 points in proportion 2 : 5."""
    p = portfolio(("BTC", "0.5", "0.4"), ("ETH", "0.38", "0.4"), (QUOTE, "0.12", "0.2"))
    got = desired_weights(p, "band_edge", Threshold(D("0.05")))
    assert got["BTC"] == D("0.45")
    assert abs(got["ETH"] - (D("0.38") + D("0.02") * 2 / 7)) < D("1e-26")
    assert abs(got[QUOTE] - (D("0.15") + D("0.02") * 5 / 7)) < D("1e-26")
    assert exact_sum(list(got.values())) == 1


thresholds = st.one_of(
    st.builds(Threshold, st.sampled_from([D("0.01"), D("0.05"), D("0.1")]), st.none()),
    st.builds(Threshold, st.none(), st.sampled_from([D("0.1"), D("0.25"), D("0.5")])),
    st.builds(
        Threshold,
        st.sampled_from([D("0.02"), D("0.05")]),
        st.sampled_from([D("0.2"), D("0.25")]),
    ),
)


def band(t: Threshold, target: Decimal) -> tuple[Decimal, Decimal]:
    """The band, computed here from the rule's definition (tighter of the two widths)."""
    # band_rel only for positive targets; a zero target with band_rel alone is unbounded
    widths = [t.band_abs] if t.band_abs is not None else []
    if t.band_rel is not None and target > 0:
        widths.append(t.band_rel * target)
    w = min(widths) if widths else D("Infinity")
    return max(D(0), target - w), target + w


@CORE
@given(cases(), thresholds)
def test_band_edge_properties(case: Case, threshold: Threshold) -> None:
    drift = compute_drift(case.snapshot, case.targets)
    got = desired_weights(drift, "band_edge", threshold, QUOTE)
    assert set(got) == set(case.targets)
    if drift.total_value <= 0:
        assert got == dict(case.targets)
        return
    # inside every band, summing to exactly 1
    bands = {a.asset: band(threshold, a.target) for a in drift.assets}
    for a, w in got.items():
        lo, hi = bands[a]
        assert lo <= w <= hi, (a, w, lo, hi)
    assert exact_sum(list(got.values())) == 1
    # the clipped weights: where each out-of-band asset must go at least
    clipped = {
        a.asset: min(max(a.weight, bands[a.asset][0]), bands[a.asset][1]) for a in drift.assets
    }
    excess = exact_sum(list(clipped.values())) - 1
    q_lo, q_hi = bands[QUOTE]
    if q_lo <= clipped[QUOTE] - excess <= q_hi:
        # the quote can absorb: every other asset goes exactly to its clipped weight, so
        # in-band assets keep their weight (and will not trade)
        for a in drift.assets:
            if a.asset != QUOTE:
                assert got[a.asset] == clipped[a.asset], a
    else:
        # the quote is at its band edge on the side that helps; the others move from
        # their clipped weight towards (never past) their target
        assert got[QUOTE] == (q_lo if excess > 0 else q_hi)
        for a in drift.assets:
            c, t, w = clipped[a.asset], a.target, got[a.asset]
            if a.asset != QUOTE:
                assert min(c, t) <= w <= max(c, t), a


def test_rounding_residue_never_moves_an_in_band_asset_away_from_its_target() -> None:
    """V = 1.01: BTC 1 (target 100 %), ETH 0.01 (target 0), no cash, band ±1 point.
    All three are in band; the 28-digit weights 0.990099...01 and 0.0099009...01 sum to
    1 + 1e-30. That residue must not push BTC further from its target: it goes to ETH,
    which it moves towards its target 0."""
    total = D("1.01")
    rows = [("BTC", D(1), D(1)), ("ETH", D("0.01"), D(0)), (QUOTE, D(0), D(0))]
    drift = PortfolioDrift(
        total, tuple(AssetDrift(a, v, D(1), v, v / total, t) for a, v, t in rows)
    )
    got = desired_weights(drift, "band_edge", Threshold(D("0.01")), QUOTE)
    btc, eth, _ = drift.assets
    assert got["BTC"] == btc.weight
    assert got[QUOTE] == 0
    assert got["ETH"] == eth.weight - D("1e-30")
    assert exact_sum(list(got.values())) == 1
