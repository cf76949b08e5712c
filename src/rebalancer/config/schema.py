"""The config's shape as pydantic models (``extra="forbid"`` everywhere) and its rules.

Each rule lives in the validator of the field it is about, so pydantic reports every
broken rule at once; rules spanning fields look back at earlier fields through
``info.data`` (hence the field order: ``quote`` before ``targets``, ``trigger`` before
``rebalance``). Numbers are :class:`~decimal.Decimal` as written in the TOML text.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rebalancer.config.fields import (
    DEFAULT_PAPER_CAPITAL,
    ONE,
    SUM_TOLERANCE,
    ZERO,
    Amount,
    Asset,
    Band,
    OptionalDir,
    Rate,
    StateDir,
    Step,
    Weight,
    check_assets_once,
    cron_text,
    default_data_dir,
    exchange_id,
    parse_period,
    period_text,
)
from rebalancer.config.problems import one_of, rule_error, show
from rebalancer.config.rules import (
    RULE_MODELS,
    ConfigModel,
    ThresholdRule,
    TriggerRule,
    has_threshold,
)


class Rebalance(ConfigModel):
    style: Literal["target", "band_edge"] = "target"
    min_trade: Amount = Decimal(10)
    slippage: Rate = Decimal("0.001")
    unmanaged: Literal["ignore", "sell"] = "ignore"
    cost_aware: bool = False
    risk_aversion: Step = Decimal(1)
    cash_flows: Literal["ignore", "spread"] = "ignore"


class Fees(ConfigModel):
    taker: Rate = Decimal("0.001")


class Tax(ConfigModel):
    """Cost-basis method of ``rebalancer gains`` and the backtests' realised gains."""

    method: Literal["fifo", "lifo", "hifo"] = "fifo"


class Paper(ConfigModel):
    """``initial_balances`` empty (not given) means 10000 of the quote."""

    initial_balances: dict[Asset, Amount] = Field(default_factory=dict)
    data_dir: OptionalDir = None
    prices: Literal["candles", "live"] = "candles"

    _assets_once = field_validator("initial_balances", mode="before")(check_assets_once)

    @field_validator("data_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise rule_error(
                "must be an existing folder of candle files",
                "create it, correct the path (relative paths start at the config file's "
                'folder), or write data_dir = "" for the embedded demo data',
                found=show(str(value)),
            )
        return value


class Risk(ConfigModel):
    """The circuit breaker's limits; a cap left out is off."""

    max_drawdown: Band = Decimal("0.15")
    window: Annotated[str, AfterValidator(period_text)] = "24h"
    max_cycle_turnover: Step = Decimal(1)
    max_order_notional: Step | None = None
    max_cycle_notional: Step | None = None

    @property
    def window_period(self) -> timedelta:
        return parse_period(self.window)


def check_journal_url(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if not parts.scheme or "://" not in value:
        raise rule_error(
            "must be an SQLAlchemy database URL",
            'write e.g. "sqlite:////var/lib/rebalancer/journal.sqlite" or '
            '"postgresql+psycopg://rebalancer@db.example/rebalancer", or "" for the default',
            found=show(value),
        )
    if parts.password:
        raise rule_error(
            "must not contain a password (secrets never go in the config file)",
            "remove it from the URL and set PGPASSWORD in the environment or .env, "
            "or use ~/.pgpass",
            found="a URL with a password",
        )
    return value


class MarketOverride(ConfigModel):
    """Paper-trading market rules for one asset; unset fields keep the adapter's default."""

    amount_step: Step | None = None
    min_amount: Amount | None = None
    min_notional: Amount | None = None


DEFAULT_DAEMON_EVERY = "4h"
PeriodText = Annotated[str, AfterValidator(period_text)]
CronText = Annotated[str, AfterValidator(cron_text)]


class Daemon(ConfigModel):
    """``rebalancer run``: when to check (``every`` or ``cron``, UTC), how to back off.

    Neither ``every`` nor ``cron`` means every 4h.
    """

    every: PeriodText | None = None
    cron: CronText | None = None
    retry_after: PeriodText = "1m"
    max_backoff: PeriodText = "1h"
    notify_daily_summary: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _default_every(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("every") is None and data.get("cron") is None:
            return {**data, "every": DEFAULT_DAEMON_EVERY}
        return data

    @model_validator(mode="after")
    def _one_schedule(self) -> Daemon:
        if self.every is not None and self.cron is not None:
            raise rule_error(
                "takes one of every or cron, not both",
                "keep one of them and remove the other",
                found=f"every = {show(self.every)} and cron = {show(self.cron)}",
            )
        if parse_period(self.max_backoff) < parse_period(self.retry_after):
            raise rule_error(
                "max_backoff must be at least retry_after",
                f"raise max_backoff to {self.retry_after} or more",
                found=f"retry_after = {show(self.retry_after)}, "
                f"max_backoff = {show(self.max_backoff)}",
                at="max_backoff",
            )
        return self

    @property
    def period(self) -> timedelta | None:
        return None if self.every is None else parse_period(self.every)


class Web(ConfigModel):
    """The dashboard and JSON API (``rebalancer serve``, ``rebalancer run --serve``)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8765
    control: bool = False


class Execution(ConfigModel):
    """How live orders are sent (paper and backtests fill at the simulated price).

    ``max_slippage`` 0 turns the order-book check off (market orders only).
    """

    order_type: Literal["market", "limit_ioc"] = "market"
    max_slippage: Rate = Decimal("0.01")
    thin_book: Literal["slice", "skip"] = "slice"

    @model_validator(mode="after")
    def _limit_needs_cap(self) -> Execution:
        if self.order_type == "limit_ioc" and self.max_slippage == 0:
            raise rule_error(
                'order_type "limit_ioc" places its limit max_slippage away from the best price',
                'set max_slippage above 0, e.g. 0.005, or write order_type = "market"',
                found="max_slippage = 0",
                at="max_slippage",
            )
        return self

    @property
    def slippage_cap(self) -> Decimal | None:
        """The cap for the adapter; None when the check is off."""
        return self.max_slippage or None


def account_name(value: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", value):
        raise rule_error(
            "an account name is a letter then letters, digits or _ (at most 32)",
            "rename the table, e.g. [accounts.binance_main]; its keys come from "
            "NAME_API_KEY / NAME_API_SECRET when two accounts share an exchange",
            found=show(value),
        )
    return value


AccountName = Annotated[str, AfterValidator(account_name)]


class Account(ConfigModel):
    """One account of a portfolio spread over several exchanges (``[accounts.NAME]``)."""

    exchange: Annotated[str, AfterValidator(exchange_id)]
    sandbox: bool = False


class SettingsBase(ConfigModel):
    """Fields and rules of the whole config (``Settings`` adds the behaviour)."""

    mode: Literal["paper", "live"] = "paper"
    exchange: Annotated[str, AfterValidator(exchange_id)] = "binance"
    quote: Asset = "USDT"
    sandbox: bool = False
    state_dir: StateDir = Field(default_factory=default_data_dir)
    journal_url: Annotated[str, AfterValidator(check_journal_url)] = ""
    targets: dict[Asset, Weight]
    trigger: TriggerRule = Field(default_factory=ThresholdRule)
    rebalance: Rebalance = Field(default_factory=Rebalance)
    fees: Fees = Field(default_factory=Fees)
    paper: Paper = Field(default_factory=Paper, validate_default=True)
    markets: dict[Asset, MarketOverride] = Field(default_factory=dict)
    daemon: Daemon = Field(default_factory=Daemon)
    risk: Risk = Field(default_factory=Risk)
    execution: Execution = Field(default_factory=Execution)
    web: Web = Field(default_factory=Web)
    tax: Tax = Field(default_factory=Tax)
    accounts: dict[AccountName, Account] = Field(default_factory=dict)

    _targets_once = field_validator("targets", "markets", mode="before")(check_assets_once)

    @field_validator("state_dir")
    @classmethod
    def _not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise rule_error(
                "must be a folder",
                "point it at a folder (it is created if missing)",
                found=show(str(value)),
            )
        return value

    @field_validator("targets")
    @classmethod
    def _sum_to_one(cls, value: dict[str, Decimal], info: ValidationInfo) -> dict[str, Decimal]:
        quote = info.data.get("quote")
        if quote is not None and not any(a != quote for a in value):
            raise rule_error(
                f"needs at least one asset besides the quote {quote}",
                "add assets with their weights, e.g. BTC = 0.5",
                found=show(value) if value else "an empty table",
            )
        total = sum(value.values(), ZERO)
        gap = ONE - total
        if abs(gap) > SUM_TOLERANCE:
            cash = f" (e.g. to {quote}, the cash leg)" if quote and gap > 0 else ""
            fix = f"add {gap} somewhere{cash}" if gap > 0 else f"take {-gap} away somewhere"
            if total >= 50:
                fix = "weights are fractions, not percent: divide each by 100"
            raise rule_error("weights must sum to 1 (±1e-9)", fix, found=str(total))
        return value

    @field_validator("rebalance")
    @classmethod
    def _band_edge_needs_band(cls, value: Rebalance, info: ValidationInfo) -> Rebalance:
        trigger = info.data.get("trigger")
        if value.style == "band_edge" and trigger is not None and not has_threshold(trigger):
            raise rule_error(
                'style "band_edge" trades back to the band edge, so the trigger needs a band',
                'use trigger kind "threshold" or "hybrid" (or add a threshold rule), '
                'or write style = "target"',
                found=f"trigger kind {show(trigger.kind)}",
                at="style",
            )
        return value

    @field_validator("paper")
    @classmethod
    def _default_balances(cls, value: Paper, info: ValidationInfo) -> Paper:
        quote = info.data.get("quote")
        if value.initial_balances or quote is None:
            return value
        return value.model_copy(update={"initial_balances": {quote: DEFAULT_PAPER_CAPITAL}})

    @field_validator("markets")
    @classmethod
    def _no_quote_market(
        cls, value: dict[str, MarketOverride], info: ValidationInfo
    ) -> dict[str, MarketOverride]:
        quote = info.data.get("quote")
        if quote in value:
            raise rule_error(
                f"the quote {quote} has no market of its own",
                f"remove [markets.{quote}]",
                found="a table",
                at=str(quote),
            )
        return value


def allowed_keys(raw_loc: tuple[str | int, ...]) -> list[str]:
    """Keys allowed in the table that holds the last key of ``raw_loc``."""
    container = raw_loc[:-1]
    model: type[BaseModel] | None
    if not container:
        model = SettingsBase
    elif isinstance(container[-1], str) and container[-1] in RULE_MODELS:
        model = RULE_MODELS[container[-1]]
    elif container[0] == "markets" and len(container) == 2:
        model = MarketOverride
    elif container[0] == "accounts" and len(container) == 2:
        model = Account
    else:
        sections: dict[tuple[str | int, ...], type[BaseModel]] = {
            ("rebalance",): Rebalance,
            ("fees",): Fees,
            ("paper",): Paper,
            ("daemon",): Daemon,
            ("risk",): Risk,
            ("execution",): Execution,
            ("web",): Web,
            ("tax",): Tax,
        }
        model = sections.get(container)
    return list(model.model_fields) if model is not None else []


TYPE_FIXES = {
    "mode": 'write mode = "paper" to simulate, or mode = "live" to trade with real money',
    "rebalance.style": f"write one of {one_of(['target', 'band_edge'])}",
    "rebalance.unmanaged": 'write "ignore" to leave other holdings alone or "sell" to sell them',
    "targets": "add a [targets] table with a weight per asset, e.g. BTC = 0.6 and USDT = 0.4",
    "trigger.rules": 'write rules = [ { kind = "calendar", every = "30d" }, '
    '{ kind = "threshold", band_abs = 0.05 } ]',
}
