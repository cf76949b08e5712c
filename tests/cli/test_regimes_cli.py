"""Per-regime figures in ``backtest``, ``sweep`` and ``walk-forward``: text, --json, HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
G1 = ROOT / "docs" / "examples" / "g1.toml"
TREND_ROWS = ("warm-up", "bull", "bear", "sideways")


def _reconcile(rows: list[dict], premium_total: float, fees: float) -> None:  # type: ignore[type-arg]
    for names in (TREND_ROWS, ("warm-up", "high-vol", "low-vol")):
        sub = [r for r in rows if r["regime"] in names and r["bars"]]
        assert math.prod(1 + r["premium"] for r in sub) == pytest.approx(1 + premium_total)
        assert sum(r["fees"] for r in sub) == pytest.approx(fees)


def test_backtest_reports_regimes_in_json_text_and_html(tmp_path: Path) -> None:
    args = ["backtest", "-c", str(G1), "--data-dir", str(DATA), "--start", "2018-05-04"]
    args += ["--end", "2020-12-31", "--fee", "0.001", "--out", str(tmp_path)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    reg = data["regimes"]
    assert reg["options"]["window"] == 90 and reg["note"] == ""
    assert [r["regime"] for r in reg["rows"]] == [*TREND_ROWS, "high-vol", "low-vol"]
    _reconcile(reg["rows"], data["premium_vs_buy_and_hold"]["total"], data["strategy"]["fees"])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Per market regime" in page and "premium a year" in page
    text = runner.invoke(app, [*args, "--bull", "0.2", "--regime-window", "60d"])
    assert text.exit_code == 0, text.output
    assert "trailing 60 bars: bull > +20%" in text.output
    assert "sideways" in text.output and "high-vol" in text.output


def test_a_panel_too_short_for_the_window_names_the_minimum_and_the_fix(tmp_path: Path) -> None:
    args = ["backtest", "-c", str(G1), "--data-dir", str(DATA), "--start", "2021-01-01"]
    args += ["--end", "2021-04-30", "--out", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output  # the backtest stands; the regimes say why not
    assert "need at least 180" in res.output and "--regime-window" in res.output
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "need at least 180" in page
    sweep = ["sweep", "-c", str(G1), "--data-dir", str(DATA), "--start", "2021-01-01"]
    sweep += ["--end", "2021-04-30", "--bands", "0.05", "--fee", "0.001", "--out", str(tmp_path)]
    text = runner.invoke(app, sweep)
    assert text.exit_code == 0 and "need at least 180" in text.output
    data = json.loads(runner.invoke(app, [*sweep, "--json"]).output)
    assert data["regimes"]["rows"] == [] and "--regime-window" in data["regimes"]["note"]
    assert "need at least 180" in (tmp_path / "sweep_report.html").read_text(encoding="utf-8")


def test_the_cli_defaults_are_the_library_defaults() -> None:
    from rebalancer.backtest.trust import regimes
    from rebalancer.cli import regimes as cli

    assert (cli.DEFAULT_BULL, cli.DEFAULT_BEAR, cli.DEFAULT_VOL_QUANTILE) == (
        regimes.DEFAULT_BULL,
        regimes.DEFAULT_BEAR,
        regimes.DEFAULT_VOL_QUANTILE,
    )
    assert f"{regimes.DEFAULT_WINDOW_DAYS}d" == cli.DEFAULT_WINDOW


def test_sweep_gives_every_row_its_regimes_when_asked(tmp_path: Path) -> None:
    args = ["sweep", "-c", str(G1), "--data-dir", str(DATA), "--start", "2018-05-04"]
    args += ["--end", "2020-12-31", "--bands", "0.05,0.2", "--fee", "0.001"]
    args += ["--kinds", "abs,rel", "--out", str(tmp_path)]
    res = runner.invoke(app, [*args, "--json", "--regime-rows", "all"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    regimes = data["regimes"]["rows"]
    assert len(regimes) == len(data["rows"]) == 4
    for row, reg in zip(data["rows"], regimes, strict=True):
        assert (reg["kind"], reg["band"]) == (row["kind"], row["band"])
        _reconcile(reg["regimes"], row["premium"], row["fees"])
    # by default only the rows the text shows: each kind's best band (here one per kind)
    best = json.loads(runner.invoke(app, [*args, "--json"]).output)
    shown = [r for r in best["regimes"]["rows"] if r["regimes"]]
    for kind in ("abs", "rel"):
        rows = [r for r in best["rows"] if r["kind"] == kind]
        top = max(rows, key=lambda r: r["premium"])
        (got,) = [r for r in shown if r["kind"] == kind]
        assert got["band"] == top["band"]
        _reconcile(got["regimes"], top["premium"], top["fees"])
    assert all("not computed" in r["note"] for r in best["regimes"]["rows"] if not r["regimes"])
    page = (tmp_path / "sweep_report.html").read_text(encoding="utf-8")
    assert "Per market regime: the best row" in page
    assert "bull premium a year" in page and "regimes shaded" in page
    assert (tmp_path / "sweep_regimes.png").read_bytes()[:4] == b"\x89PNG"
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "Best row, " in text.output and "the best band of each fee" in text.output


def test_walk_forward_reports_the_out_of_sample_regimes(tmp_path: Path) -> None:
    args = ["walk-forward", "-c", str(G1), "--data-dir", str(DATA), "--start", "2018-05-04"]
    args += ["--end", "2020-12-31", "--bands", "0.05,0.2", "--fee", "0.001"]
    args += ["--train", "365d", "--test", "180d", "--out", str(tmp_path)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    rows = data["regimes"]["rows"]
    warm = next(r for r in rows if r["regime"] == "warm-up")
    assert warm["bars"] == 0 and "bars before this span" in warm["note"]
    wf, hold = data["walk_forward"], data["buy_and_hold"]
    _reconcile(rows, wf["final_value"] / hold["final_value"] - 1, wf["fees"])
    trend_bars = sum(r["bars"] for r in rows if r["regime"] in TREND_ROWS)
    assert trend_bars == sum(r["bars"] for r in rows if r["regime"] in ("high-vol", "low-vol"))
    first, last = data["windows"][0]["test_start"], data["windows"][-1]["test_end"]
    assert trend_bars == (pd.Timestamp(last) - pd.Timestamp(first)).days + 1  # every OOS day
    page = (tmp_path / "walk_forward_report.html").read_text(encoding="utf-8")
    assert "Out-of-sample, per market regime" in page


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--bull", "-0.2"], "must be below --bull"),
        (["--vol-quantile", "1.5"], "--vol-quantile must be in (0, 1)"),
        (["--regime-window", "soon"], "--regime-window 'soon' is not a duration"),
    ],
)
def test_a_bad_regime_option_fails_before_any_run(
    tmp_path: Path, option: list[str], says: str
) -> None:
    for command in ("backtest", "sweep", "walk-forward"):
        args = [command, "-c", str(G1), "--data-dir", str(DATA), "--out", str(tmp_path)]
        res = runner.invoke(app, [*args, *option])
        assert res.exit_code != 0 and says in " ".join(res.output.split()), (command, res.output)
        assert "Traceback" not in res.output
