"""The HTML report: self-contained, with the charts, the trades and the data hashes."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rebalancer.backtest.engine import BacktestResult, run_backtest
from rebalancer.config import default_config
from rebalancer.data.panel import load_demo_panel
from rebalancer.reports.backtest import Provenance, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_has_charts_trades_and_hashes(tmp_path: Path) -> None:
    settings = default_config()
    strategy = settings.strategy()
    panel = load_demo_panel(list(strategy.assets))
    result = run_backtest(
        panel.closes,
        strategy,
        capital=Decimal(10000),
        taker_fee=Decimal("0.001"),
        bar=timedelta(days=1),
    )
    prov = Provenance(panel.files, panel.sha256, settings.redacted(), "rebalancer backtest")
    files = write_report(result, tmp_path / "out", prov)
    page = files.html.read_text(encoding="utf-8")
    # three embedded PNG charts, decodable, no external resource
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(i)[:8] == PNG for i in images)
    assert not re.search(r'(src|href)="(http|//)', page)
    for name in ("equity", "drawdown", "weights"):
        assert files.pngs[name].read_bytes()[:8] == PNG
    # every data file with its hash, the version, the config
    for asset, digest in panel.sha256.items():
        assert digest in page and len(digest) == 64
        assert str(panel.files[asset]) in page
    assert "rebalancer version <b>0.1.0</b>" in page
    assert "band_abs" in page
    # the trade list: one row per fill, plus the header row
    trades = page.split('<table class="trades">')[1].split("</table>")[0]
    assert trades.count("<tr>") == len(result.trades) + 1
    assert len(result.trades) > 0
    # the metrics, strategy and both benchmarks
    assert "buy-and-hold" in page and "calendar" in page
    assert f"{float(result.run.final_value):,.2f}" in page


def test_long_histories_are_thinned_for_drawing_only() -> None:
    import numpy as np

    from rebalancer.reports.backtest import MAX_POINTS, _low_envelope, _thin

    assert _thin(5).tolist() == [0, 1, 2, 3, 4]
    idx = _thin(120_001)
    assert idx[0] == 0 and idx[-1] == 120_000 and len(idx) <= MAX_POINTS + 1
    dd = np.zeros(120_001)
    dd[12_345] = -55.0  # a one-bar trough between two drawn points stays visible
    assert _low_envelope(dd, len(dd)).min() == -55.0


def _demo_result() -> BacktestResult:
    strategy = default_config().strategy()
    panel = load_demo_panel(list(strategy.assets))
    return run_backtest(
        panel.closes,
        strategy,
        capital=Decimal(10000),
        taker_fee=Decimal("0.001"),
        bar=timedelta(days=1),
    )


def test_report_words_bars_drawdowns_and_one_window(tmp_path: Path) -> None:
    """'486 daily bars', not '486 bars of 1 day, 0:00:00'; a drawdown is never '+41%';
    the heading and the metrics title name the same window (first and last candle)."""
    from rebalancer.reports.backtest import render_html

    page = render_html(_demo_result(), {}, Provenance())
    assert "486 daily bars" in page and "day, 0:00:00" not in page
    assert "<h1>Backtest 2024-10-01 → 2026-01-29 (486 daily bars)</h1>" in page
    assert "<h2>Metrics, 2024-10-01 → 2026-01-29 (486 daily bars)</h2>" in page
    assert "Engine: <b>compiled: the live cycle's model" in page.replace("&#39;", "'")
    metrics = page.split('<table class="metrics">')[1].split("</table>")[0]
    row = metrics.split("<td>max drawdown</td>")[1].split("</tr>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert len(cells) == 3 and all(c.startswith("-") and c.endswith("%") for c in cells)
    vol = metrics.split("<td>volatility (ann.)</td>")[1].split("</tr>")[0]
    assert "+" not in vol


def test_injected_markup_in_names_and_labels_is_escaped(tmp_path: Path) -> None:
    """Every value a report prints goes through the template engine's autoescape: an asset
    name, a data note or a command line carrying a <script> is shown as text."""
    from rebalancer.reports.backtest import render_html

    result = _demo_result()
    evil = "<script>alert(1)</script>"
    prov = Provenance(
        {f"BTC{evil}": Path(f"/data/{evil}.csv")},
        {f"BTC{evil}": "ab" * 32},
        {"note": evil},
        f"rebalancer backtest --out '{evil}'",
        (f"gap {evil}",),
    )
    page = render_html(result, {f"chart{evil}": PNG}, prov)
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
