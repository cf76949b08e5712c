"""``rebalancer flows``: the deposits and withdrawals the journal holds.

Each cycle that finds balances its fills do not explain (``CycleReport.flows``, see
:mod:`rebalancer.core.flows`) journals them with their value in the quote at that cycle's
price; this lists them (a table, ``--json`` or ``--csv FILE``) with the net total.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.options import ConfigOpt, JsonOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.numbers import plain, text

console = Console()
COLUMNS = ("at", "asset", "amount", "value", "quote")


def flow_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Journal rows as text (times ISO 8601 UTC, numbers exact), oldest first."""
    return [
        {k: (r[k].isoformat() if isinstance(r[k], datetime) else text(r[k])) for k in COLUMNS}
        for r in rows
    ]


def flows_command(
    config: ConfigOpt = None,
    since: Annotated[
        str | None,
        typer.Option(help="Period back from now (14d, 24h, 2w) or a date; default: everything."),
    ] = None,
    as_json: JsonOpt = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the flows to this CSV file.")
    ] = None,
) -> None:
    """Deposits (+) and withdrawals (-) found by the cycles, valued in the quote.

    Example: `rebalancer flows --since 30d --csv flows.csv`
    """
    from rebalancer.bootstrap import account_name, journal
    from rebalancer.web.view import parse_since

    settings = settings_from(config)
    start = parse_since(since, datetime.now(UTC))
    jr = journal(settings)
    try:
        rows = flow_rows(jr.history(start, ("flows",))["flows"])
    finally:
        jr.close()
    net = sum((Decimal(r["value"]) for r in rows), Decimal(0))
    if csv_path is not None:
        with csv_path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    if as_json:
        out = {"account": account_name(settings), "flows": rows, "net_value": plain(net)}
        typer.echo(json.dumps(out, indent=2))
        return
    if not rows:
        console.print("no deposits or withdrawals journaled")
    else:
        table = Table(title=f"cash flows: {account_name(settings)}", title_justify="left")
        for col in ("at", "asset", "amount", "value"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(r["at"][:16], r["asset"], r["amount"], f"{Decimal(r['value']):.2f}")
        console.print(table)
        console.print(f"net: {net:.2f} {esc(settings.quote)}", highlight=False)
    if csv_path is not None:
        console.print(f"written: {esc(csv_path)} ({len(rows)} rows)", highlight=False)
