"""The soak's tally lines, printed at the end of the run."""

from __future__ import annotations

from typing import Any

from soak.harness import TALLIES


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not TALLIES:
        return
    terminalreporter.section("soak")
    for tally in TALLIES:
        terminalreporter.write_line(tally.line())
        for violation in tally.violations[:20]:
            terminalreporter.write_line(f"  violation: {violation}")
