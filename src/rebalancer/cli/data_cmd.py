"""``rebalancer data download``: a thin skin over :mod:`rebalancer.data.download`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rebalancer.cli import render

data_app = typer.Typer(
    help="Download exchange candles into the folder the backtests read.", no_args_is_help=True
)


def download_command(
    exchange: Annotated[str, typer.Option("--exchange", help="CCXT exchange id.")] = "binance",
    assets: Annotated[
        str, typer.Option("--assets", help="Comma-separated base assets, e.g. BTC,ETH.")
    ] = "BTC,ETH",
    quote: Annotated[str, typer.Option("--quote", help="Quote currency.")] = "USDT",
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle size: 1d, 1h, 5m, ...")] = (
        "1h"
    ),
    since: Annotated[
        str, typer.Option("--since", help="First candle (UTC, inclusive), e.g. 2024-01-01.")
    ] = "2024-01-01",
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last candle (UTC, inclusive; default: the last closed)."),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of the Parquet cache (created if missing).")
    ] = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Download closed candles through CCXT into `{BASE}_{QUOTE}-{timeframe}.parquet` files.

    Public data, no API key. Pages through the history with the exchange's rate limit,
    retries transient errors, never stores a still-open candle, and resumes: run it again
    (after an interruption, or later for newer candles) and it fetches only what is missing.
    Gaps (exchange outages) are reported, never filled. The folder is ready for
    `rebalancer backtest --data-dir DIR --timeframe 1h`.

    Example: `rebalancer data download --exchange binance --assets BTC,ETH --quote USDT
    --timeframe 1h --since 2024-01-01 --dir data/binance`
    """
    from rebalancer.data import download as dl

    names = [a.strip() for a in assets.split(",") if a.strip()]
    console = Console(quiet=as_json, stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def tick(asset: str, done: int, total: int) -> None:
            if asset not in tasks:
                tasks[asset] = progress.add_task(f"{asset}/{quote} {timeframe}", total=total)
            progress.update(tasks[asset], completed=done, total=max(total, done))

        summary = dl.download_candles(
            exchange,
            names,
            quote,
            timeframe,
            since,
            directory,
            until=until,
            progress=tick,
        )
    if as_json:
        typer.echo(render.to_json(summary.as_dict()))
        return
    out = Console()
    table = Table(title=f"{exchange} {timeframe} candles in {directory}")
    for col in ("asset", "file", "had", "added", "now holds", "first", "last", "gaps"):
        table.add_column(col, justify="right")
    for s in summary.series:
        table.add_row(
            s.asset,
            s.path.name,
            f"{s.stored_before:,}",
            f"{s.added:,}",
            f"{s.rows:,}",
            "-" if s.first is None else f"{s.first:%Y-%m-%d %H:%M}",
            "-" if s.last is None else f"{s.last:%Y-%m-%d %H:%M}",
            str(len(s.gaps)),
        )
    out.print(table)
    out.print(
        f"{summary.added:,} candles in {summary.seconds:.1f} s, {summary.requests} requests "
        f"({summary.retries} retried); closed candles up to {summary.exchange_now:%Y-%m-%d %H:%M} "
        "UTC (exchange time).",
        highlight=False,
    )
    for gap in summary.gaps[:10]:
        out.print(f"[yellow]gap:[/yellow] {gap} (not filled)", highlight=False)
    if len(summary.gaps) > 10:
        out.print(f"... and {len(summary.gaps) - 10} more gaps (see --json)", highlight=False)
