"""``rebalancer serve``: the dashboard and its JSON API (parse -> load -> wire -> serve)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from rebalancer.cli.options import ConfigOpt, settings_from

console = Console()
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def announce(host: str, port: int, token: str, made: bool, control: bool) -> None:
    """Say where the dashboard is; a token made here is printed this once."""
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    if made:  # plain echo: a long token must not be wrapped
        typer.echo(f"dashboard: {url}?token={token}")
        typer.echo(
            "(a token was made for this run; set REBALANCER_WEB_TOKEN to keep one. "
            "It is not shown again)"
        )
    else:
        typer.echo(f"dashboard: {url}?token=<REBALANCER_WEB_TOKEN>")
    access = "control enabled (resume, rebalance)" if control else "read-only"
    typer.echo(f"JSON API under {url}api/, described at {url}openapi.json; {access}")
    if host not in LOOPBACK:
        console.print(
            f"[yellow]warning:[/yellow] listening on {host}, not only this machine: "
            "put it behind TLS (the token travels with every request)"
        )


def serve_command(
    config: ConfigOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: [web] host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: [web] port, 8765).")
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help='Allow "rebalance now" to trade when the config says mode = "live".'
        ),
    ] = False,
) -> None:
    """Serve the dashboard and its JSON API: weights vs targets and bands, equity vs
    buy-and-hold, drift history, orders, fills, halts, the daemon's last and next check.

    Every request needs the token (`REBALANCER_WEB_TOKEN`, else one made and printed now).
    Read-only unless `[web] control = true`, which adds `POST /api/resume` and
    `POST /api/rebalance`.

    Example: `rebalancer serve -c rebalancer.toml`, then open the printed address.
    """
    from rebalancer.web.server import (
        StandaloneControls,
        create_app,
        dashboard_for,
        open_reader,
        serve_forever,
        web_token,
    )

    settings = settings_from(config)
    web = settings.web
    host, port = host or web.host, port or web.port
    token, made = web_token(dotenv=settings.dotenv_path)
    reader = open_reader(settings)
    try:
        controls = StandaloneControls(settings, reader, live) if web.control else None
        app = create_app(dashboard_for(settings, reader), token, controls)
        announce(host, port, token, made, web.control)
        serve_forever(app, host, port)
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
