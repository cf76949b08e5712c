"""The HTML report of ``rebalancer advise``, like the backtest's and the sweep's.

One self-contained file (``advise_report.html``, charts embedded as PNG and also written
beside it): the data window and notes first, the engine, seed, resample count and block
length, then the verdict -- the recommended band, or "no recommendation, because ..." with
each reason -- the per-band table (premium interval, P(beat), Sharpe interval, max drawdown
interval, neighbours and shape), PBO and the deflated Sharpe ratio, the robustness chart
(each band's premium and interval next to its neighbours: a plateau or a spike), the
final-value heatmap with the advised band starred, the candidate's regime profile and the
reproducibility block (data files with their sha256, redacted config, command, version).

Input is the advice as ``Advice.to_dict()`` (the ``--json`` payload): the report shows
exactly the figures the text and JSON give. Rendered by the one template environment
(:mod:`rebalancer.templates`, autoescape on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rebalancer import templates
from rebalancer.reports import labels
from rebalancer.reports.backtest import Provenance, TableData, config_json, write_files
from rebalancer.reports.heatmaps import Mark

#: the charts' headings in the report (their files: ``<key>.png``)
TITLES = {
    "advise_robustness": "Robustness: each band's premium and interval next to its neighbours'",
    "advise_heatmap": "Final value by band (heatmap; the advised band starred)",
}
VERDICTS = {
    "recommend": "Recommendation",
    "weak": "No recommendation (weak evidence)",
    "hold": "No recommendation: buy-and-hold beat every band",
}


def _name(row: Mapping[str, Any]) -> str:
    style = "" if row.get("style", "target") == "target" else f" {row['style']}"
    return f"{row['kind']}{style} {row['band']:.0%}"


def _num(x: Any, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec)


def _ci(low: Any, high: Any, fmt: Any = labels.pct) -> str:
    return f"[{fmt(low)}, {fmt(high)}]"


def advice_sentence(advice: Mapping[str, Any]) -> str:
    """One sentence: which band is starred and why (lower bound, P(beat), PBO, verdict)."""
    c, b, pbo = advice["candidate"], advice["bootstrap"], advice["pbo"]
    why = (
        f"{_name(c)} at fee {c['fee_rate']:.3%} has the best lower bound of its "
        f"{b['level']:.0%} premium interval ({labels.pct(c['premium_low'])}), beats "
        f"buy-and-hold in {c['p_beat']:.0%} of {b['reps']} resamples, PBO {pbo['pbo']:.2f}"
    )
    if advice["verdict"] == "recommend":
        return f"{why}: recommended."
    return f"{why}; not recommended: {'; '.join(advice['reasons'])}."


def mark_of(advice: Mapping[str, Any]) -> Mark:
    """The heatmap star of an advice (hollow unless it recommends)."""
    c = advice["candidate"]
    return Mark(
        kind=str(c["kind"]),
        style=str(c.get("style", "target")),
        band=float(c["band"]),
        fee_rate=float(c["fee_rate"]),
        recommended=advice["verdict"] == "recommend",
        why=advice_sentence(advice),
    )


def read_mark(path: Path) -> Mark:
    """The star of the advice in ``path`` (an ``advise.json``), or a clear error."""
    import json

    from rebalancer.core.errors import ConfigError

    try:
        advice = json.loads(path.read_text(encoding="utf-8"))
        return mark_of(advice)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--advice {path}: not an advise.json written by `rebalancer advise --out DIR` "
            f"({type(exc).__name__}: {exc})"
        ) from None


def sweep_sentence(mark: Mark, rows: Any) -> str:
    """``mark.why``, saying so when the advised cell is not among a sweep's ``rows``."""
    hit = (
        (rows["kind"] == mark.kind)
        & (rows["style"] == mark.style)
        & ((rows["band"] - mark.band).abs() < 1e-12)
        & ((rows["fee_rate"] - mark.fee_rate).abs() < 1e-12)
    )
    if bool(hit.any()):
        return mark.why
    return f"{mark.why} (That band is not among this sweep's rows, so no cell is starred.)"


def bands_table(advice: Mapping[str, Any]) -> TableData:
    """Every row: the candidate first-column-starred, intervals at the advice's level."""
    c = advice["candidate"]
    rows = []
    for r in advice["rows"]:
        star = "★ " if _name(r) == _name(c) and r["fee_rate"] == c["fee_rate"] else ""
        rows.append(
            [
                star + _name(r),
                f"{r['fee_rate']:.3%}",
                labels.pct(r["premium"]),
                _ci(r["premium_low"], r["premium_high"]),
                labels.pct(r["premium_median"]),
                f"{r['p_beat']:.0%}",
                _num(r["sharpe"]),
                _ci(r["sharpe_low"], r["sharpe_high"], _num),
                labels.drawdown(r["max_drawdown"]),
                _ci(r["max_drawdown_low"], r["max_drawdown_high"], labels.drawdown),
                labels.pct(r["neighbours_premium"]),
                str(r["shape"]),
            ]
        )
    lvl = f"{advice['bootstrap']['level']:.0%}"
    headers = [
        "rule",
        "fee",
        "premium vs B&H",
        f"premium {lvl} interval",
        "resamples' median",
        "P(beat B&H)",
        "Sharpe",
        f"Sharpe {lvl} interval",
        "max drawdown",
        f"max drawdown {lvl} interval",
        "neighbours' premium",
        "shape",
    ]
    return TableData(headers, rows)


def regimes_table(advice: Mapping[str, Any]) -> TableData:
    rows = []
    for g in advice["regimes"]:
        if g["bars"] == 0:
            rows.append([g["regime"], "0", *["n/a"] * 7, g["note"]])
            continue
        rows.append(
            [
                g["regime"],
                str(g["bars"]),
                labels.pct(g["rule_return"]),
                labels.pct(g["bh_return"]),
                labels.pct(g["premium"]),
                labels.pct(g["premium_per_year"]),
                _num(g["turnover"]),
                _num(g["fees"], ",.2f"),
                f"{labels.drawdown(g['max_drawdown'])} / {labels.drawdown(g['bh_max_drawdown'])}",
                "",
            ]
        )
    headers = [
        "regime",
        "bars",
        "rule return",
        "B&H return",
        "premium",
        "premium per year",
        "turnover (x)",
        "fees",
        "max drawdown rule / B&H",
        "note",
    ]
    return TableData(headers, rows)


def robustness_figure(advice: Mapping[str, Any]) -> Any:
    """Per (kind, style, fee): each band's premium on the data (dots), its bootstrap
    interval (shaded), its neighbours' mean (dashed); spikes in red, the candidate starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str, float], list[Mapping[str, Any]]] = {}
    for r in advice["rows"]:
        groups.setdefault((r["kind"], r.get("style", "target"), r["fee_rate"]), []).append(r)
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(10, 3.2 * len(groups) + 0.8), dpi=100, squeeze=False
    )
    c = advice["candidate"]
    lvl = f"{advice['bootstrap']['level']:.0%}"
    for ax, ((kind, style, fee), rows) in zip(axes[:, 0], groups.items(), strict=True):
        rows = sorted(rows, key=lambda r: r["band"])
        x = [100 * r["band"] for r in rows]

        def y(key: str, rows: Sequence[Mapping[str, Any]] = rows) -> list[float]:
            return [100 * float(r[key]) if r[key] is not None else math.nan for r in rows]

        ax.fill_between(x, y("premium_low"), y("premium_high"), alpha=0.2, label=f"{lvl} interval")
        ax.plot(x, y("premium"), "o-", ms=4, label="premium on the data")
        ax.plot(x, y("neighbours_premium"), "--", color="gray", label="neighbours' mean")
        spikes = [(xi, yi) for xi, yi, r in zip(x, y("premium"), rows, strict=True)
                  if r["shape"] == "spike"]
        if spikes:
            ax.plot(*zip(*spikes, strict=True), "^", color="red", ms=8, label="spike")
        if (kind, style, fee) == (c["kind"], c.get("style", "target"), c["fee_rate"]):
            ax.plot(
                [100 * c["band"]], [100 * c["premium"]], "*", ms=16, markeredgecolor="black",
                color="gold" if advice["verdict"] == "recommend" else "none",
                label="advised band",
            )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{kind} / {style}, fee {fee:.3%}", fontsize=9)
        ax.set_xlabel("band (%)")
        ax.set_ylabel("premium vs B&H (%)")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Robustness: each band's premium next to its neighbours' (plateau or spike)")
    fig.tight_layout()
    return fig


def heatmap_figure(advice: Mapping[str, Any], window: str, semantics: str) -> Any:
    """The sweep's final-value heatmap of the advised rows, the advised band starred."""
    import pandas as pd

    from rebalancer.backtest.grid import GridResult, break_even
    from rebalancer.reports.heatmaps import heatmap_figures

    frame = pd.DataFrame(advice["rows"])
    frame["beats_bh"] = frame["final_value"] >= frame["bh_final_value"]
    grid = GridResult(frame, break_even(frame), semantics, 0.0)
    figs = heatmap_figures(grid, window, mark_of(advice))
    import matplotlib.pyplot as plt

    for name, fig in figs.items():
        if name != "final_value":
            plt.close(fig)
    return figs["final_value"]


def _png(fig: Any) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_advise(
    advice: Mapping[str, Any],
    images: Mapping[str, bytes],
    prov: Provenance,
    *,
    window: str,
    targets: str,
    executor: str = "local",
) -> str:
    b, d = advice["bootstrap"], advice["deflated_sharpe"]
    return templates.render(
        "advise.html",
        window=window,
        targets=targets,
        title=VERDICTS[advice["verdict"]],
        verdict=advice["verdict"],
        reasons=advice["reasons"],
        sentence=advice_sentence(advice),
        candidate=_name(advice["candidate"]),
        fee=f"{advice['candidate']['fee_rate']:.3%}",
        engine=advice.get("engine", {}).get("label", ""),
        executor=executor,
        reps=f"{b['reps']:,}",
        seed=b["seed"],
        block=f"{b['block_length_bars']:g}",
        level=f"{b['level']:.0%}",
        pbo=advice["pbo"],
        pbo_text=f"{advice['pbo']['pbo']:.2f}",
        dsr=None if d.get("dsr") is None else f"{d['dsr']:.2f}",
        dsr_info=d,
        dsr_band="" if d.get("dsr") is None else d.get("rule", f"{d['band']:.0%}"),
        dsr_sr=_num(d.get("sharpe_annual")),
        dsr_sr0=_num(d.get("sr0_annual")),
        bands=bands_table(advice),
        regimes=regimes_table(advice),
        regime_options=advice["regime_options"],
        images=[(TITLES.get(name, name), templates.png_uri(data)) for name, data in images.items()],
        prov=prov,
        config_json=config_json(prov),
    )


def write_advise_report(
    advice: Mapping[str, Any],
    out_dir: Path,
    prov: Provenance,
    *,
    window: str,
    targets: str,
    executor: str = "local",
) -> Path:
    """``advise_report.html`` in ``out_dir``, with ``advise_robustness.png`` and
    ``advise_heatmap.png`` beside it."""
    semantics = str(advice.get("engine", {}).get("semantics", ""))
    images = {
        "advise_robustness": _png(robustness_figure(advice)),
        "advise_heatmap": _png(heatmap_figure(advice, window, semantics)),
    }
    page = render_advise(
        advice, images, prov, window=window, targets=targets, executor=executor
    )
    return write_files(out_dir, images, page, "advise_report.html").html
