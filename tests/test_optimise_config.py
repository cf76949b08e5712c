"""``[optimise]``: defaults, the schedule, and every rule broken named with its fix."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from rebalancer.bootstrap import retarget
from rebalancer.config import parse_config
from rebalancer.core.errors import ConfigError
from rebalancer.core.retarget import MONTHLY, Cadence

BASE = "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"


def errors(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "[optimise]\n" + text)
    return str(info.value)


def test_off_by_default_monthly_and_the_cash_floor_is_the_quote_target() -> None:
    settings = parse_config(BASE)
    assert settings.optimise.method == "off" and retarget(settings) is None
    assert settings.optimise_cadence() == MONTHLY and settings.optimise.window == 90
    assert settings.optimise_cash_floor == Decimal("0.1")
    on = parse_config(BASE + '[optimise]\nmethod = "risk_parity"\nevery = "14d"\nwindow = 30\n')
    rt = retarget(on)
    assert rt is not None and rt.window == 30 and rt.optimiser.method == "risk_parity"
    assert rt.cadence == Cadence(period=timedelta(days=14))
    assert on.optimise.cron is None


def test_every_problem_names_the_field_the_value_and_the_fix() -> None:
    msg = errors('method = "max_sharp"\n')
    assert "optimise.method" in msg and "max_sharp" in msg and "max_sharpe" in msg
    msg = errors('method = "min_variance"\nevery = "30d"\ncron = "0 0 1 * *"\n')
    assert "one of every or cron" in msg
    assert "months vary" in errors('method = "min_variance"\nevery = "1 month"\n')
    assert "cron" in errors('method = "min_variance"\ncron = "0 0 32 * *"\n')
    msg = errors('method = "min_variance"\nwindow = 3\n')
    assert "optimise.window" in msg and "from 10 to 3650" in msg and "found 3" in msg
    msg = errors('method = "min_variance"\nmin_weight = 0.5\nmax_weight = 0.4\n')
    assert "optimise.min_weight" in msg and "must not exceed max_weight" in msg


def test_constraints_that_cannot_be_met_for_the_assets_are_refused() -> None:
    msg = errors('method = "min_variance"\nmax_weight = 0.25\n')  # 3 x 0.25 < 0.9
    assert "optimise.max_weight" in msg and "3 assets at max_weight 0.25" in msg
    assert "raise max_weight to 0.3000 or more" in msg
    msg = errors('method = "min_variance"\nmin_weight = 0.35\n')  # 3 x 0.35 > 0.9
    assert "optimise.min_weight" in msg and "lower min_weight to 0.3000 or less" in msg
    msg = errors('method = "min_variance"\ncash_floor = 1\n')
    assert "optimise.cash_floor" in msg and "below 1" in msg
    # the same bounds are fine with the optimiser off, and with a lower cash floor
    parse_config(BASE + "[optimise]\nmax_weight = 0.25\n")
    parse_config(
        BASE + '[optimise]\nmethod = "inverse_vol"\nmax_weight = 0.25\ncash_floor = 0.25\n'
    )


def test_unknown_keys_list_the_allowed_ones() -> None:
    msg = errors('method = "min_variance"\nwindw = 30\n')
    assert "optimise.windw" in msg and "window" in msg
