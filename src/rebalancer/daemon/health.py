"""``python -m rebalancer.daemon.health``: exit 0 when the daemon is alive, 1 when not.

For container health checks and monitoring: reads the config (``REBALANCER_CONFIG`` or
``-c PATH``) for ``state_dir`` and ``mode``, then the heartbeat. Alive means the heartbeat
says running and its next check is not overdue by more than ten minutes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rebalancer.config import load_config
from rebalancer.core.errors import RebalancerError
from rebalancer.daemon.heartbeat import HeartbeatFile, heartbeat_path


def check(state_dir: Path, mode: str, now: datetime) -> tuple[bool, str]:
    beat = HeartbeatFile(heartbeat_path(state_dir, mode)).read()
    if beat is None:
        return False, f"no heartbeat in {state_dir}: the daemon has not run"
    alive = beat.state == "running" and not beat.stale(now)
    return alive, "; ".join(beat.lines(now))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[1]) if len(args) == 2 and args[0] in ("-c", "--config") else None
    if path is None and os.environ.get("REBALANCER_CONFIG"):
        path = Path(os.environ["REBALANCER_CONFIG"])
    if path is None and Path("rebalancer.toml").exists():
        path = Path("rebalancer.toml")
    try:
        settings = load_config(path)
    except RebalancerError as exc:
        print(f"unhealthy: {exc}")
        return 1
    alive, text = check(settings.state_dir, settings.mode, datetime.now(UTC))
    print(("healthy: " if alive else "unhealthy: ") + text)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
