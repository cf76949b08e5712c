"""What the journal says, in the shapes the dashboard, the JSON API and the report show.

Everything is computed from the journal's rows (cycles with their snapshot and drift,
orders, fills, halts) and the daemon's heartbeat file; nothing here trades or reads prices.

* Current weights: the last check's holdings *after* its own fills (its snapshot balances,
  plus what its fills bought and sold, less their fees), valued at that check's prices.
* Equity: each check's total value after its trades (its fees paid). Buy-and-hold: the
  starting holdings (those after the first check in the window, so a paper account that
  starts in cash holds what its first rebalance bought) valued at each later check's
  prices. Returns run from the first check's value *before* its trades (what the account
  started with), so after one check the strategy and buy-and-hold both show the first
  rebalance's fees.
* Drift history: each check's drift per asset (weight − target, before its trades).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from rebalancer.config.bounds import since_time
from rebalancer.core.flows import Observation, Performance
from rebalancer.core.flows import performance as flows_performance
from rebalancer.core.model import Fill, Side
from rebalancer.core.strategy import Strategy
from rebalancer.ports import HaltStatus

ZERO = Decimal(0)
Rows = dict[str, list[dict[str, Any]]]


class JournalReader(Protocol):
    """What the dashboard reads from the journal (the SQL journal has it all)."""

    def history(
        self, since: datetime | None = None, kinds: Iterable[str] = ...
    ) -> dict[str, list[dict[str, Any]]]: ...

    def cycle_details(self, since: datetime | None = None) -> list[dict[str, Any]]: ...

    def halt_status(self) -> HaltStatus: ...

    def record_resume(self, at: datetime, note: str = "") -> None: ...


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``14d`` / ``24h`` / ``2w`` back from ``now``, or an ISO date or time (UTC unless it
    says otherwise); None or "" means from the beginning."""
    return since_time(text, now, "since")


def load_rows(journal: JournalReader, since: datetime | None = None) -> Rows:
    """Cycles (with snapshot and drift), orders, fills, halts and the cash flows the cycles
    journaled since ``since``."""
    rows = journal.history(since, ("orders", "fills", "halts", "flows"))
    rows["cycles"] = journal.cycle_details(since)
    return rows


def _d(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def other_fees(row: dict[str, Any]) -> tuple[tuple[str, Decimal], ...]:
    """A journaled fill's fees in further currencies (``other_fees``: [[asset, amount]])."""
    return tuple((str(a), _d(v)) for a, v in row.get("other_fees") or ())


def fee_pairs(row: dict[str, Any]) -> list[tuple[str, Decimal]]:
    """Every fee of a journaled fill as (asset, amount): the main one, then the others."""
    return [(str(row["fee_asset"]), _d(row["fee"])), *other_fees(row)]


@dataclass(frozen=True)
class AssetWeight:
    asset: str
    amount: Decimal
    value: Decimal
    weight: Decimal
    target: Decimal
    drift: Decimal
    band_low: Decimal | None
    band_high: Decimal | None

    @property
    def in_band(self) -> bool:
        low = self.band_low if self.band_low is not None else Decimal("-Infinity")
        high = self.band_high if self.band_high is not None else Decimal("Infinity")
        return low <= self.weight <= high


@dataclass(frozen=True)
class Weights:
    as_of: datetime | None
    quote: str
    total_value: Decimal
    band: str
    after_trades: bool
    assets: list[AssetWeight]


@dataclass(frozen=True)
class EquityPoint:
    at: datetime
    value: Decimal
    hold: Decimal


@dataclass(frozen=True)
class Equity:
    quote: str
    start_at: datetime | None
    start_holdings: dict[str, Decimal]
    points: list[EquityPoint]


@dataclass(frozen=True)
class DriftHistory:
    times: list[datetime]
    targets: dict[str, Decimal]
    drift: dict[str, list[Decimal]]
    weight: dict[str, list[Decimal]]


@dataclass(frozen=True)
class Summary:
    """The numbers a user judges a run by (``report`` prints them, the API serves them)."""

    quote: str
    start: datetime | None
    end: datetime | None
    checks: int
    rebalances: int
    fills: int
    orders_not_filled: int
    traded: Decimal
    fees: Decimal
    start_value: Decimal
    end_value: Decimal
    hold_end_value: Decimal
    max_drawdown: float
    halts: int
    fees_by_asset: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total_return(self) -> float | None:
        return None if not self.start_value else float(self.end_value / self.start_value - 1)

    @property
    def hold_return(self) -> float | None:
        return None if not self.start_value else float(self.hold_end_value / self.start_value - 1)

    @property
    def premium(self) -> float | None:
        """Rebalancing premium: the strategy's return minus buy-and-hold's."""
        a, b = self.total_return, self.hold_return
        return None if a is None or b is None else a - b


def band_of(strategy: Strategy | None, target: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """The band (low, high) of weights around ``target``; None for an open side."""
    threshold = strategy.threshold if strategy is not None else None
    if threshold is None:
        return None, None
    width = threshold.band_width(target)
    if not width.is_finite():
        return None, None
    return max(target - width, ZERO), target + width


def band_text(strategy: Strategy | None) -> str:
    threshold = strategy.threshold if strategy is not None else None
    return threshold.describe() if threshold is not None else "no band"


def holdings_after(cycle: dict[str, Any], fills: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The cycle's snapshot balances, plus the fills journaled at the cycle's time."""
    quote = cycle["snapshot"]["quote"]
    held = {a: _d(v) for a, v in cycle["snapshot"]["balances"].items()}
    for f in fills:
        if f["at"] != cycle["at"]:
            continue
        asset, amount, cost = f["symbol"].split("/")[0], _d(f["amount"]), _d(f["cost"])
        sign = 1 if f["side"] == "buy" else -1
        held[asset] = held.get(asset, ZERO) + sign * amount
        held[quote] = held.get(quote, ZERO) - sign * cost
        for fee_asset, fee in fee_pairs(f):
            held[fee_asset] = held.get(fee_asset, ZERO) - fee
    return held


def value_of(holdings: dict[str, Decimal], cycle: dict[str, Any]) -> Decimal:
    """``holdings`` at the cycle's snapshot prices (assets without a price count 0)."""
    snap = cycle["snapshot"]
    prices = {a: _d(p) for a, p in snap["prices"].items()}
    prices[snap["quote"]] = Decimal(1)
    return sum((amount * prices.get(a, ZERO) for a, amount in holdings.items()), ZERO)


def weights(rows: Rows, strategy: Strategy | None, quote: str) -> Weights:
    """Weights vs targets after the last check (and its trades), with each band."""
    cycles = rows.get("cycles", [])
    if not cycles:
        return Weights(None, quote, ZERO, band_text(strategy), False, [])
    last = cycles[-1]
    held = holdings_after(last, rows.get("fills", []))
    after = any(f["at"] == last["at"] for f in rows.get("fills", []))
    targets = {d["asset"]: _d(d["target"]) for d in last["drift"]}
    prices = {a: _d(p) for a, p in last["snapshot"]["prices"].items()}
    prices[last["snapshot"]["quote"]] = Decimal(1)
    values = {a: held.get(a, ZERO) * prices.get(a, ZERO) for a in targets}
    total = sum(values.values(), ZERO)
    assets = []
    for asset, target in targets.items():
        weight = values[asset] / total if total else ZERO
        low, high = band_of(strategy, target)
        assets.append(
            AssetWeight(
                asset,
                held.get(asset, ZERO),
                values[asset],
                weight,
                target,
                weight - target,
                low,
                high,
            )
        )
    return Weights(last["at"], last["snapshot"]["quote"], total, band_text(strategy), after, assets)


def value_after(cycle: dict[str, Any], fills: list[dict[str, Any]]) -> Decimal:
    """The cycle's total value after its own trades: its journaled total value (before
    them) plus what its fills changed at the cycle's prices (their fees and the fill prices'
    distance from the snapshot's); the total value itself when it did not trade."""
    before = _d(cycle["total_value"])
    if not any(f["at"] == cycle["at"] for f in fills):
        return before
    held = {a: _d(v) for a, v in cycle["snapshot"]["balances"].items()}
    return before + value_of(holdings_after(cycle, fills), cycle) - value_of(held, cycle)


def equity(rows: Rows, quote: str) -> Equity:
    """Each check's value after its trades (so a rebalance's fees show at the check that
    paid them, the first one included) against the starting holdings held."""
    cycles = rows.get("cycles", [])
    if not cycles:
        return Equity(quote, None, {}, [])
    first = cycles[0]
    fills = rows.get("fills", [])
    start = holdings_after(first, fills)
    points = [EquityPoint(c["at"], value_after(c, fills), value_of(start, c)) for c in cycles]
    return Equity(first["snapshot"]["quote"], first["at"], start, points)


def drift_history(rows: Rows) -> DriftHistory:
    cycles = rows.get("cycles", [])
    times = [c["at"] for c in cycles]
    targets: dict[str, Decimal] = {}
    drift: dict[str, list[Decimal]] = {}
    weight: dict[str, list[Decimal]] = {}
    for i, c in enumerate(cycles):
        for d in c["drift"]:
            a = d["asset"]
            targets[a] = _d(d["target"])
            drift.setdefault(a, [ZERO] * i).append(_d(d["drift"]))
            weight.setdefault(a, [ZERO] * i).append(_d(d["weight"]))
        for a in drift:  # an asset missing from this cycle
            if len(drift[a]) < i + 1:
                drift[a].append(ZERO)
                weight[a].append(ZERO)
    return DriftHistory(times, targets, drift, weight)


def max_drawdown(values: list[Decimal]) -> float:
    peak, worst = ZERO, 0.0
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, float(1 - v / peak))
    return worst


def summary(rows: Rows, quote: str) -> Summary:
    cycles = rows.get("cycles", [])
    fills = rows.get("fills", [])
    orders = rows.get("orders", [])
    eq = equity(rows, quote)
    fees_by_asset: dict[str, Decimal] = {}
    for f in fills:
        for fee_asset, fee in fee_pairs(f):
            fees_by_asset[fee_asset] = fees_by_asset.get(fee_asset, ZERO) + fee
    values = [p.value for p in eq.points]
    return Summary(
        quote=eq.quote,
        start=cycles[0]["at"] if cycles else None,
        end=cycles[-1]["at"] if cycles else None,
        checks=len(cycles),
        rebalances=len({f["at"] for f in fills}),
        fills=len(fills),
        orders_not_filled=sum(1 for o in orders if o["status"] != "filled"),
        traded=sum((_d(f["cost"]) for f in fills), ZERO),
        fees=sum((_d(c["fees_quote"]) for c in cycles), ZERO),
        start_value=_d(cycles[0]["total_value"]) if cycles else ZERO,  # before any trade
        end_value=values[-1] if values else ZERO,
        hold_end_value=eq.points[-1].hold if eq.points else ZERO,
        max_drawdown=max_drawdown(values),
        halts=sum(1 for h in rows.get("halts", []) if h["kind"] == "halt"),
        fees_by_asset=fees_by_asset,
    )


def _fill(row: dict[str, Any]) -> Fill:
    symbol = str(row["symbol"])
    return Fill(
        client_order_id=str(row.get("client_order_id", "")),
        asset=symbol.split("/")[0],
        symbol=symbol,
        side=Side(row["side"]),
        amount=_d(row["amount"]),
        price=_d(row["price"]),
        cost=_d(row["cost"]),
        fee=_d(row["fee"]),
        fee_asset=str(row["fee_asset"]),
        other_fees=other_fees(row),
    )


def performance(rows: Rows) -> Performance:
    """Deposits and withdrawals (balance changes the journaled fills do not explain)
    separated from performance: the time-weighted return over the checks
    (:func:`rebalancer.core.flows.performance`)."""
    cycles = rows.get("cycles", [])
    if not cycles:
        return flows_performance([], [], "")
    quote = cycles[0]["snapshot"]["quote"]
    observations = [
        Observation(
            c["at"],
            {a: _d(v) for a, v in c["snapshot"]["balances"].items()},
            {a: _d(p) for a, p in c["snapshot"]["prices"].items()},
        )
        for c in cycles
    ]
    fills = [(f["at"], _fill(f)) for f in rows.get("fills", [])]
    return flows_performance(observations, fills, quote)


FlowTuple = tuple[datetime, str, Decimal, Decimal]  # at, asset, amount, value in the quote


def journaled_flows(rows: Rows) -> list[FlowTuple]:
    """The deposits and withdrawals the cycles journaled (``flows`` rows), oldest first:
    (cycle time, asset, amount, value in the quote at that cycle's price)."""
    return [(r["at"], r["asset"], _d(r["amount"]), _d(r["value"])) for r in rows.get("flows", [])]


def unjournaled_flows(rows: Rows, perf: Performance) -> list[FlowTuple]:
    """Flows :func:`performance` finds between checks that no cycle journaled (checks run
    without the previous balances, e.g. single ``rebalancer rebalance`` runs)."""
    seen = {(at, asset) for at, asset, _, _ in journaled_flows(rows)}
    return [f for f in perf.flows if (f[0], f[1]) not in seen]
