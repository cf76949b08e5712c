"""The effective config as data and as TOML-like text, with every secret shown as ``***``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from rebalancer.config.problems import is_secret_key, path_text
from rebalancer.config.secrets import ExchangeKeys, load_secrets, mask_url

if TYPE_CHECKING:
    from rebalancer.config.settings import Settings

REDACTED = "***"
_ASSET_TABLES = {"targets", "initial_balances", "markets"}
_UNSET = {"data_dir": ": the embedded demo data"}


def _scrub(value: Any, key: str = "", parent: str = "") -> Any:
    if isinstance(value, SecretStr) or (
        parent not in _ASSET_TABLES and key and is_secret_key(key) and value is not None
    ):
        return REDACTED
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0] != "kind")  # kind first
        return {k: _scrub(v, str(k), key) for k, v in items}
    if isinstance(value, list | tuple):
        return [_scrub(v, "", key) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return mask_url(value)  # a password in a URL (user info or ?password=) never shows
    return value


def redacted(settings: Settings, keys: ExchangeKeys | None = None) -> dict[str, Any]:
    data = settings.model_dump()
    out: dict[str, Any] = _scrub(data)
    if keys is not None:
        out["env"] = keys.status()
    return out


def show_config(
    settings: Settings,
    keys: ExchangeKeys | None = None,
    *,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> str:
    """The effective config as TOML-like text; unset optional keys appear as comments.

    ``keys`` defaults to :func:`load_secrets` for the configured exchange with ``env`` and
    ``dotenv_path``; only whether each variable is set is shown, never its value.
    """
    if keys is None:
        path = settings.dotenv_path if dotenv_path is None else dotenv_path
        keys = load_secrets(settings.exchange, env, path)
    data = redacted(settings, keys)
    lines: list[str] = [f"# effective configuration from {settings.source}"]
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict) and key == "markets":
            tables.extend((f"markets.{path_text([k])}", v) for k, v in value.items())
        elif isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(_line(key, value))
    for name, table in tables:
        lines.extend(["", f"[{name}]"])
        if name == "env":
            lines.append("# exchange keys from the environment or .env (values never shown)")
        lines.extend(_line(k, v) for k, v in table.items())
    return "\n".join(lines) + "\n"


def _line(key: str, value: Any) -> str:
    name = path_text([key])
    if value is None:
        return f"# {name} = (not set{_UNSET.get(key, '')})"
    return f"{name} = {_value(value)}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, dict):
        inner = ", ".join(
            f"{path_text([k])} = {_value(v)}" for k, v in value.items() if v is not None
        )
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list):
        return "[ " + ", ".join(_value(v) for v in value) + " ]"
    return json.dumps(str(value), ensure_ascii=False)
