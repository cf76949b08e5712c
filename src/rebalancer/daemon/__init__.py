"""The daemon: ``rebalancer run`` checks the portfolio on a schedule, for weeks.

It runs one cycle at start (each cycle first resolves the order intents an earlier run left
open), then one per scheduled time. A failed cycle never kills it: transient errors are
retried with a growing back-off, errors that need the user stop it with a notification.
SIGTERM/SIGINT end it between cycles, never inside one. Each tick is written to a heartbeat
file so ``status`` can show the last and the next tick and the last error.

It lives in the service layer: the adapters (exchange, journal, notifier, clock) are passed
in by the composition root, and time is only read from the clock, so tests drive it with a
manual clock and a waiter that jumps instead of sleeping.
"""

from rebalancer.daemon.heartbeat import Heartbeat, HeartbeatFile, heartbeat_path
from rebalancer.daemon.loop import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_STOPPED_BY_ERROR,
    Daemon,
    DaemonPolicy,
    RunResult,
    SystemWaiter,
    Waiter,
    backoff_delay,
)
from rebalancer.daemon.schedule import Schedule

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_OK",
    "EXIT_STOPPED_BY_ERROR",
    "Daemon",
    "DaemonPolicy",
    "Heartbeat",
    "HeartbeatFile",
    "RunResult",
    "Schedule",
    "SystemWaiter",
    "Waiter",
    "backoff_delay",
    "heartbeat_path",
]
