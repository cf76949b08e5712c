"""``rebalancer report``: how the bot did, from the journal (printed, and as a file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.options import ConfigOpt, settings_from
from rebalancer.cli.render import esc

if TYPE_CHECKING:
    from rebalancer.bootstrap import PriceSource

console = Console()


def report_command(
    config: ConfigOpt = None,
    since: Annotated[
        str | None,
        typer.Option(help="Period back from now (14d, 24h, 2w) or a date; default: everything."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.html, equity.png, drift.png.")
    ] = Path("rebalancer-report"),
) -> None:
    """Judge a run from the journal: equity over time vs buy-and-hold of the starting
    holdings, trades, fees, drift history, halts; printed, and written as HTML with charts.

    This is how to judge two weeks of paper trading before going live: on the market's
    live prices (`[paper] prices = "auto"`, the default, with a network; pin it with
    "live"), not on frozen candles, which the report and the dashboard point out.

    Example: `rebalancer report --since 14d --out report/`
    """
    from rebalancer.bootstrap import account_name, journal, paper_price_source
    from rebalancer.web import view
    from rebalancer.web.report import build_report, summary_rows, write_report

    settings = settings_from(config)
    start = view.parse_since(since, datetime.now(UTC))
    jr = journal(settings)
    try:
        rows = view.load_rows(jr, start)
    finally:
        jr.close()
    prices = paper_price_source(settings)
    report = build_report(
        rows,
        settings.strategy(),
        account=account_name(settings),
        mode=settings.mode,
        since=start,
        prices="" if prices is None else _prices_line(prices),
    )
    files = write_report(report, out)
    table = Table(title=f"report: {report.account}", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, text in summary_rows(report):
        table.add_row(label, text)
    console.print(table)
    if prices is not None and prices.frozen:
        console.print(f"[bold yellow]WARNING[/bold yellow]: {esc(prices.warning)}", highlight=False)
    if report.weights.assets:
        w = Table(title="weights after the last check", title_justify="left")
        for col in ("asset", "weight", "target", "drift", "band"):
            w.add_column(col, justify="right")
        for a in report.weights.assets:
            band = (
                "-"
                if a.band_low is None or a.band_high is None
                else f"{a.band_low * 100:.2f}% – {a.band_high * 100:.2f}%"
            )
            w.add_row(
                a.asset,
                f"{a.weight * 100:.2f}%",
                f"{a.target * 100:.2f}%",
                f"{a.drift * 100:+.2f}%",
                band,
            )
        console.print(w)
    journaled = view.journaled_flows(rows)
    extra = view.unjournaled_flows(rows, report.performance)
    if journaled or extra:
        f = Table(title="deposits and withdrawals", title_justify="left")
        for col in ("at", "asset", "amount", f"value ({settings.quote})", "source"):
            f.add_column(col, justify="right")
        for flows, source in ((journaled, "journal"), (extra, "found between checks")):
            for at, asset, amount, value in flows:
                f.add_row(f"{at:%Y-%m-%d %H:%M}", asset, f"{amount:+.8g}", f"{value:+,.2f}", source)
        console.print(f)
    for h in rows.get("halts", []):
        when = f"{h['at']:%Y-%m-%d %H:%M} UTC"
        console.print(f"[red]{esc(h['kind'])}[/red] {when}: {esc(h['reason'])}")
    if not report.summary.checks:
        console.print("[yellow]no checks journaled in this period[/yellow]")
    console.print(
        f"written: {esc(files.html)} "
        f"(charts: {esc(', '.join(str(p) for p in files.pngs.values()))})"
    )


def _prices_line(source: PriceSource) -> str:
    """The paper price source of the last trading run, for the report's table."""
    line = f"{source.describe()} (run started {source.decided_at:%Y-%m-%d %H:%M} UTC)"
    return f"{line}: frozen, the bot was not seeing the market" if source.frozen else line
