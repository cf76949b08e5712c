"""``rebalancer run --once`` (and ``--max-ticks``) exits non-zero when its last check failed:
a cron job must see the failure (issue 12)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from doubles.waiters import JumpingWaiter
from rebalancer import bootstrap
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.bootstrap import Runtime
from rebalancer.cli.app import app
from rebalancer.core.errors import RetryLater
from rebalancer.core.model import Fill, OrderRequest, Snapshot
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.daemon import EXIT_CHECK_FAILED, EXIT_OK, Daemon, DaemonPolicy, Schedule
from rebalancer.logs import reset_logging
from rebalancer.ports import Exchange

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Down:
    """An exchange whose reads fail from the ``after``-th on (1-based)."""

    inner: Exchange
    after: int = 1
    reads: int = 0
    name: str = "down"

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        self.reads += 1
        if self.reads >= self.after:
            raise RetryLater("binance: 503 service unavailable")
        return self.inner.snapshot(assets, quote)

    def create_market_order(self, order: OrderRequest) -> Fill:
        return self.inner.create_market_order(order)

    def create_limit_order(self, order: OrderRequest, price: D, timeout: timedelta) -> Fill:
        return self.inner.create_limit_order(order, price, timeout)

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.fetch_order(client_order_id, symbol)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.inner.cancel_order(client_order_id, symbol)


def _daemon(after: int, ticks: int) -> Daemon:
    clock = ManualClock(T0)
    inner = PaperExchange("USDT", {"USDT": D(1000)}, D("0.001"))
    inner.set_prices({"BTC": D(40000)}, T0)
    strategy = Strategy(
        "USDT", {"BTC": D("0.5"), "USDT": D("0.5")}, Threshold(D("0.05")), PlanPolicy()
    )
    return Daemon(
        Down(inner, after),
        MemoryJournal(),
        MemoryNotifier(),
        strategy,
        clock,
        DaemonPolicy(Schedule(period=timedelta(hours=1)), max_ticks=ticks),
        JumpingWaiter(clock),
    )


def test_a_single_failed_check_ends_the_run_with_a_failure_code() -> None:
    result = _daemon(after=1, ticks=1).run(handle_signals=False)
    assert result.exit_code == EXIT_CHECK_FAILED != EXIT_OK and result.ticks == 1
    assert "last check failed" in result.reason and "503" in result.reason


def test_only_the_last_check_counts() -> None:
    assert _daemon(after=99, ticks=2).run(handle_signals=False).exit_code == EXIT_OK
    assert _daemon(after=2, ticks=2).run(handle_signals=False).exit_code == EXIT_CHECK_FAILED


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers() -> Any:
    yield
    reset_logging()


def test_run_once_exits_non_zero_when_its_check_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(
        'state_dir = "state"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n[daemon]\nevery = "4h"\n'
    )
    real_build = bootstrap.build

    def build_down(*args: Any, **kw: Any) -> Runtime:
        rt = real_build(*args, **kw)
        return replace(rt, exchange=Down(rt.exchange))

    monkeypatch.setattr(bootstrap, "build", build_down)  # the CLI imports it when it runs
    result = CliRunner().invoke(app, ["run", "-c", str(cfg), "--once"])
    assert result.exit_code == EXIT_CHECK_FAILED, result.output
    assert "last check failed" in result.output
