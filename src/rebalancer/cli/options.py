"""What every command shares: the ``--config`` and ``--json`` options and config lookup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the config (pydantic) is imported when a command runs, not for --help
    from rebalancer.config import Settings

CONFIG_NAME = Path("rebalancer.toml")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config (default: ./rebalancer.toml if present, "
        "else the built-in default; env REBALANCER_CONFIG).",
        envvar="REBALANCER_CONFIG",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def settings_from(path: Path | None) -> Settings:
    """The config at ``path``, else ``./rebalancer.toml`` if present, else the defaults."""
    from rebalancer.config import load_config

    if path is None and CONFIG_NAME.exists():
        path = CONFIG_NAME
    return load_config(path)


#: the trigger kinds and styles of a sweep, advise and walk-forward
KindsOpt = Annotated[
    str,
    typer.Option(
        "--kinds",
        help="Trigger kinds: abs, rel, hybrid (weekly + abs band), vol (volatility-scaled "
        "band, the band its base), cost (abs band, cost-aware legs).",
    ),
]
StylesOpt = Annotated[str, typer.Option("--styles", help="Styles: target, band_edge.")]
