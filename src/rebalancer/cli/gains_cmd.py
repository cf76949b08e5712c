"""``rebalancer gains``: realised gains and losses per year from the journal's fills.

The journal is the source of truth: every fill it holds is replayed into tax lots with the
configured method (``[tax] method``, or ``--method``). ``--csv`` writes the year's fills in
the Koinly universal layout; ``--disposals-csv`` the lots closed and their gains.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.options import ConfigOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.errors import ConfigError
from rebalancer.core.lots import METHODS, Method, TimedFill, gains_by_year, realise
from rebalancer.core.model import Fill, Side
from rebalancer.core.numbers import plain
from rebalancer.core.tax_export import (
    DISPOSAL_COLUMNS,
    KOINLY_COLUMNS,
    disposal_rows,
    koinly_rows,
)

console = Console()


def fills_from_rows(rows: Iterable[Mapping[str, Any]], quote: str) -> list[TimedFill]:
    """The journal's fill rows (``SqlJournal.history(kinds=["fills"])``) as timed fills."""
    out: list[TimedFill] = []
    for r in rows:
        symbol = str(r["symbol"])
        base, _, row_quote = symbol.partition("/")
        at = r["at"]
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        fill = Fill(
            str(r["client_order_id"]),
            base,
            symbol,
            Side(str(r["side"])),
            Decimal(str(r["amount"])),
            Decimal(str(r["price"])),
            Decimal(str(r["cost"])),
            Decimal(str(r["fee"])),
            str(r["fee_asset"]),
            str(r.get("status") or "closed"),
            other_fees=tuple((str(a), Decimal(str(v))) for a, v in r.get("other_fees") or ()),
        )
        out.append(TimedFill(at, fill, row_quote or quote, fill_id=str(r.get("trade_id") or "")))
    return out


def write_rows(path: Path, columns: Sequence[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def gains_command(
    year: Annotated[
        int | None, typer.Option("--year", help="Calendar year (UTC); default every year.")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", help="fifo, lifo or hifo (default: [tax] method)."),
    ] = None,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="Write the year's fills in the Koinly universal layout."),
    ] = None,
    disposals_csv: Annotated[
        Path | None,
        typer.Option("--disposals-csv", help="Write the lots closed and their gains."),
    ] = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the totals as JSON.")] = False,
) -> None:
    """Realised gains and losses per year, from the fills in the journal.

    Example: `rebalancer gains --year 2025 --csv koinly-2025.csv`
    """
    from rebalancer.bootstrap import journal

    settings = settings_from(config)
    chosen = (method or settings.tax.method).strip().lower()
    if chosen not in METHODS or chosen == "specific":
        raise ConfigError(f"--method: must be one of fifo, lifo, hifo; found {method!r}")
    jr = journal(settings)
    try:
        rows = jr.history(None, ["fills"])["fills"]
    finally:
        jr.close()
    fills = fills_from_rows(rows, settings.quote)
    _, disposals = realise(fills, cast(Method, chosen))
    years = gains_by_year(disposals)
    shown = {y: g for y, g in years.items() if year is None or y == year}
    if csv_path is not None:
        write_rows(csv_path, KOINLY_COLUMNS, koinly_rows(fills, year))
    if disposals_csv is not None:
        write_rows(disposals_csv, DISPOSAL_COLUMNS, disposal_rows(disposals, year))
    unknown = [
        d for d in disposals if d.lot_id == "unknown" and (year is None or d.disposed.year == year)
    ]
    if as_json:
        data = {
            "method": chosen,
            "fills": len(fills),
            "years": {
                str(y): {
                    "proceeds": plain(g.proceeds),
                    "cost": plain(g.cost),
                    "gains": plain(g.gains),
                    "losses": plain(g.losses),
                    "net": plain(g.net),
                }
                for y, g in shown.items()
            },
            "sold_without_lots": len(unknown),
        }
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"realised gains ({chosen}, {len(fills)} fills)", title_justify="left")
    for col in ("year", "proceeds", "cost basis", "gains", "losses", "net"):
        table.add_column(col, justify="right")
    for y, g in shown.items():
        table.add_row(
            str(y), *(f"{v:,.2f}" for v in (g.proceeds, g.cost, g.gains, g.losses, g.net))
        )
    console.print(table if shown else f"no disposals{f' in {year}' if year else ''}")
    if unknown:
        console.print(
            f"[yellow]{len(unknown)} sells exceed the journal's lots (holdings from before the "
            "journal): their cost basis is 0 -- correct them in your tax tool[/yellow]"
        )
    for path in (csv_path, disposals_csv):
        if path is not None:
            console.print(f"written {esc(path)}")
