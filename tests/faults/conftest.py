"""The fault matrix's tally, printed at the end of the run (cases, invariants, violations)."""

from __future__ import annotations

from typing import Any

from faults.harness import TALLY


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if TALLY.cases == 0:
        return
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(TALLY.line())
    for violation in TALLY.violations:
        terminalreporter.write_line(f"  violation: {violation}")
