"""Shared test set-up: no test writes outside its tmp dir or reaches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the user's data/config dirs into tmp so paper state never leaks between tests."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("REBALANCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    assert path.is_dir(), f"../shared/data not found at {path}: clone with ../shared beside it"
    return path
