"""Faults mid-cycle, through the real ccxt.binance, the real SqlJournal and the real service.

Each case breaks one thing, checks what the bot did about it, lets the exchange recover,
runs the next cycle (which reconciles first), and then checks every invariant of the
matrix (:func:`faults.harness.check_invariants`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from doubles.binance import Fault
from faults.harness import World, finish, journal_rows, make_world
from rebalancer.core.errors import ExchangeBanned, RetryLater
from rebalancer.core.model import Side

ORDER = ("POST", "/api/v3/order")
LOOKUP = ("GET", "/api/v3/order")
ACCOUNT = ("GET", "/api/v3/account")
TICKERS = ("GET", "/api/v3/ticker/24hr")


def sources(world: World) -> dict[str, tuple[str, str]]:
    orders, _, _ = journal_rows(world)
    return {o.client_order_id: (o.status, o.source) for o in orders}


def recovers(world: World, minutes: int = 10) -> None:
    """The next cycle reconciles, then trades the rest from real balances."""
    report = world.cycle(minutes)
    assert report.reconciled is not None and report.reconciled.clear
    assert not report.stopped, report.stopped


def unknown_then_found(fault: Fault, found: str) -> Callable[[World], None]:
    """The order request fails with ``fault``: the cycle stops, the next one finds out."""

    def case(w: World) -> None:
        w.double.inject(*ORDER, fault)
        report = w.cycle(0)
        assert "unknown" in report.stopped and report.fills == []
        first = report.failed[0].order.client_order_id
        assert sources(w)[first] == ("unknown", "exchange reply")
        placed = w.double.accepted()[first]
        assert placed == (1 if found == "reconciled: filled" else 0)
        report = w.cycle(10)
        assert report.reconciled is not None
        assert report.reconciled.resolved[first].source == found
        assert not report.stopped and report.drift_after is not None
        assert w.double.accepted()[first] == placed  # looked up, never re-sent

    return case


def truncated_order_is_looked_up(w: World) -> None:
    """The order was placed but its reply cut: the adapter polls it by client id."""
    w.double.inject(*ORDER, Fault.TRUNCATED)
    report = w.cycle(0)
    first = w.double.placed()[0].params["newClientOrderId"]
    assert not report.stopped and report.failed == []
    assert first in {f.client_order_id for f in report.fills}
    assert sources(w)[first] == ("filled", "exchange reply")
    lookups = [r for r in w.double.log if (r.method, r.path) == LOOKUP]
    assert any(r.params.get("origClientOrderId") == first for r in lookups[1:])
    assert w.double.accepted()[first] == 1


def read_fails(path: tuple[str, str], fault: Fault, message: str) -> Callable[[World], None]:
    def case(w: World) -> None:
        w.double.inject(*path, fault)
        with pytest.raises(RetryLater, match=message):
            w.cycle(0)
        assert w.double.placed() == []
        recovers(w)

    return case


def retry_after_is_honoured(w: World) -> None:
    w.double.retry_after = "2"
    w.double.inject(*TICKERS, Fault.HTTP_429)
    report = w.cycle(0)
    assert w.sleeps.count(2.0) == 1 and report.drift_after is not None


def retry_after_too_long_is_left_to_the_daemon(w: World) -> None:
    w.double.retry_after = "600"
    w.double.inject(*TICKERS, Fault.HTTP_429)
    with pytest.raises(RetryLater, match="429") as info:
        w.cycle(0)
    assert not isinstance(info.value, ExchangeBanned)
    assert 600.0 not in w.sleeps and w.double.placed() == []
    recovers(w)


def ban_halts_until_resume(w: World) -> None:
    w.double.retry_after = "120"
    w.double.inject(*ACCOUNT, Fault.HTTP_418)
    with pytest.raises(ExchangeBanned, match="418") as info:
        w.cycle(0)
    assert info.value.retry_after == 120
    halt = w.journal.halt_status().active
    assert halt is not None and "banned" in halt.reason
    assert [e.kind for e in w.notifier.events] == ["halt"]
    report = w.cycle(10)  # the ban is over, the halt is not
    assert "halted since" in report.stopped and w.double.placed() == []
    w.journal.record_resume(report.at, "checked the request rate")
    recovers(w, 20)


def ban_between_sells_and_buys_halts(w: World) -> None:
    def ban(d: object) -> None:
        if len(w.double.placed()) == 2:
            w.double.inject(*ACCOUNT, Fault.HTTP_418)

    w.double.after_order.append(ban)
    report = w.cycle(0)
    assert "halted" in report.stopped and [f.side for f in report.fills] == [Side.SELL] * 2
    w.double.after_order.clear()
    assert "halted since" in w.cycle(10).stopped
    w.journal.record_resume(report.at, "ok")
    recovers(w, 20)


def ban_on_the_order_then_on_its_look_up(w: World) -> None:
    """418 on the order: its outcome is unknown; the look-up is banned too: halt."""
    w.double.inject(*ORDER, Fault.HTTP_418)
    report = w.cycle(0)
    assert "unknown" in report.stopped
    first = report.failed[0].order.client_order_id
    w.double.inject(*LOOKUP, Fault.HTTP_418)
    with pytest.raises(ExchangeBanned):
        w.cycle(10)  # reconciliation hit the ban: halted, nothing sent
    assert w.journal.halt_status().active is not None
    report = w.cycle(20)  # the ban is over: reconciliation may read, but no order goes out
    assert "halted since" in report.stopped and report.fills == []
    assert report.reconciled is not None
    assert report.reconciled.resolved[first].source == "not found: never placed"
    w.journal.record_resume(report.at, "ban over")
    recovers(w, 30)
    assert w.double.accepted()[first] == 0


def clock_error_on_an_order(w: World) -> None:
    w.double.inject(
        *ORDER, (400, -1021, "Timestamp for this request is outside of the recvWindow.")
    )
    report = w.cycle(0)
    assert [f.kind for f in report.failed] == ["OrderRejected"]
    assert "sync the clock" in report.failed[0].error
    first = report.failed[0].order.client_order_id
    assert sources(w)[first] == ("rejected", "exchange reply")
    assert len(report.fills) == 2 and not report.stopped  # the rest of the plan went on
    recovers(w)


def clock_error_on_reads(w: World) -> None:
    w.double.clock_offset_ms = -60_000
    with pytest.raises(RetryLater, match="InvalidNonce"):
        w.cycle(0)
    w.double.clock_offset_ms = 0
    assert w.double.placed() == []
    recovers(w)


def not_found_right_after_creation(w: World) -> None:
    """Binance may not list an order it has just accepted: the adapter polls again."""
    w.double.fill_after_polls = 1
    # the first look-up is the pre-send check; the second, the first poll, says "no such order"
    w.double.inject(*LOOKUP, (400, -2013, "Order does not exist."), after=1)
    report = w.cycle(0)
    first = w.double.placed()[0].params["newClientOrderId"]
    assert not report.stopped and first in {f.client_order_id for f in report.fills}
    assert sources(w)[first] == ("filled", "exchange reply")
    assert w.double.accepted()[first] == 1


def not_found_on_every_poll(w: World) -> None:
    """Still unlisted after max_polls: outcome unknown; the next cycle looks it up."""
    w.exchange.max_polls = 3
    w.double.fill_after_polls = 1
    w.double.inject(*LOOKUP, (400, -2013, "Order does not exist."), after=1)
    for _ in range(2):
        w.double.inject(*LOOKUP, (400, -2013, "Order does not exist."))
    report = w.cycle(0)
    assert "unknown" in report.stopped and report.fills == []
    first = report.failed[0].order.client_order_id
    assert sources(w)[first] == ("unknown", "exchange reply")
    report = w.cycle(10)
    assert report.reconciled is not None
    assert report.reconciled.resolved[first].source == "reconciled: filled"
    assert w.double.accepted()[first] == 1 and not report.stopped


def partial_fill(w: World) -> None:
    w.double.liquidity["ETHUSDT"] = Decimal("0.1")
    report = w.cycle(0)
    eth = next(f for f in report.fills if f.asset == "ETH")
    assert eth.amount == Decimal("0.1") and eth.status == "expired"
    assert sources(w)[eth.client_order_id] == ("filled", "exchange reply")
    buys = [f for f in report.fills if f.side is Side.BUY]
    cash = Decimal(1000) + sum(f.cost - f.fee for f in report.fills if f.side is Side.SELL)
    assert sum(f.cost for f in buys) <= cash  # buys re-sized to what the sells produced
    w.double.liquidity.clear()
    recovers(w)


def insufficient_funds_mid_plan(w: World) -> None:
    # ETH is sold first; meanwhile someone else sells most of the BTC the plan counted on
    w.double.after_order.append(lambda d: w.move("BTC", "-0.049") if len(d.placed()) == 1 else None)
    report = w.cycle(0)
    assert [f.kind for f in report.failed] == ["InsufficientFunds"]
    failed = report.failed[0].order.client_order_id
    assert sources(w)[failed] == ("rejected", "exchange reply")
    assert any(f.side is Side.BUY for f in report.fills)  # the plan went on
    recovers(w)


def exchange_gone_between_sells_and_buys(w: World) -> None:
    def away(d: object) -> None:
        if len(w.double.placed()) == 2:
            w.double.down = True

    w.double.after_order.append(away)
    report = w.cycle(0)
    assert [f.side for f in report.fills] == [Side.SELL, Side.SELL]
    assert "buys wait" in report.stopped
    w.double.after_order.clear()
    w.double.down = False
    report = w.cycle(10)
    assert [f.side for f in report.fills] == [Side.BUY] and report.drift_after is not None


def balances_moved_between_phases(w: World) -> None:
    w.double.after_order.append(
        lambda d: w.move(QUOTE_ASSET, "-900") if len(d.placed()) == 2 else None
    )
    report = w.cycle(0)
    assert report.failed == [] and not report.stopped
    buy = next(f for f in report.fills if f.side is Side.BUY)
    sold = sum(f.cost - f.fee for f in report.fills if f.side is Side.SELL)
    assert buy.cost <= Decimal(1000) - 900 + sold  # sized to the cash really there


QUOTE_ASSET = "USDT"

CASES: dict[str, Callable[[World], None]] = {
    "timeout before the order reached the exchange": unknown_then_found(
        Fault.TIMEOUT_BEFORE, "not found: never placed"
    ),
    "timeout after the exchange accepted the order": unknown_then_found(
        Fault.TIMEOUT_AFTER, "reconciled: filled"
    ),
    "HTTP 500 on the order": unknown_then_found(Fault.HTTP_500, "not found: never placed"),
    "HTTP 503 on the order": unknown_then_found(Fault.HTTP_503, "not found: never placed"),
    "truncated body on the order": truncated_order_is_looked_up,
    "HTTP 503 on the balances": read_fails(ACCOUNT, Fault.HTTP_503, "transient"),
    "truncated balances body": read_fails(ACCOUNT, Fault.TRUNCATED, "could not be parsed"),
    "timeout on the tickers": read_fails(TICKERS, Fault.TIMEOUT_BEFORE, "transient"),
    "429 with Retry-After on a read": retry_after_is_honoured,
    "429 with a too long Retry-After": retry_after_too_long_is_left_to_the_daemon,
    "418 ban halts until resume": ban_halts_until_resume,
    "418 ban between sells and buys": ban_between_sells_and_buys_halts,
    "418 on the order, then on its look-up": ban_on_the_order_then_on_its_look_up,
    "clock error (-1021) on an order": clock_error_on_an_order,
    "clock error (-1021) on reads": clock_error_on_reads,
    "order not found right after creation": not_found_right_after_creation,
    "order not found on every poll": not_found_on_every_poll,
    "partial fill": partial_fill,
    "insufficient funds mid-plan": insufficient_funds_mid_plan,
    "exchange gone between sells and buys": exchange_gone_between_sells_and_buys,
    "balances moved between phases": balances_moved_between_phases,
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault(case: str, tmp_path: Path) -> None:
    world = make_world(tmp_path)
    try:
        CASES[case](world)
    except BaseException:
        world.close()
        raise
    finish(world, case)
