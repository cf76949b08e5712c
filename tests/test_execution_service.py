"""Execution through the service: limits inside the spread, fallbacks, slices, pauses.

Against the paper exchange (its simulated book quoted as bids/asks) and small wrappers that
record every journal write and exchange call in one list, so the order of "journaled" and
"sent" is checked, not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import OrderOutcomeUnknown
from rebalancer.core.execution import ExecutionPolicy, limit_price
from rebalancer.core.model import Fill, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.rules import truncate
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.ports import OrderOutcome
from rebalancer.service import client_order_id, part_order_id, run_cycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"BTC": D("0.5"), "ETH": D("0.3"), "USDT": D("0.2")}
PRICES = {"BTC": D(40000), "ETH": D(2000)}
SLIP = D("0.001")  # the simulated book: bid = price * 0.999, ask = price * 1.001
MAKER = D("0.0002")
LIMIT = ExecutionPolicy(order_type="limit_inside", limit_offset=D("0.25"))


def strategy(execution: ExecutionPolicy = LIMIT) -> Strategy:
    policy = PlanPolicy(min_trade=D(10), slippage=SLIP)
    return Strategy("USDT", TARGETS, Threshold(D("0.05")), policy, execution)


def paper(balances: dict[str, str], *, book: bool = True) -> PaperExchange:
    ex = PaperExchange(
        "USDT",
        {k: D(v) for k, v in balances.items()},
        D("0.001"),
        SLIP,
        maker_fee=MAKER,
        quote_book=book,
    )
    ex.set_prices(PRICES, T0)
    return ex


def wide_ranges(ex: PaperExchange) -> None:
    """The next bar trades through every limit."""
    ex.set_ranges({a: p / 2 for a, p in PRICES.items()}, {a: p * 2 for a, p in PRICES.items()})


@dataclass
class Log:
    lines: list[str] = field(default_factory=list)


class LoggingJournal(MemoryJournal):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def record_intent(self, order: OrderRequest, at: datetime) -> None:
        self.log.lines.append(f"intent {order.client_order_id}")
        super().record_intent(order, at)

    def record_outcome(self, client_order_id: str, outcome: OrderOutcome, at: datetime) -> None:
        self.log.lines.append(f"outcome {client_order_id} {outcome.status}")
        super().record_outcome(client_order_id, outcome, at)


@dataclass
class Recording:
    """The paper exchange, logging calls; limits can fill only ``limit_share`` of their
    amount (a partial fill) and chosen calls can raise."""

    inner: PaperExchange
    log: Log
    limit_share: D | None = None
    fail_on: dict[str, Exception] = field(default_factory=dict)
    name: str = "recording"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.log.lines.append(f"market {order.client_order_id} {order.amount}")
        if order.client_order_id in self.fail_on:
            raise self.fail_on[order.client_order_id]
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        self.log.lines.append(f"limit {order.client_order_id} {order.amount} @ {price}")
        if order.client_order_id in self.fail_on:
            raise self.fail_on[order.client_order_id]
        if self.limit_share is None:
            return self.inner.create_limit_order(order, price, timeout)
        step = self.inner.markets[order.asset].amount_step
        part = replace(order, amount=truncate(order.amount * self.limit_share, step))
        fill = self.inner.create_limit_order(part, price, timeout)
        return replace(fill, status="canceled")  # the rest was cancelled at the timeout

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


def run(
    ex: Recording, execution: ExecutionPolicy = LIMIT, **kw: object
) -> tuple[object, LoggingJournal, MemoryNotifier]:
    journal, notifier = LoggingJournal(ex.log), MemoryNotifier()
    report = run_cycle(ex, journal, notifier, strategy(execution), T0, **kw)  # type: ignore[arg-type]
    return report, journal, notifier


def sent_before_journaled(lines: list[str]) -> list[str]:
    """Exchange calls whose client id was not journaled as an intent before them."""
    seen: set[str] = set()
    bad = []
    for line in lines:
        kind, cid = line.split()[:2]
        if kind == "intent":
            seen.add(cid)
        elif kind in ("market", "limit") and cid not in seen:
            bad.append(line)
    return bad


# -- limits ------------------------------------------------------------------------------------


def test_a_limit_filled_in_full_pays_the_maker_fee_at_its_price() -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    wide_ranges(inner)
    ex = Recording(inner, Log())
    report, journal, notifier = run(ex)
    assert report.fills and not report.failed  # type: ignore[attr-defined]
    bid, ask = PRICES["BTC"] * (1 - SLIP), PRICES["BTC"] * (1 + SLIP)
    sell = report.fills[0]  # type: ignore[attr-defined]
    assert sell.side is Side.SELL and sell.price == limit_price(Side.SELL, bid, ask, D("0.25"))
    assert sell.price == D(40000) * D("1.0005")  # a quarter of the spread below the ask
    assert sell.fee == sell.cost * MAKER
    for f in report.fills:  # type: ignore[attr-defined]
        assert f.status == "closed"
        assert f.fee == (f.amount if f.side is Side.BUY else f.cost) * MAKER
    assert not any(line.startswith("market") for line in ex.log.lines)
    assert [x.fallback for x in report.limits] == ["", ""]  # type: ignore[attr-defined]
    assert [x.filled for x in report.limits] == [f.amount for f in report.fills]  # type: ignore[attr-defined]
    assert report.fills[0].client_order_id == part_order_id(T0, Side.SELL, 0, 0, False)  # type: ignore[attr-defined]
    assert not journal.unresolved_intents()
    assert sent_before_journaled(ex.log.lines) == []
    body = next(e for e in notifier.events if e.kind == "rebalance").body
    assert "filled as maker" in body
    assert report.summary()["limits"][0]["filled_as_maker"] == str(sell.amount)  # type: ignore[attr-defined]


def test_a_partly_filled_limit_sends_the_rest_at_market_with_a_new_journaled_id() -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    wide_ranges(inner)
    ex = Recording(inner, Log(), limit_share=D("0.4"))
    report, journal, _ = run(ex)
    planned = report.plan.sells[0]  # type: ignore[attr-defined]
    limit_id = part_order_id(T0, Side.SELL, 0, 0, False)
    market_id = part_order_id(T0, Side.SELL, 0, 0, True)
    sells = [f for f in report.fills if f.side is Side.SELL]  # type: ignore[attr-defined]
    assert [f.client_order_id for f in sells] == [limit_id, market_id]
    assert sum(f.amount for f in sells) == planned.amount  # nothing lost, nothing doubled
    assert sells[0].fee == sells[0].cost * MAKER
    assert sells[1].price == PRICES["BTC"] * (1 - SLIP)  # the market rest at the bid
    assert sells[1].fee == sells[1].cost * D("0.001")  # taker
    lines = ex.log.lines
    assert lines.index(f"intent {market_id}") < lines.index(f"market {market_id} {sells[1].amount}")
    assert lines.index(f"outcome {limit_id} filled") < lines.index(f"intent {market_id}")
    assert sent_before_journaled(lines) == []
    assert report.limits[0].fallback == f"market {market_id}"  # type: ignore[attr-defined]
    assert len(market_id) <= 18 and market_id.isalnum() and market_id.islower()
    assert not journal.unresolved_intents()


def test_a_limit_that_fills_nothing_is_canceled_and_falls_back_to_market() -> None:
    ex = Recording(paper({"BTC": "0.2", "USDT": "0"}), Log())  # no range: nothing fills
    report, journal, _ = run(ex)
    limit_id = part_order_id(T0, Side.SELL, 0, 0, False)
    assert f"outcome {limit_id} canceled" in ex.log.lines
    assert not journal.unresolved_intents()
    assert limit_id not in {f.client_order_id for f in report.fills}  # type: ignore[attr-defined]
    sell = report.fills[0]  # type: ignore[attr-defined]
    assert sell.client_order_id == part_order_id(T0, Side.SELL, 0, 0, True)
    assert sell.amount == report.plan.sells[0].amount  # type: ignore[attr-defined]
    assert report.limits[0].filled == 0  # type: ignore[attr-defined]
    assert sent_before_journaled(ex.log.lines) == []
    assert report.drift_after is not None  # type: ignore[attr-defined]
    assert all(abs(a.drift) < D("0.01") for a in report.drift_after.assets)  # type: ignore[attr-defined]


def test_fallback_none_leaves_the_rest_for_the_next_cycle() -> None:
    ex = Recording(paper({"BTC": "0.2", "USDT": "0"}), Log())
    report, _, notifier = run(ex, replace(LIMIT, limit_fallback="none"))
    assert report.fills == []  # type: ignore[attr-defined]
    assert not any(line.startswith("market") for line in ex.log.lines)
    assert [x.fallback for x in report.limits] == ["none"]  # type: ignore[attr-defined]
    assert ex.inner.balances["BTC"] == D("0.2")
    event = next(e for e in notifier.events if e.kind == "limit")
    assert "left for the next cycle" in event.body


def test_a_rest_below_the_market_minimum_is_reported_as_skipped() -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    wide_ranges(inner)
    # fill all but 0.00005 BTC (2 USDT, under the 5 USDT minimum notional)
    ex = Recording(inner, Log(), limit_share=D("0.9995"))
    report, _, notifier = run(ex)
    sell = report.limits[0]  # type: ignore[attr-defined]
    assert sell.side is Side.SELL
    assert sell.amount - sell.filled > 0
    assert (sell.amount - sell.filled) * 40000 < 5
    assert sell.fallback.startswith("skipped: notional")
    assert not any(
        line.startswith(f"market {part_order_id(T0, Side.SELL, 0, 0, True)}")
        for line in ex.log.lines
    )
    assert "the rest skipped" in next(e for e in notifier.events if e.kind == "rebalance").body


def test_without_a_bid_and_ask_limit_inside_sends_market_orders() -> None:
    ex = Recording(paper({"BTC": "0.2", "USDT": "0"}, book=False), Log())
    report, _, _ = run(ex)
    assert report.limits == [] and report.fills  # type: ignore[attr-defined]
    assert not any(line.startswith("limit") for line in ex.log.lines)
    assert report.fills[0].client_order_id == part_order_id(T0, Side.SELL, 0, 0, False)  # type: ignore[attr-defined]


# -- slices ------------------------------------------------------------------------------------


def test_slices_are_each_journaled_before_they_are_sent_with_pauses_between() -> None:
    ex = Recording(paper({"BTC": "0.2", "USDT": "0"}), Log())
    pauses: list[timedelta] = []
    policy = ExecutionPolicy(slice_above=D(2000), slice_interval=timedelta(seconds=5))
    report, journal, _ = run(ex, policy, pause=pauses.append)
    planned = report.plan.sells[0]  # type: ignore[attr-defined]
    sells = [f for f in report.fills if f.side is Side.SELL]  # type: ignore[attr-defined]
    assert len(sells) == 3  # 0.1 BTC = ~4,000 USDT in slices of at most 2,000
    assert sum(f.amount for f in sells) == planned.amount
    assert all(f.amount * planned.expected_price <= 2000 for f in sells)
    ids = [part_order_id(T0, Side.SELL, 0, k, False) for k in range(3)]
    assert [f.client_order_id for f in sells] == ids
    sell_lines = [line for line in ex.log.lines if line.split()[1] in ids]
    assert [line.split()[0] for line in sell_lines] == ["intent", "market", "outcome"] * 3
    assert sent_before_journaled(ex.log.lines) == []
    buys = [f for f in report.fills if f.side is Side.BUY]  # type: ignore[attr-defined]
    # one pause between consecutive slices of each leg, none before the first
    assert pauses == [timedelta(seconds=5)] * (len(sells) - 1 + len(buys) - 1)
    assert not journal.unresolved_intents()


def test_an_unknown_outcome_mid_slices_stops_the_cycle() -> None:
    second = part_order_id(T0, Side.SELL, 0, 1, False)
    ex = Recording(
        paper({"BTC": "0.2", "USDT": "0"}),
        Log(),
        fail_on={second: OrderOutcomeUnknown("timeout", second)},
    )
    report, journal, _ = run(ex, ExecutionPolicy(slice_above=D(2000)))
    assert report.stopped and "look it up" in report.stopped  # type: ignore[attr-defined]
    sent = [line.split()[1] for line in ex.log.lines if line.startswith("market")]
    assert sent == [part_order_id(T0, Side.SELL, 0, 0, False), second]  # no third, no buys
    assert [o.client_order_id for o in journal.unresolved_intents()] == [second]


def test_slices_and_limits_together() -> None:
    inner = paper({"BTC": "0.2", "USDT": "0"})
    wide_ranges(inner)
    ex = Recording(inner, Log())
    report, _, _ = run(ex, replace(LIMIT, slice_above=D(2000)))
    sells = [x for x in report.limits if x.side is Side.SELL]  # type: ignore[attr-defined]
    assert len(sells) == 3 and all(x.filled == x.amount for x in sells)
    assert sent_before_journaled(ex.log.lines) == []


# -- the default path ----------------------------------------------------------------------------


def test_the_default_policy_sends_plain_market_orders_as_before() -> None:
    inner = PaperExchange("USDT", {"BTC": D("0.2"), "USDT": D(0)}, D("0.001"), SLIP)
    inner.set_prices(PRICES, T0)
    assert inner.snapshot(["BTC", "ETH"], "USDT").bids == {}  # no book: plans as always
    ex = Recording(inner, Log())
    journal, notifier = LoggingJournal(ex.log), MemoryNotifier()
    plain = Strategy("USDT", TARGETS, Threshold(D("0.05")), PlanPolicy(D(10), slippage=SLIP))
    report = run_cycle(ex, journal, notifier, plain, T0)
    assert [f.client_order_id for f in report.fills] == [
        client_order_id(T0, Side.SELL, 0),
        client_order_id(T0, Side.BUY, 0),
    ]
    assert report.limits == [] and "limits" in report.summary()
    assert [line.split()[0] for line in ex.log.lines] == ["intent", "market", "outcome"] * 2
    assert all(f.fee_asset and f.status == "closed" for f in report.fills)


def test_paper_rules_are_unchanged_by_the_book() -> None:
    a, b = paper({"USDT": "1"}), paper({"USDT": "1"}, book=False)
    sa, sb = a.snapshot(["BTC"], "USDT"), b.snapshot(["BTC"], "USDT")
    assert sa.markets == sb.markets and sa.prices == sb.prices
    assert sa.bids["BTC"] == D(40000) * (1 - SLIP) and sa.asks["BTC"] == D(40000) * (1 + SLIP)
    assert isinstance(sa.markets["BTC"], MarketRules)
