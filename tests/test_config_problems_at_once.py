"""Every config problem at once (issue 14): field problems and the cross-field rules that
pydantic runs only after the fields validate, in one report, each with field, value and fix."""

from __future__ import annotations

import pytest

from rebalancer.config import parse_config
from rebalancer.config.problems import RULE_KINDS
from rebalancer.core.errors import ConfigError

MANY = """
[targets]
BTC = 0.6
ETH = 0.5
USDT = 0.1

[trigger]
kind = "calendar"
band_abs = 0.05

[rebalance]
style = "band_edge"
min_trade = "ten"

[execution]
order_type = "limit_ioc"
max_slippage = 0
slice_above = -5

[daemon]
every = "1h"
cron = "0 * * * *"
colour = "red"

[optimise]
method = "inverse_vol"
window = 5
min_weight = 0.6
max_weight = 0.5
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert f"{len(info.value.problems)} problem" in str(info.value)
    return list(info.value.problems)


def find(found: list[str], path: str, words: str) -> str:
    """The one problem at ``path`` whose text holds ``words``."""
    hits = [p for p in found if p.startswith(f"{path}: ") and words in p]
    assert len(hits) == 1, (path, words, found)
    return hits[0]


def test_field_and_cross_field_problems_are_reported_together() -> None:
    found = problems(MANY)
    expected = {
        # field problems (pydantic's first pass)
        ("targets", "weights must sum to 1", "found 1.2", "take 0.2 away"),
        ("trigger.band_abs", "unknown key", None, '"band_abs" belongs to kind "threshold"'),
        ("rebalance.min_trade", "must be a number", 'found "ten"', "write a plain number"),
        ("execution.slice_above", "must be more than 0", "found -5", "positive number"),
        ("daemon.colour", "unknown key", None, "the keys allowed here are"),
        ("optimise.window", "from 10 to 3650", "found 5", "window = 90"),
        # cross-field problems, hidden by the field problems above until now
        ("trigger", "needs exactly one of every or cron", "found neither", 'every = "1d"'),
        ("rebalance.style", 'style "band_edge"', 'found trigger kind "calendar"', "threshold"),
        ("execution.max_slippage", '"limit_ioc"', "found max_slippage = 0", "above 0"),
        ("daemon", "one of every or cron, not both", 'found every = "1h"', "keep one"),
        ("optimise.min_weight", "must not exceed max_weight", "found min_weight = 0.6", "lower"),
    }
    for path, rule, value, fix in expected:
        problem = find(found, path, rule)
        if value is not None:
            assert value in problem, problem
        assert fix in problem.split("Fix: ", 1)[1], problem
    assert len(found) == len(expected), found


def test_the_report_follows_the_order_of_the_file() -> None:
    heads = [p.split(":", 1)[0].split(".", 1)[0] for p in problems(MANY)]
    order = ["targets", "trigger", "rebalance", "execution", "daemon", "optimise"]
    assert sorted(heads, key=order.index) == heads


def test_a_calendar_trigger_with_a_band_and_no_schedule_reports_both_at_once() -> None:
    found = problems('[targets]\nBTC = 0.5\nUSDT = 0.5\n[trigger]\nkind = "calendar"\n'
                     "band_abs = 0.05\n")  # fmt: skip
    assert len(found) == 2, found
    find(found, "trigger.band_abs", "unknown key")
    find(found, "trigger", "needs exactly one of every or cron")


def test_a_rule_that_reads_a_removed_bad_value_is_not_reported_twice() -> None:
    # `every` is bad: "neither every nor cron" would be an artefact of leaving it out
    found = problems('[targets]\nBTC = 0.5\nUSDT = 0.5\n[trigger]\nkind = "calendar"\n'
                     'every = "bogus"\nfoo = 1\n')  # fmt: skip
    assert len(found) == 2, found
    find(found, "trigger.every", 'found "bogus"')
    find(found, "trigger.foo", "unknown key")


def test_band_edge_is_checked_against_a_trigger_that_is_itself_invalid() -> None:
    found = problems('[targets]\nBTC = 0.5\nUSDT = 0.5\n[trigger]\nkind = "any_of"\n'
                     'rules = [{ kind = "calendar", cron = "bad cron" }]\n'
                     '[rebalance]\nstyle = "band_edge"\n')  # fmt: skip
    find(found, "rebalance.style", 'found trigger kind "any_of"')
    assert any(p.startswith("trigger.rules[0].cron: ") for p in found), found


def test_a_valid_config_still_validates_in_one_pass() -> None:
    settings = parse_config('[targets]\nBTC = 0.5\nUSDT = 0.5\n[trigger]\nkind = "calendar"\n'
                            'every = "1w"\n')  # fmt: skip
    assert settings.trigger.kind == "calendar"


@pytest.mark.parametrize("where", ["top", "nested"])
def test_the_trigger_kind_error_lists_every_kind(where: str) -> None:
    rule = 'kind = "volatility"'
    table = rule if where == "top" else f'kind = "any_of"\nrules = [{{ {rule} }}]'
    [problem] = problems(f"[targets]\nBTC = 0.5\nUSDT = 0.5\n[trigger]\n{table}\n")
    path = "trigger.kind" if where == "top" else "trigger.rules[0].kind"
    assert problem.startswith(f"{path}: must be one of ") and 'found "volatility"' in problem
    rule_text, fix = problem.split("Fix: ", 1)
    for kind in RULE_KINDS:
        assert f'"{kind}"' in rule_text and f'"{kind}"' in fix, (kind, problem)
    assert "vol_threshold" in RULE_KINDS
