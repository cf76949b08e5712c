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


def test_advise_text_names_the_verdict_pbo_and_regimes() -> None:
    result = runner.invoke(app, ["advise", *FAST])
    assert result.exit_code == 0, result.output
    for word in ("Verdict:", "PBO (CSCV", "Deflated Sharpe", "bull", "high-vol"):
        assert word in result.output


def test_advise_bad_input_is_a_clear_message_not_a_traceback() -> None:
    one = runner.invoke(app, ["advise", "--bands", "0.05", "--reps", "20"])
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
