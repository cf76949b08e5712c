"""Safety commands: ``history`` (what the journal holds) and ``resume`` (lift a halt)."""

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

from rebalancer.cli.options import ConfigOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.errors import ConfigError
from rebalancer.core.numbers import text

KINDS = ("cycles", "orders", "fills", "halts")
EXTRA = ("commands",)  # shown only when asked for
console = Console()


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``2026-01-31``, ``2026-01-31T12:00`` (UTC unless an offset is given) or a period
    back from now such as ``24h`` / ``7d``."""
    from rebalancer.config.bounds import since_time  # pydantic: not at `--help` time

    return since_time(text, now, "--since")


def _kinds(kind: list[str] | None) -> list[str]:
    chosen = [k.strip().lower() for k in kind or []] or list(KINDS)
    known = (*KINDS, *EXTRA)
    unknown = [k for k in chosen if k not in known]
    if unknown:
        raise ConfigError(f"--kind: must be one of {', '.join(known)}; found {', '.join(unknown)}")
    return chosen


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else text(value)


def write_csv(path: Path, rows: dict[str, list[dict[str, Any]]]) -> int:
    """One CSV: a ``kind`` column, then the union of every kind's columns. Returns rows."""
    columns: list[str] = ["kind"]
    for items in rows.values():
        for item in items:
            columns.extend(k for k in item if k not in columns)
    count = 0
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        for kind, items in rows.items():
            for item in items:
                writer.writerow({"kind": kind, **{k: _text(v) for k, v in item.items()}})
                count += 1
    return count


def history_command(
    config: ConfigOpt = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only since then: 2026-01-31, 2026-01-31T12:00 (UTC), or 24h / 7d."),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="cycles, orders, fills, halts, or commands (from Telegram); repeat for "
            "several; default all but commands."
        ),
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """The journal: cycles, orders (with their state and its source), fills and fees, halts.

    Example: `rebalancer history --since 7d --kind fills --csv fills.csv`
    """
    from rebalancer.bootstrap import account_name, journal, journal_url

    settings = settings_from(config)
    kinds = _kinds(kind)
    start = parse_since(since, datetime.now(UTC))
    jr = journal(settings)
    try:
        rows = jr.history(start, kinds)
    finally:
        jr.close()
    if csv_path is not None:
        count = write_csv(csv_path, rows)
        if not as_json:
            console.print(f"{count} rows written to {esc(csv_path)}")
    if as_json:
        data = {
            k: [{n: _text(v) for n, v in r.items()} for r in items] for k, items in rows.items()
        }
        typer.echo(json.dumps({"account": account_name(settings), **data}, indent=2))
        return
    from rebalancer.config.secrets import mask_url

    shown = mask_url(journal_url(settings))  # never a password, even one in the query
    console.print(f"[dim]journal {esc(shown)} · account {esc(account_name(settings))}[/dim]")
    for name, items in rows.items():
        if not items:
            console.print(f"{esc(name)}: none")
            continue
        columns = SHOWN[name]
        table = Table(title=f"{name} ({len(items)})", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(*(_short(item[c]) for c in columns))
        console.print(table)
    fees: dict[str, Decimal] = {}
    for fill in rows.get("fills", []):
        fees[fill["fee_asset"]] = fees.get(fill["fee_asset"], Decimal(0)) + fill["fee"]
    if fees:
        console.print("fees: " + ", ".join(f"{v.normalize():f} {k}" for k, v in fees.items()))


SHOWN = {
    "cycles": ("at", "total_value", "fire", "executed", "fees_quote", "stopped"),
    "orders": ("created_at", "client_order_id", "side", "symbol", "amount", "status", "source"),
    "fills": ("at", "side", "symbol", "amount", "price", "cost", "fee", "fee_asset"),
    "halts": ("at", "kind", "reason"),
}


def _short(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, Decimal):
        return f"{value:.8g}" if abs(value) < 1e12 else str(value)
    return _text(value)


def resume_command(
    config: ConfigOpt = None,
    note: Annotated[str, typer.Option(help="Why it is safe to trade again (journaled).")] = "",
) -> None:
    """Lift a circuit-breaker halt so that orders may be sent again.

    Check first why it halted (`rebalancer history --kind halts`). Example:
    `rebalancer resume --note "checked the prices: a real crash, keep rebalancing"`
    """
    from rebalancer.bootstrap import account_name, journal

    settings = settings_from(config)
    jr = journal(settings)
    try:
        status = jr.halt_status()
        if status.active is None:
            console.print(f"not halted (account {esc(account_name(settings))}): nothing to resume")
            return
        jr.record_resume(datetime.now(UTC), note or "resumed by the user")
    finally:
        jr.close()
    console.print(
        f"resumed account {account_name(settings)}; the halt was: {status.active.reason} "
        f"(since {status.active.at:%Y-%m-%d %H:%M} UTC)"
    )
