"""The regime options every research command shares (``backtest``, ``sweep``,
``walk-forward``, ``advise``) and the per-regime table as text.

The defaults equal :mod:`rebalancer.backtest.trust.regimes`' (a test keeps them equal); they
are repeated here so that ``--help`` does not import numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rebalancer.backtest.trust.regimes import RegimeOptions

DEFAULT_WINDOW = "90d"
DEFAULT_BULL = 0.10
DEFAULT_BEAR = -0.10
DEFAULT_VOL_QUANTILE = 0.5

RegimeWindowOpt = Annotated[
    str,
    typer.Option(
        "--regime-window",
        help="Trailing window of the market regimes: 90d, 2000h or a number of bars.",
    ),
]
BullOpt = Annotated[
    float, typer.Option("--bull", help="Regimes: trailing market return above this is bull.")
]
BearOpt = Annotated[
    float, typer.Option("--bear", help="Regimes: trailing market return below this is bear.")
]
VolQuantileOpt = Annotated[
    float,
    typer.Option(
        "--vol-quantile",
        help="Regimes: trailing volatility above this quantile (over the panel) is high-vol.",
    ),
]


def regime_options(
    window: str, bull: float, bear: float, vol_quantile: float, bar: timedelta
) -> RegimeOptions:
    """The options in bars (``window`` a duration like ``90d`` or a number of bars),
    checked (window >= 2 bars, --bear < --bull, --vol-quantile in (0, 1)); a command calls
    it before its runs, so a bad option fails fast. The panel's length is checked later:
    a panel too short for the window gives a note, not an error."""
    from rebalancer.backtest.trust.regimes import RegimeOptions
    from rebalancer.cli.backtest_cmd import bars_in

    options = RegimeOptions(bars_in(window, bar, "--regime-window"), bull, bear, vol_quantile)
    options.check(2 * options.window)  # every option but the panel's length
    return options


def _pct(x: Any, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _money(x: Any) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):,.2f}"


def heading(options: Mapping[str, Any]) -> str:
    """One line: how the bars were labelled."""
    return (
        f"Regimes of the market (buy-and-hold of the targets, no fee), trailing "
        f"{options['window']} bars: bull > {options['bull']:+.0%}, bear < "
        f"{options['bear']:+.0%}, else sideways; high-vol above the "
        f"{options['vol_quantile']:.0%} quantile of trailing volatility; the first window "
        "is warm-up. Per regime, over its bars:"
    )


HEADER = (
    f"{'regime':>9} {'bars':>6} {'time':>6} {'strategy':>9} {'B&H':>8} {'premium':>8} "
    f"{'per year':>9} {'turnover':>9} {'fees':>10} {'DD':>6} {'B&H DD':>7}"
)


def row_line(r: Mapping[str, Any]) -> str:
    """One regime as a text row; a regime with no bars shows its note instead."""
    if not r["bars"]:
        return f"{r['regime']:>9} {0:>6}  {r['note']}"
    return (
        f"{r['regime']:>9} {r['bars']:>6} {_pct(r['share'], False):>6} "
        f"{_pct(r['rule_return']):>9} {_pct(r['bh_return']):>8} {_pct(r['premium']):>8} "
        f"{_pct(r['premium_per_year']):>9} {r['turnover']:>9.2f} {_money(r['fees']):>10} "
        f"{_pct(r['max_drawdown'], False):>6} {_pct(r['bh_max_drawdown'], False):>7}"
    )


def regime_lines(report: Mapping[str, Any], title: str = "") -> list[str]:
    """The per-regime table of a :meth:`RegimeReport.to_dict` (or its note)."""
    lines = [title] if title else []
    if report["note"] and not report["rows"]:
        return [*lines, report["note"]]
    lines += [heading(report["options"]), HEADER]
    lines += [row_line(r) for r in report["rows"]]
    lines.append(
        "premium = (1 + strategy) / (1 + B&H) - 1 over the regime's bars; 1 + premium of "
        "warm-up, bull, bear, sideways multiply to the run's (fees and turnover add up); "
        "DD = the deepest drawdown within one stretch of the regime."
    )
    return lines


def compact_line(label: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One sweep row's premium per year in each regime, on one line."""
    cells = []
    for r in rows:
        if r["regime"] == "warm-up":
            continue
        value = "no bars" if not r["bars"] else _pct(r["premium_per_year"])
        cells.append(f"{r['regime']} {value}")
    return f"{label}: " + ", ".join(cells)
