"""The JSON API's response shapes (they document themselves in ``/openapi.json``).

Money, amounts and weights are decimal strings, exactly as journaled; times are ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from rebalancer.web import view


class TickOut(BaseModel):
    """The daemon's heartbeat: last and next check."""

    state: str = Field(description="running, stopped, failed, or not responding")
    schedule: str
    ticks: int
    last_tick: datetime | None
    next_tick: datetime | None
    last_result: str
    last_error: str
    consecutive_failures: int


class HaltOut(BaseModel):
    at: datetime
    kind: str = Field(description='"halt" (circuit breaker) or "resume"')
    reason: str


class PricesOut(BaseModel):
    """Which prices the paper account last traded on (decided at the start of that run)."""

    kind: str = Field(description='"live" (public tickers) or "candles" (frozen history)')
    setting: str = Field(description='[paper] prices: "auto", "live" or "candles"')
    source: str
    description: str = Field(description="one line, as `status` prints it")
    frozen: bool = Field(description="the prices do not move: the bot is not seeing the market")
    warning: str = Field(description='the banner text when frozen, else ""')
    first: datetime | None = Field(description="candles: the first bar's time")
    last: datetime | None = Field(description="candles: the last bar's time (the prices used)")
    reason: str = Field(description='why "auto" took the candles')
    decided_at: datetime


class StatusOut(BaseModel):
    mode: str
    account: str
    quote: str
    halted: bool
    halt: HaltOut | None = Field(description="the active halt, if any")
    heartbeat: TickOut | None = Field(description="None when the daemon has never run")
    control: bool = Field(description="whether POST /api/resume and /api/rebalance are enabled")
    checks: int
    last_check: datetime | None
    total_value: Decimal | None
    prices: PricesOut | None = Field(
        default=None, description="paper: the prices of its last trading run (None: live, or none)"
    )


class AssetWeightOut(BaseModel):
    asset: str
    amount: Decimal
    value: Decimal
    weight: Decimal
    target: Decimal
    drift: Decimal = Field(description="weight - target")
    band_low: Decimal | None
    band_high: Decimal | None
    in_band: bool

    @classmethod
    def of(cls, a: view.AssetWeight) -> AssetWeightOut:
        return cls(
            asset=a.asset,
            amount=a.amount,
            value=a.value,
            weight=a.weight,
            target=a.target,
            drift=a.drift,
            band_low=a.band_low,
            band_high=a.band_high,
            in_band=a.in_band,
        )


class WeightsOut(BaseModel):
    """Weights after the last check and its trades, valued at that check's prices."""

    as_of: datetime | None
    quote: str
    total_value: Decimal
    band: str
    after_trades: bool = Field(description="the last check traded: these are its results")
    assets: list[AssetWeightOut]


class EquityPointOut(BaseModel):
    at: datetime
    value: Decimal = Field(description="the portfolio's value at this check, before its trades")
    hold: Decimal = Field(description="the starting holdings at this check's prices")


class EquityOut(BaseModel):
    quote: str
    start_at: datetime | None
    start_holdings: dict[str, Decimal]
    points: list[EquityPointOut]


class DriftOut(BaseModel):
    times: list[datetime]
    targets: dict[str, Decimal]
    drift: dict[str, list[Decimal]] = Field(description="per asset, one value per time")
    weight: dict[str, list[Decimal]]


class OrderOut(BaseModel):
    created_at: datetime
    client_order_id: str
    symbol: str
    side: str
    amount: Decimal
    expected_cost: Decimal
    status: str
    source: str
    error: str
    updated_at: datetime


class FlowOut(BaseModel):
    at: datetime = Field(description="the check that found it")
    asset: str
    amount: Decimal = Field(description="> 0 a deposit, < 0 a withdrawal, in the asset")
    value: Decimal = Field(description="worth in the quote at that check's price")
    quote: str


class TargetChangeOut(BaseModel):
    at: datetime
    method: str = Field(description='the optimiser, or "config" (configured targets applied)')
    old: dict[str, Decimal] = Field(description="asset -> weight before (sums to 1)")
    new: dict[str, Decimal] = Field(description="asset -> weight from then on (sums to 1)")
    explanation: str
    config_method: str


class FillOut(BaseModel):
    at: datetime
    client_order_id: str
    trade_id: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    status: str
    source: str


class SummaryOut(BaseModel):
    quote: str
    start: datetime | None
    end: datetime | None
    checks: int
    rebalances: int
    fills: int
    orders_not_filled: int
    traded: Decimal
    fees: Decimal = Field(description="fees in the quote, at each check's prices")
    fees_by_asset: dict[str, Decimal]
    start_value: Decimal
    end_value: Decimal
    hold_end_value: Decimal
    total_return: float | None
    hold_return: float | None
    premium: float | None = Field(description="total_return - hold_return")
    max_drawdown: float
    halts: int

    @classmethod
    def of(cls, s: view.Summary) -> SummaryOut:
        return cls(
            quote=s.quote,
            start=s.start,
            end=s.end,
            checks=s.checks,
            rebalances=s.rebalances,
            fills=s.fills,
            orders_not_filled=s.orders_not_filled,
            traded=s.traded,
            fees=s.fees,
            fees_by_asset=s.fees_by_asset,
            start_value=s.start_value,
            end_value=s.end_value,
            hold_end_value=s.hold_end_value,
            total_return=s.total_return,
            hold_return=s.hold_return,
            premium=s.premium,
            max_drawdown=s.max_drawdown,
            halts=s.halts,
        )


class ActionOut(BaseModel):
    ok: bool
    detail: str
