"""A one-day slice (288 five-minute checks) of the soak on every venue: the daemon's own loop,
a seeded storm of faults, every invariant checked after every cycle (:mod:`soak.harness`).

``scripts/dev soak`` runs the full two weeks (4,032 cycles per venue) and prints the tally.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rebalancer.ports import Event
from soak.harness import DAY, T0, TALLIES, Soak, scratch
from soak.venues import B_SECRET, VENUES


@pytest.mark.parametrize("name", VENUES)
def test_one_day_of_faults(name: str) -> None:
    with scratch() as folder:
        tally = Soak(name, folder, cycles=DAY).run()
    TALLIES.append(tally)
    assert tally.violations == [], "\n".join(tally.violations)
    assert tally.cycles >= DAY
    assert len(tally.faults) >= 10, tally.faults  # a storm of many kinds, not one
    kills = sum(n for kind, n in tally.faults.items() if kind.startswith("kill"))
    assert tally.orders >= 10 and kills >= 1 and tally.halts >= 1


# -- the checks catch what they claim to (so a green soak means something) ------------------


def opened(folder: Any, cycles: int = 3) -> Soak:
    """A soak on Binance after a few clean cycles, its journal left open for the checks."""
    soak = Soak("binance", folder, cycles=cycles, rate=0.0)
    soak.run()
    soak._open()
    assert soak.tally.violations == []
    return soak


def test_a_doubled_order_and_one_without_an_intent_are_caught() -> None:
    with scratch() as folder:
        soak = opened(folder)
        double = soak.venue.accounts[0].double
        double.orders.append(double.orders[0])
        double.orders.append(SimpleNamespace(client_order_id="rb-no-intent"))
        soak._check_orders()
        assert soak.journal is not None
        soak.journal.close()
    found = "\n".join(soak.tally.violations)
    assert "accepted 2 times" in found and "rb-no-intent" in found


def test_a_balance_the_journal_does_not_explain_is_caught() -> None:
    with scratch() as folder:
        soak = opened(folder)
        soak.venue.accounts[0].deposit("USDT", 5)  # not told to the checker
        soak._check_orders()
        assert soak.journal is not None
        soak.journal.close()
    assert "account != start + flows + journaled fills" in soak.tally.violations[0]


def test_a_secret_in_a_notification_is_caught() -> None:
    with scratch() as folder:
        soak = opened(folder)
        soak.notifier.send(Event("error", "oops", f"signed with {B_SECRET}"))
        soak._check_secrets()
        assert soak.journal is not None
        soak.journal.close()
    assert "a secret" in soak.tally.violations[0]


def test_a_halt_lifted_without_resume_and_a_missed_breaker_are_caught() -> None:
    with scratch() as folder:
        soak = opened(folder)
        soak.halted_before = True  # halted before the tick, and no halt now
        soak._check_halt(None)
        soak.values = [(T0, soak.values[-1][1])]
        fallen = SimpleNamespace(at=T0, drift=SimpleNamespace(total_value=soak.values[0][1] / 2))
        soak._check_breaker(fallen, halted=False)  # type: ignore[arg-type]
        soak._check_breaker(
            SimpleNamespace(at=T0, drift=SimpleNamespace(total_value=soak.values[0][1])),
            halted=True,  # type: ignore[arg-type]
        )
        assert soak.journal is not None
        soak.journal.close()
    found = soak.tally.violations
    assert "lifted without `resume`" in found[0]
    assert "did not halt" in found[1] and "halted at a fall of only" in found[2]
