"""A child process that runs one cycle and kills itself with SIGKILL at a chosen point.

``python crash_child.py WORKDIR POINT``: the Binance double's ledger and orders live in
WORKDIR/exchange.json (read at start, written after every order request), the journal in
WORKDIR/journal.sqlite (the account's lock taken, as a trading process does). POINT:

* ``after_intent``  -- the first intent is committed, the request not sent yet;
* ``after_send``    -- the exchange accepted and filled the first order, the reply is lost;
* ``after_fill``    -- the adapter returned the first fill, the service has not journaled it;
* ``before_commit`` -- inside the journal transaction that records the first fill.

Exit status: killed by SIGKILL (-9) when the point was reached, 3 when it never was.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from faults.harness import make_world
from rebalancer.adapters.journal.models import FillRow


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(world: Any, point: str) -> None:
    if point == "after_intent":
        record = world.journal.record_intent

        def record_then_die(order: Any, at: Any) -> None:
            record(order, at)
            die()

        world.journal.record_intent = record_then_die
    elif point == "after_send":
        world.double.after_order.append(lambda d: die())
    elif point == "after_fill":
        create = world.exchange.create_market_order

        def fill_then_die(order: Any) -> Any:
            create(order)
            die()

        world.exchange.create_market_order = fill_then_die
    elif point == "before_commit":

        def before_commit(session: Any) -> None:
            if any(isinstance(row, FillRow) for row in session.new):
                die()

        event.listen(world.journal._sessions, "before_commit", before_commit)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


def main() -> None:
    workdir, point = Path(sys.argv[1]), sys.argv[2]
    world = make_world(workdir, state_file=workdir / "exchange.json")
    arm(world, point)
    world.cycle(0)
    raise SystemExit(3)


if __name__ == "__main__":
    main()
