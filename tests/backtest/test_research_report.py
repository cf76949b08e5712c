"""The sweep and walk-forward HTML reports and their charts, on the embedded demo data."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import matplotlib
import pytest

from rebalancer.backtest.grid import GridResult, run_grid
from rebalancer.backtest.walk_forward import WalkForwardResult, equity_figure, walk_forward
from rebalancer.config import default_config
from rebalancer.core.strategy import Strategy
from rebalancer.data.panel import CandlePanel, load_demo_panel
from rebalancer.reports.backtest import Provenance
from rebalancer.reports.heatmaps import heatmap_figures
from rebalancer.reports.labels import window_text
from rebalancer.reports.research import render_sweep, render_walk_forward

matplotlib.use("Agg")

DAY = timedelta(days=1)
PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def strategy() -> Strategy:
    return default_config().strategy()


@pytest.fixture(scope="module")
def panel(strategy: Strategy) -> CandlePanel:
    return load_demo_panel(list(strategy.assets))


@pytest.fixture(scope="module")
def grid(panel: CandlePanel, strategy: Strategy) -> GridResult:
    return run_grid(
        panel.closes, strategy, bands=[0.02, 0.05, 0.1], fee_rates=[0.0005, 0.001], bar=DAY
    )


@pytest.fixture(scope="module")
def walk(panel: CandlePanel, strategy: Strategy) -> WalkForwardResult:
    return walk_forward(
        panel.closes,
        strategy,
        bands=[0.02, 0.05, 0.1],
        fee_rate=Decimal("0.001"),
        train=200,
        test=60,
        bar=DAY,
    )


def _prov(panel: CandlePanel, note: str = "a gap") -> Provenance:
    return Provenance(panel.files, panel.sha256, {"targets": "x"}, "rebalancer sweep", (note,))


def _window(panel: CandlePanel) -> str:
    return window_text(panel.start, panel.end, len(panel.closes), DAY)


def test_heatmaps_show_each_cells_value_and_the_window(
    grid: GridResult, panel: CandlePanel
) -> None:
    figs = heatmap_figures(grid, _window(panel))
    for metric, fig in figs.items():
        ax = fig.axes[0]
        cells = [t.get_text() for t in ax.texts]
        assert len(cells) == len(grid.rows)  # 3 bands x 2 fees, one label each
        values = grid.rows.sort_values(["band", "fee_rate"])[metric]
        if metric == "final_value":
            assert set(cells) == {f"{v:,.0f}" for v in values}
        if metric == "max_drawdown":
            assert all(c.startswith("-") for c in cells)
        assert "2024-10-01 → 2026-01-29 (486 daily bars)" in fig._suptitle.get_text()


def test_the_walk_forward_chart_has_buy_and_hold(walk: WalkForwardResult) -> None:
    fig = equity_figure(walk, "the window")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("buy-and-hold: final") for label in labels)
    assert walk.hold_equity is not None and walk.hold_metrics is not None
    assert walk.hold_equity.index[0] == walk.equity.index[0]
    assert walk.hold_equity.index[-1] == walk.equity.index[-1]
    assert walk.summary()["buy_and_hold"]["final_value"] == pytest.approx(walk.hold_equity.iloc[-1])
    assert "the window" in fig.axes[0].get_title()


def test_the_sweep_report(grid: GridResult, panel: CandlePanel, strategy: Strategy) -> None:
    page = render_sweep(
        grid,
        {"final_value": PNG, "sharpe": PNG},
        _prov(panel),
        window=_window(panel),
        strategy=strategy,
        capital=Decimal(10000),
        executor="local",
    )
    assert "<h1>Sweep 2024-10-01 → 2026-01-29 (486 daily bars)</h1>" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    assert "Semantics: <b>full</b> (the bot&#39;s own rule" in page
    assert "Engine: compiled 6; venue reference;" in page
    assert "<li>a gap</li>" in page  # the data notes
    for digest in panel.sha256.values():
        assert f"<code>{digest}</code>" in page
    table = page.split("<h2>Combinations (6, best premium first)</h2>")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 6


def test_the_walk_forward_report(
    walk: WalkForwardResult, panel: CandlePanel, strategy: Strategy
) -> None:
    page = render_walk_forward(
        walk,
        {"equity": PNG},
        _prov(panel),
        window=_window(panel),
        oos_window="OOS-SPAN",
        strategy=strategy,
        fee=Decimal("0.001"),
        capital=Decimal(10000),
        train="200 daily bars",
        test="60 daily bars",
        anchored=False,
    )
    assert "<h1>Walk-forward 2024-10-01 → 2026-01-29 (486 daily bars)</h1>" in page
    assert "<h2>Result, OOS-SPAN</h2>" in page
    assert "the compiled engine (proven equal to the replay), full semantics" in page
    assert "<td>buy-and-hold</td>" in page
    assert "<li>a gap</li>" in page
    for digest in panel.sha256.values():
        assert f"<code>{digest}</code>" in page
    windows = page.split("<h2>Windows")[1].split("</table>")[0]
    assert windows.count("<tr>") == 1 + len(walk.windows)


def test_injected_markup_is_escaped_in_both_reports(
    grid: GridResult, walk: WalkForwardResult, panel: CandlePanel, strategy: Strategy
) -> None:
    prov = Provenance(
        {f"BTC{EVIL}": Path(f"/d/{EVIL}.csv")}, {}, {"k": EVIL}, f"rebalancer {EVIL}", (EVIL,)
    )
    pages = [
        render_sweep(
            grid,
            {f"x{EVIL}": PNG},
            prov,
            window=EVIL,
            strategy=strategy,
            capital=Decimal(1),
            executor=EVIL,
        ),
        render_walk_forward(
            walk,
            {f"x{EVIL}": PNG},
            prov,
            window=EVIL,
            oos_window=EVIL,
            strategy=strategy,
            fee=Decimal(0),
            capital=Decimal(1),
            train=EVIL,
            test=EVIL,
            anchored=True,
        ),
    ]
    for page in pages:
        assert "<script" not in page
        assert page.count("&lt;script&gt;") >= 8
