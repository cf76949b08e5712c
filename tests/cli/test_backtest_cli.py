"""``rebalancer backtest`` and ``rebalancer sweep`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app

runner = CliRunner()

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"

G1 = """
mode = "paper"
exchange = "binance"
quote = "USDT"

[targets]
BTC = 0.2
ETH = 0.2
BNB = 0.2
XRP = 0.2
LTC = 0.2

[trigger]
kind = "threshold"
band_abs = 0.05
"""


@pytest.fixture
def g1_config(tmp_path: Path) -> Path:
    path = tmp_path / "g1.toml"
    path.write_text(G1)
    return path


def test_help_has_examples() -> None:
    for command in ("backtest", "sweep"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output


def test_backtest_on_embedded_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["backtest", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bars"] > 400
    assert set(data["benchmarks"]) == {"buy_and_hold", "calendar"}
    strategy = data["strategy"]
    assert strategy["rebalances"] >= 1 and strategy["fees"] > 0
    assert strategy["final_value"] > 0
    prem = data["premium_vs_buy_and_hold"]["total"]
    bh = data["benchmarks"]["buy_and_hold"]["final_value"]
    assert prem == pytest.approx(strategy["final_value"] / bh - 1)
    assert (out / "report.html").is_file()
    assert json.loads((out / "summary.json").read_text())["strategy"] == strategy
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == strategy["orders"]
    assert set(data["data"]["sha256"]) == {"BTC", "ETH", "SOL"}


def test_backtest_on_real_history(tmp_path: Path, g1_config: Path) -> None:
    out = tmp_path / "g1"
    result = runner.invoke(
        app,
        [
            "backtest",
            "-c",
            str(g1_config),
            "--data-dir",
            str(DATA),
            "--start",
            "2018-05-04",
            "--end",
            "2022-10-10",
            "--fee",
            "0.0025",
            "--capital",
            "5000",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["start"].startswith("2018-05-05")  # the first close: open + 1 day
    assert data["bars"] == 1621
    assert data["taker_fee"] == 0.0025
    assert data["strategy"]["initial_value"] == 5000
    assert len(data["rebalance_times"]) == data["strategy"]["rebalances"]
    page = (out / "report.html").read_text()
    for digest in data["data"]["sha256"].values():
        assert digest in page


def test_backtest_human_output(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "--out", str(tmp_path / "o"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "buy-and-hold" in result.output and "Sharpe" in result.output
    assert not (tmp_path / "o" / "report.html").exists()


def test_backtest_names_its_engine(tmp_path: Path) -> None:
    """The engine is named in the text output, the JSON and the HTML report; both engines
    give the same result on the embedded data."""
    summaries = {}
    for engine in ("compiled", "replay"):
        out = tmp_path / engine
        args = ["backtest", "--out", str(out), "--engine", engine]
        human = runner.invoke(app, args)
        assert human.exit_code == 0, human.output
        assert f"engine {engine}" in human.output and f"Engine: {engine}" in human.output
        data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
        assert data["engine"] == data["strategy"]["engine"] == engine
        assert all(b["engine"] == engine for b in data["benchmarks"].values())
        assert f"Engine: <b>{engine}:" in (out / "report.html").read_text(encoding="utf-8")
        summaries[engine] = data
    fast, slow = summaries["compiled"], summaries["replay"]
    assert fast["rebalance_times"] == slow["rebalance_times"]
    assert fast["strategy"]["final_value"] == pytest.approx(
        slow["strategy"]["final_value"], rel=1e-9
    )


def test_backtest_refuses_what_the_compiled_engine_does_not_model(tmp_path: Path) -> None:
    """Limit orders on the default engine: a clear error naming the setting and the fix
    (`--engine replay`), no traceback, nothing approximated; unknown engines are named."""
    config = tmp_path / "limit.toml"
    config.write_text(
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n"
        '[execution]\norder_type = "limit_inside"\n'
    )
    result = runner.invoke(app, ["backtest", "-c", str(config), "--out", str(tmp_path)])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert 'order_type = "limit_inside"' in text and "--engine replay" in text
    assert "Traceback" not in result.output
    bad = runner.invoke(app, ["backtest", "--engine", "fast", "--out", str(tmp_path)])
    assert bad.exit_code != 0
    assert "--engine must be one of compiled, replay, not 'fast'" in " ".join(bad.output.split())


def test_backtest_with_limits_says_so_and_pays_the_maker_fee(tmp_path: Path) -> None:
    """[execution] limit_inside in a backtest: the header names the fill model, and with a
    maker fee below the taker fee the same trades cost less than with market orders."""
    base = "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n[fees]\ntaker = 0.001\n"
    fees = {}
    for name, extra in (
        ("market", ""),
        ("limit", 'maker = 0.0002\n[execution]\norder_type = "limit_inside"\n'),
    ):
        config = tmp_path / f"{name}.toml"
        config.write_text(base + extra)
        out = tmp_path / name
        args = ["backtest", "-c", str(config), "--out", str(out), "--no-report"]
        human = runner.invoke(app, [*args, "--engine", "replay"])
        assert human.exit_code == 0, human.output
        assert ("limits inside the spread (maker 0.0200%" in human.output) == (name == "limit")
        fees[name] = json.loads((out / "summary.json").read_text())["strategy"]["fees"]
    assert 0 < fees["limit"] < fees["market"] / 2


def test_sweep_on_real_history(tmp_path: Path, g1_config: Path) -> None:
    out = tmp_path / "sweep"
    result = runner.invoke(
        app,
        [
            "sweep",
            "-c",
            str(g1_config),
            "--data-dir",
            str(DATA),
            "--start",
            "2018-05-04",
            "--bands",
            "0.01:0.25:0.01",
            "--fee",
            "0,0.0005,0.001,0.0025",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["combinations"] == 100
    assert data["engines"] == {"compiled": 100}
    assert data["semantics"] == "full" and data["venue"] == "binance"
    assert "binance market rules: the shipped snapshot" in data["market_rules"]
    bands = sorted({r["band"] for r in data["rows"]})
    assert bands[0] == 0.01 and bands[-1] == 0.25 and len(bands) == 25
    assert len(data["break_even"]) == 4
    for be in data["break_even"]:
        rows = [r for r in data["rows"] if r["fee_rate"] == be["fee_rate"]]
        beating = sorted(r["band"] for r in rows if r["final_value"] >= r["bh_final_value"])
        assert be["break_even_band"] == (beating[0] if beating else None)
    for name in (
        "sweep.csv",
        "break_even.csv",
        "heatmap_final_value.png",
        "heatmap_sharpe.png",
        "heatmap_max_drawdown.png",
        "sweep_report.html",
    ):
        assert (out / name).is_file()


def test_sweep_replay_audits_the_compiled_rows(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sweep",
            "--bands",
            "0.05,0.1",
            "--fee",
            "0.001",
            "--kinds",
            "abs,rel",
            "--styles",
            "target,band_edge",
            "--workers",
            "1",
            "--engine",
            "replay",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engines"] == {"replay": 8}
    assert {r["semantics"] for r in data["rows"]} == {"full"}
    # by default the same rows run in the compiled engine, with the same results
    default = runner.invoke(
        app,
        ["sweep", "--bands", "0.05,0.1", "--fee", "0.001", "--kinds", "abs,rel", "--styles",
         "target,band_edge", "--out", str(tmp_path / "compiled"), "--json"],
    )
    assert default.exit_code == 0, default.output
    compiled = json.loads(default.stdout)
    assert compiled["engines"] == {"compiled": 8}
    for mine, theirs in zip(compiled["rows"], data["rows"], strict=True):
        assert mine["final_value"] == pytest.approx(theirs["final_value"], rel=1e-9)
        assert mine["n_rebalances"] == theirs["n_rebalances"]


def test_sweep_reference_semantics_are_labelled_and_limited(tmp_path: Path) -> None:
    args = ["sweep", "--bands", "0.05,0.1", "--fee", "0.001", "--semantics", "reference",
            "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Semantics: reference (REFERENCE RULE, for comparison with vectorbt/bt" in (
        result.output.replace("\n", " ")
    )
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["engines"] == {"reference": 2} and data["semantics"] == "reference"
    assert "REFERENCE" in (tmp_path / "sweep_report.html").read_text(encoding="utf-8")
    assert set(pd.read_csv(tmp_path / "sweep.csv")["semantics"]) == {"reference"}
    refused = runner.invoke(app, [*args, "--kinds", "abs,rel"])
    assert refused.exit_code != 0
    assert "--semantics reference runs only kind abs with style target" in refused.output
    assert "Traceback" not in refused.output


def test_sweep_refuses_an_unknown_engine(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "--engine", "fast", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--engine must be 'compiled' or 'replay'" in result.output


def test_user_errors_are_clear(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "--timeframe", "1h", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "daily only" in result.output
    result = runner.invoke(app, ["sweep", "--bands", "a:b", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--bands" in result.output
    result = runner.invoke(app, ["backtest", "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "BTC" in result.output


def test_walk_forward_on_real_history(tmp_path: Path, g1_config: Path) -> None:
    out = tmp_path / "wf"
    result = runner.invoke(
        app,
        [
            "walk-forward",
            "-c",
            str(g1_config),
            "--data-dir",
            str(DATA),
            "--start",
            "2019-01-01",
            "--end",
            "2021-12-31",
            "--bands",
            "0.02,0.05,0.1,0.2",
            "--train",
            "365d",
            "--test",
            "120d",
            "--objective",
            "calmar",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["objective"] == "calmar"
    assert data["engine"] == "compiled" and data["venue"] == "binance"
    windows = data["windows"]
    # 1096 bars: 365 in-sample, then 731 out-of-sample: 6 windows of 120 and one of 11
    assert len(windows) == 7
    assert windows[-1]["test_end"].startswith("2021-12-31")
    assert windows[0]["test_start"].startswith("2020-01-01")
    assert all(w["band"] in (0.02, 0.05, 0.1, 0.2) for w in windows)
    best = data["best_fixed_in_hindsight"]
    assert best["band"] in (0.02, 0.05, 0.1, 0.2)
    assert data["walk_forward"]["final_value"] > 0
    assert data["buy_and_hold"]["final_value"] > 0
    assert data["data"]["start"].startswith("2019-01-01") and data["data"]["bars"] == 1096
    growth = 1.0
    for w in windows:
        growth *= 1 + w["out_of_sample_return"]
    assert growth == pytest.approx(data["walk_forward"]["final_value"] / 10000, rel=1e-9)
    for name in (
        "walk_forward.csv",
        "hindsight.csv",
        "walk_forward.png",
        "walk_forward_report.html",
    ):
        assert (out / name).is_file()
    assert "Example:" in runner.invoke(app, ["walk-forward", "--help"]).output
    refused = runner.invoke(app, ["walk-forward", "--engine", "fast", "--out", str(out)])
    assert refused.exit_code != 0 and "--engine must be 'compiled' or 'replay'" in refused.output


def test_backtest_limit_fills_from_finer_candles(tmp_path: Path) -> None:
    """--limit-ranges 5m: a limit meets the next day's first limit_timeout of 5-minute
    candles (at least one), which fills no more limits than the whole next day does."""
    config = tmp_path / "limit.toml"
    config.write_text(
        "[targets]\nBTC = 0.4\nETH = 0.3\nSOL = 0.2\nUSDT = 0.1\n[fees]\ntaker = 0.001\n"
        'maker = 0\n[execution]\norder_type = "limit_inside"\nlimit_timeout = "5m"\n'
    )
    data = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"
    makers = {}
    for ranges in (None, "5m"):
        out = tmp_path / str(ranges)
        args = ["backtest", "-c", str(config), "--data-dir", str(data), "--out", str(out)]
        args += ["--no-report", "--engine", "replay"]
        args += ["--limit-ranges", ranges] if ranges else []
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert ("5m candles" in result.output) == (ranges == "5m")
        trades = pd.read_csv(out / "trades.csv")
        makers[ranges] = int((trades["fee"] == 0).sum())  # maker fee 0: the limits filled
    assert 0 < makers["5m"] <= makers[None]
    bad = runner.invoke(
        app, ["backtest", "-c", str(config), "--limit-ranges", "1h", "--engine", "replay"]
    )
    assert bad.exit_code != 0 and "1h" in bad.output  # the embedded data has daily files only


@pytest.mark.parametrize(
    "args",
    [
        ["backtest", "--no-report"],
        ["sweep", "--bands", "0.05,0.1", "--fee", "0.001"],
        ["walk-forward", "--bands", "0.05,0.1", "--train", "200d", "--test", "100d"],
    ],
    ids=["backtest", "sweep", "walk-forward"],
)
def test_text_output_names_the_real_window_and_the_data_notes_first(
    tmp_path: Path, args: list[str]
) -> None:
    """--start before the data: the text output says which window was really run and why
    (the data notes), before the first result table, not only in --json."""
    result = runner.invoke(app, [*args, "--start", "2018-01-01", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    data_line = out.index("Data: 2024-10-01 → 2026-01-29 (486 daily bars)")
    note = out.index("requested start 2018-01-01 00:00 UTC is not covered")
    first_table = min(out.index(s) for s in ("┏", "Break-even", "Walk-forward by") if s in out)
    assert data_line < note < first_table
    # each command's HTML report names the same window and carries the note
    report = {
        "backtest": None,
        "sweep": "sweep_report.html",
        "walk-forward": "walk_forward_report.html",
    }[args[0]]
    if report is not None:
        page = (tmp_path / report).read_text(encoding="utf-8")
        assert "2024-10-01 → 2026-01-29 (486 daily bars)</h1>" in page
        assert "requested start 2018-01-01 00:00 UTC is not covered" in page
        assert str(tmp_path / report) in out.replace("\n", "")


def test_sweep_names_the_replay_for_a_rule_the_compiled_engine_lacks(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'quote = "USDT"\n[targets]\nBTC = 0.5\nETH = 0.3\nUSDT = 0.2\n'
        '[execution]\norder_type = "limit_inside"\n'
    )
    args = ["sweep", "-c", str(config), "--bands", "0.05", "--fee", "0.001", "--kinds", "rel",
            "--semantics", "full", "--workers", "1", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "limit orders" in result.output and "--engine replay" in result.output
    assert "Traceback" not in result.output
    audit = runner.invoke(app, [*args, "--engine", "replay", "--json"])
    assert audit.exit_code == 0, audit.output
    assert json.loads(audit.stdout)["engines"] == {"replay": 1}


@pytest.mark.parametrize("exchange", ["binance", "kraken"])
def test_backtest_trades_on_the_configs_venue_as_the_sweep_does(
    tmp_path: Path, exchange: str
) -> None:
    """One model: `backtest` fills on the config's venue (its market list, its fee side) and
    gives the final value of the sweep's row for the same band and fee; Kraken's fee in the
    quote changes the result against Binance's fee in the asset received."""
    config = tmp_path / f"{exchange}.toml"
    config.write_text(
        f'exchange = "{exchange}"\nquote = "USDT"\n[targets]\nBTC = 0.5\nETH = 0.4\n'
        'USDT = 0.1\n[trigger]\nkind = "threshold"\nband_abs = 0.03\n'
    )
    args = ["-c", str(config), "--fee", "0.002", "--json"]
    bt = runner.invoke(app, ["backtest", *args, "--no-report"])
    assert bt.exit_code == 0, bt.output
    back = json.loads(bt.stdout)
    assert back["venue"] == exchange and exchange in back["market_rules"]
    sw = runner.invoke(
        app, ["sweep", *args, "--bands", "0.03", "--kinds", "abs", "--out", str(tmp_path / "o")]
    )
    assert sw.exit_code == 0, sw.output
    (row,) = json.loads(sw.stdout)["rows"]
    assert back["strategy"]["final_value"] == pytest.approx(row["final_value"], rel=1e-9)
    if exchange == "kraken":  # the same config on Binance: another fee side, another value
        config.write_text(config.read_text().replace('"kraken"', '"binance"'))
        other = json.loads(runner.invoke(app, ["backtest", *args, "--no-report"]).stdout)
        assert other["venue"] == "binance"
        assert other["strategy"]["final_value"] != pytest.approx(
            back["strategy"]["final_value"], rel=1e-9
        )
