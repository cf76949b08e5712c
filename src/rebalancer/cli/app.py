"""The ``rebalancer`` command: parse -> load config -> bootstrap -> call one function -> render."""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from rebalancer import __version__
from rebalancer.cli.advise_cmd import advise_command
from rebalancer.cli.backtest_cmd import backtest_command, sweep_command, walk_forward_command
from rebalancer.cli.daemon_cmd import run_command
from rebalancer.cli.data_cmd import data_app, download_command
from rebalancer.cli.demo import demo_command
from rebalancer.cli.errors import error_text
from rebalancer.cli.flows_cmd import flows_command
from rebalancer.cli.gains_cmd import gains_command
from rebalancer.cli.init_cmd import init_command
from rebalancer.cli.keys_cmd import keys_app
from rebalancer.cli.markets_cmd import markets_command
from rebalancer.cli.options import ConfigOpt, JsonOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.cli.report_cmd import report_command
from rebalancer.cli.safety_cmd import history_command, resume_command
from rebalancer.cli.targets_cmd import show_command, suggest_command, targets_app
from rebalancer.cli.telegram_cmd import telegram_command
from rebalancer.cli.web_cmd import serve_command
from rebalancer.core.errors import ConfigError, RebalancerError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="rebalancer",
    help="Keep a crypto portfolio at its target allocation (paper mode unless live is asked for).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
config_app = typer.Typer(help="Validate or show the configuration.", no_args_is_help=True)
paper_app = typer.Typer(help="Manage the paper account.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(paper_app, name="paper")

console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's errors into a clear message and a non-zero exit, no traceback; a
    module of a missing extra (numba, fastapi, ...) names the ``pip install`` that adds it."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RebalancerError as exc:
            shown = esc(error_text(exc))
            err_console.print(f"[bold red]error:[/bold red] {shown}", highlight=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
        except ImportError as exc:
            from rebalancer.cli.extras import missing_extra

            message = missing_extra(exc)
            if message is None:
                raise
            err_console.print(f"[bold red]error:[/bold red] {esc(message)}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def emit(data: Any) -> None:
    from rebalancer.cli import render

    typer.echo(render.to_json(data))


def _warn(warnings: tuple[str, ...]) -> None:
    """What the runtime says the user must see (frozen paper prices), in bold."""
    for warning in warnings:
        console.print(f"[bold yellow]WARNING[/bold yellow]: {esc(warning)}", highlight=False)


@app.command()
@user_errors
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Holdings, weights, targets and drift per asset, and whether the rule fires and why.

    A read-only view: with `mode = "live"` it reads the exchange (keys needed) and needs no
    `--live`, since nothing is sent.

    Example: `rebalancer status --json`
    """
    from rebalancer.bootstrap import build
    from rebalancer.cli import render
    from rebalancer.daemon.heartbeat import HeartbeatFile, heartbeat_path
    from rebalancer.service import apply_targets, evaluate

    settings = settings_from(config)
    rt = build(settings, read_only=True)
    now, strategy = rt.clock.now(), rt.strategy
    if rt.retarget is not None:  # the optimised targets in force (nothing is journaled)
        step = apply_targets(
            rt.retarget, rt.journal, rt.notifier, strategy, now, rt.history, execute=False
        )
        strategy = step.strategy
    _, drift, decision = evaluate(rt.exchange, rt.journal, strategy, now, rt.history)
    halt = rt.journal.halt_status().active
    beat = HeartbeatFile(heartbeat_path(settings.state_dir, rt.mode)).read()
    if as_json:
        emit(
            {
                "mode": rt.mode,
                "prices": rt.prices_note,
                "price_source": None if rt.price_source is None else rt.price_source.to_dict(),
                "warnings": list(rt.warnings),
                "trigger": rt.strategy.trigger.describe(),
                **render.drift_dict(drift),
                "decision": render.decision_dict(decision),
                "halted": None
                if halt is None
                else {"at": halt.at.isoformat(), "reason": halt.reason},
                "daemon": None if beat is None else beat.to_dict(),
            }
        )
        return
    console.print(f"[dim]{esc(rt.mode)} · {esc(rt.prices_note)}[/dim]")
    _warn(rt.warnings)
    console.print(render.drift_table(drift, rt.strategy.quote, decision.out_of_band))
    console.print(f"Trigger: {esc(rt.strategy.trigger.describe())}")
    render.print_decision(console, decision)
    if halt is not None:
        console.print(
            f"[bold red]HALTED[/bold red] since {halt.at:%Y-%m-%d %H:%M} UTC: {esc(halt.reason)}; "
            "no order is sent until `rebalancer resume`",
            highlight=False,
        )
    else:
        console.print("Trading: not halted")
    if beat is None:
        console.print("Daemon: never started here (`rebalancer run`)")
    for line in [] if beat is None else beat.lines(rt.clock.now()):
        console.print(line, highlight=False, markup=False)


@app.command()
@user_errors
def plan(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[bool, typer.Option(help="Plan even if the rule does not fire.")] = False,
) -> None:
    """The orders a rebalance would send, in order, and every skipped leg with its reason.

    Nothing is sent: a read-only view, so with `mode = "live"` it reads the exchange (keys
    needed) and needs no `--live`.

    Example: `rebalancer plan --force`
    """
    from rebalancer.bootstrap import build
    from rebalancer.cli import render

    rt = build(settings_from(config), read_only=True)
    report = rt.cycle(execute=False, force=force)
    if as_json:
        emit(
            {
                "mode": rt.mode,
                "decision": render.decision_dict(report.decision),
                "plan": render.plan_dict(report.plan) if report.plan else None,
            }
        )
        return
    console.print(f"[dim]{esc(rt.mode)} · {esc(rt.prices_note)}[/dim]")
    _warn(rt.warnings)
    if report.targets_note:
        console.print(f"[dim]targets: {esc(report.targets_note)}[/dim]", highlight=False)
    render.print_decision(console, report.decision)
    if report.plan is not None:
        render.print_plan(console, report.plan, rt.strategy.quote)
    else:
        console.print("Nothing to do (use --force to see the plan anyway).")


@app.command()
@user_errors
def rebalance(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[bool, typer.Option(help="Rebalance even if the rule does not fire.")] = False,
    live: Annotated[
        bool,
        typer.Option("--live", help='Confirm live trading when the config says mode = "live".'),
    ] = False,
    i_understand: Annotated[
        bool,
        typer.Option(
            "--i-understand",
            help="With --live: confirm the account's first live start (asked once).",
        ),
    ] = False,
    allow_withdrawals: Annotated[
        bool,
        typer.Option(
            "--allow-withdrawals",
            help="Trade live with a key that can withdraw or transfer (not recommended).",
        ),
    ] = False,
) -> None:
    """Run one cycle: sells first, then buys sized from the cash the sells produced.

    Paper unless the config says `mode = "live"` and `--live` confirms it (the first live
    start of an account also needs `--i-understand`, once). `--live` with a paper config is
    refused, nothing runs; live without keys names the missing keys first.

    Example: `rebalancer rebalance --force`
    """
    from rebalancer.bootstrap import build
    from rebalancer.cli import render

    rt = build(
        settings_from(config),
        confirm_live=live,
        lock=True,
        first_live=i_understand,
        allow_withdrawals=allow_withdrawals,
    )
    try:
        report = rt.cycle(force=force)
    finally:
        rt.close()
    if as_json:
        emit({"mode": rt.mode, **render.cycle_dict(report)})
        return
    console.print(f"[dim]{esc(rt.mode)} · {esc(rt.prices_note)}[/dim]")
    _warn(rt.warnings)
    if report.targets_note:
        console.print(f"[dim]targets: {esc(report.targets_note)}[/dim]", highlight=False)
    render.print_decision(console, report.decision)
    if report.fills:
        console.print(render.fills_table(report))
    for limit in report.limits:
        console.print(f"[dim]{esc(limit.describe())}[/dim]", highlight=False)
    for failed in report.failed:
        console.print(
            f"[yellow]not placed[/yellow] {esc(failed.order.symbol)} "
            f"{failed.order.side.value}: {esc(failed.error)}"
        )
    for plan_ in (report.plan, report.buy_plan):
        if plan_ is not None and plan_.skipped:
            console.print(render.skipped_table(plan_, rt.strategy.quote))
    if report.drift_after is not None:
        console.print(render.drift_table(report.drift_after, rt.strategy.quote))
    for text in report.suggestions:
        console.print(
            f"[yellow]suggested transfer[/yellow] (never made by the bot): {esc(text)}",
            highlight=False,
        )
    if report.stopped:
        console.print(f"[bold red]stopped:[/bold red] {esc(report.stopped)}")


app.command(name="demo")(user_errors(demo_command))
app.command(name="init")(user_errors(init_command))
app.command(name="markets")(user_errors(markets_command))

# --- backtest commands (backtest, sweep, walk-forward) are registered here ---
app.command(name="backtest")(user_errors(backtest_command))
app.command(name="sweep")(user_errors(sweep_command))
app.command(name="walk-forward")(user_errors(walk_forward_command))
app.command(name="advise")(user_errors(advise_command))

# --- safety commands (history, resume, keys check) are registered here ---
app.command(name="history")(user_errors(history_command))
app.command(name="resume")(user_errors(resume_command))

# --- daemon commands (run) are registered here ---
app.command(name="run")(user_errors(run_command))
app.command(name="telegram")(user_errors(telegram_command))

# --- data commands (data download) are registered here ---
data_app.command(name="download")(user_errors(download_command))
app.add_typer(data_app, name="data")

# --- keys commands (keys check) are registered here ---
app.add_typer(keys_app, name="keys")

# --- dashboard and report commands (serve, report) are registered here ---
app.command(name="serve")(user_errors(serve_command))
app.command(name="report")(user_errors(report_command))

# --- smarter rules commands (gains) are registered here ---
app.command(name="gains")(user_errors(gains_command))
app.add_typer(targets_app, name="targets")
targets_app.command(name="suggest")(user_errors(suggest_command))
targets_app.command(name="show")(user_errors(show_command))
app.command(name="flows")(user_errors(flows_command))


@config_app.command("check")
@user_errors
def config_check(
    config: ConfigOpt = None,
    online: Annotated[
        bool,
        typer.Option(
            "--online", help="Read the exchange's whole market list first (network, no keys)."
        ),
    ] = False,
) -> None:
    """Validate the config; every problem is listed with its field, value and fix.

    The target assets are checked against the exchange's market list: the one the bot
    cached when it last read it online, else the excerpt shipped with the package (an
    asset outside it is a warning, not an error); `--online` reads the whole list now.

    Example: `rebalancer config check -c rebalancer.toml --online`
    """
    from rebalancer.config.notes import asset_findings, defaults_that_matter, implausible

    settings = settings_from(config)
    settings.strategy()
    if online:
        from rebalancer.bootstrap import refresh_market_list

        if refresh_market_list(settings) is None:
            console.print(
                f"note: {esc(settings.exchange)}'s market list could not be read online "
                "(no network?); the cached or shipped one is used",
                highlight=False,
            )
    where, findings = asset_findings(settings)
    problems = [f for f in findings if f.level == "problem"]
    if problems:
        raise ConfigError(
            f"{settings.source}: {len(problems)} asset(s) not listed by {settings.exchange}:\n"
            + "\n".join(f"  - {p.render()}" for p in problems),
            [p.render() for p in problems],
        )
    console.print(
        f"config OK ({esc(settings.source)}): mode {settings.mode}, exchange "
        f"{settings.exchange}, {len(settings.targets)} targets; assets {esc(where)}",
        highlight=False,
    )
    for note in defaults_that_matter(settings):
        console.print(f"note: {esc(note)}", highlight=False)
    for finding in findings:
        head = "[yellow]warning:[/yellow]" if finding.level == "warning" else "note:"
        console.print(f"{head} {esc(finding.render())}", highlight=False)
    for warning in implausible(settings):
        console.print(f"[yellow]warning:[/yellow] {esc(warning)}", highlight=False)


@config_app.command("show")
@user_errors
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective config, defaults filled in, secrets redacted.

    Example: `rebalancer config show`
    """
    from rebalancer.config import show_config

    typer.echo(show_config(settings_from(config), env=dict(os.environ)))


@paper_app.command("reset")
@user_errors
def paper_reset(config: ConfigOpt = None) -> None:
    """Forget the paper account; the next run starts from `paper.initial_balances`.

    Takes the account's lock like any run that trades: refused while another process (a
    `rebalancer run` daemon, a `rebalance`) holds it -- stop that one first.

    Example: `rebalancer paper reset`
    """
    from rebalancer.bootstrap import reset_paper

    path = reset_paper(settings_from(config))
    console.print(f"paper account reset ({esc(path)})")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"rebalancer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = None,
) -> None:
    """Keep a crypto portfolio at its target allocation.

    Start with `rebalancer demo`, then `rebalancer status` and `rebalancer plan`.
    """


def only_the_command(argv: Sequence[str]) -> typer.Typer:
    """``app`` holding only the command (or command group) that ``argv`` names, so a start
    builds the Click objects of that one command, not of all ~35 (about 25 ms per start);
    ``app`` itself for ``--help``, ``--version``, no command or an unknown one."""
    name = argv[0] if argv else ""
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    one = copy.copy(app)  # the same settings and root callback (--version)
    one.registered_commands, one.registered_groups = commands, groups
    return one


def main() -> None:
    only_the_command(sys.argv[1:])()


if __name__ == "__main__":  # `python -m rebalancer.cli.app` (as `python -m rebalancer`)
    main()
