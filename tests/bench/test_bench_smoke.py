"""Smoke test of bench/'s table and JSON writer on a toy result (no peers, no data)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("run")


def _ours(final: list[float]) -> dict[str, object]:
    return {
        "bars": 10,
        "assets": 2,
        "seconds": 0.002,
        "peak_rss_mb": 200.0,
        "traced_mb": 0.1,
        "rss_after_load_mb": 150.0,
        "compile_s": 0.5,
        "load_s": 0.1,
        "skipped_bars": 0,
        "final_value": final,
        "rebalance_bars": [[3], [3], [3], [3]],
    }


def test_table_and_json_on_a_toy_grid(bench: ModuleType, tmp_path: Path) -> None:
    ours = _ours([100.0, 99.0, 98.0, 97.0])  # one band x the four fee rates
    vbt = {
        "combos_run": 4,
        "seconds": 0.2,
        "peak_rss_mb": 900.0,
        "compile_s": 5.0,
        "picked": [0, 1, 2, 3],
        "final_value": [100.0 * (1 + 1e-15), 99.5, 98.0, 97.0],
        "rebalance_bars": [[3], [3], [4], [3]],
    }
    res = {"G1": {"ours": ours, "vbt": vbt}}
    rows, verdicts = bench.summarise(res)
    table = bench.render(rows)
    assert table.splitlines()[0].startswith("| grid | measure")
    assert "2,500x vs vectorbt" in table and "(extrap. from 4)" in table
    zero = verdicts["G1"]["agreement"]["vectorbt"]["zero_fee"]
    assert zero["max_rel"] < 1e-14 and zero["same_bars"] == 1
    fees = verdicts["G1"]["agreement"]["vectorbt"]["with_fees"]
    assert fees["same_bars"] == 2 and fees["max_rel"] == pytest.approx(0.5 / 99)
    goals = {t["target"]: t["met"] for t in bench.targets(verdicts)}
    assert goals["G1 zero fee == vectorbt (1e-9 rel, same bars)"] is True
    assert goals["G2 sweep >= 300x faster than vectorbt"] is None  # not measured
    out = tmp_path / "latest.json"
    bench.write_json(out, {"table": rows, "x": math.nan, "targets": bench.targets(verdicts)})
    back = json.loads(out.read_text())
    assert back["x"] is None and back["table"] == rows
