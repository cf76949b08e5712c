"""``scripts/dev soak``: the full soak (14 days of 5-minute checks per venue by default).

Prints one line per venue as it finishes, then one tally line for the whole run; exits 1
on any violation. ``--days 1`` is the CI slice; ``--seed`` draws another storm.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: doubles, soak

from soak.harness import DAY, Soak, Tally, scratch
from soak.venues import VENUES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dev soak", description=__doc__)
    parser.add_argument("--days", type=int, default=14, help="simulated days per venue")
    parser.add_argument("--seed", type=int, default=12, help="the fault generator's seed")
    parser.add_argument("--venues", default=",".join(VENUES), help="comma-separated")
    args = parser.parse_args(argv)
    total = Tally("all")
    started = time.perf_counter()
    for name in args.venues.split(","):
        began = time.perf_counter()
        with scratch() as folder:
            tally = Soak(name, folder, cycles=args.days * DAY, seed=args.seed).run()
        print(f"{tally.line()} [{time.perf_counter() - began:.0f} s]", file=sys.stderr)
        for violation in tally.violations:
            print(f"  violation: {violation}", file=sys.stderr)
        total.cycles += tally.cycles
        total.faults += tally.faults
        total.orders += tally.orders
        total.invariants += tally.invariants
        total.violations += tally.violations
        total.restarts += tally.restarts
        total.halts += tally.halts
    kinds: Counter[str] = total.faults
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    print(
        f"soak {args.days} days x {args.venues} (seed {args.seed}): {total.cycles} cycles, "
        f"{sum(kinds.values())} faults ({by_kind}), "
        f"{total.restarts} restarts, {total.halts} halts, {total.orders} orders, "
        f"{total.invariants} invariants checked, {len(total.violations)} violations "
        f"[{time.perf_counter() - started:.0f} s]"
    )
    return 1 if total.violations else 0


if __name__ == "__main__":
    sys.exit(main())
