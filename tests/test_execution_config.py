"""``[execution]`` limit and slicing keys and ``[fees] maker``: values, errors, the strategy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from rebalancer.config.load import default_config, parse_config
from rebalancer.core.errors import ConfigError
from rebalancer.core.execution import MARKET, ExecutionPolicy

TARGETS = "[targets]\nBTC = 0.5\nUSDT = 0.5\n"


def only_problem(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(TARGETS + text)
    [problem] = info.value.problems
    return problem


def test_defaults_are_plain_market_orders_and_maker_equals_taker() -> None:
    settings = default_config()
    assert settings.strategy().execution == MARKET
    assert settings.fees.maker == settings.fees.taker == D("0.001")
    assert parse_config(TARGETS + "[fees]\ntaker = 0.002\n").fees.maker == D("0.002")


def test_limit_inside_and_slicing_build_the_policy() -> None:
    settings = parse_config(
        TARGETS + '[execution]\norder_type = "limit_inside"\nlimit_offset = 0.5\n'
        'limit_timeout = "2m"\nlimit_fallback = "none"\nslice_above = 2000\n'
        'slice_interval = "10s"\n[fees]\nmaker = 0.0002\n'
    )
    assert settings.strategy().execution == ExecutionPolicy(
        order_type="limit_inside",
        limit_offset=D("0.5"),
        limit_timeout=timedelta(minutes=2),
        limit_fallback="none",
        slice_above=D(2000),
        slice_interval=timedelta(seconds=10),
    )
    assert settings.fees.maker == D("0.0002")


@pytest.mark.parametrize(
    ("text", "path", "found", "fix"),
    [
        ("limit_offset = 1.5", "execution.limit_offset", "1.5", "0.5 for the mid"),
        ("limit_offset = 25", "execution.limit_offset", "25", "25 % is 0.25"),
        ('limit_timeout = "soon"', "execution.limit_timeout", '"soon"', '"60s"'),
        ('limit_timeout = "0s"', "execution.limit_timeout", '"0s"', '"60s"'),
        ('slice_interval = "a while"', "execution.slice_interval", '"a while"', '"0s"'),
        ("slice_above = 0", "execution.slice_above", "0", "positive"),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_fix(
    text: str, path: str, found: str, fix: str
) -> None:
    problem = only_problem(f"[execution]\n{text}\n")
    assert problem.startswith(f"{path}: "), problem
    assert f"found {found}" in problem, problem
    assert fix in problem.split("Fix: ", 1)[1], problem


def test_an_unknown_order_type_lists_the_choices() -> None:
    problem = only_problem('[execution]\norder_type = "limit"\n')
    assert problem.startswith("execution.order_type: ") and "limit_inside" in problem
