"""The configuration: a TOML file validated into :class:`Settings`, keys from the environment.

::

    settings = load_config(Path("rebalancer.toml"), {"mode": "live"})   # or load_config(None)
    strategy = settings.strategy()               # core values: targets, trigger, plan policy
    keys = load_secrets(settings.exchange, dotenv_path=settings.dotenv_path)
                                                 # BINANCE_API_KEY ... from env / .env
    if settings.needs_keys:
        keys.require_keys()                      # AuthError naming the missing variables
    print(show_config(settings, keys))           # effective config, secrets as "***"

Every problem in a config is reported at once in one
:class:`~rebalancer.core.errors.ConfigError` (``.problems`` lists them), each naming the
field path, the rule, the value found and the fix. config.example.toml explains every key.
"""

from rebalancer.config.fields import default_data_dir, parse_period
from rebalancer.config.load import (
    CONFIG_NAME,
    DEFAULT_RAW,
    apply_overrides,
    default_config,
    find_config,
    load_config,
    parse_config,
)
from rebalancer.config.rules import (
    AllOfRule,
    AnyOfRule,
    CalendarRule,
    HybridRule,
    NeverRule,
    ThresholdRule,
)
from rebalancer.config.schema import Fees, MarketOverride, Paper, Rebalance
from rebalancer.config.secrets import ExchangeKeys, env_names, load_secrets
from rebalancer.config.settings import Settings, apply_override, build_trigger
from rebalancer.config.show import REDACTED, show_config

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_RAW",
    "REDACTED",
    "AllOfRule",
    "AnyOfRule",
    "CalendarRule",
    "ExchangeKeys",
    "Fees",
    "HybridRule",
    "MarketOverride",
    "NeverRule",
    "Paper",
    "Rebalance",
    "Settings",
    "ThresholdRule",
    "apply_override",
    "apply_overrides",
    "build_trigger",
    "default_config",
    "default_data_dir",
    "env_names",
    "find_config",
    "load_config",
    "load_secrets",
    "parse_config",
    "parse_period",
    "show_config",
]
