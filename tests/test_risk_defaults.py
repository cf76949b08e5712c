"""The circuit breaker's defaults let a full rebalance from any start through."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.bootstrap import risk_limits
from rebalancer.config import parse_config

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PRICES = {"BTC": D(60000), "ETH": D(3000), "SOL": D(150)}


@pytest.mark.parametrize(
    ("held", "targets"),
    [
        # the case: one coin, the first rebalance trades 100.05 % of the value
        ({"BTC": D("0.05")}, "BTC = 0.5\nETH = 0.3\nSOL = 0.2\nUSDT = 0"),
        # the most a full rebalance can trade: sell everything, buy something else
        ({"ETH": D(1)}, "BTC = 0.6\nETH = 0\nSOL = 0.4\nUSDT = 0"),
    ],
)
def test_the_first_rebalance_from_any_start_is_not_halted_by_default(
    held: dict[str, D], targets: str
) -> None:
    from rebalancer.service import run_cycle

    settings = parse_config(f"[targets]\n{targets}\n")
    ex = PaperExchange("USDT", dict(held))
    ex.set_prices(PRICES, NOW)
    report = run_cycle(
        ex, MemoryJournal(), MemoryNotifier(), settings.strategy(), NOW,
        risk=risk_limits(settings),
    )  # fmt: skip
    assert not report.stopped, report.stopped
    assert report.fills
    traded = sum((f.cost for f in report.fills), D(0))
    assert traded > report.drift.total_value  # more than 100 % turnover went through
