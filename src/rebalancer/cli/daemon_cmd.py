"""``rebalancer run``: the daemon, wired from the config (parse -> load -> bootstrap -> run)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from rebalancer.cli.options import ConfigOpt, settings_from
from rebalancer.cli.telegram_cmd import telegram_beside_daemon, telegram_secrets

if TYPE_CHECKING:
    from rebalancer.config import Settings


def _secrets(settings: Settings) -> list[str]:
    """Every secret value the process can see (keys, notification URLs), for the logs to mask."""
    from rebalancer.bootstrap import notify_secrets
    from rebalancer.config import load_secrets

    keys = load_secrets(settings.exchange, dotenv_path=settings.dotenv_path)
    values = [s.get_secret_value() for s in (keys.api_key, keys.secret, keys.password) if s]
    return [*values, *notify_secrets(settings), *telegram_secrets(settings)]


@contextmanager
def _dashboard(settings: Settings, serve: bool) -> Iterator[None]:
    """The dashboard in a thread beside the daemon (its own journal connection, no lock);
    "rebalance now" is refused there: the daemon owns the account."""
    if not serve:
        yield
        return
    from rebalancer.cli.web_cmd import announce
    from rebalancer.web.server import (
        DaemonControls,
        create_app,
        dashboard_for,
        open_reader,
        serve_in_thread,
        web_token,
    )

    token, made = web_token(dotenv=settings.dotenv_path)
    reader = open_reader(settings)
    try:
        controls = DaemonControls(reader) if settings.web.control else None
        app = create_app(dashboard_for(settings, reader), token, controls)
        served = serve_in_thread(app, settings.web.host, settings.web.port)
        announce(settings.web.host, served.port, token, made, settings.web.control)
        try:
            yield
        finally:
            served.stop()
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


def run_command(
    config: ConfigOpt = None,
    live: Annotated[
        bool,
        typer.Option("--live", help='Confirm live trading when the config says mode = "live".'),
    ] = False,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run a single check, then exit (for cron jobs; exit code 1 if it failed).",
        ),
    ] = False,
    max_ticks: Annotated[
        int | None,
        typer.Option("--max-ticks", min=1, help="Stop after this many checks.", show_default=False),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve", help="Also serve the dashboard ([web] host and port; see `serve`)."
        ),
    ] = False,
    telegram: Annotated[
        bool,
        typer.Option(
            "--telegram",
            help="Also answer Telegram commands ([telegram] allowed_chats; see `telegram`).",
        ),
    ] = False,
) -> None:
    """Run unattended: one check now, then one per scheduled time (`[daemon]` in the config).

    Each check is a full cycle (the trigger decides whether it trades). A failed check is
    retried with a growing back-off; an error that needs you (bad keys, a broken rule)
    stops it with exit code 3 and a notification. Notifications go to the apprise URLs in
    `REBALANCER_NOTIFY_URLS`; logs to the console and `<state_dir>/logs/rebalancer.log`.
    Ctrl-C or SIGTERM stops it after the check in progress.

    Example: `rebalancer run -c rebalancer.toml` (paper), `rebalancer run --live` (live)
    """
    from rebalancer.bootstrap import build, build_notifier
    from rebalancer.daemon import (
        Daemon,
        DaemonPolicy,
        HeartbeatFile,
        SystemWaiter,
        heartbeat_path,
    )
    from rebalancer.daemon.loop import checks
    from rebalancer.logs import reset_logging, setup_logging

    settings = settings_from(config)
    setup_logging(settings.daemon.log_level, settings.state_dir / "logs", _secrets(settings))
    with ExitStack() as done:
        # the handlers hold this run's streams: leave none behind, even when wiring fails
        done.callback(reset_logging)
        notifier = build_notifier(settings)
        rt = build(settings, confirm_live=live, lock=True)
        done.callback(rt.close)
        logging.getLogger("rebalancer.run").info("%s · %s", rt.mode, rt.prices_note)
        policy = DaemonPolicy.from_config(
            settings.daemon,
            max_ticks=1 if once else max_ticks,
            max_ticks_flag="--once" if once else f"--max-ticks {max_ticks}",
        )
        daemon = Daemon(
            rt.exchange,
            rt.journal,
            notifier,
            rt.strategy,
            rt.clock,
            policy,
            SystemWaiter(rt.clock),
            HeartbeatFile(heartbeat_path(settings.state_dir, rt.mode)).write,
            risk=rt.risk,
            mode=rt.mode,
            history=rt.history,
            retarget=rt.retarget,
            warnings=rt.warnings,  # frozen paper prices: logged and notified at start
        )
        with _dashboard(settings, serve), telegram_beside_daemon(settings, telegram, live):
            result = daemon.run()
    typer.echo(f"rebalancer run: stopped after {checks(result.ticks)}: {result.reason or 'done'}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
