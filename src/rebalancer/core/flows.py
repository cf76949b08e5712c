"""Cash flows: deposits and withdrawals the journal cannot explain, and what to do with them.

* :func:`detect_flows` -- the balances a cycle should find are the previous cycle's
  post-trade balances plus every fill since (journaled); whatever differs by more than the
  tolerance came from outside: a deposit (> 0) or a withdrawal (< 0), per asset.
* :func:`flow_targets` -- a deposit of the quote is spread over the underweight assets and a
  withdrawal taken from the overweight ones, without a full rebalance: the weights returned
  make the planner (unchanged, with its exact fee arithmetic) buy only underweight legs up to
  the new cash (or sell only overweight legs down to the quote's shortfall). Each leg gets a
  share of the flow proportional to its gap to target (never past its target); a leg not
  chosen keeps its current weight, so it does not trade.
* :func:`time_weighted_return` -- the return of the strategy with the flows taken out:
  the product of the sub-period returns between flows; :func:`performance` finds the flows
  between journaled cycles (balances, prices, fills) and separates them from the profit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from rebalancer.core.drift import PortfolioDrift
from rebalancer.core.fills import apply_fill
from rebalancer.core.model import ONE, ZERO, Fill

DEFAULT_TOLERANCE = Decimal("1e-8")
"""Relative part of a difference that is rounding, not a flow (plus the same absolute)."""


def expected_balances(
    previous: Mapping[str, Decimal], fills: Iterable[Fill], quote: str
) -> dict[str, Decimal]:
    """``previous`` balances moved by every fill since."""
    out = dict(previous)
    for f in fills:
        out = apply_fill(out, f, quote)
    return out


def detect_flows(
    expected: Mapping[str, Decimal],
    current: Mapping[str, Decimal],
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> dict[str, Decimal]:
    """``current - expected`` per asset, where it exceeds ``tolerance`` (relative to the
    larger balance, plus the same absolute): deposits > 0, withdrawals < 0."""
    out: dict[str, Decimal] = {}
    for asset in sorted(set(expected) | set(current)):
        was, now = expected.get(asset, ZERO), current.get(asset, ZERO)
        diff = now - was
        if abs(diff) > tolerance * max(abs(was), abs(now)) + tolerance:
            out[asset] = diff
    return out


def flow_targets(drift: PortfolioDrift, flow: Decimal, quote: str) -> dict[str, Decimal] | None:
    """Weights that invest a quote ``flow`` (deposit > 0) or raise a withdrawal's cash (< 0)
    without a full rebalance; None when there is nothing to do.

    ``drift`` is the portfolio after the flow. Deposit: the buys spend at most the cash above
    the quote's target (and at most ``flow``), split over the underweight assets in proportion
    to their gaps. Withdrawal: the sells raise at most the quote's shortfall below its target
    (and at most ``-flow``), split over the overweight assets in proportion to their excess.
    """
    total = drift.total_value
    if total <= 0 or flow == 0:
        return None
    rows = drift.by_asset()
    if quote not in rows:
        return None
    cash = rows[quote]
    weights = {a.asset: a.weight for a in drift.assets}
    sign = ONE if flow > 0 else -ONE
    # gaps in value: for a deposit what each underweight asset lacks, for a withdrawal what
    # each overweight asset has in excess (both >= 0)
    gaps = {
        a.asset: sign * (a.target - a.weight) * total
        for a in drift.assets
        if a.asset != quote and sign * (a.target - a.weight) > 0
    }
    room = sign * (cash.weight - cash.target) * total  # cash above (or missing below) target
    budget = min(abs(flow), room, sum(gaps.values(), ZERO))
    if budget <= 0 or not gaps:
        return None
    scale = budget / sum(gaps.values(), ZERO)
    for asset, gap in gaps.items():
        weights[asset] += sign * gap * scale / total
    weights[quote] = ONE - sum((w for a, w in weights.items() if a != quote), ZERO)
    return weights


def time_weighted_return(values: Sequence[Decimal], flows: Sequence[Decimal]) -> Decimal:
    """``prod((values[i] - flows[i]) / values[i-1]) - 1``.

    ``values[i]``: the portfolio's value at point ``i`` *after* the flow ``flows[i]`` arrived
    (``flows[0]`` is ignored: the start). A sub-period starting from 0 is skipped.
    """
    if len(values) != len(flows):
        raise ValueError(f"{len(values)} values but {len(flows)} flows")
    growth = ONE
    for i in range(1, len(values)):
        if values[i - 1] > 0:
            growth *= (values[i] - flows[i]) / values[i - 1]
    return growth - ONE


@dataclass(frozen=True)
class Observation:
    """One journaled cycle: when, the balances it found (before trading) and the prices."""

    at: datetime
    balances: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]


@dataclass(frozen=True)
class Performance:
    """The run between the first and last observation, flows separated from performance.

    ``pnl = end_value - start_value - net_flows``; ``twr`` the time-weighted return;
    ``flows``: (time, asset, amount, value in quote) of each flow found.
    """

    start_value: Decimal
    end_value: Decimal
    net_flows: Decimal
    pnl: Decimal
    twr: Decimal
    flows: tuple[tuple[datetime, str, Decimal, Decimal], ...]


def _worth(balances: Mapping[str, Decimal], prices: Mapping[str, Decimal], quote: str) -> Decimal:
    return sum(
        (amt * (ONE if a == quote else prices.get(a, ZERO)) for a, amt in balances.items()),
        ZERO,
    )


def performance(
    observations: Sequence[Observation],
    fills: Iterable[tuple[datetime, Fill]],
    quote: str,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> Performance:
    """Flows between consecutive observations (the balances the journal's fills do not
    explain, valued at the later prices) and the time-weighted return over them."""
    obs = sorted(observations, key=lambda o: o.at)
    if not obs:
        return Performance(ZERO, ZERO, ZERO, ZERO, ZERO, ())
    timed = sorted(fills, key=lambda x: x[0])
    values = [_worth(obs[0].balances, obs[0].prices, quote)]
    flow_values = [ZERO]
    found: list[tuple[datetime, str, Decimal, Decimal]] = []
    for prev, cur in pairwise(obs):
        between = [f for at, f in timed if prev.at <= at < cur.at]
        flows = detect_flows(
            expected_balances(prev.balances, between, quote), cur.balances, tolerance
        )
        total = ZERO
        for asset, amount in flows.items():
            worth = amount * (ONE if asset == quote else cur.prices.get(asset, ZERO))
            found.append((cur.at, asset, amount, worth))
            total += worth
        values.append(_worth(cur.balances, cur.prices, quote))
        flow_values.append(total)
    net = sum(flow_values, ZERO)
    return Performance(
        values[0],
        values[-1],
        net,
        values[-1] - values[0] - net,
        time_weighted_return(values, flow_values),
        tuple(found),
    )
