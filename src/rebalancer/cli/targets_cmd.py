"""``rebalancer targets suggest`` (what an optimiser would choose today, and why) and
``rebalancer targets show`` (the targets in force, their changes, the next change).

``suggest`` reads the trailing window of daily closes (``--data``, else ``paper.data_dir``, else the
embedded demo candles), optimises with :mod:`rebalancer.optimise.weights` and prints the
suggested targets next to the configured ones, with each asset's volatility and share of the
risk. Nothing is changed: copy the weights into ``[targets]`` if you agree.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from rebalancer.cli.options import ConfigOpt, JsonOpt, settings_from
from rebalancer.cli.render import esc
from rebalancer.core.errors import ConfigError
from rebalancer.core.numbers import plain
from rebalancer.core.retarget import next_due

if TYPE_CHECKING:
    from rebalancer.config import Settings
    from rebalancer.ports import TargetChange

targets_app = typer.Typer(help="Suggest target weights from recent prices.", no_args_is_help=True)
console = Console()


def suggest_command(
    method: Annotated[
        str, typer.Option(help="inverse_vol, risk_parity, min_variance or max_sharpe.")
    ] = "risk_parity",
    window: Annotated[int, typer.Option(help="Trailing daily returns used.")] = 90,
    min_weight: Annotated[float, typer.Option(help="Smallest weight per asset.")] = 0.0,
    max_weight: Annotated[float, typer.Option(help="Largest weight per asset.")] = 1.0,
    cash_floor: Annotated[
        float | None, typer.Option(help="Weight kept in the quote (default: its target).")
    ] = None,
    max_turnover: Annotated[
        float | None, typer.Option(help="Largest sum of |weight changes| from the targets.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Folder of <ASSET>_<QUOTE>-1d.csv candle files.")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest targets from the trailing window of daily closes (nothing is changed).

    Example: `rebalancer targets suggest --method min_variance --max-weight 0.5`
    """
    import numpy as np

    from rebalancer.data.panel import load_demo_panel, load_panel
    from rebalancer.optimise.weights import (
        OPT_METHODS,
        Constraints,
        OptMethod,
        ledoit_wolf,
        optimise,
        sharpe_note,
        to_targets,
    )

    if method not in OPT_METHODS:
        raise ConfigError(f"--method: must be one of {', '.join(OPT_METHODS)}; found {method!r}")
    if window < 10:
        raise ConfigError(f"--window: needs at least 10 daily returns; found {window}")
    settings = settings_from(config)
    strategy = settings.strategy()
    assets = list(strategy.assets)
    folder = data or settings.paper.data_dir
    panel = (
        load_panel(folder, assets, "1d", quote=settings.quote)
        if folder is not None
        else load_demo_panel()
    )
    missing = [a for a in assets if a not in panel.closes.columns]
    if missing:
        raise ConfigError(f"no daily closes for {', '.join(missing)}: pass --data FOLDER")
    closes = panel.closes[assets].to_numpy(dtype=np.float64)
    if len(closes) < window + 1:
        raise ConfigError(
            f"--window {window} needs {window + 1} closes; the data has {len(closes)}"
        )
    returns = np.diff(np.log(closes[-window - 1 :]), axis=0)
    floor = float(strategy.targets.get(settings.quote, 0)) if cash_floor is None else cash_floor
    current = np.array([float(strategy.targets[a]) for a in assets])
    try:
        c = Constraints(min_weight, max_weight, floor, max_turnover)
        w, why = optimise(returns, cast(OptMethod, method), c, current)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cov, _ = ledoit_wolf(returns)
    vols = np.sqrt(np.diag(cov) * 365)
    rc = w * (cov @ w)
    share = rc / rc.sum() if rc.sum() > 0 else rc
    suggested = to_targets(assets, w, settings.quote, c)
    end = panel.closes.index[-1]
    if as_json:
        out = {
            "method": method,
            "window_end": end.isoformat(),
            "window": window,
            "suggested": {a: plain(v) for a, v in suggested.items()},
            "current": {a: plain(v) for a, v in strategy.targets.items()},
            "annual_vol": {a: float(v) for a, v in zip(assets, vols, strict=True)},
            "risk_share": {a: float(v) for a, v in zip(assets, share, strict=True)},
            "portfolio_annual_vol": why["annual_vol"],
            **{k: v for k, v in why.items() if k != "annual_vol"},
        }
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(title=f"{method} over {window} days to {end:%Y-%m-%d}", title_justify="left")
    for col in ("asset", "target now", "suggested", "annual vol", "risk share"):
        table.add_column(col, justify="right")
    for i, a in enumerate(assets):
        table.add_row(
            a,
            f"{strategy.targets[a]:.2%}",
            f"{suggested[a]:.2%}",
            f"{vols[i]:.0%}",
            f"{share[i]:.0%}",
        )
    q = settings.quote
    table.add_row(q, f"{strategy.targets.get(q, 0):.2%}", f"{suggested[q]:.2%}", "0%", "0%")
    console.print(table)
    console.print(
        f"Ledoit-Wolf shrinkage {why['shrinkage']:.2f}; portfolio volatility "
        f"{why['annual_vol']:.0%} a year; turnover from the targets {why['turnover']:.2f}"
    )
    if "sharpe" in why:
        console.print(sharpe_note(why))


def _weights(targets: Any) -> dict[str, str]:
    return {a: plain(w) for a, w in targets.items()}


def targets_state(settings: Settings, changes: list[TargetChange], now: datetime) -> dict[str, Any]:
    """What ``targets show`` reports: the config's targets, those in force (the latest
    change made under this config, else the config's), the changes, the next due time."""
    config = dict(settings.strategy().targets)
    opt = settings.optimise
    latest = changes[-1] if changes else None
    current = (
        latest is not None
        and latest.config_method == opt.method
        and latest.config_targets == config
    )
    applied: dict[str, Decimal] = dict(latest.new) if current and latest else config
    if not opt.on:
        source, next_at = "config ([optimise] method is off)", None
    elif current and latest is not None:
        source = "configured" if latest.method == "config" else latest.method
        source += f" since {latest.at:%Y-%m-%d %H:%M} UTC"
        next_at = next_due(settings.optimise_cadence(), latest.at)
    else:
        source = "config (the next cycle journals them; the optimiser runs from the next "
        source += "scheduled time)"
        next_at = next_due(settings.optimise_cadence(), now)
    return {
        "method": opt.method,
        "schedule": settings.optimise_cadence().describe() if opt.on else "off",
        "window": opt.window,
        "config": _weights(config),
        "applied": _weights(applied),
        "applied_source": source,
        "next_due": None if next_at is None else next_at.isoformat(),
        "changes": [
            {
                "at": c.at.isoformat(),
                "method": c.method,
                "old": _weights(c.old),
                "new": _weights(c.new),
                "explanation": c.explanation,
                "config_method": c.config_method,
            }
            for c in changes
        ],
    }


def show_command(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The targets in force: the config's, the ones applied now (optimised, `[optimise]`),
    every change journaled, and when the next change is due.

    Example: `rebalancer targets show --json`
    """
    from rebalancer.bootstrap import account_name, journal

    settings = settings_from(config)
    jr = journal(settings)
    try:
        changes = jr.target_changes()
    finally:
        jr.close()
    state = targets_state(settings, changes, datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps({"account": account_name(settings), **state}, indent=2))
        return
    console.print(
        f"[bold]{account_name(settings)}[/bold] · optimised targets: {state['method']} "
        f"({state['schedule']}, window {state['window']} days)",
        highlight=False,
    )
    table = Table(title=f"applied: {state['applied_source']}", title_justify="left")
    for col in ("asset", "config", "applied"):
        table.add_column(col, justify="right")
    for asset in dict.fromkeys([*state["config"], *state["applied"]]):
        cfg, now = state["config"].get(asset), state["applied"].get(asset)
        table.add_row(
            asset,
            "-" if cfg is None else f"{Decimal(cfg):.2%}",
            "-" if now is None else f"{Decimal(now):.2%}",
        )
    console.print(table)
    if state["next_due"]:
        console.print(f"next change due: {esc(state['next_due'])}", highlight=False)
    if not changes:
        console.print("no target change journaled yet")
        return
    history = Table(title="changes (journal)", title_justify="left")
    for col in ("at", "method", "new targets", "explanation"):
        history.add_column(col)
    for c in changes:
        history.add_row(
            f"{c.at:%Y-%m-%d %H:%M}",
            c.method,
            ", ".join(f"{a} {w:.2%}" for a, w in c.new.items()),
            c.explanation,
        )
    console.print(history)
