"""The daemon remembers each cycle's post-trade balances, so a deposit between two ticks is
detected and spread over the underweight assets (``cash_flows = "spread"``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.model import Fill, OrderRequest, Side, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.daemon import Daemon, DaemonPolicy, Schedule

START = datetime(2025, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class DepositingExchange:
    """A paper account with fixed prices that receives a deposit before the n-th snapshot."""

    inner: PaperExchange
    deposit_before: int
    amount: D
    snapshots: int = 0
    orders: list[OrderRequest] = field(default_factory=list)
    name: str = "paper"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        self.snapshots += 1
        if self.snapshots == self.deposit_before:
            self.inner.balances = {
                **self.inner.balances,
                quote: self.inner.balances[quote] + self.amount,
            }
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        self.orders.append(order)
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


def test_a_deposit_between_ticks_is_spread() -> None:
    clock = ManualClock(START)
    inner = PaperExchange(
        "USDT", {"BTC": D(40), "ETH": D(340), "USDT": D(2600)}, D("0.001"), D(0), {}
    )
    inner.set_prices({"BTC": D(100), "ETH": D(10)}, START)
    # ticks: 1 snapshot each (no trade); the deposit lands before the 2nd tick's snapshot
    exchange = DepositingExchange(inner, deposit_before=2, amount=D(500))
    policy = PlanPolicy(min_trade=D(1), cash_flows="spread")
    targets = {"BTC": D("0.4"), "ETH": D("0.4"), "USDT": D("0.2")}
    strategy = Strategy("USDT", targets, Threshold(D("0.10")), policy)
    daemon = Daemon(
        exchange,
        MemoryJournal(),
        MemoryNotifier(),
        strategy,
        clock,
        DaemonPolicy(Schedule(period=HOUR), max_ticks=3),
        JumpingWaiter(clock),
        keep_reports=10,
    )
    daemon.run()
    reports = daemon.reports
    assert len(reports) == 3
    assert reports[0].flows == {} and not reports[0].fills
    assert reports[1].flows == {"USDT": D(500)}
    assert "deposit of 500 USDT" in reports[1].decision.reason
    assert {(f.asset, f.side) for f in reports[1].fills} == {("ETH", Side.BUY), ("BTC", Side.BUY)}
    assert reports[2].flows == {} and not reports[2].fills  # the buys were expected
