"""``rebalancer keys check``: ask each configured exchange what its API key may do.

A key that can withdraw or transfer funds is refused (exit 1) unless ``--allow-withdrawals``;
a key without an IP whitelist is warned about. The same check runs at every live start.
``--i-understand`` also records the first live start's confirmation once the keys pass.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.errors import error_text
from rebalancer.cli.options import ConfigOpt, JsonOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.errors import ConfigError, RebalancerError

keys_app = typer.Typer(help="Check the exchange API keys' permissions.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


@keys_app.command("check")
def keys_check(
    config: ConfigOpt = None,
    allow_withdrawals: Annotated[
        bool,
        typer.Option(
            "--allow-withdrawals",
            help="Accept a key that can withdraw or transfer funds (not recommended).",
        ),
    ] = False,
    i_understand: Annotated[
        bool,
        typer.Option(
            "--i-understand",
            help="Also confirm the first live start (real orders, real money) once keys pass.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ask the exchange what the configured key may do; refuse keys that can move funds.

    Binance tells withdrawals, transfers and the IP whitelist; Kraken is asked for
    withdrawal methods (permission denied is good); Coinbase for the key's permissions.

    Example: `rebalancer keys check -c rebalancer.toml`
    """
    from rebalancer.bootstrap import account_name, key_permissions, record_live_confirmation

    try:
        settings = settings_from(config)
        results = key_permissions(settings)
    except RebalancerError as exc:
        err_console.print(f"[bold red]error:[/bold red] {esc(error_text(exc))}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
    refusals = [
        f"{p.exchange}: {r}"
        for p in results
        for r in p.refusals(allow_withdrawals=allow_withdrawals)
    ]
    warnings = [w for p in results for w in p.warnings()]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "keys": [p.as_dict() for p in results],
                    "refused": refusals,
                    "warnings": warnings,
                    "ok": not refusals,
                },
                indent=2,
            )
        )
    else:
        table = Table("exchange", "trade", "withdraw", "transfer", "IP whitelist")
        for p in results:
            table.add_row(
                p.exchange,
                _yes_no(p.can_trade),
                _yes_no(p.can_withdraw),
                _yes_no(p.can_transfer),
                _yes_no(p.ip_restricted),
            )
        console.print(table)
        for w in warnings:
            console.print(f"[yellow]warning:[/yellow] {esc(w)}", highlight=False)
    if refusals:
        err_console.print(
            "[bold red]refused:[/bold red] "
            + "; ".join(refusals)
            + ". Create a trade-only key (withdrawals and transfers disabled), or pass "
            "--allow-withdrawals if you really mean it",
            highlight=False,
        )
        raise typer.Exit(1)
    if not as_json:
        console.print("keys OK: trade-only")
    if i_understand:
        record_live_confirmation(settings, datetime.now(UTC))
        if not as_json:
            console.print(f"first live start confirmed for {esc(account_name(settings))}")
