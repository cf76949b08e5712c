"""Single config values: asset codes, fractions, amounts, periods, cron, exchange ids, folders.

Each is an ``Annotated`` type whose validator raises :func:`rule_error` naming the rule
and the fix; the numbers are :class:`~decimal.Decimal` as written in the TOML text.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from rebalancer.config.exchanges import EXCHANGE_IDS
from rebalancer.config.problems import rule_error, show, suggest
from rebalancer.core.cron import Cron

ZERO = Decimal(0)
ONE = Decimal(1)
SUM_TOLERANCE = Decimal("1e-9")
DEFAULT_BAND_ABS = Decimal("0.05")
DEFAULT_PAPER_CAPITAL = Decimal(10000)
_ASSET = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,29}$")
_PERIOD = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_PERIOD_WORDS = re.compile(r"(?i)^\s*(\d+)\s*(min|mins|minutes?|hours?|hrs?|days?|weeks?|wks?)\s*$")
_WORD_UNITS = {"mi": "m", "ho": "h", "hr": "h", "da": "d", "we": "w", "wk": "w"}


def default_data_dir() -> Path:
    """Where state lives by default: the user data dir (e.g. ~/.local/share/rebalancer)."""
    return Path(platformdirs.user_data_dir("rebalancer", appauthor=False))


# --- single values ---------------------------------------------------------------------------


def _asset(value: str) -> str:
    if "/" in value:
        base = value.split("/")[0]
        raise rule_error("must be an asset code, not a market symbol", f"write {show(base)} alone")
    if not _ASSET.match(value):
        raise rule_error(
            "must be an asset code (letters and digits, e.g. BTC)", "write a code such as BTC"
        )
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Asset = Annotated[str, BeforeValidator(_upper), AfterValidator(_asset)]


def _fraction(name: str, *, lo_open: bool, hi_open: bool, meaning: str, example: str) -> Any:
    lo, hi = ("(" if lo_open else "["), (")" if hi_open else "]")

    def check(value: Decimal) -> Decimal:
        too_low = value <= 0 if lo_open else value < 0
        too_high = value >= 1 if hi_open else value > 1
        if not (too_low or too_high):
            return value
        if too_high and value <= 100:
            fix = f"{name}s are fractions, not percent: write {value / 100} for {value} %"
        elif value == 0:
            fix = f"write a positive {name} such as {example}"
        else:
            fix = f"write a {name} such as {example}"
        raise rule_error(f"must lie in {lo}0, 1{hi}, {meaning}", fix)

    return AfterValidator(check)


Weight = Annotated[
    Decimal,
    _fraction(
        "weight",
        lo_open=False,
        hi_open=False,
        meaning="a fraction of the portfolio",
        example="0.25 (25 %), or 0 to hold none",
    ),
]
Band = Annotated[
    Decimal,
    _fraction(
        "band", lo_open=True, hi_open=True, meaning="a fraction (0.05 = 5 %)", example="0.05"
    ),
]
Rate = Annotated[
    Decimal,
    _fraction("rate", lo_open=False, hi_open=True, meaning="a fraction", example="0.001 (0.1 %)"),
]


#: the largest amount, notional or step the config accepts (10^15): far above any real
#: balance, and below where the engine's float arithmetic loses meaning
MAX_NUMBER = Decimal(10) ** 15


def _at_most_max(value: Decimal) -> Decimal:
    if not value.is_finite() or value > MAX_NUMBER:
        raise rule_error(
            f"must be at most {MAX_NUMBER:.0e}", "write a realistic amount, e.g. 10"
        )
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise rule_error("must be 0 or more", "write 0 or a positive number")
    return _at_most_max(value)


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise rule_error("must be more than 0", "write a positive number such as 0.0001")
    return _at_most_max(value)


Amount = Annotated[Decimal, AfterValidator(_non_negative)]
Step = Annotated[Decimal, AfterValidator(_positive)]


def parse_period(text: str) -> timedelta:
    """``"15m"``, ``"4h"``, ``"1d"``, ``"2w"`` as a timedelta (ValueError otherwise)."""
    m = _PERIOD.match(text)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(text)
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def period_text(value: str) -> str:
    try:
        parse_period(value)
    except ValueError:
        fix = 'write a count and a unit m, h, d or w, e.g. "15m", "4h", "1d", "1w"'
        words = _PERIOD_WORDS.match(value)
        if words:
            fix = f'write "{words.group(1)}{_WORD_UNITS[words.group(2)[:2].lower()]}"'
        elif re.search(r"(?i)month|year|\dmo", value) or re.fullmatch(r"\s*\d+\s*[My]\s*", value):
            fix = 'months vary in length: use cron = "0 0 1 * *" for the 1st of each month'
        raise rule_error("must be a period such as 15m, 4h, 1d or 1w", fix) from None
    return value.strip()


def cron_text(value: str) -> str:
    try:
        Cron.parse(value)
    except ValueError as exc:
        raise rule_error("must be a valid cron expression", str(exc)) from None
    return value


def exchange_id(value: str) -> str:
    value = value.strip().lower()
    if value in EXCHANGE_IDS:
        return value
    near = suggest(value, EXCHANGE_IDS)
    hint = f"did you mean {show(near)}? " if near else ""
    raise rule_error(
        "must be a CCXT exchange id",
        f"{hint}see the list with: python -c 'import ccxt; print(ccxt.exchanges)'",
    )


def _folder(value: Any, info: ValidationInfo) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    path = Path(str(value)).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


def _state_folder(value: Any, info: ValidationInfo) -> Path:
    return _folder(value, info) or default_data_dir()


OptionalDir = Annotated[Path | None, BeforeValidator(_folder)]
StateDir = Annotated[Path, BeforeValidator(_state_folder)]


def check_assets_once(value: Any) -> Any:
    """Upper-case asset keys; two keys naming the same asset (``BTC``/``btc``) are an error."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    first: dict[str, str] = {}
    dups: list[str] = []
    for key, item in value.items():
        norm = _upper(key)
        if norm in first:
            dups.append(f"{show(first[norm])} and {show(key)}")
        else:
            first[norm] = key
            out[norm] = item
    if dups:
        raise rule_error(
            "each asset may appear once (asset codes ignore case)",
            "keep one entry per asset and remove the others",
            found=", ".join(dups),
        )
    return out
