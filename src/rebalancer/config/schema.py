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
from rebalancer.config.problems import one_of, rule_error, show, show_path
from rebalancer.config.rules import (
    RULE_MODELS,
    ConfigModel,
    ThresholdRule,
    TriggerRule,
    band_edge_texts,
    has_threshold,
)
from rebalancer.config.secrets import url_secrets


class Rebalance(ConfigModel):
    style: Literal["target", "band_edge"] = "target"
    min_trade: Amount = Decimal(10)
    slippage: Rate = Decimal("0.001")
    unmanaged: Literal["ignore", "sell"] = "ignore"
    cost_aware: bool = False
    risk_aversion: Step = Decimal(1)
    cash_flows: Literal["ignore", "spread"] = "ignore"


class Fees(ConfigModel):
    """Fee rates (fractions of the traded value); ``maker`` left out equals ``taker``."""

    taker: Rate = Decimal("0.001")
    maker: Rate = Field(default=None, validate_default=True)  # None: taker's, see below

    @field_validator("maker", mode="before")
    @classmethod
    def _maker_like_taker(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # left out: the taker fee (its default when taker is broken)
            return info.data.get("taker", Decimal("0.001"))
        return value


class Tax(ConfigModel):
    """Cost-basis method of ``rebalancer gains`` and the backtests' realised gains."""

    method: Literal["fifo", "lifo", "hifo"] = "fifo"


class Paper(ConfigModel):
    """``initial_balances`` empty (not given) means 10000 of the quote. ``prices``: "auto"
    (live public prices of the exchange when it answers at start, else the candles with a
    warning), "live" (required) or "candles" (history, offline); see
    :mod:`rebalancer.adapters.paper_prices`."""

    initial_balances: dict[Asset, Amount] = Field(default_factory=dict)
    data_dir: OptionalDir = None
    prices: Literal["auto", "live", "candles"] = "auto"

    _assets_once = field_validator("initial_balances", mode="before")(check_assets_once)

    @field_validator("data_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise rule_error(
                "must be an existing folder of candle files",
                "create it, correct the path (relative paths start at the config file's "
                'folder), or write data_dir = "" for the embedded demo data',
                found=show_path(value),
            )
        return value


class Risk(ConfigModel):
    """The circuit breaker's limits; a cap left out is off."""

    max_drawdown: Band = Decimal("0.15")
    window: Annotated[str, AfterValidator(period_text)] = "24h"
    max_cycle_turnover: Step = Decimal(2)
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
    secrets = url_secrets(value)
    if secrets:
        where = ", ".join("the user info" if s == "password" else f"{s}=" for s in secrets)
        raise rule_error(
            "must not contain a password (secrets never go in the config file)",
            "remove it from the URL and set PGPASSWORD in the environment or .env, "
            "or use ~/.pgpass",
            found=f"a URL with a password ({where})",
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


DEFAULT_OPTIMISE_CRON = "0 0 1 * *"
OPTIMISE_METHODS = ("inverse_vol", "risk_parity", "min_variance", "max_sharpe")


class Optimise(ConfigModel):
    """Optimised targets applied live on a schedule (``[optimise]``; ``method = "off"``).

    ``every`` (epoch-aligned period) or ``cron`` (UTC; neither = the 1st of each month at
    00:00); ``window`` daily returns (``window + 1`` daily closes); ``min_weight`` /
    ``max_weight`` per risky asset; ``cash_floor`` the quote's weight (None: its configured
    target); ``max_turnover`` the largest sum of |weight changes| per change (None: no cap);
    ``start``: on a first start (or after the targets or method changed) optimise at the next
    scheduled time (``"scheduled"``) or at once (``"now"``).
    """

    method: Literal["off", "inverse_vol", "risk_parity", "min_variance", "max_sharpe"] = "off"
    every: PeriodText | None = None
    cron: CronText | None = None
    window: int = 90
    min_weight: Weight = ZERO
    max_weight: Weight = ONE
    cash_floor: Weight | None = None
    max_turnover: Step | None = None
    start: Literal["scheduled", "now"] = "scheduled"

    @model_validator(mode="before")
    @classmethod
    def _default_cron(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("every") is None and data.get("cron") is None:
            return {**data, "cron": DEFAULT_OPTIMISE_CRON}
        return data

    @field_validator("window")
    @classmethod
    def _enough_returns(cls, value: int) -> int:
        if not 10 <= value <= 3650:
            raise rule_error(
                "must be a number of daily returns from 10 to 3650",
                "write e.g. window = 90 (about three months)",
                found=str(value),
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Optimise:
        if self.every is not None and self.cron is not None:
            raise rule_error(
                "takes one of every or cron, not both",
                "keep one of them and remove the other",
                found=f"every = {show(self.every)} and cron = {show(self.cron)}",
            )
        if self.min_weight > self.max_weight:
            raise rule_error(
                "min_weight must not exceed max_weight",
                f"lower min_weight to {self.max_weight} or less, or raise max_weight",
                found=f"min_weight = {self.min_weight}, max_weight = {self.max_weight}",
                at="min_weight",
            )
        if self.cash_floor is not None and self.cash_floor >= ONE:
            raise rule_error(
                "must be below 1: the optimiser needs some weight for the assets",
                "write e.g. cash_floor = 0.1, or leave it out for the quote's target",
                found=str(self.cash_floor),
                at="cash_floor",
            )
        return self

    @property
    def on(self) -> bool:
        return self.method != "off"

    @property
    def period(self) -> timedelta | None:
        return None if self.every is None else parse_period(self.every)


class Web(ConfigModel):
    """The dashboard and JSON API (``rebalancer serve``, ``rebalancer run --serve``)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8765
    control: bool = False


class Telegram(ConfigModel):
    """Commands from Telegram (``rebalancer telegram``, ``rebalancer run --telegram``).

    The bot's token comes from ``TELEGRAM_BOT_TOKEN`` (environment or ``.env``), never from
    here. Only the chats listed in ``allowed_chats`` are answered; every command, answered or
    refused, is journaled. ``confirm_within``: how long a ``/rebalance`` confirmation code
    stays valid. ``api_url``: a self-hosted Bot API server (``http://host:8081/bot``); by
    default Telegram's own.
    """

    allowed_chats: list[int] = Field(default_factory=list)
    api_url: str | None = None
    confirm_within: Annotated[str, AfterValidator(lambda v: _duration(v, zero=False))] = "2m"


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``"0s"``, ``"60s"``, ``"5m"``, ``"1h"``, ``"1d"`` as a timedelta (ValueError else)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(text)
    return timedelta(seconds=int(m.group(1)) * _DURATION_UNITS[m.group(2)])


def _duration(value: str, *, zero: bool) -> str:
    try:
        period = parse_duration(value)
    except ValueError:
        raise rule_error(
            "must be a duration: a whole count and a unit s, m, h or d",
            'write e.g. "30s", "60s", "5m" or "1h"' + (' ("0s" for none)' if zero else ""),
            found=show(value),
        ) from None
    if not zero and period <= timedelta(0):
        raise rule_error(
            "must be longer than 0", 'write e.g. "60s" (how long the limit rests)', show(value)
        )
    return value.strip()


def _timeout_text(value: str) -> str:
    return _duration(value, zero=False)


def _interval_text(value: str) -> str:
    return _duration(value, zero=True)


class Execution(ConfigModel):
    """How orders are sent (paper and backtests fill at the simulated price).

    ``max_slippage`` 0 turns the order-book check off (market orders only).
    ``limit_inside``: a post-only limit ``limit_offset`` into the spread from our side,
    resting ``limit_timeout``, the rest at market (``limit_fallback = "market"``) or left for
    the next cycle (``"none"``). ``slice_above``: orders worth more (quote units) go out in
    equal slices of at most that, ``slice_interval`` apart (None: no slicing).
    """

    order_type: Literal["market", "limit_ioc", "limit_inside"] = "market"
    max_slippage: Rate = Decimal("0.01")
    thin_book: Literal["slice", "skip"] = "slice"
    limit_offset: Decimal = Decimal("0.25")
    limit_timeout: Annotated[str, AfterValidator(_timeout_text)] = "60s"
    limit_fallback: Literal["market", "none"] = "market"
    slice_above: Step | None = None
    slice_interval: Annotated[str, AfterValidator(_interval_text)] = "0s"

    @field_validator("limit_offset")
    @classmethod
    def _offset_in_spread(cls, value: Decimal) -> Decimal:
        if not ZERO <= value < ONE:
            fix = "write 0 to join the best bid (buys) / ask (sells), 0.5 for the mid"
            if ONE <= value <= 100:
                fix += f"; it is a fraction, not percent: {value} % is {value / 100}"
            raise rule_error(
                "must lie in [0, 1): where the limit sits in the spread, from our own side",
                fix,
                found=show(value),
            )
        return value

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
    def limit_timeout_period(self) -> timedelta:
        return parse_duration(self.limit_timeout)

    @property
    def slice_interval_period(self) -> timedelta:
        return parse_duration(self.slice_interval)

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
    telegram: Telegram = Field(default_factory=Telegram)
    tax: Tax = Field(default_factory=Tax)
    accounts: dict[AccountName, Account] = Field(default_factory=dict)
    optimise: Optimise = Field(default_factory=Optimise)

    _targets_once = field_validator("targets", "markets", mode="before")(check_assets_once)

    @field_validator("state_dir")
    @classmethod
    def _not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise rule_error(
                "must be a folder",
                "point it at a folder (it is created if missing)",
                found=show_path(value),
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
            rule, fix, found = band_edge_texts(trigger.kind)
            raise rule_error(rule, fix, found=found, at="style")
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

    @field_validator("optimise")
    @classmethod
    def _constraints_can_be_met(cls, value: Optimise, info: ValidationInfo) -> Optimise:
        targets, quote = info.data.get("targets"), info.data.get("quote")
        if not value.on or targets is None or quote is None:
            return value
        n = sum(1 for a in targets if a != quote)
        floor = value.cash_floor if value.cash_floor is not None else targets.get(quote, ZERO)
        if floor >= ONE:
            raise rule_error(
                "needs a cash floor below 1 (it defaults to the quote's target)",
                "set cash_floor below 1, e.g. cash_floor = 0.1",
                found=f"cash floor {floor}",
                at="cash_floor",
            )
        budget = ONE - floor
        if n * value.min_weight > budget:
            raise rule_error(
                f"{n} assets at min_weight {value.min_weight} need {n * value.min_weight}, "
                f"more than the {budget} left after the cash floor {floor}",
                f"lower min_weight to {budget / n:.4f} or less, or lower the cash floor",
                found=f"min_weight = {value.min_weight}",
                at="min_weight",
            )
        if n * value.max_weight < budget:
            raise rule_error(
                f"{n} assets at max_weight {value.max_weight} hold at most "
                f"{n * value.max_weight}, less than the {budget} left after the cash floor "
                f"{floor}",
                f"raise max_weight to {budget / n:.4f} or more, raise cash_floor, or add assets",
                found=f"max_weight = {value.max_weight}",
                at="max_weight",
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
            ("optimise",): Optimise,
        }
        model = sections.get(container)
    return list(model.model_fields) if model is not None else []


TYPE_FIXES = {
    "mode": 'write mode = "paper" to simulate, or mode = "live" to trade with real money',
    "rebalance.style": f"write one of {one_of(['target', 'band_edge'])}",
    "rebalance.unmanaged": 'write "ignore" to leave other holdings alone or "sell" to sell them',
    "targets": "add a [targets] table with a weight per asset, e.g. BTC = 0.6 and USDT = 0.4",
    "optimise.method": "write one of "
    + one_of(["off", "inverse_vol", "risk_parity", "min_variance", "max_sharpe"]),
    "trigger.rules": 'write rules = [ { kind = "calendar", every = "30d" }, '
    '{ kind = "threshold", band_abs = 0.05 } ]',
}
