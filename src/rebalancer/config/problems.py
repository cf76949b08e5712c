"""Config problems: each names the field path, the rule, the value found and the fix.

Validators raise :func:`rule_error`; :func:`from_validation_error` turns every pydantic
error into a :class:`Problem` (so all problems are reported at once, not the first only);
:func:`raise_problems` raises them together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from rebalancer.core.errors import ConfigError

Loc = tuple[str | int, ...]

# every trigger kind (config/rules.RULE_MODELS; a test keeps the two equal)
RULE_KINDS = ("threshold", "calendar", "hybrid", "any_of", "all_of", "never", "vol_threshold")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SECRET_WORDS = ("apikey", "secret", "password", "passphrase", "privatekey", "token")
_SECRET_NAMES = ("key", "pass", "pwd")
#: the longest text a config error repeats; a longer one may be a pasted secret
MAX_SHOWN = 16
# well-known key prefixes (Stripe sk_live_, Slack xox?-, GitHub ghp_, AWS AKIA, ...)
_SECRET_PREFIX = re.compile(r"^(sk|rk|pk)_(live|test)_|^xox[abpors]-|^gh[pousr]_|^AKIA|^-----BEGIN")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config. ``found`` is None when showing it adds nothing."""

    path: str
    rule: str
    fix: str
    found: str | None = None

    def render(self) -> str:
        found = f"; found {self.found}" if self.found is not None else ""
        return f"{self.path or '(top level)'}: {self.rule}{found}. Fix: {self.fix}"


def rule_error(rule: str, fix: str, found: str | None = None, at: str = "") -> Exception:
    """An error for a validator to raise; ``at`` extends the field path (e.g. ``"style"``)."""
    ctx: dict[str, Any] = {"rule": rule, "fix": fix, "at": at}
    if found is not None:
        ctx["found"] = found
    return PydanticCustomError("config_rule", "{rule}", ctx)


def raise_problems(source: str, problems: Sequence[Problem]) -> None:
    """Raise one :class:`ConfigError` listing every problem (does nothing when empty)."""
    if not problems:
        return
    lines = [p.render() for p in problems]
    n = len(lines)
    head = f"{source}: {n} problem{'s' if n > 1 else ''} in the configuration:"
    body = "\n".join(f"  - {line}" for line in lines)
    tail = "See config.example.toml for every key, explained."
    raise ConfigError(f"{head}\n{body}\n{tail}", lines)


def show(value: Any) -> str:
    """A value as the user wrote it, TOML-like; a text longer than :data:`MAX_SHOWN`
    characters, or that starts like a known secret, is described, never repeated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, str):
        if len(value) > MAX_SHOWN or _SECRET_PREFIX.search(value.strip()):
            return f"a text of {len(value)} characters (not repeated here: it may be a secret)"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table {" + ", ".join(str(k) for k in value) + "}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if value is None:
        return "nothing"
    return type(value).__name__


def show_path(value: Any) -> str:
    """A file or folder path as written (paths are never secrets; a wrong one must show)."""
    return json.dumps(str(value), ensure_ascii=False)


def path_text(loc: Iterable[str | int]) -> str:
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            key = el if _BARE_KEY.match(el) else json.dumps(el, ensure_ascii=False)
            out += f".{key}" if out else key
    return out


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (case-insensitive), if any is close."""
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def one_of(values: Sequence[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def is_secret_key(key: str) -> bool:
    """True for keys that name a credential: api_key, apiSecret, password, token, ..."""
    norm = re.sub(r"[^a-z]", "", key.lower())
    return norm in _SECRET_NAMES or any(w in norm for w in _SECRET_WORDS)


def clean_loc(loc: Loc) -> Loc:
    """Drop pydantic's union tags and ``[key]`` markers from an error location."""
    out: list[str | int] = []
    for i, el in enumerate(loc):
        if el == "[key]":
            continue
        prev = loc[i - 1] if i else None
        if el in RULE_KINDS and (prev == "trigger" or isinstance(prev, int)):
            continue
        out.append(el)
    return tuple(out)


def from_validation_error(
    exc: ValidationError, allowed_keys: Any, type_fixes: dict[str, str]
) -> list[Problem]:
    """Every error of ``exc`` as a :class:`Problem`.

    ``allowed_keys(raw_loc)`` gives the keys allowed in the table holding ``raw_loc``'s last
    key (for unknown-key errors); ``type_fixes`` maps a field path to a fix for bad values.
    """
    return problems_of(exc.errors(), allowed_keys, type_fixes)


def problems_of(
    errors: Iterable[Any], allowed_keys: Any, type_fixes: dict[str, str]
) -> list[Problem]:
    """Pydantic error dicts (``ValidationError.errors()``) as problems, in order."""
    problems: list[Problem] = []
    for err in errors:
        raw_loc: Loc = tuple(err["loc"])
        problems.append(_problem(err, raw_loc, clean_loc(raw_loc), allowed_keys, type_fixes))
    return problems


def _problem(
    err: Any, raw_loc: Loc, loc: Loc, allowed_keys: Any, type_fixes: dict[str, str]
) -> Problem:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    path = path_text(loc)
    if kind == "config_rule":
        at = ctx.get("at") or ""
        full = f"{path}.{at}" if path and at else path or at
        found = ctx.get("found", show(value))
        return Problem(full, ctx["rule"], ctx["fix"], found)
    if kind == "extra_forbidden":
        return _unknown_key(raw_loc, path, allowed_keys)
    if kind == "missing":
        fix = type_fixes.get(path, "add it")
        return Problem(path, "this key is required", fix)
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return _not_one_of(path, value, expected, type_fixes)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx.get("tag", value)
        return _not_one_of(f"{path}.kind" if path else "kind", tag, list(RULE_KINDS), {})
    return _bad_type(kind, path, value, err["msg"], type_fixes)


def _unknown_key(raw_loc: Loc, path: str, allowed_keys: Any) -> Problem:
    key = str(raw_loc[-1])
    allowed: list[str] = allowed_keys(raw_loc)
    near = suggest(key, allowed)
    listed = f"the keys allowed here are: {', '.join(allowed)}" if allowed else "remove it"
    fix = f"did you mean {json.dumps(near)}? ({listed})" if near else f"remove it; {listed}"
    if "trigger" in path and not near:
        other = key if key in _ALL_RULE_FIELDS else suggest(key, _ALL_RULE_FIELDS)
        owners = [k for k in RULE_KINDS if other in _RULE_FIELDS.get(k, ())]
        if other and owners:
            kinds = " or ".join(map(json.dumps, owners))
            fix += f"; {json.dumps(other)} belongs to kind {kinds}"
    return Problem(path, "unknown key", fix)


# which trigger kinds accept which keys (for "belongs to kind ..." hints)
_RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "threshold": ("band_abs", "band_rel"),
    "calendar": ("every", "cron", "weekday"),
    "hybrid": ("every", "cron", "weekday", "band_abs", "band_rel"),
    "any_of": ("rules",),
    "all_of": ("rules",),
    "never": (),
    "vol_threshold": (
        "half_life", "base_band", "floor", "cap", "reference_vol", "per_asset", "window"
    ),
}  # fmt: skip
_ALL_RULE_FIELDS = sorted({f for fields in _RULE_FIELDS.values() for f in fields})


def _not_one_of(path: str, value: Any, expected: list[str], type_fixes: dict[str, str]) -> Problem:
    near = suggest(value, expected) if isinstance(value, str) else None
    fix = type_fixes.get(path, "")
    if near:
        fix = f"did you mean {json.dumps(near)}? {fix}".strip()
    if not fix:
        fix = f"write one of {one_of(expected)}"
    return Problem(path, f"must be one of {one_of(expected)}", fix, show(value))


_TYPE_RULES = {
    "decimal": ("must be a number", "write a plain number such as 0.05 (no quotes, no % sign)"),
    "finite_number": ("must be a finite number", "write a plain number such as 0.05"),
    "int": ("must be a whole number", "write a number such as 10"),
    "float": ("must be a number", "write a plain number such as 0.05"),
    "bool": ("must be true or false", "write true or false, without quotes"),
    "string": ("must be text", 'write it in double quotes, e.g. "value"'),
    "dict": ("must be a table", "write it as a [section] or an inline table { key = value }"),
    "model": ("must be a table", "write it as a [section] or an inline table { key = value }"),
    "list": ("must be a list", "write it as a list: [ ... ]"),
    "too_short": ("is too short", "add the missing entries"),
}


def _bad_type(kind: str, path: str, value: Any, msg: str, type_fixes: dict[str, str]) -> Problem:
    for prefix, (rule, fix) in _TYPE_RULES.items():
        if kind.startswith(prefix):
            return Problem(path, rule, type_fixes.get(path, fix), show(value))
    return Problem(path, msg, type_fixes.get(path, "correct the value"), show(value))
