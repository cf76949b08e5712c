"""Market regimes in the HTML reports: shading on an equity chart, and the per-regime table.

Shading: each bull / bear / sideways stretch is a background band (green / red / grey)
from the close before its first bar to its last bar's close (the time its returns cover);
high-volatility stretches are a dark strip along the top of the chart. The legend names
the colours. The figures come from :class:`rebalancer.backtest.trust.regime_stats.RegimeReport`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from rebalancer.reports import labels

COLORS = {"bull": "#2ca02c", "bear": "#d62728", "sideways": "#bcbd22", "high-vol": "#444444"}
ALPHA = 0.10
#: the high-vol strip: this top fraction of the axes
STRIP = (0.965, 1.0)


def shade(
    ax: Axes,
    times: Any,
    spans: Sequence[tuple[int, int, str]],
    vol_spans: Sequence[tuple[int, int, str]] = (),
) -> list[Patch]:
    """Shade ``spans`` (bar ranges ``[a, b)`` of ``times``, a sequence or index of bar
    times) on ``ax``; return the legend
    handles (one per regime drawn)."""
    drawn: dict[str, Patch] = {}
    for a, b, name in spans:
        ax.axvspan(times[max(a - 1, 0)], times[b - 1], color=COLORS[name], alpha=ALPHA, lw=0)
        drawn.setdefault(name, Patch(color=COLORS[name], alpha=0.3, label=f"{name} market"))
    for a, b, name in vol_spans:
        ax.axvspan(
            times[max(a - 1, 0)],
            times[b - 1],
            ymin=STRIP[0],
            ymax=STRIP[1],
            color=COLORS[name],
            alpha=0.6,
            lw=0,
        )
        drawn.setdefault(name, Patch(color=COLORS[name], alpha=0.6, label=f"{name} (top strip)"))
    order = ["bull", "bear", "sideways", "high-vol"]
    return [drawn[k] for k in order if k in drawn]


def add_legend(ax: Axes, handles: Sequence[Patch], loc: Any = "upper left") -> None:
    """The chart's own lines plus the regime patches in one legend."""
    lines, names = ax.get_legend_handles_labels()
    ax.legend(
        [*lines, *handles], [*names, *(str(h.get_label()) for h in handles)], loc=loc, fontsize=8
    )


def _cell(x: Any, kind: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if kind == "pct":
        return labels.pct(x)
    if kind == "share":
        return labels.pct(x, signed=False)
    if kind == "dd":
        return labels.drawdown(x)
    if kind == "money":
        return f"{x:,.2f}"
    return f"{x:.2f}"


HEADERS = [
    "regime",
    "bars",
    "stretches",
    "share of time",
    "strategy return",
    "B&H return",
    "premium",
    "premium a year",
    "turnover (x)",
    "fees",
    "rebalances",
    "strategy max DD",
    "B&H max DD",
    "note",
]


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The per-regime rows as text cells (:data:`HEADERS`); an empty regime shows its note."""
    out = []
    for r in rows:
        if not r["bars"]:
            out.append([r["regime"], "0", "0", *([""] * 10), r["note"]])
            continue
        out.append(
            [
                r["regime"],
                str(r["bars"]),
                str(r["episodes"]),
                _cell(r["share"], "share"),
                _cell(r["rule_return"], "pct"),
                _cell(r["bh_return"], "pct"),
                _cell(r["premium"], "pct"),
                _cell(r["premium_per_year"], "pct"),
                _cell(r["turnover"], "num"),
                _cell(r["fees"], "money"),
                str(r["rebalances"]),
                _cell(r["max_drawdown"], "dd"),
                _cell(r["bh_max_drawdown"], "dd"),
                r["note"],
            ]
        )
    return out


def describe(options: Mapping[str, Any]) -> str:
    """How the bars were labelled, one sentence."""
    return (
        f"Each bar is labelled from the market (buy-and-hold of the targets, no fee) over a "
        f"trailing {options['window']} bars: bull when its return is above "
        f"{options['bull']:+.0%}, bear below {options['bear']:+.0%}, sideways between; "
        f"high-vol when its volatility is above the {options['vol_quantile']:.0%} quantile "
        "over the panel, low-vol otherwise; the first window is warm-up. Premium = (1 + "
        "strategy return) / (1 + B&H return) − 1 over the regime's bars (1 + premium of "
        "warm-up, bull, bear and sideways multiply to the run's; fees and turnover add up); "
        "a year is 365 "
        "days of the regime's calendar time; max DD = the deepest drawdown within one "
        "stretch of the regime."
    )


def section(report: Mapping[str, Any] | None, title: str = "") -> dict[str, Any] | None:
    """The template context of the per-regime section (``macros.regimes``) from a
    :meth:`RegimeReport.to_dict`; None: no section."""
    if report is None:
        return None
    return {
        "title": title or "Per market regime",
        "note": report["note"],
        "describe": describe(report["options"]) if report["rows"] else "",
        "headers": HEADERS,
        "rows": table_rows(report["rows"]),
    }


def label(row: Mapping[str, Any]) -> str:
    """``abs target 5% @ fee 0.100%``: a sweep row's keys."""
    return f"{row['kind']} {row['style']} {row['band']:.0%} @ fee {row['fee_rate']:.3%}"


SWEEP_REGIMES = ("bull", "bear", "sideways", "high-vol", "low-vol")


def sweep_table(
    rows: Sequence[Mapping[str, Any]], order: Sequence[int], limit: int
) -> tuple[list[str], list[list[str]]]:
    """One line per sweep row (in ``order``, at most ``limit``): the premium a year in each
    regime; ``no bars`` where a regime has none."""
    headers = ["kind", "style", "band", "fee", *(f"{g} premium a year" for g in SWEEP_REGIMES)]
    out = []
    for i in list(order)[:limit]:
        r = rows[i]
        by = {g["regime"]: g for g in r["regimes"]}
        cells = []
        for g in SWEEP_REGIMES:
            x = by.get(g)
            cells.append(
                "n/a"
                if x is None
                else "no bars"
                if not x["bars"]
                else _cell(x["premium_per_year"], "pct")
            )
        out.append([r["kind"], r["style"], f"{r['band']:.2%}", f"{r['fee_rate']:.3%}", *cells])
    return headers, out


def equity_chart(
    times: Any,
    equity: Any,
    hold: Any,
    spans: Sequence[tuple[int, int, str]],
    vol_spans: Sequence[tuple[int, int, str]],
    title: str,
) -> bytes:
    """A PNG: one row's equity against buy-and-hold (log scale), regimes shaded."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    ax.plot(times, equity, lw=1.2, color="#1f77b4", label=f"{title}: final {equity[-1]:,.0f}")
    ax.plot(times, hold, lw=1.0, color="#7f7f7f", label=f"buy-and-hold: final {hold[-1]:,.0f}")
    handles = shade(ax, times, spans, vol_spans)
    ax.set_yscale("log")
    ax.set_title(f"Equity of {title} vs buy-and-hold, market regimes shaded")
    ax.grid(True, which="both", alpha=0.3)
    add_legend(ax, handles)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
