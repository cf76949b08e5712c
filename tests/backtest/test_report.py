"""The HTML report: self-contained, with the charts, the trades and the data hashes."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rebalancer.backtest.data import load_demo_panel
from rebalancer.backtest.engine import run_backtest
from rebalancer.backtest.report import Provenance, write_report
from rebalancer.config import default_config

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

    from rebalancer.backtest.report import MAX_POINTS, _low_envelope, _thin

    assert _thin(5).tolist() == [0, 1, 2, 3, 4]
    idx = _thin(120_001)
    assert idx[0] == 0 and idx[-1] == 120_000 and len(idx) <= MAX_POINTS + 1
    dd = np.zeros(120_001)
    dd[12_345] = -55.0  # a one-bar trough between two drawn points stays visible
    assert _low_envelope(dd, len(dd)).min() == -55.0
