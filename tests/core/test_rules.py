"""Market rules: truncation to the step and the reasons an exchange would reject."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.model import MarketRules
from rebalancer.core.rules import truncate, violation

from .strategies import CORE, decimals

D = Decimal
RULES = MarketRules(
    "BTC/USDT",
    "BTC",
    "USDT",
    amount_step=D("0.001"),
    min_amount=D("0.002"),
    min_notional=D(10),
    max_amount=D(100),
)


@pytest.mark.parametrize(
    ("amount", "step", "expected"),
    [
        ("1.23456", "0.001", "1.234"),
        ("1.2349999", "0.001", "1.234"),  # never rounds up
        ("1.234", "0.001", "1.234"),
        ("0.0009", "0.001", "0"),
        ("7", "5", "5"),
        ("1.5", "0.5", "1.5"),
        ("1.23456", None, "1.23456"),
        ("-1", "0.001", "0"),
        ("0", None, "0"),
    ],
)
def test_truncate(amount: str, step: str | None, expected: str) -> None:
    assert truncate(D(amount), None if step is None else D(step)) == D(expected)


@CORE
@given(decimals(-8, 6, digits=12), st.sampled_from(["0.00001", "0.001", "0.1", "1", "25"]))
def test_truncate_is_the_largest_step_multiple_not_above(amount: Decimal, step_s: str) -> None:
    step = D(step_s)
    t = truncate(amount, step)
    assert 0 <= t <= amount
    assert t % step == 0
    assert amount - t < step


@pytest.mark.parametrize(
    ("amount", "price", "code", "fragment"),
    [
        ("0", "30000", "dust", "rounds to 0"),
        ("0.0015", "30000", "off_step", "0.0015 is not a multiple of step 0.001"),
        ("0.001", "30000", "below_min_amount", "0.001 < market minimum 0.002"),
        ("101", "30000", "above_max_amount", "101 > market maximum 100"),
        ("0.003", "3000", "below_min_notional", "notional 9.00 < market minimum 10 USDT"),
    ],
)
def test_violation_codes(amount: str, price: str, code: str, fragment: str) -> None:
    found = violation(RULES, D(amount), D(price))
    assert found is not None
    assert found[0] == code
    assert fragment in found[1]


def test_no_violation() -> None:
    assert violation(RULES, D("0.004"), D(3000)) is None  # notional exactly 12
    assert violation(RULES, D("0.005"), D(2000)) is None  # notional exactly 10: accepted
    free = MarketRules("X/USDT", "X", "USDT")
    assert violation(free, D("0.000000001234"), D("0.0001")) is None
