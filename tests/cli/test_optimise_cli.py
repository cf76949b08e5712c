"""``[optimise]`` in a paper run wired by bootstrap (the real optimiser over the embedded
demo candles), ``rebalancer targets show`` and ``rebalancer flows``, flows in the report."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.paper import PaperExchange
from rebalancer.bootstrap import build, journal
from rebalancer.cli.app import app
from rebalancer.config import load_config
from rebalancer.ports import TargetChange
from rebalancer.service import run_cycle

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1")}


def write_config(tmp_path: Path, optimise: str) -> Path:
    config = tmp_path / "rebalancer.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
        f"[optimise]\n{optimise}\n"
    )
    return config


def test_a_paper_run_applies_the_real_optimiser_when_due(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, 'method = "min_variance"\nwindow = 60\nmin_weight = 0.05\nmax_weight = 0.6'
    )
    settings = load_config(config)
    rt = build(settings)
    assert rt.retarget is not None and rt.history is not None  # closes even for a threshold
    rt.close()
    first = runner.invoke(app, ["rebalance", "-c", str(config), "--json"])
    assert first.exit_code == 0, first.output
    assert "configured targets applied (first start)" in json.loads(first.output)["targets_note"]
    shown = json.loads(runner.invoke(app, ["targets", "show", "-c", str(config), "--json"]).output)
    assert shown["method"] == "min_variance" and shown["applied"] == shown["config"]
    assert [c["method"] for c in shown["changes"]] == ["config"]
    assert datetime.fromisoformat(shown["next_due"]).day == 1

    # the configured targets were applied two months ago: a change is due now
    jr = journal(settings)
    long_ago = datetime.now(UTC) - timedelta(days=62)
    jr.record_target_change(
        TargetChange(long_ago, "config", TARGETS, TARGETS, "", TARGETS, "min_variance")
    )
    jr.close()
    time.sleep(1.05)  # client order ids are per second: a new second for the new orders
    result = runner.invoke(app, ["rebalance", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    cycle = json.loads(result.output)
    assert cycle["targets_note"].startswith("targets changed by min_variance: window of 60 daily")
    assert cycle["decision"]["fire"] and "targets changed" in cycle["decision"]["reason"]
    shown = json.loads(runner.invoke(app, ["targets", "show", "-c", str(config), "--json"]).output)
    last = shown["changes"][-1]
    applied = {a: D(w) for a, w in shown["applied"].items()}
    assert last["method"] == "min_variance" and shown["applied"] == last["new"]
    assert sum(applied.values()) == 1 and applied["USDT"] == D("0.1")  # the cash floor
    assert all(D("0.05") <= applied[a] <= D("0.6") for a in ("BTC", "ETH", "SOL"))
    assert applied != TARGETS
    targets_after = {a["asset"]: D(a["target"]) for a in cycle["drift_before"]["assets"]}
    assert targets_after == applied  # the cycle traded to the new targets
    status = json.loads(runner.invoke(app, ["status", "-c", str(config), "--json"]).output)
    assert {a["asset"]: D(a["target"]) for a in status["assets"]} == applied
    text = runner.invoke(app, ["targets", "show", "-c", str(config)])
    assert (
        text.exit_code == 0 and "min_variance" in text.output and "next change due" in text.output
    )


def test_targets_show_with_the_optimiser_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'method = "off"')
    result = runner.invoke(app, ["targets", "show", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schedule"] == "off" and data["next_due"] is None and data["changes"] == []
    assert data["applied"] == {"BTC": "0.4", "ETH": "0.3", "SOL": "0.2", "USDT": "0.1"}


def test_flows_command_and_report_list_the_journaled_flows(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'method = "off"')
    settings = load_config(config)
    jr = journal(settings)
    ex = PaperExchange("USDT", {"USDT": D(10000)}, D("0.001"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ex.set_prices({"BTC": D(40000), "ETH": D(2000), "SOL": D(100)}, t0)
    strategy = settings.strategy()
    report = run_cycle(ex, jr, MemoryNotifier(), strategy, t0)
    assert report.fills
    expected = dict(ex.balances)  # what the daemon expects: the post-trade balances
    ex.balances["USDT"] += D(500)
    run_cycle(ex, jr, MemoryNotifier(), strategy, t0 + timedelta(days=1), expected=expected)
    jr.close()
    out = tmp_path / "flows.csv"
    result = runner.invoke(app, ["flows", "-c", str(config), "--json", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [flow] = data["flows"]
    assert (flow["at"], flow["asset"], flow["quote"]) == (
        "2026-01-02T00:00:00+00:00",
        "USDT",
        "USDT",
    )
    assert D(flow["amount"]) == D(flow["value"]) == D(data["net_value"]) == D(500)
    with out.open() as fh:
        assert list(csv.DictReader(fh)) == data["flows"]
    table = runner.invoke(app, ["flows", "-c", str(config)])
    assert "500" in table.output and "net: 500.00 USDT" in table.output
    rep = runner.invoke(app, ["report", "-c", str(config), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    assert "deposits and withdrawals" in rep.output and "journal" in rep.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Deposits and withdrawals (1)" in html and "<td>journal</td>" in html


def test_new_commands_have_help_with_an_example() -> None:
    for cmd in (["targets", "show"], ["flows"]):
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, cmd
        assert "Example" in result.output, cmd


def _backtest(config: Path, out: Path, *extra: str) -> dict[str, object]:
    result = runner.invoke(
        app, ["backtest", "-c", str(config), "--no-report", "--json", "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_backtest_follows_the_optimised_targets(tmp_path: Path) -> None:
    """With [optimise] the backtest's strategy follows the optimiser's schedule as live:
    every change that moves the targets is a rebalance at its bar (the trades at each
    change's close time), and the result differs from the configured targets alone."""
    opt = 'method = "min_variance"\nwindow = 60\nmin_weight = 0.05\nmax_weight = 0.6'
    data = _backtest(write_config(tmp_path, opt), tmp_path / "opt")
    info = data["optimised_targets"]
    assert isinstance(info, dict) and info["method"] == "min_variance"
    changes = info["changes"]
    assert len(changes) >= 10
    with open(tmp_path / "opt" / "trades.csv", newline="") as f:
        traded = {row["time"][:10] for row in csv.DictReader(f)}
    previous = {a: float(w) for a, w in TARGETS.items()}
    for change in changes:
        if change["targets"] != previous:
            assert change["at"][:10] in traded, change
        previous = change["targets"]
    (tmp_path / "p").mkdir()
    plain = _backtest(write_config(tmp_path / "p", 'method = "off"'), tmp_path / "plain")
    assert "optimised_targets" not in plain
    mine, theirs = data["strategy"], plain["strategy"]
    assert isinstance(mine, dict) and isinstance(theirs, dict)
    assert mine["final_value"] != theirs["final_value"]


def test_an_hourly_backtest_reads_daily_windows(tmp_path: Path) -> None:
    """On hourly candles the optimiser reads the daily candles beside them (daily returns,
    as live): the same changes as the daily backtest over the same days."""
    folder = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"
    opt = 'method = "min_variance"\nwindow = 20\nmin_weight = 0.05\nmax_weight = 0.6'
    config = write_config(tmp_path, opt)
    span = ["--data-dir", str(folder), "--start", "2025-01-01", "--end", "2025-03-10"]
    daily = _backtest(config, tmp_path / "d", *span)
    hourly = _backtest(config, tmp_path / "h", *span[:-1], "2025-03-10 23:00", "--timeframe", "1h")
    want, got = daily["optimised_targets"], hourly["optimised_targets"]
    assert isinstance(want, dict) and isinstance(got, dict)
    assert [c["at"] for c in got["changes"]] == ["2025-02-01T00:00:00+00:00",
                                                 "2025-03-01T00:00:00+00:00"]
    assert got["changes"] == want["changes"]
