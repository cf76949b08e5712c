"""``rebalancer advise``: which band to trust, at which fee, with how much confidence.

Parse -> load config and candles -> :func:`rebalancer.backtest.trust.advise.advise_rules` on
the compiled full-semantics engine (every kind and style; ``--semantics reference``: the
reference kernel, ``abs`` bands only) -> render (text, or ``--json``) and write
``advise.json``, ``advise.txt`` and ``advise_report.html`` into ``--out``.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rebalancer.cli import render
from rebalancer.cli.backtest_cmd import (
    CapitalOpt,
    DataDirOpt,
    EndOpt,
    OutOpt,
    SchedulerOpt,
    StartOpt,
    TimeframeOpt,
    _bar,
    _clean,
    _decimal,
    _names,
    _provenance,
    _settings,
    _window,
    bars_in,
    data_lines,
    load_data,
    parse_numbers,
)
from rebalancer.cli.options import ConfigOpt, JsonOpt, KindsOpt, StylesOpt
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

if TYPE_CHECKING:  # numpy, pandas and arch are imported when the command runs
    from rebalancer.backtest.trust.advise import Advice

#: ``rebalancer.backtest.trust.regimes``' defaults (a test keeps them equal)


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _num(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _dsr_line(d: dict[str, Any]) -> str:
    if d.get("dsr") is None:
        return f"Deflated Sharpe: n/a ({d.get('note', 'not computed')})."
    rule = d.get("rule") or f"{d['band']:.0%}"
    return (
        f"Deflated Sharpe of the best-Sharpe row ({rule}): {d['dsr']:.2f} (Sharpe "
        f"{d['sharpe_annual']:.2f} vs {d['sr0_annual']:.2f} expected from {d['trials']} "
        "unskilled trials, annualised)."
    )


def render_text(a: Advice, head: str) -> str:
    """The advice as plain text: verdict first, then the evidence."""
    c, b = a.candidate, a.bootstrap
    lvl = f"{b['level']:.0%}"
    word = {
        "recommend": "RECOMMEND",
        "weak": "NO RECOMMENDATION (weak evidence)",
        "hold": "HOLD (buy-and-hold beat every band)",
    }[a.verdict]
    from rebalancer.backtest.trust.advise import rule_name

    lines = [
        head,
        f"Engine: {a.engine.get('label', 'n/a')}.",
        "",
        f"Verdict: {word} — candidate {rule_name(c)} at fee {c['fee_rate']:.3%}",
    ]
    lines += [f"  - {r}" for r in a.reasons]
    lines += [
        "",
        f"Candidate (best lower bound of the premium): premium {_pct(c['premium'])} on the "
        f"data, {lvl} interval [{_pct(c['premium_low'])}, {_pct(c['premium_high'])}] "
        f"(median {_pct(c['premium_median'])}), beats buy-and-hold in {c['p_beat']:.0%} of "
        f"{b['reps']} resamples; neighbours {_pct(c['neighbours_premium'])} ({c['shape']}).",
        f"Bootstrap: stationary blocks, mean length {b['block_length_bars']:g} bars, seed "
        f"{b['seed']}.",
        f"PBO (CSCV, {a.pbo['splits']} splits, {a.pbo['combinations']} combinations, "
        f"{a.pbo['configurations']} rows): {a.pbo['pbo']:.2f} (weak above {a.pbo['limit']}).",
        _dsr_line(a.deflated_sharpe),
        "",
        f"{'rule':>16} {'premium':>8} {lvl + ' interval':>20} {'P(beat)':>8} {'Sharpe':>7} "
        f"{'max DD':>7} {'shape':>8}",
    ]
    for r in a.rows:
        lines.append(
            f"{rule_name(r):>16} {_pct(r['premium']):>8} "
            f"{'[' + _pct(r['premium_low']) + ', ' + _pct(r['premium_high']) + ']':>20} "
            f"{r['p_beat']:>8.0%} {_num(r['sharpe']):>7} {_pct(r['max_drawdown'], False):>7} "
            f"{r['shape']:>8}"
        )
    o = a.regime_options
    if any(_num(r["sharpe"]) == "n/a" for r in a.rows):
        lines.append("(n/a: no finite value: the Sharpe ratio of a flat equity curve)")
    lines += [
        "",
        f"Regimes of the candidate (buy-and-hold trailing {o['window']} bars: bull > "
        f"{o['bull']:+.0%}, bear < {o['bear']:+.0%}; high-vol above the {o['vol_quantile']:.0%} "
        "quantile; the first window is warm-up):",
        f"{'regime':>9} {'bars':>5} {'premium':>8} {'per year':>9} {'turnover':>9} "
        f"{'fees':>9} {'rule DD':>8} {'B&H DD':>8}",
    ]
    for g in a.regimes:
        if g["bars"] == 0:
            lines.append(f"{g['regime']:>9} {0:>5}  {g['note']}")
            continue
        lines.append(
            f"{g['regime']:>9} {g['bars']:>5} {_pct(g['premium']):>8} "
            f"{_pct(g['premium_per_year']):>9} {g['turnover']:>9.2f} {g['fees']:>9.2f} "
            f"{_pct(g['max_drawdown'], False):>8} {_pct(g['bh_max_drawdown'], False):>8}"
        )
    return "\n".join(lines)


def advise_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timeframe: TimeframeOpt = "1d",
    capital: CapitalOpt = 10000.0,
    bands: Annotated[
        str, typer.Option("--bands", help="Bands to choose from: a list or start:stop:step.")
    ] = "0.01:0.25:0.01",
    kinds: KindsOpt = "abs",
    styles: StylesOpt = "target",
    semantics: Annotated[
        str,
        typer.Option(
            "--semantics",
            help="full: the compiled engine with the bot's own rule, as sweep's rows (the "
            "config's policy, its venue's market rules and fee side; every kind); reference: "
            "the reference kernel (abs bands, trade back to target, no frictions).",
        ),
    ] = "full",
    fee: Annotated[
        float | None, typer.Option("--fee", help="Taker fee rate (default: the config's).")
    ] = None,
    reps: Annotated[int, typer.Option("--reps", help="Bootstrap resamples.")] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", help="Bootstrap seed (same seed, same figures).")
    ] = 0,
    level: Annotated[float, typer.Option("--level", help="Two-sided interval level.")] = 0.9,
    block_length: Annotated[
        int | None,
        typer.Option("--block-length", help="Mean block in bars (default: Politis-White)."),
    ] = None,
    splits: Annotated[int, typer.Option("--splits", help="CSCV blocks for PBO (even).")] = 16,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Processes for the resamples (1: in this process, one kernel thread; more "
            "pays off only on idle cores). Same figures for any count.",
        ),
    ] = 1,
    regime_window: RegimeWindowOpt = DEFAULT_WINDOW,
    bull: BullOpt = DEFAULT_BULL,
    bear: BearOpt = DEFAULT_BEAR,
    vol_quantile: VolQuantileOpt = DEFAULT_VOL_QUANTILE,
    out: OutOpt = Path("out"),
    as_json: JsonOpt = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: this machine; dask: the resamples on a Dask cluster (needs "
            "--scheduler and the 'cluster' extra). Same figures for a seed either way.",
        ),
    ] = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    """Which band to trust: the band with the best lower confidence bound on its premium over
    buy-and-hold, its odds of beating it, its regime profile and the sweep's PBO.

    Says plainly when the evidence is weak (the interval straddles zero, or PBO > 0.5)
    instead of recommending. Runs on the compiled engine with the bot's own semantics for
    every --kinds and --styles (--semantics reference: the reference kernel, abs only).
    Writes `advise_report.html` (verdict, per-band intervals, PBO, deflated Sharpe,
    robustness chart, heatmap with the advised band starred, regimes, data hashes),
    `advise.json` and `advise.txt` into --out.

    Example: `rebalancer advise -c g1.toml --data-dir candles
    --start 2018-05-04 --fee 0.001`

    On a Dask cluster: add `--executor dask --scheduler tcp://HOST:8786`.
    """
    settings = _settings(config)
    strategy = settings.strategy()
    panel = load_data(settings, data_dir, timeframe, start, end)
    bar = _bar(panel)
    taker = float(settings.fees.taker if fee is None else _decimal(fee, "--fee"))
    if taker >= 1:
        raise ConfigError(f"--fee must be below 1 (0.001 = 0.1 %), got {taker}")
    if semantics not in ("full", "reference"):
        raise ConfigError(f"--semantics must be 'full' or 'reference', not {semantics!r}")
    from rebalancer.backtest.executors import make_executor
    from rebalancer.backtest.grid import combos
    from rebalancer.backtest.trust.advise import (
        AdviseOptions,
        advise_rules,
        check_rules,
        reference_engine,
    )
    from rebalancer.backtest.trust.full_runner import full_engine
    from rebalancer.backtest.trust.regimes import RegimeOptions
    from rebalancer.backtest.trust.runner import KERNEL_KINDS, Rule

    grid = combos(parse_numbers(bands, "--bands"), [taker], _names(kinds), _names(styles))
    rules = [Rule(c.kind, c.band, c.fee_rate, c.style) for c in grid]
    check_rules(rules)
    money = float(_decimal(capital, "--capital"))
    prices = panel.closes.to_numpy(dtype="float64")
    if semantics == "reference":
        if any(r.kind not in KERNEL_KINDS or r.style != "target" for r in rules):
            raise ConfigError(
                "--semantics reference runs the reference kernel: abs bands with style target "
                "only; drop --semantics reference for other --kinds/--styles"
            )
        targets = [float(strategy.targets[a]) for a in strategy.assets]
        engine = reference_engine(prices, targets, rules, money, bar.total_seconds())
    else:
        from rebalancer.cli.backtest_cmd import _market

        market = _market(settings, panel, strategy)
        engine = full_engine(
            panel.closes, strategy, rules, capital=money, bar=bar, market=market
        )
    remote = make_executor(executor, scheduler)
    with remote or nullcontext():
        options = AdviseOptions(
            reps=reps,
            seed=seed,
            level=level,
            block=block_length,
            splits=splits,
            workers=workers,
            client=None if remote is None else remote.client,
            regimes=RegimeOptions(
                window=bars_in(regime_window, bar, "--regime-window"),
                bull=bull,
                bear=bear,
                vol_quantile=vol_quantile,
            ),
        )
        advice = advise_rules(
            prices, engine, bar_seconds=bar.total_seconds(), options=options
        )
    where = "local" if remote is None else f"dask {remote.address}"
    data: dict[str, Any] = {
        "start": panel.start.isoformat(),
        "end": panel.end.isoformat(),
        "bars": len(panel.closes),
        "window": _window(panel),
        "targets": {k: float(v) for k, v in strategy.targets.items()},
        "executor": where,
        **advice.to_dict(),
        "data": {"sha256": dict(panel.sha256), "issues": list(panel.report.issues)},
    }
    targets_text = ", ".join(f"{k} {float(v):.0%}" for k, v in strategy.targets.items())
    head = "\n".join([*data_lines(panel), f"Targets {targets_text}."])
    text = render_text(advice, head)
    from rebalancer.reports.advise import write_advise_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "advise.json").write_text(json.dumps(_clean(data), indent=2) + "\n")
    (out / "advise.txt").write_text(text + "\n")
    report = write_advise_report(
        _clean(data),
        out,
        _provenance(panel, settings),
        window=_window(panel),
        targets=targets_text,
        executor=where,
    )
    if as_json:
        typer.echo(render.to_json(_clean(data)))
        return
    typer.echo(text)
    typer.echo(f"\nWrote {out / 'advise.json'}, {out / 'advise.txt'}, {report}")
