"""A journal worth showing: the daemon in paper mode over real hourly closes (no sleeping).

The daemon ticks every 4 h on a manual clock for 120 checks (20 days), prices following
real Binance closes (../shared/data); it writes the journal and the heartbeat where the
config says (``state_dir``), so the CLI and the dashboard read it like a real run's.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from doubles.waiters import JumpingWaiter
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import open_journal
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.config import Settings, load_config
from rebalancer.core.model import Fill, OrderRequest, Snapshot
from rebalancer.daemon import Daemon, DaemonPolicy, HeartbeatFile, Schedule, heartbeat_path
from rebalancer.data.panel import load_panel

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"
START = datetime(2025, 3, 1, tzinfo=UTC)
FOUR_H = timedelta(hours=4)
TICKS = 120
CONFIG = """state_dir = "state"
[targets]
BTC = 0.4
ETH = 0.3
SOL = 0.2
USDT = 0.1
[trigger]
kind = "threshold"
band_abs = 0.02
[daemon]
every = "4h"
"""


@dataclass
class ReplayExchange:
    """The paper exchange, its prices set from the real close at the clock's time."""

    inner: PaperExchange
    closes: pd.DataFrame
    clock: ManualClock
    name: str = "replay"
    seen: list[datetime] = field(default_factory=list)

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        now = self.clock.now()
        self.seen.append(now)
        row = self.closes.loc[: pd.Timestamp(now)].iloc[-1]
        self.inner.set_prices({a: D(str(row[a])) for a in assets}, now)
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)


@dataclass(frozen=True)
class PaperRun:
    folder: Path
    config: Path
    settings: Settings
    ticks: int
    journal_url: str

    def copy(self, to: Path) -> PaperRun:
        """The same run in another folder (for tests that write to the journal)."""
        shutil.copytree(self.folder, to)
        cfg = to / "rebalancer.toml"
        return PaperRun(to, cfg, load_config(cfg), self.ticks, _url(to))


def _url(folder: Path) -> str:
    return f"sqlite:///{folder / 'state' / 'journal.sqlite'}"


def run_paper_daemon(folder: Path, ticks: int = TICKS) -> PaperRun:
    if not DATA.is_dir():
        pytest.skip(f"../shared/data not found at {DATA}")
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "rebalancer.toml"
    cfg.write_text(CONFIG)
    settings = load_config(cfg)
    closes = load_panel(DATA, ["BTC", "ETH", "SOL"], "1h", start="2025-02-25", end="2025-04-30")
    clock = ManualClock(START)
    exchange = ReplayExchange(
        PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"), D("0.0005")), closes.closes, clock
    )
    journal = open_journal(_url(folder), "paper:binance", lock=True)
    try:
        daemon = Daemon(
            exchange,
            journal,
            MemoryNotifier(),
            settings.strategy(),
            clock,
            DaemonPolicy(Schedule(period=FOUR_H), max_ticks=ticks),
            JumpingWaiter(clock),
            HeartbeatFile(heartbeat_path(settings.state_dir, "paper")).write,
            mode="paper",
        )
        result = daemon.run(handle_signals=False)
        assert (result.exit_code, result.ticks) == (0, ticks)
    finally:
        journal.close()
    return PaperRun(folder, cfg, settings, ticks, _url(folder))
