"""``rebalancer markets``: the venue's rules for the configured assets, so a user can see
why a leg would be skipped (step, minimum amount, minimum notional, fees, who pays them)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.options import ConfigOpt, JsonOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.numbers import plain

if TYPE_CHECKING:
    from rebalancer.core.model import MarketRules

console = Console()


def smallest_leg(rules: MarketRules, price: Decimal, min_trade: Decimal) -> Decimal:
    """The smallest leg (quote units) the bot sends on this market at ``price``: the largest
    of ``min_trade``, the minimum notional and the minimum amount's (and one step's) value."""
    floors = [min_trade, rules.min_notional, rules.min_amount * price]
    if rules.amount_step is not None:
        floors.append(rules.amount_step * price)
    return max(floors)


def market_row(rules: MarketRules, price: Decimal, min_trade: Decimal) -> dict[str, Any]:
    """One market as plain values (``--json``); amounts in base units, notional in quote."""
    return {
        "symbol": rules.symbol,
        "price": plain(price),
        "amount_step": None if rules.amount_step is None else plain(rules.amount_step),
        "min_amount": plain(rules.min_amount),
        "min_notional": plain(rules.min_notional),
        "taker_fee": plain(rules.taker_fee),
        "maker_fee": plain(rules.taker_fee if rules.maker_fee is None else rules.maker_fee),
        "fee_paid_in": rules.quote if rules.fee_in_quote else rules.base,
        "smallest_leg": plain(smallest_leg(rules, price, min_trade)),
    }


def _cells(row: dict[str, Any]) -> list[str]:
    """A ``market_row`` as table cells: price to 6 digits, fees in percent."""

    def pct(text: str) -> str:
        return f"{(Decimal(text) * 100).normalize():f}%"

    return [
        esc(row["symbol"]),
        f"{Decimal(row['price']):.6g}",
        row["amount_step"] or "any",
        row["min_amount"],
        row["min_notional"],
        pct(row["taker_fee"]),
        pct(row["maker_fee"]),
        row["fee_paid_in"],
        row["smallest_leg"],
    ]


ListOpt = Annotated[
    bool,
    typer.Option(
        "--list",
        help="List the assets the exchange trades against the quote (its cached market "
        "list, else the shipped excerpt); no prices, no keys.",
    ),
]


def markets_command(
    config: ConfigOpt = None, as_json: JsonOpt = False, list_assets: ListOpt = False
) -> None:
    """The exchange's rules for each configured asset: amount step, minimum amount and
    notional, fees and the currency that pays them, and the smallest leg the bot will send
    (smaller legs are skipped with the reason `rebalancer plan` shows).

    Paper reads the venue's market list (online when paper trades on live prices: `[paper]
    prices = "auto"` with a network, or "live"; else the snapshot shipped with the package, or
    a labelled made-up fallback); live reads the exchange (keys needed; nothing is sent).
    `--list`: which assets the exchange trades against the quote (what `config check` checks
    the targets against).

    Example: `rebalancer markets --json`, `rebalancer markets --list`
    """
    from rebalancer.bootstrap import build
    from rebalancer.cli.app import emit

    settings = settings_from(config)
    if list_assets:
        _list(settings.exchange, settings.quote, settings.state_dir, as_json)
        return
    rt = build(settings, read_only=True)
    try:
        snap = rt.exchange.snapshot(rt.strategy.assets, rt.strategy.quote)
    finally:
        rt.close()
    min_trade = rt.strategy.policy.min_trade
    rows = {
        asset: market_row(rules, snap.prices[asset], min_trade)
        for asset, rules in snap.markets.items()
    }
    if as_json:
        emit({"mode": rt.mode, "exchange": settings.exchange, "source": rt.prices_note,
              "min_trade": plain(min_trade), "markets": rows})  # fmt: skip
        return
    console.print(f"[dim]{esc(rt.mode)} · {esc(rt.prices_note)}[/dim]")
    table = Table(title=f"{settings.exchange}: markets of the configured assets")
    heads = ("symbol", "price", "step", "min amount", "min notional", "taker", "maker",
             "fee in", "smallest leg")  # fmt: skip
    for head in heads:
        table.add_column(head, justify="left" if head == "symbol" else "right")
    for row in rows.values():
        table.add_row(*_cells(row))
    wide = console if console.is_terminal else Console(width=120)  # pipes: no cut columns
    wide.print(table)
    typer.echo(
        f"Legs smaller than 'smallest leg' ({settings.quote}) are skipped: below min_trade "
        f"({plain(min_trade)}), the minimum notional or the minimum amount."
    )


def _list(venue: str, quote: str, state_dir: Path, as_json: bool) -> None:
    """``markets --list``: the bases ``venue`` trades against ``quote`` per its market list."""
    from rebalancer.cli.app import emit
    from rebalancer.config.assets import ONLINE_FIX, listing

    found = listing(venue, quote, state_dir)
    assets = sorted(found.bases) if found is not None else []
    where = found.where if found is not None else f"no {venue} market list against {quote}"
    complete = found is not None and found.complete
    if as_json:
        emit({"exchange": venue, "quote": quote, "source": where, "complete": complete,
              "assets": assets})  # fmt: skip
        return
    typer.echo(f"{venue} against {quote}, per {where}: {', '.join(assets) or 'none known'}")
    if not complete:
        typer.echo(f"An excerpt, not the whole list: {ONLINE_FIX}.")
