"""Config of the smarter rules: vol_threshold, cost_aware, cash_flows, [tax]."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rebalancer.config import parse_config
from rebalancer.core.errors import ConfigError
from rebalancer.core.triggers import AnyOf
from rebalancer.core.vol_bands import VolScaledThreshold

BASE = "[targets]\nBTC = 0.5\nETH = 0.4\nUSDT = 0.1\n"


def test_vol_threshold_and_policy_flags_reach_the_strategy() -> None:
    settings = parse_config(
        BASE + '[trigger]\nkind = "any_of"\nrules = [ { kind = "vol_threshold", half_life = 10, '
        "floor = 0.03, cap = 0.2, reference_vol = 0.05, per_asset = false, window = 40 } ]\n"
        '[rebalance]\ncost_aware = true\nrisk_aversion = 0.25\ncash_flows = "spread"\n'
        '[tax]\nmethod = "hifo"\n'
    )
    strategy = settings.strategy()
    assert isinstance(strategy.trigger, AnyOf)
    vol = strategy.trigger.parts[0]
    assert vol == VolScaledThreshold(
        half_life=10.0,
        base_band=Decimal("0.05"),
        floor=Decimal("0.03"),
        cap=Decimal("0.2"),
        reference_vol=0.05,
        per_asset=False,
        window=40,
    )
    assert strategy.policy.cost_aware and strategy.policy.risk_aversion == Decimal("0.25")
    assert strategy.policy.cash_flows == "spread"
    assert settings.tax.method == "hifo"


def test_defaults_keep_the_plain_behaviour() -> None:
    settings = parse_config(BASE)
    policy = settings.strategy().policy
    assert not policy.cost_aware and policy.cash_flows == "ignore"
    assert settings.tax.method == "fifo"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '[trigger]\nkind = "vol_threshold"\nfloor = 0.2\ncap = 0.1\n',
            "floor must not exceed cap",
        ),
        ('[trigger]\nkind = "vol_threshold"\nhalf_life = 0\n', "half_life"),
        ('[rebalance]\ncash_flows = "invest"\n', "cash_flows"),
        ('[tax]\nmethod = "average"\n', "method"),
    ],
)
def test_bad_values_are_named(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config(BASE + text)
