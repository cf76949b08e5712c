"""Reading the config: TOML text -> overrides -> secret check -> validated :class:`Settings`.

TOML is parsed with ``parse_float=Decimal`` so ``0.1`` stays exactly ``Decimal("0.1")``.
Every problem found is reported at once in one :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import ValidationError

from rebalancer.config.collect import validation_problems
from rebalancer.config.problems import Problem, is_secret_key, path_text, raise_problems
from rebalancer.config.secrets import env_names
from rebalancer.config.settings import Settings
from rebalancer.core.errors import ConfigError

CONFIG_NAME = "rebalancer.toml"
DEFAULTS_SOURCE = "built-in defaults"

# The defaults, key for key the values written in config.example.toml (a test keeps them equal).
DEFAULT_RAW: dict[str, Any] = {
    "mode": "paper",
    "exchange": "binance",
    "quote": "USDT",
    "sandbox": False,
    "state_dir": "",
    "targets": {
        "BTC": Decimal("0.40"),
        "ETH": Decimal("0.30"),
        "SOL": Decimal("0.20"),
        "USDT": Decimal("0.10"),
    },
    "trigger": {"kind": "threshold", "band_abs": Decimal("0.05")},
    "rebalance": {
        "style": "target",
        "min_trade": 10,
        "slippage": Decimal("0.001"),
        "unmanaged": "ignore",
    },
    "fees": {"taker": Decimal("0.001")},
    "paper": {"initial_balances": {"USDT": 10000}, "data_dir": ""},
}
# tables whose keys are asset codes, not settings (never mistaken for secret names)
_ASSET_TABLES = {("targets",), ("paper", "initial_balances"), ("markets",)}


def default_config() -> Settings:
    """The settings used when no config file is given (those of config.example.toml)."""
    return _build(copy.deepcopy(DEFAULT_RAW), DEFAULTS_SOURCE, None, None)


def find_config(cwd: Path | None = None) -> Path | None:
    """``./rebalancer.toml`` if present, else the one in the user config dir, else None."""
    for folder in (cwd or Path.cwd(), Path(platformdirs.user_config_dir("rebalancer", False))):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate the config at ``path`` (the defaults when None), then ``overrides``.

    ``overrides`` maps a key to a value: ``{"mode": "live", "trigger.band_abs": "0.03"}``.
    A dotted key reaches into tables; a table value replaces the whole table; None removes
    the key (back to its default). Floats are taken by their shortest text (0.1 -> "0.1").
    Relative paths in the file start at the file's folder. Raises :class:`ConfigError`.
    """
    if path is None:
        return _build(copy.deepcopy(DEFAULT_RAW), DEFAULTS_SOURCE, overrides, None)
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found. Fix: check the path, or create it by copying "
            f"config.example.toml (or run without a config file to use the defaults)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a folder. Fix: give the TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}). Fix: save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    settings = parse_config(text, str(path), overrides=overrides, base_dir=path.parent)
    settings._config_dir = path.parent.resolve()
    return settings


def parse_config(
    text: str,
    source: str = "<string>",
    *,
    overrides: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Validate TOML ``text``; ``source`` names it in messages, ``base_dir`` anchors
    relative paths (default: the current folder)."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(source, text, str(exc))) from None
    return _build(raw, source, overrides, base_dir)


def _build(
    raw: dict[str, Any],
    source: str,
    overrides: Mapping[str, Any] | None,
    base_dir: Path | None,
) -> Settings:
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{source} (with overrides of {', '.join(overrides)})"
    problems = _secret_problems(raw, (), _exchange_of(raw))
    context = {"base_dir": base_dir or Path.cwd()}
    try:
        settings = Settings.model_validate(raw, context=context)
    except ValidationError as exc:
        secret_paths = {p.path for p in problems}
        problems += [
            p
            for p in validation_problems(
                raw, exc, lambda again: Settings.model_validate(again, context=context)
            )
            if p.path not in secret_paths
        ]
    raise_problems(source, problems)
    settings._source = source
    return settings


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with ``overrides`` applied (see :func:`load_config`)."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        table = out
        for i, part in enumerate(parents):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(parents[: i + 1])
                raise ConfigError(
                    f"override {dotted}: {where} is not a table. Fix: override {where} itself"
                )
            table = nxt
        if value is None:
            table.pop(last, None)
        else:
            table[last] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _exchange_of(raw: dict[str, Any]) -> str:
    exchange = raw.get("exchange", "binance")
    return exchange.strip().lower() if isinstance(exchange, str) else "exchange"


def _secret_problems(table: Any, loc: tuple[str | int, ...], exchange: str) -> list[Problem]:
    """Keys named like credentials anywhere in the TOML (their values are never shown)."""
    problems: list[Problem] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(table, dict):
        items = list(table.items())
    elif isinstance(table, list):
        items = list(enumerate(table))
    names = env_names(exchange)
    for key, value in items:
        here = (*loc, key)
        if isinstance(key, str) and loc not in _ASSET_TABLES and is_secret_key(key):
            problems.append(
                Problem(
                    path_text(here),
                    "API keys and other secrets do not belong in the config file",
                    f"delete it (and rotate the key if this file was shared); put the keys in "
                    f"a .env file or the environment as {names['api_key']}, "
                    f"{names['secret']} (and {names['password']} if the exchange needs one)",
                    "a value (not shown)",
                )
            )
        else:
            problems += _secret_problems(value, here, exchange)
    return problems


_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_KEY_LINE = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")
_TABLE_LINE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")


def _syntax_message(source: str, text: str, error: str) -> str:
    lines = text.splitlines()
    where = ""
    detail = _POSITION.sub("", error).strip()
    m = _POSITION.search(error)
    lineno = int(m.group(1)) if m else None
    fix = (
        "check the syntax there: text needs double quotes, numbers no % sign, "
        "tables are written [name], and each key = value on its own line"
    )
    if detail.startswith("Cannot overwrite a value") or "twice" in detail:
        dup = _find_duplicate(lines)
        if dup is not None:
            lineno, name, first = dup
            detail = f"{name} is written twice (first on line {first})"
        fix = "write each key (and each asset in [targets]) only once; remove the repeat"
    if lineno is not None:
        col = f", column {m.group(2)}" if m and lineno == int(m.group(1)) else ""
        where = f" at line {lineno}{col}"
        if 0 < lineno <= len(lines):
            where += f": {lines[lineno - 1].strip()}"
    return f"{source}: TOML syntax error{where}: {detail}. Fix: {fix}"


def _find_duplicate(lines: list[str]) -> tuple[int, str, int] | None:
    """(line, key, first line) of the first key or table written twice.

    A plain line scan, used only after tomllib reported a duplicate without a usable line.
    """
    table = ""
    seen: dict[str, int] = {}
    for no, line in enumerate(lines, 1):
        header = _TABLE_LINE.match(line)
        if header and "=" not in line.split("]")[0]:
            table = header.group(1)
            if line.lstrip().startswith("[["):  # a new array element: its keys start afresh
                seen = {k: v for k, v in seen.items() if not k.startswith(f"{table}.")}
                continue
            name = f"[{table}]"
            if name in seen:
                return no, name, seen[name]
            seen[name] = no
            continue
        key = _KEY_LINE.match(line)
        if key:
            bare = key.group(1).strip("\"'")
            name = f"{table}.{bare}" if table else bare
            if name in seen:
                return no, name, seen[name]
            seen[name] = no
    return None
