"""Does the venue list the configured assets? ``config check`` asks a market list.

The list, in order of preference:

1. **the cached one** (``markets-<venue>.json`` in the state folder): the venue's whole list
   of spot markets as its public ``load_markets`` gave it, written whenever the bot read it
   online (``[paper] prices = "live"``, ``rebalancer config check --online``). It decides:
   an asset the venue does not trade against the quote is a **problem**.
2. **the snapshot shipped in the package** (``rebalancer/market_data/<venue>.json``): an
   excerpt, the assets a user commonly names on that venue (``listed``, with its source and
   date) plus those with real rule rows. An asset outside it gets a **warning**, never an
   error: it may be listed all the same.
3. **neither knows the venue against this quote**: a **note** says the assets could not be
   checked (no false alarm).

No network here: going online is :func:`rebalancer.bootstrap.refresh_market_list`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from rebalancer.config.problems import suggest

CACHE_NAME = "markets-{venue}.json"
ONLINE_FIX = "`rebalancer config check --online` reads its whole market list (network, no keys)"


@dataclass(frozen=True)
class Listing:
    """The base assets a venue trades against ``quote`` per one market list.

    ``complete``: the venue's whole list (cached from its API) rather than the shipped
    excerpt; ``where``: that list in a few words, with its date; ``others``: for each base on
    the list, the quotes it trades against (complete lists only).
    """

    venue: str
    quote: str
    bases: frozenset[str]
    complete: bool
    where: str
    others: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class AssetFinding:
    """One finding about a configured asset: a ``problem`` (the venue does not list it),
    a ``warning`` (not in the shipped excerpt) or a ``note`` (could not check)."""

    level: Literal["problem", "warning", "note"]
    path: str
    rule: str
    fix: str
    found: str | None = None

    def render(self) -> str:
        found = f"; found {self.found}" if self.found is not None else ""
        return f"{self.path}: {self.rule}{found}. Fix: {self.fix}"


def cache_path(state_dir: Path, venue: str) -> Path:
    """Where the bot caches ``venue``'s market list (``bootstrap`` writes it)."""
    return state_dir / CACHE_NAME.format(venue=venue)


def shipped(venue: str) -> dict[str, Any]:
    """The snapshot shipped for ``venue`` (``{}`` when there is none)."""
    path = resources.files("rebalancer") / "market_data" / f"{venue}.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_cache(cache: Path) -> dict[str, Any] | None:
    """The cached market list at ``cache``; None when missing or unreadable."""
    try:
        data: dict[str, Any] = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    return data if "read_at" in data and isinstance(data.get("markets"), dict) else None


def listing(venue: str, quote: str, state_dir: Path) -> Listing | None:
    """What the cached list (else the shipped snapshot) says ``venue`` trades against
    ``quote``; None when neither knows that venue and quote."""
    cached = read_cache(cache_path(state_dir, venue))
    if cached is not None:
        return from_list(venue, quote, cached)
    return from_list(venue, quote, shipped(venue))


def from_list(venue: str, quote: str, data: Mapping[str, Any]) -> Listing | None:
    """A :class:`Listing` from a market list (cached: complete; shipped: an excerpt)."""
    pairs = [str(s).split(":", 1)[0].split("/", 1) for s in data.get("markets", {})]
    pairs = [p for p in pairs if len(p) == 2]
    complete = "read_at" in data
    if complete:
        others: dict[str, tuple[str, ...]] = {}
        for base, q in pairs:
            others[base] = (*others.get(base, ()), q)
        bases = frozenset(b for b, q in pairs if q == quote)
        where = f"{venue}'s market list (cached, read {data.get('read_on', '?')})"
        return Listing(venue, quote, bases, True, where, others)
    listed = data.get("listed", {})
    bases = frozenset(b for b, q in pairs if q == quote) | frozenset(listed.get(quote, ()))
    if not bases:
        return None
    read_on = data.get("listed_read_on", data.get("read_on", "?"))
    where = f"the shipped {venue} snapshot (read {read_on})"
    return Listing(venue, quote, bases, False, where, {})


def check_assets(
    targets: Mapping[str, Any], quote: str, venue: str, found: Listing | None
) -> list[AssetFinding]:
    """Findings for each target asset ``found`` does not show on ``venue`` against
    ``quote`` (the quote itself is cash, never checked)."""
    assets = [a for a in targets if a != quote]
    if found is None:
        missing = ", ".join(f"{a}/{quote}" for a in assets)
        return [
            AssetFinding(
                "note",
                "targets",
                f"could not check that {venue} lists {missing}: no {venue} market list "
                f"against {quote} is at hand offline",
                ONLINE_FIX,
            )
        ]
    return [_finding(a, targets[a], found) for a in assets if a not in found.bases]


def _finding(asset: str, weight: Any, found: Listing) -> AssetFinding:
    near = suggest(asset, found.bases)
    spelling = f'check the spelling (did you mean "{near}"?)' if near else "check the spelling"
    pair = f"{asset}/{found.quote}"
    path, shown = f"targets.{asset}", f"{asset} = {weight}"
    if found.complete:
        quotes = found.others.get(asset, ())
        elsewhere = f" (it trades {asset} against {', '.join(quotes)})" if quotes else ""
        return AssetFinding(
            "problem",
            path,
            f"{found.venue} lists no {pair} market{elsewhere}, per {found.where}",
            f"{spelling}; or remove {asset}; `rebalancer markets --list` lists the assets "
            f"{found.venue} trades against {found.quote}",
            shown,
        )
    return AssetFinding(
        "warning",
        path,
        f"{pair} is not among the {len(found.bases)} {found.quote} markets in {found.where}; "
        "it holds only the commonly named assets",
        f"{spelling}; if {found.venue} lists it, {ONLINE_FIX}",
        shown,
    )
