"""The advice: which band to trust at a fee, with how much confidence, or why none.

For a list of bands at one fee rate over one panel (:func:`advise`):

1. every band and its buy-and-hold run on the real panel (equity per bar);
2. a stationary block bootstrap (:mod:`.bootstrap`) gives each band a percentile interval
   of its final-value premium over buy-and-hold, of its Sharpe ratio and max drawdown, and
   its share of resamples beating buy-and-hold;
3. PBO by CSCV and the deflated Sharpe ratio of the best row (:mod:`.overfit`) on the
   bands' per-bar log returns, and each band's premium next to its neighbours';
4. the **candidate** is the band with the highest *lower* bound of the premium interval;
   its regime profile (:mod:`.regimes`) comes from the reference run of that band.

**Verdict**: ``recommend`` only when the candidate's interval lies above zero and PBO is at
most :data:`PBO_LIMIT`; ``hold`` when even the candidate's interval lies below zero
(buy-and-hold beat every band in nearly all resamples); ``weak`` otherwise, with each reason
spelled out (an interval straddling zero, PBO above the limit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rebalancer.backtest.reference import FloatArray
from rebalancer.backtest.trust.bootstrap import BootstrapResult, bootstrap_rows, check_panel
from rebalancer.backtest.trust.overfit import (
    DeflatedSharpe,
    PboResult,
    check_pbo,
    deflated_sharpe_of_best,
    pbo_cscv,
    robustness,
)
from rebalancer.backtest.trust.regimes import BarFlows, RegimeOptions, label_bars, regime_table
from rebalancer.backtest.trust.runner import KernelRunner, RowRunner, Rule, reference_run
from rebalancer.core.errors import ConfigError

PBO_LIMIT = 0.5
SECONDS_PER_YEAR = 365 * 86_400


@dataclass(frozen=True)
class AdviseOptions:
    """Bootstrap, PBO and regime settings (defaults documented in the README)."""

    reps: int = 1000
    seed: int = 0
    level: float = 0.90
    block: int | None = None
    splits: int = 16
    workers: int | None = 1
    regimes: RegimeOptions | None = None
    tolerance: float = 0.02
    #: a ``distributed.Client``: the resamples run on that Dask cluster
    client: Any = None


@dataclass(frozen=True)
class Advice:
    """Everything :func:`advise` found; :meth:`to_dict` is the ``--json`` payload."""

    verdict: str
    reasons: list[str]
    candidate: dict[str, Any]
    rows: list[dict[str, Any]]
    pbo: dict[str, Any]
    deflated_sharpe: dict[str, Any]
    regimes: list[dict[str, Any]]
    bootstrap: dict[str, Any]
    regime_options: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shapes(
    rules: Sequence[Rule], premiums: Sequence[float], tolerance: float
) -> list[dict[str, Any]]:
    """Per rule (its order), its neighbours' premium and shape among the bands of the same
    kind, style and fee (:func:`robustness`)."""
    groups: dict[tuple[str, str, float], list[int]] = {}
    for i, r in enumerate(rules):
        groups.setdefault((r.kind, r.style, r.fee_rate), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in rules]
    for members in groups.values():
        bands = [rules[i].band for i in members]
        by_band = {
            s["band"]: s
            for s in robustness(bands, [premiums[i] for i in members], tolerance=tolerance)
        }
        for i in members:
            out[i] = by_band[rules[i].band]
    return out


def _rows(
    rules: Sequence[Rule], boot: BootstrapResult, shapes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for rule, b, shape in zip(rules, boot.rows, shapes, strict=True):
        out.append(
            {
                "kind": rule.kind,
                "style": rule.style,
                "band": rule.band,
                "fee_rate": rule.fee_rate,
                "premium": b.premium.point,
                "premium_low": b.premium.low,
                "premium_high": b.premium.high,
                "premium_median": b.premium.median,
                "p_beat": b.p_beat,
                "sharpe": b.sharpe.point,
                "sharpe_low": b.sharpe.low,
                "sharpe_high": b.sharpe.high,
                "max_drawdown": b.max_drawdown.point,
                "max_drawdown_low": b.max_drawdown.low,
                "max_drawdown_high": b.max_drawdown.high,
                "neighbours_premium": shape["neighbours"],
                "shape": shape["shape"],
            }
        )
    return out


def rule_name(row: dict[str, Any]) -> str:
    """``abs 5%`` or ``rel band_edge 12%``: a row's kind, style (when not target) and band."""
    style = "" if row.get("style", "target") == "target" else f" {row['style']}"
    return f"{row['kind']}{style} {row['band']:.0%}"


def _verdict(candidate: dict[str, Any], pbo: PboResult, level: float) -> tuple[str, list[str]]:
    lo, hi = candidate["premium_low"], candidate["premium_high"]
    band = f"the {rule_name(candidate)} band"
    ci = f"{level:.0%} interval of its premium [{lo:+.1%}, {hi:+.1%}]"
    reasons = []
    if hi < 0:
        return "hold", [
            f"even {band}, the best by lower bound, trails buy-and-hold: the {ci} lies below "
            "zero; holding beat rebalancing by band on this data"
        ]
    if lo <= 0:
        reasons.append(f"the {ci} straddles zero: the data cannot tell {band} from buy-and-hold")
    if pbo.pbo > PBO_LIMIT:
        reasons.append(
            f"PBO {pbo.pbo:.2f} > {PBO_LIMIT}: the band that looks best in-sample ranks below "
            "the median out of sample in most splits, so the choice of band is mostly luck"
        )
    if reasons:
        return "weak", reasons
    return "recommend", [f"{band}'s {ci} lies above zero and PBO {pbo.pbo:.2f} <= {PBO_LIMIT}"]


@dataclass(frozen=True)
class Engine:
    """What :func:`advise_rules` runs on: ``runner`` for every rule's statistics, equity
    curves and resamples, and ``profile(rule)``: that rule's equity, buy-and-hold's equity
    and the rule's per-bar flows on the real panel (for the regime profile). ``label``
    names the engine and semantics in the reports."""

    runner: RowRunner
    profile: Callable[[Rule], tuple[FloatArray, FloatArray, BarFlows]]
    label: str
    semantics: str


def reference_engine(
    prices: FloatArray, targets: Sequence[float], rules: Sequence[Rule], capital: float,
    bar_seconds: float,
) -> Engine:
    """The compiled reference kernel (``abs`` bands, trade back to target, frictionless)."""
    runner = KernelRunner(targets, rules, capital=capital, bar_seconds=bar_seconds)
    return Engine(
        runner=runner,
        profile=lambda rule: reference_run(prices, targets, rule, capital),
        label="compiled reference kernel (abs bands, trade back to target, no frictions)",
        semantics="reference",
    )


def check_rules(rules: Sequence[Rule]) -> None:
    """At least two distinct rows: PBO and the neighbours compare rows."""
    if len(set(rules)) < 2:
        raise ConfigError(
            "advise compares bands: give at least 2 (--bands 0.01:0.25:0.01, or more "
            f"--kinds); got {len(set(rules))} ({', '.join(r.label for r in rules) or 'none'})"
        )


def advise(
    prices: FloatArray,
    targets: Sequence[float],
    bands: Sequence[float],
    fee_rate: float,
    *,
    capital: float = 10_000.0,
    bar_seconds: float = 86_400.0,
    options: AdviseOptions | None = None,
) -> Advice:
    """The advice for ``abs`` ``bands`` at ``fee_rate`` on the reference kernel."""
    p = np.ascontiguousarray(prices, dtype=np.float64)
    rules = [Rule("abs", float(b), float(fee_rate)) for b in sorted(set(bands))]
    check_rules(rules)
    engine = reference_engine(p, targets, rules, capital, bar_seconds)
    return advise_rules(p, engine, bar_seconds=bar_seconds, options=options)


def advise_rules(
    prices: FloatArray,
    engine: Engine,
    *,
    bar_seconds: float = 86_400.0,
    options: AdviseOptions | None = None,
) -> Advice:
    """The advice for ``engine.runner.rules`` over ``prices`` (see the module docstring)."""
    opt = options or AdviseOptions()
    p = np.ascontiguousarray(prices, dtype=np.float64)
    runner = engine.runner
    rules = list(runner.rules)
    check_rules(rules)
    regime_opts = opt.regimes or RegimeOptions(window=max(2, round(90 * 86_400 / bar_seconds)))
    regime_opts.check(p.shape[0])  # before the long runs, not after them
    if opt.block is not None:
        check_panel(p.shape[0], opt.block)
    check_pbo(p.shape[0] - 1, len(rules), opt.splits)
    returns = np.diff(np.log(runner.paths(p).equity), axis=1).T  # (bars - 1, rows)
    pbo = pbo_cscv(returns, opt.splits)
    try:
        best, dsr = deflated_sharpe_of_best(returns)
        dsr_out = _dsr(dsr, rules[best], bar_seconds)
    except ConfigError as exc:  # degenerate returns: say why instead of a NaN
        dsr_out = {"dsr": None, "note": str(exc)}
    boot = bootstrap_rows(
        runner,
        p,
        reps=opt.reps,
        seed=opt.seed,
        block=opt.block,
        level=opt.level,
        workers=opt.workers,
        client=opt.client,
    )
    shapes = _shapes(rules, [b.premium.point for b in boot.rows], opt.tolerance)
    rows = _rows(rules, boot, shapes)
    real = runner.stats(p)
    for k, row in enumerate(rows):
        row["final_value"] = float(real.final_value[k])
        row["bh_final_value"] = float(real.bh_final_value[k])
    lows = np.array([r["premium_low"] for r in rows])
    if not np.isfinite(lows).any():
        raise ConfigError("every bootstrap resample failed: the panel is too short or degenerate")
    pick = int(np.nanargmax(lows))
    candidate = rows[pick]
    verdict, reasons = _verdict(candidate, pbo, opt.level)
    equity, bh, flows = engine.profile(rules[pick])
    labels = label_bars(bh, regime_opts)
    regimes = regime_table(equity, bh, flows, labels, SECONDS_PER_YEAR / bar_seconds)
    return Advice(
        verdict=verdict,
        reasons=reasons,
        candidate=candidate,
        rows=rows,
        pbo={
            "pbo": pbo.pbo,
            "splits": pbo.splits,
            "combinations": pbo.combinations,
            "configurations": pbo.configurations,
            "limit": PBO_LIMIT,
        },
        deflated_sharpe=dsr_out,
        regimes=regimes,
        bootstrap={
            "reps": boot.reps,
            "block_length_bars": boot.block,
            "level": boot.level,
            "seed": boot.seed,
        },
        regime_options={**asdict(regime_opts), "vol_cutoff_per_bar": labels.vol_cutoff},
        engine={"label": engine.label, "semantics": engine.semantics},
    )


def _dsr(d: DeflatedSharpe, rule: Rule, bar_seconds: float) -> dict[str, Any]:
    scale = math.sqrt(SECONDS_PER_YEAR / bar_seconds)
    return {
        "band": rule.band,
        "rule": rule_name({"kind": rule.kind, "style": rule.style, "band": rule.band}),
        "dsr": d.dsr,
        "sharpe_annual": d.sr * scale,
        "sr0_annual": d.sr0 * scale,
        "trials": d.trials,
        "bars": d.bars,
        "skew": d.skew,
        "kurtosis": d.kurtosis,
        "note": "",
    }
