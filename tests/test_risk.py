"""The circuit breaker's pure rules, its config section, and the halt through MemoryJournal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.bootstrap import risk_limits
from rebalancer.config import parse_config
from rebalancer.core.errors import ConfigError
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.risk import RiskLimits, drawdown_breach, plan_breach
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.service import run_cycle

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
LIMITS = RiskLimits(max_drawdown=D("0.15"), window=timedelta(hours=24))
TARGETS = "[targets]\nBTC = 0.5\nUSDT = 0.5\n"


def test_drawdown_trips_only_beyond_the_limit_within_the_window() -> None:
    history = [(NOW - timedelta(hours=30), D(20000)), (NOW - timedelta(hours=5), D(10000))]
    assert drawdown_breach(history, D(8600), NOW, LIMITS) is None  # -14 %; 20000 is too old
    reason = drawdown_breach(history, D(8400), NOW, LIMITS)  # -16 %
    assert reason is not None and "16.00%" in reason and "risk.max_drawdown" in reason
    assert drawdown_breach([], D(1), NOW, LIMITS) is None
    off = RiskLimits(max_drawdown=None)
    assert drawdown_breach(history, D(1), NOW, off) is None


def test_plan_limits_turnover_and_caps() -> None:
    limits = RiskLimits(
        max_cycle_turnover=D("0.5"), max_order_notional=D(3000), max_cycle_notional=D(4500)
    )
    assert plan_breach([D(2000), D(2000)], D(10000), limits) is None
    assert "max_order_notional" in (plan_breach([D(3001)], D(10000), limits) or "")
    assert "max_cycle_notional" in (plan_breach([D(2500), D(2500)], D(100000), limits) or "")
    only_turnover = RiskLimits(max_cycle_turnover=D("0.5"))
    assert plan_breach([D(2000)], D(10000), only_turnover, already_traded=D(3000)) is None
    turnover = plan_breach([D(2000)], D(10000), only_turnover, already_traded=D(3500))
    assert turnover is not None and "55.00%" in turnover and "max_cycle_turnover" in turnover


def test_risk_config_defaults_and_errors() -> None:
    limits = risk_limits(parse_config(TARGETS))
    assert limits == RiskLimits(D("0.15"), timedelta(hours=24), D(2), None, None)
    custom = parse_config(
        TARGETS + '[risk]\nmax_drawdown = 0.1\nwindow = "3d"\nmax_order_notional = 500\n'
    )
    assert risk_limits(custom).window == timedelta(days=3)
    assert risk_limits(custom).max_order_notional == D(500)
    with pytest.raises(ConfigError) as err:
        parse_config(TARGETS + '[risk]\nmax_drawdown = 15\nwindow = "a day"\nmax_loss = 1\n')
    text = "\n".join(err.value.problems)
    assert "risk.max_drawdown" in text and "risk.window" in text and "max_loss" in text


def test_journal_url_must_be_a_url_without_a_password() -> None:
    ok = parse_config('journal_url = "postgresql+psycopg://bot@db:5432/rb"\n' + TARGETS)
    assert ok.journal_url == "postgresql+psycopg://bot@db:5432/rb"
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        parse_config('journal_url = "postgresql://bot:hunter2@db/rb"\n' + TARGETS)
    with pytest.raises(ConfigError, match="SQLAlchemy database URL"):
        parse_config('journal_url = "journal.sqlite"\n' + TARGETS)


def _strategy() -> Strategy:
    return Strategy("USDT", {"BTC": D("0.5"), "USDT": D("0.5")}, Threshold(D("0.05")), PlanPolicy())


def test_memory_journal_halt_blocks_orders_until_resume() -> None:
    ex = PaperExchange("USDT", {"USDT": D(10000)})
    ex.set_prices({"BTC": D(40000)}, NOW)
    journal, notifier = MemoryJournal(), MemoryNotifier()
    limits = RiskLimits(max_cycle_turnover=D("0.2"))
    halted = run_cycle(ex, journal, notifier, _strategy(), NOW, risk=limits)
    assert "max_cycle_turnover" in halted.stopped and ex.orders == {}
    assert [e.kind for e in notifier.events] == ["halt"]
    blocked = run_cycle(ex, journal, notifier, _strategy(), NOW + timedelta(hours=1))
    assert "halted since" in blocked.stopped and ex.orders == {}  # blocked even without limits
    journal.record_resume(NOW + timedelta(hours=2))
    done = run_cycle(ex, journal, notifier, _strategy(), NOW + timedelta(hours=3))
    assert done.fills and not done.stopped


