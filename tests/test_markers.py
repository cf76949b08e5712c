"""Tests that read ../shared/data skip with the reason when it is absent (a clone without
../shared beside it), instead of failing; the others in the same files still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


FILE = "tests/backtest/test_walk_forward.py"  # tests of both kinds


def _collected(selection: str) -> int:
    """How many tests of FILE the marker expression ``selection`` selects."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
         "-m", selection, FILE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return int(done.stdout.split()[1])


def test_tests_that_need_the_shared_data_skip_without_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "REBALANCER_TEST_SHARED": str(tmp_path / "no-shared"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", FILE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shared, other = _collected("shared_data"), _collected("not shared_data")
    progress = done.stdout.splitlines()[0].split()[0]  # ".sss.." (-q twice: no summary line)
    assert (progress.count("s"), progress.count(".")) == (shared, other), done.stdout
    assert f"SKIPPED [{shared}] {FILE}: needs the real candles of ../shared/data" in done.stdout


def test_the_marker_selects_the_tests_that_read_the_shared_data() -> None:
    shared, other = _collected("shared_data"), _collected("not shared_data")
    assert shared >= 3 and other >= 1  # the file has tests of both kinds
    assert shared + other == _collected("shared_data or not shared_data")


def test_every_slow_entry_names_a_test_that_exists() -> None:
    from conftest import SLOW

    for entry in SLOW:
        path, _, name = entry.partition("::")
        assert (ROOT / path).is_file(), entry
        assert not name or f"def {name}(" in (ROOT / path).read_text(), entry


def test_the_slow_marker_selects() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
         "-m", "slow", "tests/cli/test_startup.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.stdout.split()[:2] == ["tests/cli/test_startup.py:", "1"], done.stdout
