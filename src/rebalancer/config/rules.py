"""The ``[trigger]`` rules: one model per ``kind``, chosen by its ``kind`` key.

A missing ``kind`` means ``"threshold"``; a threshold or hybrid without a band gets
``band_abs = 0.05``; ``any_of``/``all_of`` nest rules. :mod:`rebalancer.config.settings`
turns them into :mod:`rebalancer.core.triggers` values.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from rebalancer.config.fields import (
    DEFAULT_BAND_ABS,
    Band,
    Step,
    cron_text,
    parse_period,
    period_text,
)
from rebalancer.config.problems import Problem, rule_error, show
from rebalancer.core.triggers import WEEK


class ConfigModel(BaseModel):
    """Base of every config table: unknown keys are errors, values immutable."""

    # defer_build: the schema is built once, for Settings, at the first validation (not
    # one validator per table at import): `config check` starts about 8 ms sooner
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _Bands(ConfigModel):
    band_abs: Band | None = None
    band_rel: Band | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_band(cls, data: Any) -> Any:
        if isinstance(data, dict) and "band_abs" not in data and "band_rel" not in data:
            return {**data, "band_abs": DEFAULT_BAND_ABS}
        return data


class _Schedule(ConfigModel):
    every: Annotated[str, AfterValidator(period_text)] | None = None
    cron: Annotated[str, AfterValidator(cron_text)] | None = None
    # weekly periods fall on this day at 00:00 UTC (default: Thursday, as 1970-01-01 was)
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = None

    @model_validator(mode="after")
    def _one_schedule(self) -> Any:
        if (self.every is None) == (self.cron is None):
            both = self.every is not None
            raise rule_error(
                "needs exactly one of every or cron",
                "keep one of them and remove the other"
                if both
                else 'add every = "1d" (or cron = "0 0 * * *")',
                found=f"every = {show(self.every)} and cron = {show(self.cron)}"
                if both
                else "neither",
            )
        if self.weekday is not None and (self.period is None or self.period % WEEK):
            raise rule_error(
                "weekday needs a weekly period: every = \"1w\" (or 2w, ...)",
                'set every = "1w", or remove weekday',
                found=f"every = {show(self.every)}, cron = {show(self.cron)}",
            )
        return self

    @property
    def period(self) -> timedelta | None:
        return None if self.every is None else parse_period(self.every)


class ThresholdRule(_Bands):
    """Fire when a weight leaves its band (``band_abs`` and/or ``band_rel``)."""

    kind: Literal["threshold"] = "threshold"


class CalendarRule(_Schedule):
    """Fire on a schedule: ``every`` a period (aligned to the epoch, UTC) or a ``cron``."""

    kind: Literal["calendar"] = "calendar"


class HybridRule(_Schedule, _Bands):
    """Look on a schedule, act only when out of band."""

    kind: Literal["hybrid"] = "hybrid"


class VolThresholdRule(ConfigModel):
    """A band that scales with realised volatility (EWMA of returns), floor to cap.

    ``half_life`` and ``window`` in bars of the price history; ``reference_vol`` per bar:
    the band is ``base_band`` when the volatility equals it. See ``docs/smarter-rules.md``.
    """

    kind: Literal["vol_threshold"] = "vol_threshold"
    half_life: Step = Decimal(20)
    base_band: Band = Decimal("0.05")
    floor: Band = Decimal("0.02")
    cap: Band = Decimal("0.15")
    reference_vol: Band = Decimal("0.03")
    per_asset: bool = True
    window: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _floor_below_cap(self) -> Any:
        if self.floor > self.cap:
            raise rule_error(
                "floor must not exceed cap",
                f"lower floor to {self.cap} or raise cap to {self.floor}",
                found=f"floor = {self.floor}, cap = {self.cap}",
                at="floor",
            )
        return self


class AnyOfRule(ConfigModel):
    kind: Literal["any_of"] = "any_of"
    rules: list[TriggerRule] = Field(min_length=1)


class AllOfRule(ConfigModel):
    kind: Literal["all_of"] = "all_of"
    rules: list[TriggerRule] = Field(min_length=1)


class NeverRule(ConfigModel):
    """Buy and hold."""

    kind: Literal["never"] = "never"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "threshold")
        return kind if isinstance(kind, str) else show(kind)
    return str(getattr(value, "kind", "threshold"))


TriggerRule = Annotated[
    Annotated[ThresholdRule, Tag("threshold")]
    | Annotated[CalendarRule, Tag("calendar")]
    | Annotated[HybridRule, Tag("hybrid")]
    | Annotated[AnyOfRule, Tag("any_of")]
    | Annotated[AllOfRule, Tag("all_of")]
    | Annotated[NeverRule, Tag("never")]
    | Annotated[VolThresholdRule, Tag("vol_threshold")],
    Discriminator(_kind),
]
RULE_MODELS: dict[str, type[ConfigModel]] = {
    "threshold": ThresholdRule,
    "calendar": CalendarRule,
    "hybrid": HybridRule,
    "any_of": AnyOfRule,
    "all_of": AllOfRule,
    "never": NeverRule,
    "vol_threshold": VolThresholdRule,
}
AnyOfRule.model_rebuild()
AllOfRule.model_rebuild()


def has_threshold(rule: Any) -> bool:
    if isinstance(rule, ThresholdRule | HybridRule):
        return True
    if isinstance(rule, AnyOfRule | AllOfRule):
        return any(has_threshold(r) for r in rule.rules)
    return False


def raw_has_band(rule: Any) -> bool | None:
    """:func:`has_threshold` on a raw (unvalidated) ``[trigger]`` table; None when its kind
    cannot be told (not a table, an unknown kind, sub-rules that are not a list)."""
    if not isinstance(rule, dict):
        return None
    kind = rule.get("kind", "threshold")
    if kind in ("threshold", "hybrid"):
        return True
    if kind in ("any_of", "all_of"):
        subs = rule.get("rules")
        flags = [raw_has_band(r) for r in subs] if isinstance(subs, list) else [None]
        if True in flags:
            return True
        return False if flags and all(f is False for f in flags) else None
    return False if kind in RULE_MODELS else None


def band_edge_texts(kind: Any) -> tuple[str, str, str]:
    """Rule, fix and found of ``rebalance.style = "band_edge"`` with a trigger without band."""
    return (
        'style "band_edge" trades back to the band edge, so the trigger needs a band',
        'use trigger kind "threshold" or "hybrid" (or add a threshold rule), '
        'or write style = "target"',
        f"trigger kind {show(kind)}",
    )


def band_edge_problem(kind: Any) -> Problem:
    """The band-edge problem as :mod:`rebalancer.config.collect` reports it from raw values."""
    rule, fix, found = band_edge_texts(kind)
    return Problem("rebalance.style", rule, fix, found)
