"""Tests that read ../shared/data skip with the reason when it is absent (a clone without
../shared beside it), instead of failing; the others in the same files still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tests_that_need_the_shared_data_skip_without_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "REBALANCER_TEST_SHARED": str(tmp_path / "no-shared"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/adapters/test_live_history.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 skipped" in done.stdout and "1 passed" in done.stdout, done.stdout
    assert "needs the real candles of ../shared/data" in done.stdout


def test_the_markers_select(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
         "-m", "shared_data", "tests/adapters/test_live_history.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "5/6 tests collected (1 deselected)" in done.stdout, done.stdout
