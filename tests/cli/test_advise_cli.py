"""``rebalancer advise`` on the embedded demo data: text, --json, --out, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()
FAST = ["--reps", "20", "--workers", "1", "--bands", "0.05,0.1,0.2", "--splits", "8"]


def test_advise_json_and_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["advise", *FAST, "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"] in ("recommend", "weak", "hold")
    assert len(data["rows"]) == 3 and data["bootstrap"]["reps"] == 20
    assert data["candidate"]["band"] in (0.05, 0.1, 0.2)
    assert json.loads((tmp_path / "advise.json").read_text())["pbo"] == data["pbo"]
    assert "Verdict:" in (tmp_path / "advise.txt").read_text()
    assert "full semantics" in data["engine"]["label"]
    page = (tmp_path / "advise_report.html").read_text()
    assert data["window"] in page and "PBO" in page


def test_advise_every_kind_and_style_on_the_full_engine(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "advise",
            *FAST,
            "--kinds",
            "abs,rel,cost",
            "--styles",
            "target,band_edge",
            "--json",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {(r["kind"], r["style"]) for r in data["rows"]} == {
        (k, s) for k in ("abs", "rel", "cost") for s in ("target", "band_edge")
    }
    assert data["pbo"]["configurations"] == 18


def test_advise_reference_semantics_is_labelled_and_abs_only(tmp_path: Path) -> None:
    ok = runner.invoke(
        app, ["advise", *FAST, "--semantics", "reference", "--json", "--out", str(tmp_path)]
    )
    assert ok.exit_code == 0, ok.output
    assert "reference kernel" in json.loads(ok.output)["engine"]["label"]
    bad = runner.invoke(
        app, ["advise", *FAST, "--semantics", "reference", "--kinds", "rel", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "abs bands" in bad.output and "Traceback" not in bad.output


def test_advise_text_names_the_window_verdict_pbo_and_regimes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["advise", *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Data: ")  # the window and data notes first
    for word in ("Verdict:", "PBO (CSCV", "Deflated Sharpe", "bull", "high-vol", "Engine:"):
        assert word in result.output
    assert "advise_report.html" in result.output


def test_advise_bad_input_is_a_clear_message_not_a_traceback() -> None:
    one = runner.invoke(app, ["advise", "--bands", "0.05", "--reps", "20"])
    assert "abs 5.00%" in one.output
    assert one.exit_code == 2 and "give at least 2" in one.output
    short = runner.invoke(app, ["advise", *FAST, "--start", "2025-12-01"])
    assert short.exit_code == 2 and "need at least 180" in short.output
    assert "--regime-window" in short.output
    assert "Traceback" not in one.output + short.output


def test_advise_dask_without_a_scheduler_says_what_to_pass() -> None:
    result = runner.invoke(app, ["advise", *FAST, "--executor", "dask"])
    assert result.exit_code == 2 and "--scheduler ADDRESS" in result.output


def test_the_cli_defaults_are_the_regimes_defaults() -> None:
    from rebalancer.backtest.trust import regimes
    from rebalancer.cli import advise_cmd

    assert (advise_cmd.DEFAULT_BULL, advise_cmd.DEFAULT_BEAR) == (
        regimes.DEFAULT_BULL,
        regimes.DEFAULT_BEAR,
    )


def test_sweep_stars_the_advised_band_and_says_why(tmp_path: Path) -> None:
    adv = runner.invoke(app, ["advise", *FAST, "--fee", "0.001", "--out", str(tmp_path)])
    assert adv.exit_code == 0, adv.output
    advice = tmp_path / "advise.json"
    sweep = ["sweep", "--bands", "0.05,0.1,0.2", "--fee", "0.001", "--semantics", "full"]
    out = tmp_path / "sweep"
    result = runner.invoke(app, [*sweep, "--out", str(out), "--advice", str(advice)])
    assert result.exit_code == 0, result.output
    page = (out / "sweep_report.html").read_text()
    assert "Advised band:" in page and "best lower bound" in page
    assert "not among this sweep" not in page
    other = runner.invoke(
        app, [*sweep, "--fee", "0.0025", "--out", str(out), "--advice", str(advice)]
    )
    assert other.exit_code == 0, other.output
    assert "not among this sweep" in (out / "sweep_report.html").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    refused = runner.invoke(app, [*sweep, "--out", str(out), "--advice", str(bad)])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "not an advise.json" in said and "Traceback" not in said
