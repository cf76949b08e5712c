"""The paper-trading (or live) report from the journal: ``rebalancer report --since 14d``.

Equity over time against buy-and-hold of the starting holdings, every trade and its fee,
drift history with the bands, halts. Written as ``report.html`` (charts embedded as PNG,
the one file can be mailed or archived) beside ``equity.png`` and ``drift.png``; the same
numbers are what the dashboard's ``/api/summary`` serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from rebalancer import __version__, templates
from rebalancer.core.flows import Performance
from rebalancer.core.strategy import Strategy
from rebalancer.reports.backtest import ReportFiles, TableData, _png, write_files
from rebalancer.web import view


@dataclass(frozen=True)
class Report:
    account: str
    mode: str
    since: datetime | None
    strategy: Strategy | None
    rows: view.Rows
    summary: view.Summary
    equity: view.Equity
    drift: view.DriftHistory
    weights: view.Weights
    performance: Performance  # cash flows separated from performance (time-weighted return)
    prices: str = ""  # paper: which prices the last trading run used ("" not known, live)


def build_report(
    rows: view.Rows,
    strategy: Strategy | None,
    *,
    account: str,
    mode: str,
    since: datetime | None,
    prices: str = "",
) -> Report:
    """The report of ``rows``; ``prices``: the paper price source, in words (or "")."""
    quote = strategy.quote if strategy is not None else "USDT"
    return Report(
        account,
        mode,
        since,
        strategy,
        rows,
        view.summary(rows, quote),
        view.equity(rows, quote),
        view.drift_history(rows),
        view.weights(rows, strategy, quote),
        view.performance(rows),
        prices,
    )


# -- charts -------------------------------------------------------------------------------------


def _days(times: list[datetime]) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """Matplotlib's date numbers (days since 1970-01-01 UTC) for aware datetimes."""
    return np.array([t.timestamp() / 86400 for t in times], dtype=np.float64)


def equity_figure(r: Report) -> Figure:
    fig, ax = plt.subplots(figsize=(11, 4.4), dpi=90)
    pts = r.equity.points
    times = _days([p.at for p in pts])
    ax.plot(times, [float(p.value) for p in pts], lw=1.4, color="#1f77b4", label="strategy")
    ax.plot(times, [float(p.hold) for p in pts], lw=1.2, color="#7f7f7f", label="buy-and-hold")
    traded = sorted({f["at"] for f in r.rows.get("fills", [])})
    if traded:
        value_at = {p.at: float(p.value) for p in pts}
        marks = [t for t in traded if t in value_at]
        ax.scatter(
            _days(marks),
            [value_at[t] for t in marks],
            s=16,
            color="#d62728",
            zorder=3,
            label=f"rebalance ({len(marks)})",
        )
    for h in r.rows.get("halts", []):
        if h["kind"] == "halt":
            ax.axvline(float(_days([h["at"]])[0]), color="#c62828", lw=1, ls=":")
    ax.xaxis_date()
    ax.set_ylabel(f"value ({r.summary.quote})")
    ax.set_title("Equity at each check vs buy-and-hold of the starting holdings")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def drift_figure(r: Report) -> Figure:
    d = r.drift
    legs = list(d.drift) or ["-"]
    fig, axes = plt.subplots(
        len(legs), 1, figsize=(11, 1.5 * len(legs) + 0.8), dpi=90, sharex=True, squeeze=False
    )
    for ax, leg in zip(axes[:, 0], legs, strict=True):
        values = [float(x) * 100 for x in d.drift.get(leg, [])]
        ax.plot(_days(d.times), values, lw=0.9, color="#1f77b4")
        ax.xaxis_date()
        ax.axhline(0, color="black", lw=0.6)
        target = d.targets.get(leg)
        if target is not None:
            low, high = view.band_of(r.strategy, target)
            if low is not None and high is not None:
                ax.axhspan(
                    float(low - target) * 100,
                    float(high - target) * 100,
                    color="#2ca02c",
                    alpha=0.12,
                )
        ax.set_ylim(*_drift_limits(values, r.strategy, target))
        ax.set_ylabel(f"{leg} drift %", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_title(
        f"Drift at each check (weight − target), band {view.band_text(r.strategy)} shaded;"
        " the axis shows most checks (a first check from cash may lie beyond it)",
        fontsize=10,
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _drift_limits(
    values: list[float], strategy: Strategy | None, target: Decimal | None
) -> tuple[float, float]:
    """±(2.5 bands, or the 98th percentile of |drift| if larger), in percent."""
    width = 0.0
    if strategy is not None and strategy.threshold is not None and target is not None:
        w = strategy.threshold.band_width(target)
        width = float(w) * 100 if w.is_finite() else 0.0
    spread = float(np.percentile(np.abs(values), 98)) * 1.1 if values else 0.0
    lim = max(2.5 * width, spread, 0.5)
    return -lim, lim


# -- html ---------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.2f}%"


def _when(t: datetime | None) -> str:
    return "-" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def summary_rows(r: Report) -> list[tuple[str, str]]:
    """The headline numbers as (label, text): printed by the CLI, tabled in the HTML."""
    s, q, p = r.summary, r.summary.quote, r.performance
    fees_assets = ", ".join(f"{v:.8g} {k}" for k, v in s.fees_by_asset.items())
    prices = [("paper prices", r.prices)] if r.prices else []
    return [
        *prices,
        ("period", f"{_when(s.start)} → {_when(s.end)}"),
        ("checks", str(s.checks)),
        ("rebalances (checks that traded)", str(s.rebalances)),
        ("fills", str(s.fills)),
        ("orders not filled", str(s.orders_not_filled)),
        ("start value", f"{s.start_value:,.2f} {q}"),
        ("end value", f"{s.end_value:,.2f} {q}"),
        ("return", _pct(s.total_return)),
        ("time-weighted return (flows taken out)", _pct(float(p.twr)) if s.checks else "n/a"),
        ("deposits − withdrawals", f"{p.net_flows:+,.2f} {q} ({len(p.flows)} flows)"),
        ("gain excluding flows", f"{p.pnl:+,.2f} {q}"),
        ("buy-and-hold end value", f"{s.hold_end_value:,.2f} {q}"),
        ("buy-and-hold return", _pct(s.hold_return)),
        ("rebalancing premium", _pct(s.premium)),
        ("max drawdown (at checks)", f"{s.max_drawdown * 100:.2f}%"),
        ("traded", f"{s.traded:,.2f} {q}"),
        ("fees", f"{s.fees:,.4f} {q}"),
        ("fees as charged", fees_assets or "-"),
        ("halts", str(s.halts)),
    ]


def render_html(r: Report, images: dict[str, bytes]) -> str:
    weights = TableData(
        ["asset", "amount", "value", "weight", "target", "drift", "band"],
        [
            [
                a.asset,
                f"{a.amount:.8g}",
                f"{a.value:,.2f}",
                f"{a.weight * 100:.2f}%",
                f"{a.target * 100:.2f}%",
                f"{a.drift * 100:+.2f}%",
                "-"
                if a.band_low is None or a.band_high is None
                else f"{a.band_low * 100:.2f}% – {a.band_high * 100:.2f}%",
            ]
            for a in r.weights.assets
        ],
    )
    fills = TableData(
        ["time", "side", "symbol", "amount", "price", "cost", "fee", "source"],
        [
            [
                _when(f["at"]),
                str(f["side"]),
                str(f["symbol"]),
                f"{f['amount']:.8g}",
                f"{f['price']:.8g}",
                f"{f['cost']:,.2f}",
                f"{f['fee']:.6g} {f['fee_asset']}",
                str(f["source"]),
            ]
            for f in r.rows.get("fills", [])
        ],
    )
    journaled = view.journaled_flows(r.rows)
    extra = view.unjournaled_flows(r.rows, r.performance)
    flows = TableData(
        ["time", "asset", "amount", f"value ({r.summary.quote})", "kind", "source"],
        [
            [
                _when(at),
                asset,
                f"{amount:+.8g}",
                f"{value:+,.2f}",
                "deposit" if amount > 0 else "withdrawal",
                source,
            ]
            for flows_, source in ((journaled, "journal"), (extra, "found between checks"))
            for at, asset, amount, value in flows_
        ],
    )
    halts = TableData(
        ["time", "kind", "reason"],
        [[_when(h["at"]), str(h["kind"]), str(h["reason"])] for h in r.rows.get("halts", [])],
    )
    strategy = r.strategy
    return templates.render(
        "journal_report.html",
        account=r.account,
        mode=r.mode,
        start=_when(r.summary.start),
        end=_when(r.summary.end),
        since=_when(r.since) if r.since else "the first check",
        strategy=strategy is not None,
        targets=""
        if strategy is None
        else ", ".join(f"{a} {float(w) * 100:g}%" for a, w in strategy.targets.items()),
        rule="" if strategy is None else strategy.trigger.describe(),
        summary=[list(row) for row in summary_rows(r)],
        weights=weights,
        images=[(name, templates.png_uri(data)) for name, data in images.items()],
        fills=fills,
        flows=flows,
        halts=halts,
        version=__version__,
    )


def write_report(r: Report, out_dir: Path) -> ReportFiles:
    """Write ``report.html``, ``equity.png`` and ``drift.png`` into ``out_dir``."""
    images = {"equity": _png(equity_figure(r)), "drift": _png(drift_figure(r))}
    return write_files(out_dir, images, render_html(r, images))
