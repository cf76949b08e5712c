"""HTML reports of a sweep and of a walk-forward, like the backtest's (:mod:`.report`).

Each is one self-contained file (charts embedded as PNG) with the data window it really
covers (first and last candle, which can be shorter than ``--start``/``--end`` asked for),
the data notes, the engine that ran the numbers, the result tables, and the reproducibility
block (data files with their sha256, the redacted config, the command, the version).
Rendered by the one template environment (:mod:`rebalancer.templates`, autoescape on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer import templates
from rebalancer.backtest.grid import GridResult
from rebalancer.backtest.walk_forward import WalkForwardResult
from rebalancer.core.strategy import Strategy
from rebalancer.reports import labels
from rebalancer.reports import regimes as regime_view
from rebalancer.reports.backtest import Provenance, TableData, config_json, write_files
from rebalancer.reports.heatmaps import HEATMAPS

#: a sweep report lists every combination up to this many (all are in sweep.csv)
MAX_GRID_ROWS = 500
SEMANTICS = {
    "reference": "REFERENCE RULE, for comparison with vectorbt/bt, not the bot's: fee from "
    "cash, no market rules, no minimum trade, no slippage; abs band, style target",
    "full": "the bot's own rule: the config's minimum trade, slippage and cost-aware legs, "
    "the venue's market rules and fee side",
}


def _num(x: Any, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec)


def _targets(strategy: Strategy) -> str:
    return ", ".join(f"{a} {float(w) * 100:g}%" for a, w in strategy.targets.items())


def _list(values: Sequence[float], pct: bool = True) -> str:
    shown = [f"{v * 100:g}%" if pct else f"{v:g}" for v in values]
    return ", ".join(shown) if len(shown) <= 8 else f"{shown[0]} … {shown[-1]} ({len(shown)})"


def _images(images: Mapping[str, bytes]) -> list[tuple[str, str]]:
    return [(name, templates.png_uri(data)) for name, data in images.items()]


# -- sweep -------------------------------------------------------------------------------------


def break_even_table(grid: GridResult) -> TableData:
    """Per kind, style and fee: the smallest band whose final value reaches buy-and-hold
    ("never", or "≤x (every band)"), the best band and its premium, buy-and-hold's final."""
    rows = []
    for r in grid.break_even.to_dict("records"):
        be = r["break_even_band"]
        shown = "never" if be is None or math.isnan(be) else f"{be:.0%}"
        if r["beats_at_all_bands"]:
            shown = f"≤{be:.0%} (every band)"
        rows.append(
            [
                str(r["kind"]),
                str(r["style"]),
                f"{r['fee_rate']:.3%}",
                shown,
                f"{r['best_band']:.0%}",
                labels.pct(r["best_premium"]),
                f"{r['bh_final_value']:,.2f}",
            ]
        )
    headers = ["kind", "style", "fee", "break-even band", "best band", "best premium", "B&H final"]
    return TableData(headers, rows)


def grid_table(grid: GridResult, limit: int = MAX_GRID_ROWS) -> tuple[TableData, str]:
    """Every combination (best premium first), at most ``limit`` of them; and how many."""
    frame = grid.rows.sort_values(["premium", "band"], ascending=[False, True])
    shown = frame.head(limit)
    rows = [
        [
            str(r["kind"]),
            str(r["style"]),
            f"{r['band']:.2%}",
            f"{r['fee_rate']:.3%}",
            str(r["engine"]),
            f"{r['final_value']:,.2f}",
            labels.pct(r["premium"]),
            labels.pct(r["cagr"]),
            _num(r["sharpe"], ".3f"),
            labels.drawdown(r["max_drawdown"]),
            str(int(r["n_rebalances"])),
            "yes" if r["beats_bh"] else "no",
        ]
        for r in shown.to_dict("records")
    ]
    headers = [
        "kind",
        "style",
        "band",
        "fee",
        "engine",
        "final value",
        "premium vs B&H",
        "CAGR",
        "Sharpe",
        "max drawdown",
        "rebalances",
        "beats B&H",
    ]
    n = len(frame)
    what = f"{n}, best premium first"
    if n > limit:
        what = f"the best {limit} of {n}; all in sweep.csv"
    return TableData(headers, rows), what


def render_sweep(
    grid: GridResult,
    images: Mapping[str, bytes],
    prov: Provenance,
    *,
    window: str,
    strategy: Strategy,
    capital: Decimal,
    executor: str,
    regimes: Mapping[str, Any] | None = None,
    advised: str = "",
) -> str:
    """The sweep page; ``regimes`` (:func:`sweep_regime_context`) adds the per-regime part;
    ``advised``: the one sentence saying which band the heatmaps star and why (from
    ``rebalancer advise``), empty when no advice was given."""
    rows = grid.rows
    engines = ", ".join(f"{name} {n}" for name, n in grid.engines().items())
    table, shown = grid_table(grid)
    return templates.render(
        "sweep.html",
        window=window,
        targets=_targets(strategy),
        combinations=len(rows),
        bands=_list(sorted(set(rows["band"]))),
        fees=_list(sorted(set(rows["fee_rate"]))),
        kinds=", ".join(sorted(set(rows["kind"]))),
        styles=", ".join(sorted(set(rows["style"]))),
        capital=f"{capital:,.2f}",
        quote=strategy.quote,
        engines=engines,
        semantics=grid.semantics,
        semantics_text=SEMANTICS.get(grid.semantics, ""),
        venue=grid.venue,
        rules_source=grid.rules_source,
        notes=grid.notes,
        executor=executor,
        seconds=f"{grid.seconds:.2f} s",
        beats=int(rows["beats_bh"].sum()),
        advised=advised,
        break_even=break_even_table(grid),
        images=_images(images),
        grid=table,
        shown=shown,
        prov=prov,
        config_json=config_json(prov),
        regimes=regimes,
    )


def sweep_regime_context(
    grid: GridResult, regimes: Mapping[str, Any], chart: bytes | None, best: int
) -> dict[str, Any]:
    """The sweep page's regime part from ``SweepRegimes.to_dict(grid.rows)``: the best row's
    full table and chart (regimes shaded), and every row's premium a year per regime."""
    rows = regimes["rows"]
    if not rows:
        return {"note": regimes["note"], "best": None, "headers": [], "rows": [], "chart": None}
    order = grid.rows.sort_values(["premium", "band"], ascending=[False, True]).index.tolist()
    order = [i for i in order if rows[i]["regimes"]]  # rows given regimes (--regime-rows)
    best_section = regime_view.section(
        {"options": regimes["options"], "rows": rows[best]["regimes"], "note": ""},
        f"Per market regime: the best row, {regime_view.label(rows[best])}",
    )
    headers, table = regime_view.sweep_table(rows, order, MAX_GRID_ROWS)
    return {
        "note": "",
        "best": best_section,
        "headers": headers,
        "rows": table,
        "chart": None if chart is None else templates.png_uri(chart),
    }


def write_sweep_report(
    grid: GridResult,
    out_dir: Path,
    pngs: Mapping[str, Path],
    prov: Provenance,
    **context: Any,
) -> Path:
    """``sweep_report.html`` in ``out_dir``, embedding the heatmaps already written."""
    images = {
        HEATMAPS.get(name.removeprefix("heatmap_"), name): p.read_bytes()
        for name, p in pngs.items()
    }
    page = render_sweep(grid, images, prov, **context)
    return write_files(out_dir, {}, page, "sweep_report.html").html


# -- walk-forward ------------------------------------------------------------------------------

ENGINE = {
    "compiled": "the compiled engine (proven equal to the replay)",
    "replay": "the Decimal replay of the live loop",
}


def _metrics_row(name: str, m: Mapping[str, Any]) -> list[str]:
    return [
        name,
        f"{m['final_value']:,.2f}",
        labels.pct(m.get("total_return")),
        labels.pct(m.get("cagr")),
        _num(m.get("sharpe"), ".3f"),
        _num(m.get("calmar"), ".3f"),
        labels.drawdown(m.get("max_drawdown")),
    ]


def result_table(result: WalkForwardResult, capital: Decimal) -> TableData:
    s = result.summary()
    best = s["best_fixed_in_hindsight"]
    best = {**best, "total_return": best["final_value"] / float(capital) - 1}
    rows = [
        _metrics_row("walk-forward (out-of-sample)", s["walk_forward"]),
        _metrics_row(f"best fixed band in hindsight ({best['band']:.0%})", best),
    ]
    if s["buy_and_hold"] is not None:
        rows.append(_metrics_row("buy-and-hold", s["buy_and_hold"]))
    headers = ["", "final value", "total return", "CAGR", "Sharpe", "Calmar", "max drawdown"]
    return TableData(headers, rows)


def windows_table(result: WalkForwardResult) -> TableData:
    obj = result.objective
    rows = [
        [
            f"{str(r['train_start'])[:10]} → {str(r['train_end'])[:10]}",
            f"{str(r['test_start'])[:10]} → {str(r['test_end'])[:10]}",
            f"{r['band']:.0%}",
            _num(r[f"in_sample_{obj}"], ".3f"),
            _num(r[f"out_of_sample_{obj}"], ".3f"),
            f"{r['start_value']:,.2f}",
            f"{r['end_value']:,.2f}",
            labels.pct(r["out_of_sample_return"]),
            str(int(r["rebalances"])),
        ]
        for r in result.windows.to_dict("records")
    ]
    headers = [
        "in-sample (candles)",
        "out-of-sample (candles)",
        "band",
        f"in-sample {obj}",
        f"out-of-sample {obj}",
        "start value",
        "end value",
        "return",
        "rebalances",
    ]
    return TableData(headers, rows)


def hindsight_table(result: WalkForwardResult) -> TableData:
    rows = [
        [
            f"{r['band']:.0%}",
            f"{r['final_value']:,.2f}",
            labels.pct(r["cagr"]),
            _num(r["sharpe"], ".3f"),
            _num(r["calmar"], ".3f"),
            labels.drawdown(r["max_drawdown"]),
            str(int(r["rebalances"])),
        ]
        for r in result.hindsight.to_dict("records")
    ]
    headers = ["band", "final value", "CAGR", "Sharpe", "Calmar", "max drawdown", "rebalances"]
    return TableData(headers, rows)


def render_walk_forward(
    result: WalkForwardResult,
    images: Mapping[str, bytes],
    prov: Provenance,
    *,
    window: str,
    oos_window: str,
    strategy: Strategy,
    fee: Decimal,
    capital: Decimal,
    train: str,
    test: str,
    anchored: bool,
    regimes: Mapping[str, Any] | None = None,
) -> str:
    """The walk-forward page; ``regimes`` (a ``RegimeReport.to_dict()`` of the
    out-of-sample run) adds the per-regime section."""
    engine = (
        f"{ENGINE.get(result.engine, result.engine)}, full semantics (the bot's own rule) for "
        "the in-sample choice, the out-of-sample scores, every fixed band in hindsight and "
        "buy-and-hold alike"
    )
    return templates.render(
        "walk_forward.html",
        window=window,
        oos_window=oos_window,
        targets=_targets(strategy),
        kind=result.kind,
        bands=_list(sorted(result.hindsight["band"])),
        fee=f"{float(fee) * 100:g}%",
        objective=result.objective,
        layout="anchored (growing)" if anchored else "rolling",
        train=train,
        test=test,
        capital=f"{capital:,.2f}",
        quote=strategy.quote,
        engine=engine,
        result=result_table(result, capital),
        images=_images(images),
        windows=windows_table(result),
        hindsight=hindsight_table(result),
        prov=prov,
        config_json=config_json(prov),
        regimes=regime_view.section(regimes, "Out-of-sample, per market regime"),
    )


def write_walk_forward_report(
    result: WalkForwardResult,
    out_dir: Path,
    chart: Path,
    prov: Provenance,
    **context: Any,
) -> Path:
    """``walk_forward_report.html`` in ``out_dir``, embedding the chart already written."""
    page = render_walk_forward(result, {"equity": chart.read_bytes()}, prov, **context)
    return write_files(out_dir, {}, page, "walk_forward_report.html").html
