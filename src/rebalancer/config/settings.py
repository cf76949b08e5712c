"""The validated config (:class:`Settings`) and the core values built from it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from rebalancer.config.fields import ZERO
from rebalancer.config.rules import (
    AllOfRule,
    AnyOfRule,
    CalendarRule,
    HybridRule,
    NeverRule,
    ThresholdRule,
    VolThresholdRule,
)
from rebalancer.config.schema import MarketOverride, SettingsBase
from rebalancer.config.secrets import DOTENV_NAME, default_dotenv
from rebalancer.core.cron import Cron
from rebalancer.core.execution import ExecutionPolicy
from rebalancer.core.model import MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.retarget import Cadence
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import (
    AllOf,
    AnyOf,
    Calendar,
    Never,
    Threshold,
    Trigger,
    hybrid,
    weekday_anchor,
)
from rebalancer.core.vol_bands import VolScaledThreshold

if TYPE_CHECKING:
    from rebalancer.config.secrets import ExchangeKeys


def build_trigger(rule: Any) -> Trigger:
    """The core trigger for one validated ``[trigger]`` rule."""
    if isinstance(rule, ThresholdRule):
        return Threshold(rule.band_abs, rule.band_rel)
    if isinstance(rule, HybridRule):
        return hybrid(_calendar(rule), Threshold(rule.band_abs, rule.band_rel))
    if isinstance(rule, CalendarRule):
        return _calendar(rule)
    if isinstance(rule, AnyOfRule):
        return AnyOf(tuple(build_trigger(r) for r in rule.rules))
    if isinstance(rule, AllOfRule):
        return AllOf(tuple(build_trigger(r) for r in rule.rules))
    if isinstance(rule, NeverRule):
        return Never()
    if isinstance(rule, VolThresholdRule):
        return VolScaledThreshold(
            half_life=float(rule.half_life),
            base_band=rule.base_band,
            floor=rule.floor,
            cap=rule.cap,
            reference_vol=float(rule.reference_vol),
            per_asset=rule.per_asset,
            window=rule.window,
        )
    raise TypeError(f"not a trigger rule: {rule!r}")


def _calendar(rule: CalendarRule | HybridRule) -> Calendar:
    cron = None if rule.cron is None else Cron.parse(rule.cron)
    anchor = timedelta(0) if rule.weekday is None else weekday_anchor(rule.weekday)
    return Calendar(period=rule.period, cron=cron, anchor=anchor)


def apply_override(rules: MarketRules, override: MarketOverride) -> MarketRules:
    """``rules`` with the fields ``override`` sets replaced."""
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return dataclasses.replace(rules, **changes)


class Settings(SettingsBase):
    """The whole validated config. Immutable; build with ``load_config``/``parse_config``.

    ``source`` tells where it came from (a file path, ``"built-in defaults"``, ...); it
    takes no part in equality, nor does the config file's folder (:attr:`dotenv_path`).
    """

    _source: str = PrivateAttr(default="<string>")
    _config_dir: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        return self._source

    @property
    def dotenv_path(self) -> Path:
        """The ``.env`` holding this config's secrets: next to the config file; without a
        file, the user config folder's (``~/.config/rebalancer/.env`` on Linux). Never the
        working directory's (unless the config is there)."""
        if self._config_dir is None:
            return default_dotenv()
        return self._config_dir / DOTENV_NAME

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @property
    def needs_keys(self) -> bool:
        """Live mode trades a real account and needs the exchange's API keys."""
        return self.mode == "live"

    def strategy(self) -> Strategy:
        """Targets (the quote included, weight 0 when not listed), trigger and plan policy."""
        targets = dict(self.targets)
        targets.setdefault(self.quote, ZERO)
        policy = PlanPolicy(
            min_trade=self.rebalance.min_trade,
            slippage=self.rebalance.slippage,
            style=self.rebalance.style,
            unmanaged=self.rebalance.unmanaged,
            cost_aware=self.rebalance.cost_aware,
            risk_aversion=self.rebalance.risk_aversion,
            cash_flows=self.rebalance.cash_flows,
        )
        return Strategy(
            self.quote, targets, build_trigger(self.trigger), policy, self.execution_policy()
        )

    def execution_policy(self) -> ExecutionPolicy:
        """How the service sends orders (``[execution]``)."""
        ex = self.execution
        return ExecutionPolicy(
            order_type=ex.order_type,
            limit_offset=ex.limit_offset,
            limit_timeout=ex.limit_timeout_period,
            limit_fallback=ex.limit_fallback,
            slice_above=ex.slice_above,
            slice_interval=ex.slice_interval_period,
        )

    def optimise_cadence(self) -> Cadence:
        """When ``[optimise]`` recomputes the targets (a period or a UTC cron)."""
        opt = self.optimise
        if opt.cron is not None:
            return Cadence(cron=Cron.parse(opt.cron))
        return Cadence(period=opt.period)

    @property
    def optimise_cash_floor(self) -> Decimal:
        """The quote's weight the optimiser keeps: ``cash_floor``, else the quote's target."""
        floor = self.optimise.cash_floor
        return floor if floor is not None else self.targets.get(self.quote, ZERO)

    def market_rules(self, defaults: dict[str, MarketRules]) -> dict[str, MarketRules]:
        """``defaults`` (asset -> rules) with the ``[markets.ASSET]`` overrides applied."""
        return {
            asset: apply_override(rules, self.markets[asset]) if asset in self.markets else rules
            for asset, rules in defaults.items()
        }

    def redacted(self, keys: ExchangeKeys | None = None) -> dict[str, Any]:
        """The effective config as plain data, secrets as ``"***"``; with ``keys``, an
        ``env`` table telling which key variables are ``"set"``/``"missing"`` (no values)."""
        from rebalancer.config.show import redacted

        return redacted(self, keys)
