"""`rebalancer init`: a commented config from flags (or questions), validated before writing."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.cli.init_cmd import parse_targets
from rebalancer.config import load_config

runner = CliRunner()


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_flags_write_a_config_every_command_accepts(tmp_path: Path) -> None:
    path = tmp_path / "kraken.toml"
    code, out = run(
        "init", str(path), "--exchange", "kraken", "--quote", "usd",
        "--targets", "BTC=0.6,ETH=0.3", "--trigger", "hybrid", "--band", "0.03",
        "--every", "1w",
    )  # fmt: skip
    assert code == 0, out
    assert f"wrote {path}" in out
    settings = load_config(path)
    assert settings.mode == "paper" and settings.exchange == "kraken" and settings.quote == "USD"
    assert settings.targets == {"BTC": D("0.6"), "ETH": D("0.3"), "USD": D("0.1")}
    trigger = settings.trigger
    assert trigger.kind == "hybrid" and trigger.band_abs == D("0.03") and trigger.every == "1w"
    assert "# " in path.read_text()  # commented
    code, out = run("config", "check", "-c", str(path))
    assert code == 0, out


def test_no_flags_and_no_terminal_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    code, out = run("init", str(path))
    assert code == 0, out
    settings = load_config(path)
    assert settings.exchange == "binance" and settings.quote == "USDT"
    assert settings.targets == {"BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1")}
    assert settings.trigger.kind == "threshold" and settings.trigger.band_abs == D("0.05")


def test_an_invalid_answer_writes_nothing_and_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    code, out = run("init", str(path), "--targets", "BTC=0.7,ETH=0.6")
    assert code == 2, out
    assert "targets" in out and not path.exists()
    code, out = run("init", str(path), "--exchange", "nosuchexchange")
    assert code == 2 and "exchange" in out and not path.exists()
    code, out = run("init", str(path), "--trigger", "sometimes")
    assert code == 2 and "threshold, calendar or hybrid" in out and not path.exists()


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    path.write_text("# mine\n")
    code, out = run("init", str(path))
    assert code == 2 and "--force" in out
    assert path.read_text() == "# mine\n"
    code, out = run("init", str(path), "--force")
    assert code == 0 and load_config(path).exchange == "binance"


def test_targets_in_percent_and_the_quote_taking_the_rest() -> None:
    assert parse_targets("btc=40, eth=30, sol=20", "USDT") == {
        "BTC": D("0.4"), "ETH": D("0.3"), "SOL": D("0.2"), "USDT": D("0.1"),
    }  # fmt: skip
    assert parse_targets("BTC=0.5,USD=0.5", "USD") == {"BTC": D("0.5"), "USD": D("0.5")}
