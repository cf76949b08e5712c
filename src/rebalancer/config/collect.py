"""Every problem of a config at once: field problems and the cross-field ones.

Pydantic runs a model's own rules (its "after" validators: ``every`` or ``cron``, ``floor``
not above ``cap``, ``max_backoff`` at least ``retry_after``, ...) only when every field of
that model validated, and a settings rule that reads another table (``style = "band_edge"``
needs a trigger with a band) only when that table validated. Alone, a calendar trigger with
a stray ``band_abs`` and no ``every`` would report the unknown key, then the missing
schedule only after the fix.

:func:`validation_problems` therefore validates a second time, on a copy of the raw config
without the keys the first pass rejected (unknown keys, and setting values of the wrong type
or range; never assets), and adds the rule problems that pass finds. A rule problem that
names a removed key is dropped: it could be an artefact of the removal (``every = "bogus"``
removed is not "neither every nor cron"). The rule across tables whose other side is still
invalid is checked on the raw values (:func:`raw_cross_problems`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from rebalancer.config.problems import Problem, clean_loc, problems_of
from rebalancer.config.rules import band_edge_problem, raw_has_band
from rebalancer.config.schema import TYPE_FIXES, allowed_keys

Loc = tuple[str | int, ...]
# tables keyed by asset or account name: removing an entry changes what the rest means
_KEYED_TABLES = (("targets",), ("paper", "initial_balances"), ("markets",), ("accounts",))


def validation_problems(
    raw: Mapping[str, Any], exc: ValidationError, validate: Callable[[dict[str, Any]], object]
) -> list[Problem]:
    """The problems of ``exc`` (the first pass over ``raw``) and the rule problems it hid.

    ``validate`` validates a raw config again, raising :class:`ValidationError`."""
    found = problems_of(exc.errors(), allowed_keys, TYPE_FIXES)
    errors = exc.errors()
    removed = _rejected(raw, errors)
    if removed:
        try:
            validate(_without(raw, removed))
            errors = []
        except ValidationError as again:
            errors = again.errors()
            names = {str(loc[-1]) for loc in removed}
            rules = [e for e in errors if e["type"] == "config_rule"]
            for problem in problems_of(rules, allowed_keys, TYPE_FIXES):
                if problem not in found and not _mentions(problem, names):
                    found.append(problem)
    invalid = {str(loc[0]) for loc in (clean_loc(tuple(e["loc"])) for e in errors) if loc}
    found += [p for p in raw_cross_problems(raw, invalid) if p not in found]
    order = {str(key): i for i, key in enumerate(raw)}
    return sorted(found, key=lambda p: order.get(re.split(r"[.\[]", p.path, maxsplit=1)[0], -1))


def raw_cross_problems(raw: Mapping[str, Any], invalid: set[str]) -> list[Problem]:
    """Rules across tables, checked on the raw values when a table they read is ``invalid``
    (pydantic skips them then): ``rebalance.style = "band_edge"`` needs a trigger with a
    band, whatever else is wrong with the trigger."""
    rebalance, trigger = raw.get("rebalance"), raw.get("trigger", {})
    if (
        "trigger" in invalid
        and isinstance(rebalance, dict)
        and rebalance.get("style") == "band_edge"
        and raw_has_band(trigger) is False
    ):
        return [band_edge_problem(trigger.get("kind", "threshold"))]
    return []


def _rejected(raw: Mapping[str, Any], errors: list[Any]) -> list[Loc]:
    """Keys the first pass rejected that can be left out without changing what the rest
    means: unknown keys anywhere, bad values of settings (not of assets or accounts)."""
    out: list[Loc] = []
    for err in errors:
        loc = clean_loc(tuple(err["loc"]))
        if not loc or not isinstance(loc[-1], str) or err["type"] == "missing":
            continue
        keyed = any(loc[: len(t)] == t for t in _KEYED_TABLES)
        # unknown keys go; so does a bad setting, but never an asset, nor a table whose own
        # rule failed (that rule is what the second pass is for)
        if err["type"] == "extra_forbidden" or not (keyed or _is_table(raw, loc)):
            out.append(loc)
    return out


def _is_table(raw: Mapping[str, Any], loc: Loc) -> bool:
    value: Any = raw
    for part in loc:
        value = _child(value, part)
    return isinstance(value, dict)


def _without(raw: Mapping[str, Any], locs: list[Loc]) -> dict[str, Any]:
    """A deep copy of ``raw`` without the keys at ``locs``."""
    out: dict[str, Any] = copy.deepcopy(dict(raw))
    for loc in locs:
        table: Any = out
        for part in loc[:-1]:
            table = _child(table, part)
        if isinstance(table, dict):
            table.pop(loc[-1], None)
    return out


def _child(table: Any, part: str | int) -> Any:
    """``table[part]`` of a raw table or list; None where there is no such entry."""
    if isinstance(table, dict):
        return table.get(part)
    if isinstance(table, list) and isinstance(part, int) and 0 <= part < len(table):
        return table[part]
    return None


def _mentions(problem: Problem, names: set[str]) -> bool:
    text = " ".join((problem.path, problem.rule, problem.fix, problem.found or ""))
    return any(re.search(rf"\b{re.escape(name)}\b", text) for name in names)
