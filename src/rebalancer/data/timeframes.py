"""Candle timeframes in CCXT/freqtrade spelling: ``"1m"``, ``"5m"``, ``"15m"``, ``"1h"``, ``"4h"``,
``"1d"``, ``"1w"`` (any positive count of minutes, hours, days or weeks).

Months (``"1M"``) are refused: they have no fixed length, so gaps could not be measured.
"""

from __future__ import annotations

import re

import pandas as pd

from rebalancer.core.errors import ConfigError

_UNITS = {
    "m": lambda n: pd.Timedelta(minutes=n),
    "h": lambda n: pd.Timedelta(hours=n),
    "d": lambda n: pd.Timedelta(days=n),
    "w": lambda n: pd.Timedelta(weeks=n),
}
_PATTERN = re.compile(r"^([1-9][0-9]*)([mhdw])$")
_YEAR = pd.Timedelta(days=365)


def parse_timeframe(timeframe: str) -> pd.Timedelta:
    """The length of one candle of ``timeframe`` (``"1h"`` -> 1 hour).

    Raises :class:`ConfigError` naming the value and the accepted spellings.
    """
    match = _PATTERN.match(timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise ConfigError(
            f"timeframe {timeframe!r} is not understood: write a count and a unit, "
            "m (minutes), h (hours), d (days) or w (weeks), e.g. '1m', '5m', '15m', '1h', "
            "'4h', '1d', '1w' (CCXT spelling; months are not supported)."
        )
    count, unit = match.groups()
    return _UNITS[unit](int(count))


def bars_per_year(timeframe: str) -> float:
    """How many candles of ``timeframe`` fit in 365 days (crypto trades every day)."""
    return float(_YEAR / parse_timeframe(timeframe))
