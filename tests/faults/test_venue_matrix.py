"""The fault matrix on every venue: one fault, scripted on the first cycle (which trades),
in the soak's world (:mod:`soak.harness`: the daemon's loop, a manual clock, the Kraken and
Coinbase doubles under the real CCXT classes, paper, Binance + Kraken as one portfolio),
then a dozen cycles; every invariant of the soak is checked after every cycle and at the
end, and each case counts in the matrix's tally.

The Binance double's cases of :mod:`faults.test_matrix` are here for the other venues, plus
what only the soak can do: a kill (in-process SIGKILL) before and after the exchange
processed an order, then a restart on the same journal and account; the journal's
connection dropped mid-cycle; a crash in prices that the circuit breaker must halt on.
"""

from __future__ import annotations

import pytest

from faults.harness import TALLY
from soak.harness import Soak, scratch

CYCLES = 12

# case -> (venue, the faults of the first cycle, what else must have happened)
CASES: dict[str, tuple[str, list[str], str]] = {
    "kraken: timeout after the exchange accepted the order": ("kraken", ["timeout_after"], ""),
    "kraken: HTTP 503 on the order": ("kraken", ["http_5xx_order"], ""),
    "kraken: 418 ban on a read halts until resume": ("kraken", ["http_418_read"], "halt"),
    "kraken: killed after the exchange processed the order": ("kraken", ["kill_after"], "kill"),
    "kraken: crossed book": ("kraken", ["crossed_book"], ""),
    "coinbase: timeout before the order reached the exchange": (
        "coinbase",
        ["timeout_before"],
        "",
    ),
    "coinbase: timeout after the exchange accepted the order": (
        "coinbase",
        ["timeout_after"],
        "",
    ),
    "coinbase: HTTP 503 on the order": ("coinbase", ["http_5xx_order"], ""),
    "coinbase: 429 with Retry-After on a read": ("coinbase", ["http_429_read"], ""),
    "coinbase: 418 ban on a read halts until resume": ("coinbase", ["http_418_read"], "halt"),
    "coinbase: killed before the order reached the exchange": (
        "coinbase",
        ["kill_before"],
        "kill",
    ),
    "coinbase: stale book": ("coinbase", ["stale_ticker"], ""),
    "coinbase: partial fill": ("coinbase", ["partial_fill"], ""),
    "binance: killed before the order reached the exchange": ("binance", ["kill_before"], "kill"),
    "binance: killed after the exchange processed the order": ("binance", ["kill_after"], "kill"),
    "binance: killed in the middle of a read": ("binance", ["kill_mid_read"], "kill"),
    "binance: the journal's connection dropped mid-cycle": ("binance", ["db_drop"], ""),
    "binance: a price jump is refused once": ("binance", ["price_jump"], ""),
    "paper: killed before the order": ("paper", ["kill_before"], "kill"),
    "paper: killed after the order was filled": ("paper", ["kill_after"], "kill"),
    "paper: timeout after the order was filled": ("paper", ["timeout_after"], ""),
    "paper: the journal's connection dropped mid-cycle": ("paper", ["db_drop"], ""),
    "two accounts: timeout after Kraken accepted its piece": (
        "multi",
        ["timeout_after@kraken"],
        "",
    ),
    "two accounts: killed after Kraken processed its piece": (
        "multi",
        ["kill_after@kraken"],
        "kill",
    ),
    "two accounts: HTTP 503 on a Binance order": ("multi", ["http_5xx_order@binance"], ""),
    "two accounts: deposit and withdrawal": ("multi", ["deposit@binance", "withdrawal@kraken"], ""),
}
for _venue in ("binance", "kraken", "coinbase", "paper", "multi"):
    # on the third cycle: the first one has no earlier value to fall from
    CASES[f"{_venue}: a 25 % crash halts the breaker until resume"] = (_venue, ["crash"], "halt")
ON_CYCLE = {case: 3 for case in CASES if "crash" in case}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_on_every_venue(case: str) -> None:
    name, faults, expect = CASES[case]
    with scratch() as folder:
        soak = Soak(name, folder, cycles=CYCLES, script={ON_CYCLE.get(case, 1): faults})
        tally = soak.run()
    TALLY.cases += 1
    TALLY.invariants += tally.invariants
    TALLY.names[case] += 1
    TALLY.violations.extend(f"{case}: {v}" for v in tally.violations)
    assert tally.violations == [], "\n".join(tally.violations)
    for fault in faults:
        assert tally.faults[fault.partition("@")[0]] == 1, tally.faults  # it did hit
    if expect == "halt":
        assert tally.halts >= 1
    if expect == "kill":
        assert tally.restarts >= 2  # the kill's, and the settling run's
    assert tally.orders > 0
