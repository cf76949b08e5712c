"""The daemon process of ``test_done_when_daemon.py``: ``rebalancer run`` in paper mode, but on
a simulated clock over real hourly closes (no sleeping).

It wires everything as ``rebalancer run`` does -- ``bootstrap.build_paper`` (the paper account
in its state file, the SQL journal with the account lock), ``build_notifier`` (apprise from
``REBALANCER_NOTIFY_URLS``), the heartbeat file, the logs -- and only replaces the clock (a
manual one the waiter jumps forward) and the price source (the real close at the clock's
time). A restart continues where the heartbeat says the last run was going, one hour later
(a restart takes time). ``--pause-from N``: on the first order at or after check N, once the
paper exchange has filled it (and saved it) but before the journal has its outcome, write
``paused`` in the folder and hang, for the test to SIGKILL the process there.

Usage: python done_when_worker.py FOLDER TOTAL_CHECKS [--pause-from N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.paper import PaperExchange
from rebalancer.bootstrap import build_notifier, build_paper, notify_secrets
from rebalancer.config import load_config
from rebalancer.core.model import Fill, OrderRequest, Snapshot
from rebalancer.daemon import Daemon, DaemonPolicy, HeartbeatFile, Schedule, heartbeat_path
from rebalancer.data.panel import load_panel
from rebalancer.logs import setup_logging

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_spot_2024_2026"
START = datetime(2025, 3, 1, tzinfo=UTC)
EVERY = timedelta(hours=4)
ASSETS = ["BTC", "ETH", "SOL"]


@dataclass
class ReplayPrices:
    """The paper exchange with its prices set from the real close at the clock's time."""

    inner: PaperExchange
    closes: pd.DataFrame
    clock: ManualClock
    pause_from: datetime | None
    marker: Path
    name: str = "paper"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        now = self.clock.now()
        row = self.closes.loc[: pd.Timestamp(now)].iloc[-1]
        self.inner.set_prices({a: Decimal(str(row[a])) for a in assets}, now)
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        fill = self.inner.create_market_order(order)  # filled and saved in the state file
        if self.pause_from is not None and self.clock.now() >= self.pause_from:
            self.marker.write_text(f"{self.clock.now().isoformat()} {order.client_order_id}")
            time.sleep(600)  # killed here: the journal has the intent, not the outcome
        return fill

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


def main(argv: list[str]) -> int:
    folder, total = Path(argv[0]), int(argv[1])
    pause = int(argv[3]) if len(argv) > 3 and argv[2] == "--pause-from" else None
    settings = load_config(folder / "rebalancer.toml")
    setup_logging("INFO", settings.state_dir / "logs", notify_secrets())
    beats = HeartbeatFile(heartbeat_path(settings.state_dir, "paper"))
    last = beats.read()
    start = START if last is None or last.last_tick is None else last.last_tick + EVERY
    if last is not None and last.next_tick is not None:  # killed while waiting or ticking
        start = last.next_tick + timedelta(hours=1)
    closes = load_panel(DATA, ASSETS, "1h", start="2025-02-25", end="2025-06-30").closes
    rt = build_paper(settings, lock=True)
    assert isinstance(rt.exchange, PaperExchange)
    done = len(rt.journal.cycle_details())  # type: ignore[attr-defined]  # the SQL journal's
    clock = ManualClock(start)
    exchange = ReplayPrices(
        rt.exchange,
        closes,
        clock,
        None if pause is None else START + pause * EVERY,
        folder / "paused",
    )
    try:
        daemon = Daemon(
            exchange,
            rt.journal,
            build_notifier(settings),
            rt.strategy,
            clock,
            DaemonPolicy(Schedule(period=EVERY), max_ticks=total - done),
            JumpingWaiter(clock),
            beats.write,
            risk=rt.risk,
            mode="paper",
        )
        result = daemon.run()
    finally:
        rt.close()
    print(f"stopped after {result.ticks} checks: {result.reason}", flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
