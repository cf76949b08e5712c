"""Market rules for paper trading and backtests, from the venue's real market list.

In order of preference:

1. **online** -- the venue's public market list through CCXT's ``load_markets`` (no key),
   cached on disk (``markets-<venue>.json`` in the state folder, kept ``CACHE_TTL``) so a
   restart needs no request;
2. **offline** -- the snapshot shipped in the package (``rebalancer/market_data/<venue>.json``,
   the rules of the pairs CCXT's captured market lists hold, each file naming its source and
   date; see ``market_data/PROVENANCE.md``; :func:`shipped`);
3. **fallback** -- for an asset neither lists, the made-up Binance-like rules of
   :func:`rebalancer.adapters.paper.default_rules`, **labelled** as such in
   :attr:`MarketList.fallback` and in :attr:`MarketList.source` so the user is told.

Every rule is stamped with the venue model (:mod:`rebalancer.core.venue`): who pays the fee
and at which rates (the config's ``[fees]`` where given, else the venue's lowest tier).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.adapters.paper import default_rules
from rebalancer.config.assets import read_cache, shipped
from rebalancer.core.errors import RetryLater
from rebalancer.core.model import ZERO, MarketRules
from rebalancer.core.venue import VenueModel

log = logging.getLogger(__name__)

CACHE_TTL = timedelta(days=1)


@dataclass(frozen=True)
class MarketList:
    """Rules per asset, the assets left on made-up fallback rules, and where they came from."""

    rules: dict[str, MarketRules]
    fallback: tuple[str, ...]
    source: str


def _rules(symbol: str, row: Mapping[str, str]) -> MarketRules:
    base, quote = symbol.split("/")

    def dec(key: str) -> Decimal | None:
        value = row.get(key)
        return None if value in (None, "") else Decimal(str(value))

    return MarketRules(
        symbol=symbol,
        base=base,
        quote=quote,
        amount_step=dec("amount_step"),
        min_amount=dec("min_amount") or ZERO,
        min_notional=dec("min_notional") or ZERO,
        max_amount=dec("max_amount"),
        taker_fee=dec("taker_fee") or ZERO,
        maker_fee=dec("maker_fee"),
        cost_step=dec("cost_step"),
    )


def from_ccxt(markets: Mapping[str, Any], precision_mode: int) -> dict[str, dict[str, str]]:
    """CCXT markets (``client.markets``) as snapshot rows (spot markets only)."""
    from rebalancer.adapters.ccxt.markets import rules_from_market  # the path to ccxt

    out: dict[str, dict[str, str]] = {}
    for symbol, market in markets.items():
        if market.get("spot") is False or market.get("active") is False:
            continue
        r = rules_from_market(market, precision_mode)
        out[str(symbol)] = {
            k: str(v)
            for k, v in {
                "amount_step": r.amount_step,
                "min_amount": r.min_amount,
                "min_notional": r.min_notional,
                "max_amount": r.max_amount,
                "cost_step": r.cost_step,
                "taker_fee": r.taker_fee,
                "maker_fee": r.maker_fee,
            }.items()
            if v is not None
        }
    return out


def online(
    venue: str, load: Callable[[], tuple[Mapping[str, Any], int]], cache: Path, now: datetime
) -> dict[str, Any] | None:
    """The venue's live market list as a snapshot: the disk cache while younger than
    ``CACHE_TTL``, else ``load()`` (CCXT's ``load_markets``: markets and precision mode)
    written to the cache. None when neither works (offline)."""
    cached = read_cache(cache)
    if cached is not None and now - datetime.fromisoformat(cached["read_at"]) < CACHE_TTL:
        return cached
    try:
        markets, mode = load()
    except (RetryLater, OSError) as exc:
        log.warning("%s: market list not loaded (%s); cached or shipped rules used", venue, exc)
        return cached
    data = {
        "venue": venue,
        "source": f"{venue} load_markets (CCXT, public)",
        "read_at": now.isoformat(),
        "read_on": now.date().isoformat(),
        "markets": from_ccxt(markets, mode),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(cache)
    return data


def market_list(
    venue: VenueModel,
    quote: str,
    prices: Mapping[str, Decimal],
    *,
    taker_fee: Decimal | None = None,
    maker_fee: Decimal | None = None,
    listing: Mapping[str, Any] | None = None,
) -> MarketList:
    """Rules for every priced asset on ``venue`` against ``quote``.

    ``listing``: a snapshot (:func:`online`'s result; None: the shipped one). ``taker_fee``
    / ``maker_fee``: the user's rates (None: the listing's, else the venue's).
    """
    data = listing if listing is not None else shipped(venue.name)
    rows: Mapping[str, Mapping[str, str]] = data.get("markets", {})
    rules: dict[str, MarketRules] = {}
    fallback: list[str] = []
    for asset, price in sorted(prices.items()):
        symbol = f"{asset}/{quote}"
        if symbol in rows:
            found = _rules(symbol, rows[symbol])
        else:
            fallback.append(asset)
            found = default_rules(asset, quote, price, taker_fee or venue.taker_fee)
        maker = maker_fee if maker_fee is not None else found.maker_fee
        rules[asset] = venue.market(found, taker_fee, maker)
    return MarketList(rules, tuple(fallback), describe(data, venue.name, fallback))


def describe(data: Mapping[str, Any], venue: str, fallback: Sequence[str]) -> str:
    """Where the rules came from, in one short line for the user (the full source is in
    the snapshot file or the cache)."""
    if not data.get("markets"):
        where = f"no {venue} market list"
    elif "read_at" in data:
        where = f"{venue} market rules: its live market list (read {data.get('read_on', '?')})"
    else:
        where = (
            f"{venue} market rules: the shipped snapshot (CCXT's captured market list, read "
            f"{data.get('read_on', '?')})"
        )
    if fallback:
        assets = ", ".join(fallback)
        where += (
            f"; MADE-UP fallback rules for {assets} (not on that list; set "
            f"markets.{fallback[0]} in the config to the real ones)"
        )
    return where
