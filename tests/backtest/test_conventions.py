"""The metrics' conventions are written where users read them: the HTML report's footer,
`backtest --help` and the README."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.backtest.engine import run_backtest
from rebalancer.backtest.metrics import CONVENTIONS
from rebalancer.cli.app import app
from rebalancer.config import default_config
from rebalancer.data.panel import load_demo_panel
from rebalancer.reports.backtest import Provenance, render_html

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
# what each place must say, in its own words
MUST = (
    r"365 days",
    r"365 days (/|÷) bar length",
    r"risk-free rate (of )?0",
    r"first purchase's\s+fees count",
    r"over (\*\*)?all(\*\*)? returns",
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_report_footer_states_every_convention() -> None:
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
    page = render_html(result, {}, Provenance())
    footer = page.split("<footer>")[1].split("</footer>")[0]
    for line in CONVENTIONS:
        assert f"<li>{line}</li>" in html.unescape(footer)  # escaped by the template
    for phrase in MUST:
        assert re.search(phrase, html.unescape(footer)), phrase


def test_backtest_help_and_the_readme_state_them() -> None:
    text = _flat(CliRunner().invoke(app, ["backtest", "--help"]).output.replace("│", " "))
    for phrase in (
        r"365 days",
        r"365 days / bar length",
        r"risk-free rate 0",
        r"first purchase's fees count",
        r"over all returns",
    ):
        assert re.search(phrase, text), phrase
    readme = _flat((ROOT / "README.md").read_text(encoding="utf-8"))
    section = readme.split("How the metrics are computed")[1][:2500]
    for phrase in MUST:
        assert re.search(phrase, section), phrase
