"""The rules comparison runs every rule over real closes and prints one Markdown row each."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.backtest.compare_rules import HEADER, execution_rules, main, rules

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2024_2026"


def test_table_has_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            str(DATA),
            "--targets",
            "BTC=0.5,ETH=0.4,USDT=0.1",
            "--start",
            "2024-01-01",
            "--end",
            "2024-12-31",
        ]
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    names = [line.split(" | ")[0][2:] for line in lines[1:]]
    assert names == [
        *(name for name, _, _ in rules()),
        *(name for name, *_ in execution_rules()),
        "risk parity monthly (90d)",
        "min variance monthly (90d)",
    ]
    plain = next(line for line in lines if "plain" in line).split(" | ")
    assert int(plain[5]) > 1  # rebalanced more than the first purchase
