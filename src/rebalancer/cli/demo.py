"""``rebalancer demo``: the embedded default, replayed with the bot's own loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from rebalancer.cli import render

if TYPE_CHECKING:
    from rebalancer.service import CycleReport



def _trade_line(r: CycleReport) -> str:
    trades = ", ".join(f"{f.side.value} {render.amount(f.amount)} {f.asset}" for f in r.fills)
    return f"[cyan]{r.at:%Y-%m-%d}[/cyan] rebalance — {r.decision.reason} → {trades}"


def demo_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Try your own rule on "
            "the embedded data (its assets must be among BTC ETH SOL BNB XRP).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the summary as JSON.")
    ] = False,
) -> None:
    """Replay a drifted paper portfolio over real Binance daily candles with the bot's loop.

    Starts from 60 % BTC / 15 % ETH / 5 % SOL / 20 % USDT of 10,000 USDT, targets
    40 / 30 / 20 / 10, threshold 5 points; one cycle per daily bar, no keys, no network.

    Example: `rebalancer demo --json`
    """
    from rebalancer.backtest.demo import DEMO_START_WEIGHTS, run_demo
    from rebalancer.config import default_config, load_config
    from rebalancer.data.panel import load_demo_panel

    settings = load_config(config) if config else default_config()
    strategy = settings.strategy()
    console = Console(quiet=as_json)
    bars = len(load_demo_panel().closes)
    start = ", ".join(f"{a} {float(w) * 100:.0f}%" for a, w in DEMO_START_WEIGHTS.items())
    console.print(
        f"[bold]Demo[/bold]: paper portfolio of 10,000 {strategy.quote} starting at "
        f"{start}; targets "
        + ", ".join(f"{a} {float(w) * 100:.0f}%" for a, w in strategy.targets.items())
    )
    console.print(
        f"Rule: {strategy.trigger.describe()}; fee {settings.fees.taker}, slippage "
        f"{settings.rebalance.slippage}; {bars} daily bars of real Binance data"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("replaying", total=bars)

        def on_bar(i: int, report: CycleReport) -> None:
            max_drift = report.drift.max_abs_drift()
            progress.update(
                task,
                advance=1,
                description=f"{report.at:%Y-%m-%d} max drift {float(max_drift) * 100:5.2f}%",
            )
            if report.fills:
                console.print(_trade_line(report), highlight=False)

        result = run_demo(
            strategy,
            taker_fee=settings.fees.taker,
            slippage=settings.rebalance.slippage,
            on_bar=on_bar,
        )
    summary = result.summary()
    if as_json:
        typer.echo(render.to_json(summary))
        return
    table = Table(title=f"Summary {summary['start'][:10]} → {summary['end'][:10]}")
    table.add_column("")
    table.add_column("rebalanced", justify="right")
    table.add_column("buy-and-hold of the start", justify="right")
    table.add_row(
        "final value",
        f"{summary['final_value']:,.2f}",
        f"{summary['buy_and_hold_final_value']:,.2f}",
    )
    table.add_row(
        "return",
        f"{summary['return'] * 100:+.2f}%",
        f"{summary['buy_and_hold_return'] * 100:+.2f}%",
    )
    table.add_row("rebalances", str(summary["rebalances"]), "0")
    table.add_row("orders", str(summary["orders"]), "0")
    table.add_row("traded value", f"{summary['traded_value']:,.2f}", "0")
    table.add_row("fees", f"{summary['fees']:,.2f}", "0")
    console.print(table)
    diff = summary["final_value"] - summary["buy_and_hold_final_value"]
    verdict = "beat" if diff > 0 else "trailed"
    console.print(
        f"Rebalancing {verdict} buy-and-hold by {abs(diff):,.2f} {strategy.quote} "
        "over this window (it does not always win)."
    )
