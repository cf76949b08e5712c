"""``rebalancer backtest`` and ``rebalancer sweep``: thin skins over the backtest library.

Parse -> load config and candles -> call one function -> render (a table, or ``--json``)
and write the files (report, CSV, PNGs) into ``--out``.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rebalancer.cli import render
from rebalancer.cli.options import ConfigOpt, JsonOpt, KindsOpt, StylesOpt, settings_from
from rebalancer.cli.regimes import (
    DEFAULT_BEAR,
    DEFAULT_BULL,
    DEFAULT_VOL_QUANTILE,
    DEFAULT_WINDOW,
    BearOpt,
    BullOpt,
    RegimeWindowOpt,
    VolQuantileOpt,
)
from rebalancer.core.errors import ConfigError

if TYPE_CHECKING:  # pandas, numba and matplotlib are imported when a command runs
    import pandas as pd

    from rebalancer.backtest.engine import BacktestResult
    from rebalancer.backtest.grid import GridResult, Market
    from rebalancer.backtest.trust.regime_stats import RegimeReport
    from rebalancer.backtest.walk_forward import WalkForwardResult
    from rebalancer.config import Settings
    from rebalancer.core.strategy import Strategy
    from rebalancer.data.panel import CandlePanel
    from rebalancer.optimise.path import TargetPath
    from rebalancer.reports.backtest import Provenance

#: ``rebalancer.backtest.grid.DEFAULT_FEES`` as the option's text (a test keeps them equal)
DEFAULT_FEES_TEXT = "0.0005,0.001,0.0025"

# -- shared options ----------------------------------------------------------------------------

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder of {BASE}_{QUOTE}-{timeframe}.csv[.gz]/.parquet candles "
        "(default: the embedded daily Binance demo data).",
        show_default=False,
    ),
]
StartOpt = Annotated[
    str | None, typer.Option("--start", help="First candle (inclusive), e.g. 2018-05-04.")
]
EndOpt = Annotated[str | None, typer.Option("--end", help="Last candle (inclusive).")]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", help="Candle size: 1d, 1h, 5m, ...")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786."),
]
CapitalOpt = Annotated[
    float, typer.Option("--capital", help="Starting cash in the quote currency.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the report, CSVs and PNGs.")]


def _settings(path: Path | None) -> Settings:
    """The config like every other command's: -c, REBALANCER_CONFIG, ./rebalancer.toml, the
    built-in default."""
    return settings_from(path)


def load_data(
    settings: Settings,
    data_dir: Path | None,
    timeframe: str,
    start: str | None,
    end: str | None,
) -> CandlePanel:
    """The closes of the config's assets from ``data_dir`` (or the embedded demo data)."""
    from rebalancer.config import bounds
    from rebalancer.data.panel import load_demo_panel, load_panel
    from rebalancer.data.timeframes import parse_timeframe

    assets = list(settings.strategy().assets)
    parse_timeframe(timeframe)
    if data_dir is None:
        if timeframe != "1d":
            raise ConfigError(
                f"the embedded demo data is daily only, not {timeframe!r}: pass --timeframe 1d "
                "or --data-dir with your candles"
            )
        panel = load_demo_panel(assets, start, end)
    else:
        panel = load_panel(data_dir, assets, timeframe, settings.quote, start, end)
    bounds.check_prices(panel.closes)
    return panel


def target_path(
    settings: Settings,
    panel: CandlePanel,
    data_dir: Path | None,
    timeframe: str,
) -> TargetPath | None:
    """The optimised targets of ``[optimise]`` over the panel (None when off): the
    schedule's changes, decided as live (the due function, the optimiser over the trailing
    daily closes, read beside intraday bars from the daily candles)."""
    from rebalancer.backtest.optimised import optimised_path
    from rebalancer.bootstrap import retarget
    from rebalancer.data.panel import load_panel
    from rebalancer.optimise.weights import OptMethod, WindowOptimiser

    rt = retarget(settings)
    if rt is None:
        return None
    assert isinstance(rt.optimiser, WindowOptimiser)
    assets = list(panel.closes.columns)
    daily = None
    if timeframe != "1d":
        assert data_dir is not None  # the embedded demo data is daily only
        first, last = panel.closes.index[0], panel.closes.index[-1]
        daily = load_panel(data_dir, assets, "1d", settings.quote, str(first.date()),
                           str(last.date())).closes
    return optimised_path(
        panel.closes,
        settings.strategy().targets,
        cast("OptMethod", rt.optimiser.method),
        rt.optimiser.constraints,
        quote=settings.quote,
        window=rt.window,
        every=rt.cadence,
        bar=_bar(panel),
        daily=daily,
    )


def _bar(panel: CandlePanel) -> timedelta:
    return timedelta(seconds=panel.step.total_seconds())


def _clean(data: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(data, dict):
        return {str(k): _clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean(v) for v in data]
    if hasattr(data, "item") and not isinstance(data, str | bytes):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def _decimal(value: float, name: str) -> Decimal:
    """``--fee`` / ``--capital`` checked against their ranges (:mod:`rebalancer.config.bounds`)."""
    from rebalancer.config import bounds

    return bounds.fee_rate(value, name) if name == "--fee" else bounds.capital(value, name)


def _command_line() -> str:
    return shlex.join(["rebalancer", *sys.argv[1:]])


def _provenance(panel: CandlePanel, settings: Settings) -> Provenance:
    """Where a report's numbers came from: data files and hashes, config, command, notes."""
    from rebalancer.reports.backtest import Provenance

    return Provenance(
        panel.files,
        panel.sha256,
        settings.redacted(),
        _command_line(),
        tuple(panel.report.issues),
    )


def _window(panel: CandlePanel) -> str:
    from rebalancer.reports.labels import window_text

    return window_text(panel.start, panel.end, len(panel.closes), _bar(panel))


#: data notes printed in the terminal (all of them are in --json and the HTML report)
NOTES_SHOWN = 5


def data_lines(panel: CandlePanel) -> list[str]:
    """The window the run really covers (first and last candle, which may be shorter than
    --start/--end asked for) and the data notes: printed before any result."""
    from rebalancer.reports.labels import window_text

    notes = list(panel.report.issues)
    lines = [
        "Data: "
        + window_text(panel.start, panel.end, len(panel.closes), _bar(panel))
        + (f"; {len(notes)} data note(s):" if notes else "; no gaps, aligned.")
    ]
    lines += [f"  data: {n}" for n in notes[:NOTES_SHOWN]]
    if len(notes) > NOTES_SHOWN:
        lines.append(f"  ... and {len(notes) - NOTES_SHOWN} more (--json and report.html)")
    return lines


def print_data(console: Console, panel: CandlePanel) -> None:
    for line in data_lines(panel):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def _progress(console: Console, what: str) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield progress


# -- backtest ----------------------------------------------------------------------------------

_ROWS = [
    ("final value", "final_value", "{:,.2f}"),
    ("total return", "total_return", "{:+.2%}"),
    ("CAGR", "cagr", "{:+.2%}"),
    ("volatility", "volatility", "{:.2%}"),
    ("Sharpe", "sharpe", "{:.3f}"),
    ("Sortino", "sortino", "{:.3f}"),
    ("max drawdown", "max_drawdown", "{:.2%}"),
    ("max DD duration (days)", "max_drawdown_days", "{:,.0f}"),
    ("Calmar", "calmar", "{:.3f}"),
    ("rebalances", "rebalances", "{:d}"),
    ("turnover (x)", "turnover", "{:.2f}"),
    ("fees", "fees", "{:,.2f}"),
    ("realised gains (FIFO)", "realised_gain_fifo", "{:,.2f}"),
]


def _fmt(spec: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return spec.format(value)


def summary_table(result: BacktestResult) -> Table:
    """The metrics side by side; the title names the candle window (open times, as the
    data line and --start/--end do)."""
    from rebalancer.reports.labels import window_text

    s = result.summary()
    runs = {"strategy": s["strategy"], **s["benchmarks"]}
    times, bar = result.run.times, result.bar
    window = window_text(times[0] - bar, times[-1] - bar, len(times), bar)
    table = Table(title=f"Backtest {window}")
    table.add_column("")
    for name in runs:
        table.add_column(name.replace("_", "-"), justify="right")
    for label, key, spec in _ROWS:
        table.add_row(label, *(_fmt(spec, r[key]) for r in runs.values()))
    return table


def _engine_text(engine: str) -> str:
    """The engine as the text output and the report name it."""
    if engine == "replay":
        return "replay (the Decimal replay of the live loop, bar by bar)"
    return "compiled (the live cycle's model in the compiled kernel; equal to the replay)"


def _ranges(
    panel: CandlePanel, strategy: Strategy, fine: str | None
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The price ranges limit orders meet (None without limit orders): the next bar's, or
    with ``fine`` the next bar's first ``limit_timeout`` of ``fine`` candles (at least one)."""
    from rebalancer.data.panel import load_ranges
    from rebalancer.data.timeframes import parse_timeframe

    if not strategy.execution.limit_inside:
        return None
    if fine is None:
        return load_ranges(panel)
    wait = max(strategy.execution.limit_timeout, parse_timeframe(fine))
    return load_ranges(panel, fine, wait)


def backtest_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timeframe: TimeframeOpt = "1d",
    capital: CapitalOpt = 10000.0,
    fee: Annotated[
        float | None,
        typer.Option("--fee", help="Taker fee rate, 0.001 = 0.1 % (default: the config's)."),
    ] = None,
    out: OutOpt = Path("out"),
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the HTML report and PNGs.")
    ] = False,
    limit_ranges: Annotated[
        str | None,
        typer.Option(
            "--limit-ranges",
            help='With order_type "limit_inside": a shorter timeframe (e.g. 1h, 5m) whose '
            "candles beside the data's decide the fills: a limit meets the next bar's first "
            "limit_timeout (at least one such candle). Default: the whole next bar.",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="compiled: the compiled engine with the bot's full semantics (proven equal "
            "to the replay); replay: the Decimal replay of the live loop, bar by bar, for "
            "audits and for what the compiled engine refuses (limit or sliced orders).",
        ),
    ] = "compiled",
    as_json: JsonOpt = False,
    regime_window: RegimeWindowOpt = DEFAULT_WINDOW,
    bull: BullOpt = DEFAULT_BULL,
    bear: BearOpt = DEFAULT_BEAR,
    vol_quantile: VolQuantileOpt = DEFAULT_VOL_QUANTILE,
) -> None:
    """Backtest the config's targets and rule on history with the bot's own model.

    Runs the live cycle's model (the same triggers, planner, sells-first re-plan of the buys
    and paper fills) in the compiled engine, against buy-and-hold and a monthly calendar
    rule on the same engine; prints the metrics and writes `report.html` (charts, trade
    list, engine, data hashes), PNGs, `trades.csv` and `summary.json` into --out.
    `--engine replay` runs the Decimal replay of the live loop instead (slower; needed for
    `order_type = "limit_inside"` and sliced orders, which the compiled engine refuses by
    name rather than approximate). Both trade where the config's `exchange` does, as
    sweep and walk-forward: its market list's steps and minimums ([markets.X] overrides;
    labelled made-up rules for an asset the list lacks) and its fee side.

    Metrics: a year is 365 days and years are calendar time (missing bars count); volatility
    (annualised), Sharpe and Sortino scale per-bar returns by sqrt(P), P = 365 days / bar
    length; risk-free rate 0; Sortino's downside deviation is over all returns (gains as 0);
    total return and CAGR are measured from --capital, so the first purchase's fees count.

    With `[optimise]` on, the strategy follows the optimiser's targets as live: decided on
    the config's schedule from the trailing daily closes (no look-ahead), each change a full
    rebalance to the new targets at its bar; the benchmarks keep the configured targets.

    Per market regime (bull / bear / sideways, high / low volatility of the targets'
    buy-and-hold over --regime-window): the premium over buy-and-hold, turnover, fees and
    drawdown, in the text, --json ("regimes") and the report (shaded on the equity chart).

    Example: `rebalancer backtest --data-dir candles
    --start 2018-05-04 -c my.toml --fee 0.001 --out out/` (add `--engine replay` to audit
    it with the Decimal replay)
    """
    from rebalancer.backtest.engine import check_engine, run_backtest
    from rebalancer.reports.backtest import write_report
    from rebalancer.reports.labels import bars_text

    which = check_engine(engine)
    settings = _settings(config)
    strategy: Strategy = settings.strategy()
    panel = load_data(settings, data_dir, timeframe, start, end)
    check_regime_options(panel, regime_window, bull, bear, vol_quantile)
    taker = settings.fees.taker if fee is None else _decimal(fee, "--fee")
    console = Console(quiet=as_json, stderr=True)
    weights = ", ".join(f"{a} {float(w):.0%}" for a, w in strategy.targets.items())
    ex = strategy.execution
    how = ""
    if ex.limit_inside:
        maker = taker if settings.fees.maker is None else settings.fees.maker
        meets = "next bar's range" if limit_ranges is None else f"{limit_ranges} candles"
        how += f" · limits inside the spread (maker {float(maker):.4%}, {meets})"
    if ex.slice_above is not None:
        how += f" · slices above {ex.slice_above}"
    path = target_path(settings, panel, data_dir, timeframe)
    if path is not None:
        how += f" · {settings.optimise.method} targets, {len(path)} change(s)"
    console.print(
        f"[bold]Backtest[/bold] {weights}"
        f" · rule {strategy.trigger.describe()} · fee {float(taker):.4%}{how} · "
        f"{bars_text(len(panel.closes), _bar(panel))} · engine {which}",
        highlight=False,
    )
    market = _market(settings, panel, strategy)  # the venue's rules and fee side, as sweep's
    console.print(
        f"Venue {render.esc(market.venue.name)} (fee in the "
        f"{'quote' if market.venue.fee_in == 'quote' else 'asset received'}); "
        f"{render.esc(market.source)}",
        highlight=False,
    )
    with _progress(console, "backtest") as progress:
        task = progress.add_task("strategy", total=3)

        def step(name: str) -> None:
            progress.update(task, description=name, advance=0 if name == "strategy" else 1)

        result = run_backtest(
            panel.closes,
            strategy,
            capital=_decimal(capital, "--capital"),
            taker_fee=taker,
            slippage=settings.rebalance.slippage,
            bar=_bar(panel),
            rules=market.at_fee(taker),
            venue=market.venue,
            progress=step,
            maker_fee=settings.fees.maker,  # filled limits ([execution] limit_inside) only
            ranges=_ranges(panel, strategy, limit_ranges),
            engine=which,
            targets=path,
        )
    regimes = backtest_regimes(
        result, panel, regime_window, bull, bear, vol_quantile
    )
    summary = _clean(result.summary())
    if path is not None:
        summary["optimised_targets"] = {
            "method": path.method,
            "schedule": settings.optimise_cadence().describe(),
            "changes": [
                {"at": when.isoformat(), "targets": {a: float(w) for a, w in t.items()}}
                for when, t in path.changes
            ],
        }
    summary["regimes"] = _clean(regimes.to_dict())
    summary["venue"] = market.venue.name
    summary["market_rules"] = market.source
    summary["data"] = {
        "files": {a: str(p) for a, p in panel.files.items()},
        "sha256": dict(panel.sha256),
        "issues": list(panel.report.issues),
    }
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    trades = out / "trades.csv"
    result.trades_frame().to_csv(trades, index=False)
    files["trades"] = str(trades)
    if not no_report:
        report = write_report(result, out, _provenance(panel, settings), regimes)
        files["report"] = str(report.html)
        files.update({name: str(p) for name, p in report.pngs.items()})
    summary_path = out / "summary.json"
    files["summary"] = str(summary_path)
    summary["files"] = files
    summary_path.write_text(render.to_json(summary), encoding="utf-8")
    if as_json:
        typer.echo(render.to_json(summary))
        return
    out_console = Console()
    print_data(out_console, panel)
    out_console.print(summary_table(result))
    out_console.print(f"Engine: {_engine_text(result.engine)}", highlight=False)
    prem = result.premium
    if prem is not None:
        verdict = "beat" if prem.total >= 0 else "trailed"
        out_console.print(
            f"The rule {verdict} buy-and-hold by {abs(prem.total):.2%} "
            f"({prem.annualised:+.2%} a year) over this window; it does not always win."
        )
    print_regimes(out_console, summary["regimes"])
    out_console.print(f"Wrote {render.esc(', '.join(files.values()))}", highlight=False)


def check_regime_options(
    panel: CandlePanel, window: str, bull: float, bear: float, vol_quantile: float
) -> None:
    """Refuse a bad regime option before any run (the panel's length is checked later)."""
    from rebalancer.cli.regimes import regime_options

    regime_options(window, bull, bear, vol_quantile, _bar(panel))


def backtest_regimes(
    result: BacktestResult,
    panel: CandlePanel,
    window: str,
    bull: float,
    bear: float,
    vol_quantile: float,
) -> RegimeReport:
    """The run's per-regime figures (a report with a note when the panel is too short)."""
    from rebalancer.backtest.trust import regime_stats
    from rebalancer.cli.regimes import regime_options

    options = regime_options(window, bull, bear, vol_quantile, _bar(panel))
    return regime_stats.backtest_regimes(result, panel.closes, options)


def print_regimes(console: Console, report: dict[str, Any], title: str = "") -> None:
    """The per-regime table (:func:`rebalancer.cli.regimes.regime_lines`) as plain text."""
    from rebalancer.cli.regimes import regime_lines

    for line in regime_lines(report, title):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


# -- sweep -------------------------------------------------------------------------------------


def parse_numbers(text: str, name: str) -> list[float]:
    """``"0.01,0.02"`` or a range ``"0.01:0.25:0.01"`` (start:stop:step, stop included)."""
    try:
        if ":" in text:
            lo, hi, step = (float(x) for x in text.split(":"))
            if step <= 0 or hi < lo:
                raise ValueError("need start <= stop and step > 0")
            n = math.floor((hi - lo) / step + 1e-9) + 1
            return [round(lo + i * step, 10) for i in range(n)]
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"{name} {text!r} is not a list like 0.01,0.05 or a range like 0.01:0.25:0.01 ({exc})"
        ) from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def break_even_table(grid: GridResult) -> Table:
    """The report's break-even table (:func:`rebalancer.reports.research.break_even_table`)
    as a Rich table."""
    from rebalancer.reports.research import break_even_table as cells

    data = cells(grid)
    table = Table(
        title="Break-even band per fee rate (smallest band with final value >= buy-and-hold)"
    )
    for col in data.headers:
        table.add_column(col, justify="right")
    for row in data.rows:
        table.add_row(*row)
    return table


def semantics_text(semantics: str) -> str:
    from rebalancer.reports.research import SEMANTICS

    return SEMANTICS.get(semantics, semantics)


def _market(settings: Settings, panel: CandlePanel, strategy: Strategy) -> Market:
    """Where backtest, sweep, walk-forward and advise trade: the config's exchange (its fee
    side) and its market rules for the strategy's assets (the shipped market list with the config's
    ``[markets.X]`` overrides; labelled made-up rules for an asset it does not list)."""
    from rebalancer.backtest.grid import market_rules
    from rebalancer.core.venue import venue_model

    listed = market_rules(panel.closes, strategy, venue_model(settings.exchange))
    overridden = sorted(a for a in listed.rules if a in settings.markets)
    source = listed.source
    if overridden:
        source += f"; [markets] overrides for {', '.join(overridden)}"
    return replace(listed, rules=settings.market_rules(listed.rules), source=source)


def sweep_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timeframe: TimeframeOpt = "1d",
    capital: CapitalOpt = 10000.0,
    bands: Annotated[
        str,
        typer.Option("--bands", help="Bands: a list 0.02,0.05 or a range start:stop:step."),
    ] = "0.01:0.25:0.01",
    fees: Annotated[
        str, typer.Option("--fee", "--fees", help="Fee rates, a list or a range.")
    ] = DEFAULT_FEES_TEXT,
    kinds: KindsOpt = "abs",
    styles: StylesOpt = "target",
    semantics: Annotated[
        str,
        typer.Option(
            "--semantics",
            help="full: the bot's own rule for every row (policy, venue market rules and fee "
            "side); reference: the plain rule of vectorbt/bt (fee from cash, no step, minimum, "
            "min_trade or slippage), kind abs with style target only, for comparisons.",
        ),
    ] = "full",
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Processes for --engine replay (default: all cores)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="compiled: the compiled engine, all cores (proven equal to the replay); "
            "replay: the Decimal replay of the live loop, same rows, for audits.",
        ),
    ] = "compiled",
    out: OutOpt = Path("out"),
    as_json: JsonOpt = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: this machine's cores; dask: a Dask cluster (needs --scheduler and "
            "the 'cluster' extra). Same results either way.",
        ),
    ] = "local",
    scheduler: SchedulerOpt = None,
    regime_window: RegimeWindowOpt = DEFAULT_WINDOW,
    bull: BullOpt = DEFAULT_BULL,
    bear: BearOpt = DEFAULT_BEAR,
    vol_quantile: VolQuantileOpt = DEFAULT_VOL_QUANTILE,
    regime_rows: Annotated[
        str,
        typer.Option(
            "--regime-rows",
            help="Rows given per-regime figures: best (the best row and each kind, style "
            "and fee's best band, what the text shows) or all (every row: one more run per "
            "row, about 0.1-0.3 s each on hourly data).",
        ),
    ] = "best",
    advice: Annotated[
        Path | None,
        typer.Option(
            "--advice",
            help="An advise.json from `rebalancer advise`: star its band on the heatmaps and "
            "say why in the report.",
        ),
    ] = None,
) -> None:
    """Sweep bands x fee rates x trigger kinds x styles; print the break-even band per fee.

    Every row has the bot's full semantics: the config's policy (min_trade, slippage), the
    market rules of the config's exchange (its shipped market list; assets it does not
    list get labelled made-up rules) and its fee side, each combination's trigger, style
    and fee rate. They run in the compiled engine (--engine replay: the Decimal replay,
    same rows, for audits). --semantics reference runs the plain rule vectorbt and bt
    implement instead (abs/target only), labelled as such; the two never share a table.

    Writes `sweep_report.html` (heatmaps, tables, data window and notes, engine, file hashes),
    `sweep.csv`, `break_even.csv` and heatmaps of final value, Sharpe and max drawdown
    into --out. The config gives the targets; each combination replaces its rule and style.

    Per market regime (--regime-window, --bull, --bear, --vol-quantile): every row's
    premium over buy-and-hold, turnover, fees and drawdown in --json ("regimes"); the best
    row's table in the text; every row's premium a year per regime and the best row's
    equity with the regimes shaded in the report.

    Example: `rebalancer sweep --data-dir candles
    --start 2018-05-04 --bands 0.01:0.25:0.01 --fee 0,0.0005,0.001,0.0025 --json`

    On a Dask cluster: add `--executor dask --scheduler tcp://HOST:8786` (full rows run
    in the replay there).
    """
    from rebalancer.backtest.executors import make_executor
    from rebalancer.backtest.grid import run_grid
    from rebalancer.config import bounds
    from rebalancer.reports.heatmaps import write_outputs

    settings = _settings(config)
    strategy = settings.strategy()
    panel = load_data(settings, data_dir, timeframe, start, end)
    if semantics not in ("full", "reference"):
        raise ConfigError(f"--semantics must be 'full' or 'reference', not {semantics!r}")
    if engine not in ("compiled", "replay"):
        raise ConfigError(f"--engine must be 'compiled' or 'replay', not {engine!r}")
    market = _market(settings, panel, strategy) if semantics == "full" else None
    band_list = parse_numbers(bands, "--bands")
    fee_list = bounds.fee_rates(parse_numbers(fees, "--fee"))
    check_regime_options(panel, regime_window, bull, bear, vol_quantile)
    console = Console(quiet=as_json, stderr=True)
    remote = make_executor(executor, scheduler)
    with _progress(console, "sweep") as progress, remote or nullcontext():
        task = progress.add_task("sweep", total=None)
        grid = run_grid(
            panel.closes,
            replace(strategy),
            bands=band_list,
            fee_rates=fee_list,
            kinds=_names(kinds),
            styles=_names(styles),
            capital=_decimal(capital, "--capital"),
            bar=_bar(panel),
            semantics=semantics,  # type: ignore[arg-type]
            workers=workers,
            on_total=lambda n: progress.update(task, total=n),
            progress=lambda n: progress.advance(task, n),
            executor=remote,
            engine=engine,  # type: ignore[arg-type]
            market=market,
        )
    mark = None if advice is None else _read_mark(advice)
    paths = write_outputs(grid, out, _window(panel), mark)
    regimes, regime_page = sweep_regime_outputs(
        grid,
        panel,
        strategy,
        capital,
        (regime_window, bull, bear, vol_quantile),
        out,
        paths,
        market,
        every_row=_regime_rows(regime_rows),
    )
    from rebalancer.reports.research import write_sweep_report

    paths["report"] = write_sweep_report(
        grid,
        out,
        {k: p for k, p in paths.items() if k.startswith("heatmap_")},
        _provenance(panel, settings),
        window=_window(panel),
        strategy=strategy,
        capital=_decimal(capital, "--capital"),
        executor="local" if remote is None else f"dask {remote.address}",
        regimes=regime_page,
        advised="" if mark is None else _advised(mark, grid),
    )
    data = {
        "executor": "local" if remote is None else f"dask {remote.address}",
        "start": panel.start.isoformat(),
        "end": panel.end.isoformat(),
        "bars": len(panel.closes),
        "targets": {k: float(v) for k, v in strategy.targets.items()},
        "semantics": grid.semantics,
        "semantics_text": semantics_text(grid.semantics),
        "venue": grid.venue,
        "market_rules": grid.rules_source,
        "notes": list(grid.notes),
        "combinations": len(grid.rows),
        "engines": grid.engines(),
        "seconds": grid.seconds,
        "break_even": grid.break_even.to_dict("records"),
        "rows": grid.rows.to_dict("records"),
        "files": {k: str(v) for k, v in paths.items()},
        "data": {"sha256": dict(panel.sha256), "issues": list(panel.report.issues)},
        "regimes": regimes,
    }
    if as_json:
        typer.echo(render.to_json(_clean(data)))
        return
    out_console = Console()
    print_data(out_console, panel)
    out_console.print(
        f"Semantics: {grid.semantics} ({semantics_text(grid.semantics)}); "
        f"venue {grid.venue}; {grid.rules_source}.",
        highlight=False,
        markup=False,
    )
    for note in grid.notes:
        out_console.print(f"Note: {note}.", highlight=False, markup=False)
    out_console.print(break_even_table(grid))
    print_sweep_regimes(out_console, grid, regimes)
    beats = int(grid.rows["beats_bh"].sum())
    out_console.print(
        f"{len(grid.rows)} combinations in {grid.seconds:.2f} s ({grid.engines()}); "
        f"{beats} beat buy-and-hold, {len(grid.rows) - beats} did not."
    )
    written = ", ".join(str(p) for p in paths.values())
    out_console.print(f"Wrote {render.esc(written)}", highlight=False)


def sweep_regime_outputs(
    grid: GridResult,
    panel: CandlePanel,
    strategy: Strategy,
    capital: float,
    regime: tuple[str, float, float, float],
    out: Path,
    paths: dict[str, Path],
    market: Market | None = None,
    every_row: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every row's per-regime figures (the ``--json`` payload) and the report's regime part
    (``market``: where the grid's full-semantics rows traded);
    writes ``sweep_regimes.png`` (the best row's equity, regimes shaded) into ``out``."""
    from rebalancer.backtest.trust.sweep_regimes import sweep_regimes
    from rebalancer.cli.regimes import regime_options
    from rebalancer.reports.regimes import equity_chart, label
    from rebalancer.reports.research import sweep_regime_context

    best = int(grid.rows["premium"].to_numpy().argmax())
    found = sweep_regimes(
        grid.rows,
        panel.closes,
        strategy,
        regime_options(*regime, _bar(panel)),
        capital=_decimal(capital, "--capital"),
        bar=_bar(panel),
        semantics=grid.semantics,
        only=None if every_row else best_rows(grid),
        keep=best,
        market=market,
    )
    data = _clean(found.to_dict(grid.rows))
    chart = None
    if found.curves is not None:
        rep = found.reports[best]
        times = [t + _bar(panel) for t in panel.closes.index]
        chart = equity_chart(
            times, *found.curves, rep.spans, rep.vol_spans, label(data["rows"][best])
        )
        paths["regimes_chart"] = out / "sweep_regimes.png"
        paths["regimes_chart"].write_bytes(chart)
    return data, sweep_regime_context(grid, data, chart, best)


def _read_mark(path: Path) -> Any:
    """``--advice``: the advised band of an ``advise.json`` (the advice report's module is
    imported only when one is given)."""
    from rebalancer.reports.advise import read_mark

    return read_mark(path)


def _advised(mark: Any, grid: GridResult) -> str:
    from rebalancer.reports.advise import sweep_sentence

    return sweep_sentence(mark, grid.rows)


def _regime_rows(text: str) -> bool:
    """``--regime-rows``: True for ``all``, False for ``best``."""
    if text not in ("best", "all"):
        raise ConfigError(f"--regime-rows must be best or all, not {text!r}")
    return text == "all"


def best_rows(grid: GridResult) -> list[int]:
    """The rows the text shows per regime: the best row, and the best band of each kind,
    style and fee rate."""
    frame = grid.rows
    out = {int(frame["premium"].to_numpy().argmax())}
    for _, g in frame.groupby(["kind", "style", "fee_rate"], sort=True):
        out.add(int(g.index.to_numpy()[g["premium"].to_numpy().argmax()]))
    return sorted(out)


def print_sweep_regimes(console: Console, grid: GridResult, regimes: dict[str, Any]) -> None:
    """The best row's per-regime table, then each fee's best band's premium a year."""
    from rebalancer.cli.regimes import compact_line
    from rebalancer.reports.regimes import label

    rows = regimes["rows"]
    if not rows:
        console.print(regimes["note"], highlight=False, markup=False, soft_wrap=True)
        return
    best = int(grid.rows["premium"].to_numpy().argmax())
    report = {"options": regimes["options"], "rows": rows[best]["regimes"], "note": ""}
    print_regimes(console, report, f"Best row, {label(rows[best])}:")
    console.print("Premium a year per regime, the best band of each fee:", highlight=False)
    frame = grid.rows
    for _, g in frame.groupby(["kind", "style", "fee_rate"], sort=True):
        i = int(g.index.to_numpy()[g["premium"].to_numpy().argmax()])
        console.print(
            "  " + compact_line(label(rows[i]), rows[i]["regimes"]),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


# -- walk-forward ------------------------------------------------------------------------------


def bars_in(text: str, bar: timedelta, name: str) -> int:
    """``"365d"``, ``"12w"``, ``"2000h"`` or a bare number of bars -> bars."""
    import pandas as pd

    from rebalancer.data.timeframes import parse_timeframe

    if text.strip().isdigit():
        return int(text)
    try:
        span = parse_timeframe(text.strip())
    except ConfigError:
        raise ConfigError(
            f"{name} {text!r} is not a duration like 365d / 12w / 2000h or a number of bars"
        ) from None
    return int(span / pd.Timedelta(bar))


def walk_forward_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timeframe: TimeframeOpt = "1d",
    capital: CapitalOpt = 10000.0,
    bands: Annotated[
        str,
        typer.Option("--bands", help="Bands to choose from: a list or start:stop:step."),
    ] = "0.01:0.25:0.01",
    fee: Annotated[
        float | None,
        typer.Option("--fee", help="Taker fee rate (default: the config's)."),
    ] = None,
    train: Annotated[str, typer.Option("--train", help="In-sample length: 365d or bars.")] = "365d",
    test: Annotated[str, typer.Option("--test", help="Out-of-sample length.")] = "90d",
    anchored: Annotated[
        bool, typer.Option("--anchored", help="Grow the in-sample window from the start.")
    ] = False,
    objective: Annotated[
        str, typer.Option("--objective", help="Choose by sharpe, cagr or calmar.")
    ] = "sharpe",
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="The rule whose band is chosen: abs (threshold), vol (volatility-scaled, "
            "the band its base), cost (threshold with cost-aware legs).",
        ),
    ] = "abs",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="compiled: the compiled engine chooses and scores (proven equal to the "
            "replay); replay: the Decimal replay of the live loop does both, for audits.",
        ),
    ] = "compiled",
    out: OutOpt = Path("out"),
    as_json: JsonOpt = False,
    regime_window: RegimeWindowOpt = DEFAULT_WINDOW,
    bull: BullOpt = DEFAULT_BULL,
    bear: BearOpt = DEFAULT_BEAR,
    vol_quantile: VolQuantileOpt = DEFAULT_VOL_QUANTILE,
) -> None:
    """Choose the band in-sample, trade it out-of-sample, and compare with hindsight.

    Rolling (or --anchored) windows; the band of the --kind rule with the best --objective
    on the in-sample bars is traded on the next out-of-sample bars, one continuous account.
    Choice, out-of-sample scores, hindsight and buy-and-hold have the bot's full semantics
    (the config's policy, its exchange's market rules and fee side) and run in one engine:
    the compiled engine, or --engine replay (the Decimal replay, for audits).
    Prints the choice per window and the stitched result against the best fixed band in
    hindsight and buy-and-hold; writes `walk_forward_report.html` (chart, tables, data window
    and notes, engine, file hashes), `walk_forward.csv`, `hindsight.csv` and
    `walk_forward.png` into --out.

    Per market regime (--regime-window, --bull, --bear, --vol-quantile; labelled over the
    whole panel): the out-of-sample run's premium over buy-and-hold, turnover, fees and
    drawdown in the text, --json ("regimes") and the report (shaded on the chart).

    Example: `rebalancer walk-forward --data-dir candles
    -c my.toml --train 365d --test 90d --objective calmar --json`
    """
    import pandas as pd

    from rebalancer.backtest.walk_forward import equity_figure, walk_forward
    from rebalancer.reports.labels import bars_text, window_text

    settings = _settings(config)
    strategy = settings.strategy()
    panel = load_data(settings, data_dir, timeframe, start, end)
    bar = _bar(panel)
    check_regime_options(panel, regime_window, bull, bear, vol_quantile)
    taker = settings.fees.taker if fee is None else _decimal(fee, "--fee")
    if engine not in ("compiled", "replay"):
        raise ConfigError(f"--engine must be 'compiled' or 'replay', not {engine!r}")
    market = _market(settings, panel, strategy)
    console = Console(quiet=as_json, stderr=True)
    with _progress(console, "walk-forward") as progress:
        task = progress.add_task("walk-forward", total=None)
        result = walk_forward(
            panel.closes,
            strategy,
            kind=kind,
            bands=parse_numbers(bands, "--bands"),
            fee_rate=taker,
            train=bars_in(train, bar, "--train"),
            test=bars_in(test, bar, "--test"),
            bar=bar,
            anchored=anchored,
            objective=objective,
            capital=_decimal(capital, "--capital"),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            engine=engine,
            market=market,
        )
    out.mkdir(parents=True, exist_ok=True)
    paths = {"windows": out / "walk_forward.csv", "hindsight": out / "hindsight.csv"}
    result.windows.to_csv(paths["windows"], index=False)
    result.hindsight.to_csv(paths["hindsight"], index=False)
    import matplotlib.pyplot as plt

    first, last = result.windows["test_start"].iloc[0], result.windows["test_end"].iloc[-1]
    oos = window_text(pd.Timestamp(first), pd.Timestamp(last), len(result.equity), bar)
    fig = equity_figure(result, f"out-of-sample {oos}; data {_window(panel)}")
    regimes = walk_forward_regime_report(
        result, panel, strategy, (regime_window, bull, bear, vol_quantile), fig
    )
    paths["chart"] = out / "walk_forward.png"
    fig.savefig(paths["chart"])
    plt.close(fig)
    from rebalancer.reports.research import write_walk_forward_report

    train_bars, test_bars = bars_in(train, bar, "--train"), bars_in(test, bar, "--test")
    paths["report"] = write_walk_forward_report(
        result,
        out,
        paths["chart"],
        _provenance(panel, settings),
        window=_window(panel),
        oos_window=oos,
        strategy=strategy,
        fee=taker,
        capital=_decimal(capital, "--capital"),
        train=bars_text(train_bars, bar),
        test=bars_text(test_bars, bar),
        anchored=anchored,
        regimes=regimes,
    )
    data = result.summary()
    data["venue"] = market.venue.name
    data["market_rules"] = market.source
    data["regimes"] = regimes
    data["files"] = {k: str(v) for k, v in paths.items()}
    data["data"] = {
        "start": panel.start.isoformat(),  # first and last candle (open times) really used
        "end": panel.end.isoformat(),
        "bars": len(panel.closes),
        "sha256": dict(panel.sha256),
        "issues": list(panel.report.issues),
    }
    if as_json:
        typer.echo(render.to_json(_clean(data)))
        return
    out_console = Console()
    print_data(out_console, panel)
    out_console.print(
        f"Engine: {result.engine}, full semantics (choice and scores alike); venue "
        f"{market.venue.name}; {market.source}.",
        highlight=False,
        markup=False,
    )
    table = Table(title=f"Walk-forward by {objective} ({'anchored' if anchored else 'rolling'})")
    for col in ("test window", "band", f"in-sample {objective}", f"OOS {objective}", "OOS return"):
        table.add_column(col, justify="right")
    for r in result.windows.to_dict("records"):
        table.add_row(
            f"{str(r['test_start'])[:10]} → {str(r['test_end'])[:10]}",
            f"{r['band']:.0%}",
            _fmt("{:.3f}", r[f"in_sample_{objective}"]),
            _fmt("{:.3f}", r[f"out_of_sample_{objective}"]),
            f"{r['out_of_sample_return']:+.2%}",
        )
    out_console.print(table)
    wf = data["walk_forward"]
    best = data["best_fixed_in_hindsight"]
    out_console.print(
        f"Walk-forward: final {wf['final_value']:,.2f}, {objective} "
        f"{_fmt('{:.3f}', wf[objective])}; best fixed band in hindsight {best['band']:.0%}: "
        f"final {best['final_value']:,.2f}, {objective} {_fmt('{:.3f}', best[objective])}."
    )
    hold = data["buy_and_hold"]
    if hold is not None:
        out_console.print(
            f"Buy-and-hold over the same span: final {hold['final_value']:,.2f}, {objective} "
            f"{_fmt('{:.3f}', hold[objective])}."
        )
    print_regimes(out_console, regimes, "Out-of-sample, per market regime:")
    written = ", ".join(str(p) for p in paths.values())
    out_console.print(f"Wrote {render.esc(written)}", highlight=False)


def walk_forward_regime_report(
    result: WalkForwardResult,
    panel: CandlePanel,
    strategy: Strategy,
    regime: tuple[str, float, float, float],
    fig: Any,
) -> dict[str, Any]:
    """The out-of-sample run's per-regime figures (``RegimeReport.to_dict()``, JSON-safe);
    shades the regimes on ``fig`` (the walk-forward chart) and names them in its legend."""
    from rebalancer.backtest.trust.regime_stats import walk_forward_regimes
    from rebalancer.cli.regimes import regime_options
    from rebalancer.reports.regimes import add_legend, shade

    bar = _bar(panel)
    options = regime_options(*regime, bar)
    report = walk_forward_regimes(result, panel.closes, strategy, options, bar.total_seconds())
    if report.spans:
        ax = fig.axes[0]
        add_legend(ax, shade(ax, result.equity.index, report.spans, report.vol_spans))
    data: dict[str, Any] = _clean(report.to_dict())
    return data
