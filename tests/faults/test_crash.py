"""Crash points: a real process running a cycle is killed with SIGKILL, then restarted.

The child (``crash_child.py``) trades against a Binance double whose ledger and orders are
persisted to a JSON file between processes, with the real SQLite journal and the account's
lock. The parent then plays the restarted bot: it opens the same journal with the lock (the
dead process's lock went with it), runs the next cycle -- reconciliation first -- and checks
every invariant of the matrix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faults.harness import finish, journal_rows, make_world

CHILD = Path(__file__).with_name("crash_child.py")

# crash point -> how reconciliation must resolve the first order
POINTS = {
    "after_intent": ("not_found", "not found: never placed", 0),
    "after_send": ("filled", "reconciled: filled", 1),
    "after_fill": ("filled", "reconciled: filled", 1),
    "before_commit": ("filled", "reconciled: filled", 1),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_then_restarted(point: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path), point],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    world = make_world(tmp_path, state_file=tmp_path / "exchange.json")  # takes the lock
    orders, fills, _ = journal_rows(world)
    first = orders[0]
    assert not first.resolved and first.status in ("intent", "unknown")
    assert fills == []  # the crash came before any fill was journaled
    world.outputs.append(child.stdout + child.stderr)

    report = world.cycle(60)
    status, source, accepted = POINTS[point]
    assert report.reconciled is not None and report.reconciled.clear
    assert report.reconciled.resolved[first.client_order_id].status == status
    assert report.reconciled.resolved[first.client_order_id].source == source
    assert world.double.accepted()[first.client_order_id] == accepted  # never re-sent
    assert not report.stopped and report.drift_after is not None
    finish(world, f"SIGKILL {point}")
