"""A self-contained HTML report of one backtest, plus the same charts as PNG files.

The HTML embeds every chart as a base64 PNG (matplotlib, Agg backend: no display needed),
so the one file can be mailed or archived. Charts: equity of the strategy against
buy-and-hold and the calendar benchmark (log scale, every rebalance marked), drawdowns, and
each leg's weight over time with its target and band. Tables: the metrics side by side,
every trade. The engine that ran it is named (compiled or replay). The reproducibility
block lists the data files with their sha256, the config (secrets redacted by the caller)
and the version that produced the report.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from rebalancer import __version__, templates
from rebalancer.backtest.engine import BacktestResult, Run
from rebalancer.backtest.metrics import CONVENTIONS
from rebalancer.reports import labels
from rebalancer.reports import regimes as regime_view

COLORS = {"strategy": "#1f77b4", "buy_and_hold": "#7f7f7f", "calendar": "#ff7f0e"}
LABELS = {
    "strategy": "strategy",
    "buy_and_hold": "buy-and-hold",
    "calendar": "calendar",
    "hold_start": "start held",
}


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: data files (asset -> path, sha256), config, command."""

    files: Mapping[str, Path] = field(default_factory=dict)
    sha256: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    command: str = ""
    data_notes: tuple[str, ...] = ()
    version: str = __version__


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: dict[str, Path]


# -- charts ------------------------------------------------------------------------------------

#: at most about this many points per line (long 5-minute histories are thinned for drawing)
MAX_POINTS = 4000


def _thin(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Indices of the points drawn: every ``step``-th bar, the last one included."""
    step = max(1, -(-n // MAX_POINTS))
    return np.unique(np.append(np.arange(0, n, step), n - 1)).astype(np.int64)


def _low_envelope(x: np.ndarray[Any, Any], n: int) -> np.ndarray[Any, Any]:
    """The minimum of ``x`` over each drawn point's stretch (keeps every trough visible)."""
    idx = _thin(n)
    return np.minimum.reduceat(x, idx)


def _runs(result: BacktestResult) -> list[Run]:
    return [result.run, *(b for k, b in result.benchmarks.items() if k != "hold_start")]


def equity_figure(result: BacktestResult, regimes: Mapping[str, Any] | None = None) -> Figure:
    """Equity of the strategy and the benchmarks; with ``regimes`` (a
    :class:`rebalancer.backtest.trust.regime_stats.RegimeReport`'s ``spans`` and
    ``vol_spans``) the market regimes shaded behind, named in the legend."""
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    for run in _runs(result):
        k = _thin(len(run.equity))
        ax.plot(
            run.times[k],
            run.equity[k],
            lw=1.2,
            color=COLORS.get(run.name),
            label=f"{LABELS.get(run.name, run.name)}: final {run.metrics.final_value:,.0f}",
        )
    run = result.run
    bars = run.rebalance_bars
    if bars:
        ax.scatter(
            run.times[bars],
            run.equity[bars],
            s=14,
            marker="o",
            color="#d62728",
            zorder=3,
            label=f"rebalance ({len(bars)})",
        )
    ax.set_yscale("log")
    ax.set_ylabel(f"value ({run.strategy.quote}, log scale)")
    ax.set_title("Equity: strategy vs benchmarks")
    ax.grid(True, which="both", alpha=0.3)
    handles = []
    if regimes is not None and regimes.get("spans"):
        handles = regime_view.shade(ax, run.times, regimes["spans"], regimes["vol_spans"])
        ax.set_title("Equity: strategy vs benchmarks, market regimes shaded")
    regime_view.add_legend(ax, handles)
    fig.tight_layout()
    return fig


def drawdown_figure(result: BacktestResult) -> Figure:
    fig, ax = plt.subplots(figsize=(11, 3.4), dpi=100)
    for run in _runs(result):
        peak = np.maximum.accumulate(run.equity)
        dd = -(1 - run.equity / peak) * 100
        ax.plot(
            run.times[_thin(len(dd))],
            _low_envelope(dd, len(dd)),
            lw=1.0,
            color=COLORS.get(run.name),
            label=f"{LABELS.get(run.name, run.name)} (max {run.metrics.max_drawdown:.1%})",
        )
    ax.set_ylabel("drawdown (%)")
    ax.set_title("Drawdown from the running peak")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def weights_figure(result: BacktestResult) -> Figure:
    run = result.run
    strategy = run.strategy
    legs = [c for c in run.weights.columns if float(strategy.targets.get(str(c), 0)) > 0]
    legs = legs or list(run.weights.columns)
    threshold = strategy.threshold
    fig, axes = plt.subplots(
        len(legs), 1, figsize=(11, 1.6 * len(legs) + 0.8), dpi=100, sharex=True, squeeze=False
    )
    for ax, leg in zip(axes[:, 0], legs, strict=True):
        target = strategy.targets.get(str(leg))
        k = _thin(len(run.times))
        ax.plot(run.times[k], run.weights[leg].to_numpy()[k] * 100, lw=0.9, color="#1f77b4")
        if target is not None:
            ax.axhline(float(target) * 100, color="black", lw=0.8, ls="--")
            if threshold is not None:
                width = float(threshold.band_width(target)) * 100
                ax.axhspan(
                    float(target) * 100 - width,
                    float(target) * 100 + width,
                    color="#2ca02c",
                    alpha=0.12,
                )
        if run.rebalance_bars:
            ax.vlines(
                run.times[run.rebalance_bars],
                0,
                1,
                transform=ax.get_xaxis_transform(),
                color="#d62728",
                lw=0.4,
                alpha=0.35,
            )
        ax.set_ylabel(f"{leg} %", fontsize=8)
        ax.grid(True, alpha=0.3)
    band = threshold.describe() if threshold is not None else "no band"
    axes[0, 0].set_title(
        f"Weights over time: target (dashed), band ({band}, shaded), rebalances (red)"
    )
    fig.tight_layout()
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# -- html --------------------------------------------------------------------------------------

#: (label, summary key, format): ``pct`` a signed return, ``pct0`` an unsigned percentage,
#: ``dd`` a drawdown (shown as a loss)
_METRIC_ROWS: list[tuple[str, str, str]] = [
    ("final value", "final_value", "money"),
    ("total return", "total_return", "pct"),
    ("CAGR", "cagr", "pct"),
    ("volatility (ann.)", "volatility", "pct0"),
    ("Sharpe", "sharpe", "num"),
    ("Sortino", "sortino", "num"),
    ("max drawdown", "max_drawdown", "dd"),
    ("max drawdown duration (days)", "max_drawdown_days", "num0"),
    ("Calmar", "calmar", "num"),
    ("rebalances", "rebalances", "int"),
    ("orders", "orders", "int"),
    ("traded", "traded", "money"),
    ("turnover (x)", "turnover", "num"),
    ("fees", "fees", "money"),
    ("realised gains (FIFO lots)", "realised_gain_fifo", "money"),
]


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "money":
        return f"{value:,.2f}"
    if kind in ("pct", "pct0"):
        return labels.pct(value, signed=kind == "pct")
    if kind == "dd":
        return labels.drawdown(value)
    if kind == "int":
        return f"{int(value)}"
    if kind == "num0":
        return f"{value:,.0f}"
    return f"{value:.3f}"


@dataclass(frozen=True)
class TableData:
    """A table for a template: header cells and rows of plain text (escaped when shown)."""

    headers: list[str]
    rows: list[list[str]]


def metrics_table(result: BacktestResult) -> TableData:
    runs = [result.run, *result.benchmarks.values()]
    summaries = [r.summary() for r in runs]
    rows = [[label, *(_fmt(s[key], kind) for s in summaries)] for label, key, kind in _METRIC_ROWS]
    return TableData(["", *(LABELS.get(r.name, r.name) for r in runs)], rows)


def trades_table(result: BacktestResult) -> TableData:
    frame = result.trades_frame()
    rows = [
        [
            str(r["time"])[:19],
            str(r["asset"]),
            str(r["side"]),
            f"{r['amount']:.8g}",
            f"{r['price']:.8g}",
            f"{r['cost']:,.2f}",
            f"{r['fee']:.6g} {r['fee_asset']}",
            f"{r['fee_quote']:.4f}",
            str(r["reason"]),
        ]
        for r in frame.to_dict("records")
    ]
    headers = ["time", "asset", "side", "amount", "price", "cost", "fee", "fee (quote)", "reason"]
    return TableData(headers, rows)


#: what each engine is, in the report's words
ENGINE_TEXT = {
    "compiled": "compiled: the live cycle's model (triggers, planner, sells first, re-planned "
    "buys, paper fills) in the compiled kernel, tested equal to the Decimal replay",
    "replay": "replay: the live loop itself, bar by bar in Decimal (service.run_cycle on a "
    "paper exchange)",
}


def engine_text(engine: str) -> str:
    return ENGINE_TEXT.get(engine, engine)


def config_json(prov: Provenance) -> str:
    return json.dumps(prov.config, indent=2, sort_keys=True, default=str)


def candle_window(result: BacktestResult) -> str:
    """``2024-10-01 → 2026-01-29 (486 daily bars)``: first and last candle (open times)."""
    times, bar = result.run.times, result.bar
    return labels.window_text(times[0] - bar, times[-1] - bar, len(times), bar)


def render_html(
    result: BacktestResult,
    images: Mapping[str, bytes],
    prov: Provenance,
    regimes: Mapping[str, Any] | None = None,
) -> str:
    """The page; ``regimes`` (a ``RegimeReport.to_dict()``) adds the per-regime section."""
    run = result.run
    prem = result.premium
    premium = (
        "n/a"
        if prem is None
        else f"{labels.pct(prem.total)} total, {labels.pct(prem.annualised)} a year"
    )
    strategy = run.strategy
    return templates.render(
        "backtest.html",
        window=candle_window(result),
        bars=labels.bars_text(len(run.times), result.bar),
        targets=", ".join(f"{a} {float(w) * 100:g}%" for a, w in strategy.targets.items()),
        rule=strategy.trigger.describe(),
        style=strategy.policy.style,
        taker_fee=f"{float(result.taker_fee) * 100:g}%",
        slippage=f"{float(result.slippage) * 100:g}%",
        min_trade=strategy.policy.min_trade,
        quote=strategy.quote,
        engine=engine_text(result.engine),
        premium=premium,
        metrics=metrics_table(result),
        images=[(name, templates.png_uri(data)) for name, data in images.items()],
        trades=trades_table(result),
        prov=prov,
        config_json=config_json(prov),
        conventions=CONVENTIONS,
        regimes=regime_view.section(regimes),
    )


def write_report(
    result: BacktestResult,
    out_dir: Path,
    prov: Provenance | None = None,
    regimes: Any = None,
) -> ReportFiles:
    """Write ``report.html`` and ``equity.png``, ``drawdown.png``, ``weights.png``;
    ``regimes`` (a :class:`rebalancer.backtest.trust.regime_stats.RegimeReport`) shades the
    equity chart and adds the per-regime table."""
    prov = prov or Provenance()
    shading = None if regimes is None else {"spans": regimes.spans, "vol_spans": regimes.vol_spans}
    table = None if regimes is None else regimes.to_dict()
    images = {
        "equity": _png(equity_figure(result, shading)),
        "drawdown": _png(drawdown_figure(result)),
        "weights": _png(weights_figure(result)),
    }
    return write_files(out_dir, images, render_html(result, images, prov, table))


def write_files(
    out_dir: Path, images: Mapping[str, bytes], html: str, name: str = "report.html"
) -> ReportFiles:
    """``<image>.png`` for each image and the page ``name`` into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, Path] = {}
    for image, data in images.items():
        path = out_dir / f"{image}.png"
        path.write_bytes(data)
        pngs[image] = path
    page = out_dir / name
    page.write_text(html, encoding="utf-8")
    return ReportFiles(page, pngs)
