"""Sane ranges for numbers given on the command line or in the API, checked in one place.

Each check names the option, the value found and the fix, and raises
:class:`~rebalancer.core.errors.ConfigError` (or :class:`DataError` for candles) instead of
letting a float overflow, a Decimal division by zero or an empty run pass for a result.

* a fee rate is a fraction in [0, 1): ``--fee 1`` (100 %) divides by zero, ``--fee 5`` is a
  percent written as a number;
* a capital is more than 0 and at most :data:`MAX_AMOUNT` (10^15 quote units): beyond,
  the engine's float arithmetic overflows (``--capital 1e308``);
* a price is within [:data:`MIN_PRICE`, :data:`MAX_PRICE`]: a subnormal 5e-324 makes every
  quantity infinite;
* a ``since`` period back from now must land after the year 1 (``99999999999d`` overflows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from rebalancer.core.errors import ConfigError, DataError

#: the largest amount or capital accepted (quote units), 10^15
MAX_AMOUNT = Decimal(10) ** 15
#: the price range of a candle (quote units per base unit)
MIN_PRICE = 1e-12
MAX_PRICE = 1e12

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def number(value: float | str | Decimal, name: str) -> Decimal:
    """``value`` as an exact, finite Decimal (its shortest text for a float)."""
    try:
        out = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{name} {value!r} is not a number. Fix: write e.g. 0.001") from None
    if not out.is_finite():
        raise ConfigError(f"{name} must be a finite number, not {value}. Fix: write e.g. 0.001")
    return out


def fee_rate(value: float | str | Decimal, name: str = "--fee") -> Decimal:
    """A fee rate: a fraction in [0, 1) (0.001 = 0.1 %)."""
    fee = number(value, name)
    if 0 <= fee < 1:
        return fee
    hint = (
        f"; it is a fraction, not percent: {fee.normalize():f} % is {(fee / 100).normalize():f}"
        if 1 <= fee <= 100
        else ""
    )
    raise ConfigError(
        f"{name} must lie in [0, 1) as a fraction of each trade, not {value}{hint}. Fix: "
        "write e.g. 0.001 for 0.1 %"
    )


def fee_rates(values: Sequence[float], name: str = "--fee") -> list[float]:
    """Each of ``values`` checked as a :func:`fee_rate` (returned unchanged)."""
    for value in values:
        fee_rate(value, name)
    return list(values)


def capital(value: float | str | Decimal, name: str = "--capital") -> Decimal:
    """A starting capital: more than 0, at most :data:`MAX_AMOUNT`."""
    amount = number(value, name)
    if 0 < amount <= MAX_AMOUNT:
        return amount
    raise ConfigError(
        f"{name} must be more than 0 and at most {MAX_AMOUNT:.0e} (quote units), not {value}. "
        "Fix: write the starting cash, e.g. 10000"
    )


def check_prices(closes: Any) -> None:
    """Refuse candles whose closes leave [MIN_PRICE, MAX_PRICE]. ``closes``: a pandas
    DataFrame (one column per asset, indexed by time) or a mapping asset -> prices."""
    for asset, series in closes.items():
        for at, price in _pairs(series):
            if math.isnan(price):
                continue
            if not MIN_PRICE <= price <= MAX_PRICE:
                raise DataError(
                    f"{asset}: close {price!r} at {at} is outside [{MIN_PRICE:g}, "
                    f"{MAX_PRICE:g}] quote units; no real market trades there (a corrupt or "
                    "mis-scaled candle file?). Fix: correct the file, or download it again "
                    "with `rebalancer data download`"
                )


def _pairs(series: Any) -> list[tuple[Any, float]]:
    """(time, price) of the prices out of range (a pandas Series: one vectorised look)."""
    if hasattr(series, "to_numpy") and hasattr(series, "index"):
        values = series.to_numpy(dtype="float64", na_value=math.nan)
        bad = ~((values >= MIN_PRICE) & (values <= MAX_PRICE)) & (values == values)
        return [(series.index[i], float(values[i])) for i in bad.nonzero()[0][:1]]
    return [(i, float(v)) for i, v in enumerate(series)]


def since_time(text: str | None, now: datetime, name: str = "since") -> datetime | None:
    """``14d`` / ``24h`` / ``30m`` / ``2w`` back from ``now``, or an ISO date or time (UTC
    unless it says otherwise); None or "" means from the beginning. A period reaching back
    before the year 1 is refused (it cannot be a time)."""
    if not text:
        return None
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in _UNITS:
        try:
            return now - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
        except (OverflowError, ValueError):
            raise ConfigError(
                f"{name}: {text} reaches back before the year 1. Fix: use a shorter period "
                "such as 3650d, a date such as 2020-01-01, or leave it out for everything"
            ) from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{name}: must be a period back from now such as 24h, 14d or 2w, a date such as "
            f"2026-01-31 or a time such as 2026-01-31T12:00; found {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
