"""A sweep's heatmaps (one per metric: band x fee, per kind and style) and its CSV/PNG files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rebalancer.backtest.grid import GridResult

HEATMAPS = {"final_value": "final value", "sharpe": "Sharpe", "max_drawdown": "max drawdown"}
#: cells are labelled with their value up to this many bands (rows) per panel
LABELLED_ROWS = 40


@dataclass(frozen=True)
class Mark:
    """A cell to star on every heatmap: the band ``rebalancer advise`` found (kind, style,
    band, fee rate); ``recommended`` False draws it hollow (a candidate the evidence does not
    support), and ``why`` is the one sentence the report prints under the heatmaps."""

    kind: str
    style: str
    band: float
    fee_rate: float
    recommended: bool
    why: str


def _star(ax: Any, pivot: Any, kind: str, style: str, mark: Mark | None) -> None:
    """Star ``mark``'s cell when it lies in this panel (kind, style; band and fee present)."""
    if mark is None or (kind, style) != (mark.kind, mark.style):
        return
    bands = [float(b) for b in pivot.index]
    fees = [float(f) for f in pivot.columns]
    near = [i for i, b in enumerate(bands) if math.isclose(b, mark.band, abs_tol=1e-12)]
    cols = [j for j, f in enumerate(fees) if math.isclose(f, mark.fee_rate, abs_tol=1e-12)]
    if near and cols:
        ax.plot(
            cols[0] + 0.36,
            near[0],
            marker="*",
            markersize=15,
            color="gold" if mark.recommended else "none",
            markeredgecolor="black",
            markeredgewidth=1.2,
        )


def cell_text(metric: str, value: float) -> str:
    """A heatmap cell's label: ``12,548`` (final value), ``0.59`` (Sharpe), ``-41%`` (max
    drawdown, a loss)."""
    if not math.isfinite(value):
        return "n/a"
    if metric == "final_value":
        return f"{value:,.0f}"
    if metric == "max_drawdown":
        return f"{-abs(value) * 100:.1f}%"
    return f"{value:.2f}"


def _label_cells(ax: Any, data: np.ndarray[Any, Any], metric: str, cmap: Any) -> None:
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    size = 7 if data.shape[0] <= 25 else 5.5
    for (i, j), value in np.ndenumerate(data):
        shade = 0.5 if hi == lo or not math.isfinite(value) else (value - lo) / (hi - lo)
        r, g, b, _ = cmap(shade)
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(
            j,
            i,
            cell_text(metric, float(value)),
            ha="center",
            va="center",
            fontsize=size,
            color="white" if dark else "black",
        )


def heatmap_figures(
    result: GridResult, window: str = "", mark: Mark | None = None
) -> dict[str, Any]:
    """One figure per metric: a panel per (kind, style), bands down, fee rates across, each
    cell labelled with its value (up to :data:`LABELLED_ROWS` bands); ``window`` (the data
    window, e.g. ``2018-05-04 → 2022-10-10 (1,621 daily bars)``) goes in the title;
    ``mark``: the advised band, starred (gold: recommended; hollow: candidate only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows
    panels = list(rows.groupby(["kind", "style"], sort=True))
    figs: dict[str, Any] = {}
    for metric, title in HEATMAPS.items():
        fig, axes = plt.subplots(
            1, len(panels), figsize=(3.2 * len(panels) + 1.5, 7.5), dpi=100, squeeze=False
        )
        for ax, ((kind, style), g) in zip(axes[0], panels, strict=True):
            pivot = g.pivot_table(index="band", columns="fee_rate", values=metric)
            data = pivot.to_numpy(dtype=np.float64)
            cmap = plt.get_cmap("viridis_r" if metric == "max_drawdown" else "viridis")
            im = ax.imshow(data, aspect="auto", cmap=cmap, origin="lower")
            if len(pivot.index) <= LABELLED_ROWS:
                _label_cells(ax, data, metric, cmap)
            ax.set_xticks(
                range(len(pivot.columns)), [f"{f * 100:g}%" for f in pivot.columns], fontsize=8
            )
            step = max(1, len(pivot.index) // 12)
            ticks = list(range(0, len(pivot.index), step))
            ax.set_yticks(ticks, [f"{pivot.index[i] * 100:g}%" for i in ticks], fontsize=8)
            ax.set_xlabel("fee rate")
            ax.set_ylabel("band")
            ax.set_title(f"{kind} / {style}", fontsize=9)
            be = result.break_even
            for j, fee in enumerate(pivot.columns):
                sel = be[(be["kind"] == kind) & (be["style"] == style) & (be["fee_rate"] == fee)]
                band = float(sel["break_even_band"].iloc[0]) if len(sel) else math.nan
                if not math.isnan(band):
                    i = list(pivot.index).index(band)
                    ax.plot(
                        j - 0.38, i, marker="*", color="red", markersize=9, markeredgecolor="white"
                    )
            _star(ax, pivot, str(kind), str(style), mark)
            fig.colorbar(im, ax=ax, shrink=0.8)
        when = f"{window}\n" if window else ""
        advised = ""
        if mark is not None:
            advised = "; black-edged star at right: advised band" + (
                "" if mark.recommended else " (hollow: not recommended)"
            )
        fig.suptitle(
            f"{title} by band and fee rate\n{when}(red star: break-even band vs "
            f"buy-and-hold{advised}; {_semantics(result.semantics)})",
            fontsize=10,
        )
        fig.tight_layout()
        figs[metric] = fig
    return figs


def _semantics(semantics: str) -> str:
    if semantics == "reference":
        return "REFERENCE semantics, for comparison with vectorbt/bt, not the bot's rule"
    return f"{semantics} semantics"


def write_outputs(
    result: GridResult, out_dir: Path, window: str = "", mark: Mark | None = None
) -> dict[str, Path]:
    """``sweep.csv``, ``break_even.csv`` and ``heatmap_{metric}.png`` in ``out_dir``
    (``mark``: the advised band, starred on every heatmap)."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "sweep.csv", "break_even": out_dir / "break_even.csv"}
    result.rows.to_csv(paths["csv"], index=False)
    result.break_even.to_csv(paths["break_even"], index=False)
    for metric, fig in heatmap_figures(result, window, mark).items():
        path = out_dir / f"heatmap_{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        paths[f"heatmap_{metric}"] = path
    return paths
