"""A target path: scheduled optimised targets given as input to a backtest.

A :class:`TargetPath` is the list of target changes a schedule decided (the times of
:func:`rebalancer.optimise.schedule.target_schedule` and the optimiser's weights), given to
an engine whole instead of being recomputed inside it. Both engines read it with the live
service's meaning (:func:`rebalancer.service.targets.apply_targets` and the ``decide`` step):

* the strategy's targets hold until the first change;
* a change decided at time ``c`` takes effect in the cycle of the first bar whose close time
  is at or after ``c`` (the first check at or after a scheduled time);
* in that cycle the new targets are in force before the rule is asked, and targets that
  differ from the ones in force *force a full rebalance* to them (as live: "targets
  changed"); a change to equal targets does nothing.

The Decimal replay runs it through the live ``retarget`` step itself: a
:class:`~rebalancer.service.targets.Retarget` whose schedule is the path's times
(:class:`AtTimes`) and whose optimiser hands out the path's targets in order
(:class:`PathOptimiser`), with a window of one close. The compiled engine reads
:meth:`TargetPath.kernel_input`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rebalancer.core.errors import ConfigError
from rebalancer.core.retarget import Cadence
from rebalancer.ports import TargetProposal

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class TargetPath:
    """Target changes in time order: ``(decision time (aware UTC), targets)`` pairs.

    Each targets mapping gives a Decimal weight to every leg of the strategy (the quote
    included), each >= 0, summing to exactly 1; times strictly increase. ``method``: the
    optimiser's name, for reports (e.g. ``"risk_parity"``).
    """

    changes: tuple[tuple[datetime, Mapping[str, Decimal]], ...]
    method: str = "path"

    def __post_init__(self) -> None:
        for k, (when, targets) in enumerate(self.changes):
            if when.tzinfo is None:
                raise ConfigError(f"target path: change {k} at {when} has no time zone (UTC)")
            if k and when <= self.changes[k - 1][0]:
                raise ConfigError(
                    f"target path: change {k} at {when} is not after change {k - 1} at "
                    f"{self.changes[k - 1][0]}: give the changes in strictly increasing time"
                )
            bad = {a: w for a, w in targets.items() if not (w.is_finite() and w >= 0)}
            if bad or sum(targets.values(), Decimal(0)) != 1:
                raise ConfigError(
                    f"target path: the targets at {when} ({dict(targets)}) must be >= 0 and "
                    "sum to exactly 1"
                )

    @classmethod
    def of(
        cls, changes: Iterable[tuple[Any, Mapping[str, Decimal]]], method: str = "path"
    ) -> TargetPath:
        """From ``(time, targets)`` pairs (pandas Timestamps accepted)."""
        out = []
        for when, targets in changes:
            t = when.to_pydatetime() if hasattr(when, "to_pydatetime") else when
            out.append((t, dict(targets)))
        return cls(tuple(out), method)

    def __len__(self) -> int:
        return len(self.changes)

    def bars(self, close_times: Sequence[datetime]) -> list[int]:
        """Per change, the bar whose cycle applies it: the first with close time ``>=`` the
        change's (changes after the last bar are dropped). Refused (naming the fix): a
        change at or before the first bar's close (the targets there are the strategy's:
        pass them as its targets), or two changes in one bar."""
        out: list[int] = []
        for when, _ in self.changes:
            i = bisect_left(close_times, when)
            if i >= len(close_times):
                break
            if i == 0:
                raise ConfigError(
                    f"target path: a change at {when} comes at or before the first bar's "
                    f"close ({close_times[0]}); the targets in force there are the "
                    "strategy's: give them as the strategy's targets instead"
                )
            if out and out[-1] == i:
                raise ConfigError(
                    f"target path: two changes fall in the bar closing at {close_times[i]}; "
                    "give at most one change per bar"
                )
            out.append(i)
        return out

    def kernel_input(
        self,
        close_times: Sequence[datetime],
        legs: Sequence[str],
        start: Mapping[str, Decimal],
    ) -> tuple[IntArray, FloatArray]:
        """The compiled kernel's ``(path_bar, path_rows)``: the bars where the targets in
        force change (in order) and the new targets there, one row per bar in ``legs``'
        order. Changes to the targets already in force (``start``: the strategy's) are left
        out: live, they neither change the targets nor force a rebalance."""
        rows: list[list[float]] = []
        bars: list[int] = []
        current = self._aligned(start, legs)
        for bar, (_, targets) in zip(self.bars(close_times), self.changes, strict=False):
            new = self._aligned(targets, legs)
            if new == current:
                continue
            bars.append(bar)
            rows.append([float(new[a]) for a in legs])
            current = new
        path_bar = np.array(bars, dtype=np.int64)
        path_rows = np.ascontiguousarray(np.array(rows, dtype=np.float64).reshape(-1, len(legs)))
        return path_bar, path_rows

    def segments(
        self, close_times: Sequence[datetime], legs: Sequence[str], start: Mapping[str, Decimal]
    ) -> list[tuple[int, int, dict[str, Decimal]]]:
        """``(first bar, end bar, targets)`` for each span of bars with one set of targets
        in force, covering every bar (the first span is ``start``'s)."""
        cuts = [0, *self.bars(close_times)]
        targets = [self._aligned(start, legs)]
        targets += [self._aligned(t, legs) for _, t in self.changes[: len(cuts) - 1]]
        ends = [*cuts[1:], len(close_times)]
        return [(lo, hi, t) for lo, hi, t in zip(cuts, ends, targets, strict=True) if hi > lo]

    def _aligned(self, targets: Mapping[str, Decimal], legs: Sequence[str]) -> dict[str, Decimal]:
        """``targets`` over exactly ``legs``, in their order (a missing leg is refused)."""
        extra = sorted(set(targets) - set(legs))
        missing = [a for a in legs if a not in targets]
        if extra or missing:
            raise ConfigError(
                f"target path: targets {dict(targets)} must name exactly the strategy's legs "
                f"{list(legs)} (missing {missing}, extra {extra})"
            )
        return {a: targets[a] for a in legs}

    def aligned(self, legs: Sequence[str]) -> TargetPath:
        """The same path with every targets mapping over exactly ``legs``, in their order."""
        return TargetPath(
            tuple((when, self._aligned(t, legs)) for when, t in self.changes), self.method
        )


@dataclass(frozen=True)
class AtTimes(Cadence):
    """A schedule of given times (aware UTC, increasing): the retarget step's cadence of a
    target path (a change is due at the first check at or after each time)."""

    times: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("AtTimes needs strictly increasing times")

    def next_after(self, t: datetime) -> datetime:
        i = bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else datetime.max.replace(tzinfo=t.tzinfo)

    def describe(self) -> str:
        return f"{len(self.times)} given time(s)"


class PathOptimiser:
    """A :class:`rebalancer.ports.TargetOptimiser` that hands out a path's targets in order,
    one change per call. With :class:`AtTimes` of the same path as the schedule, the live
    retarget step asks it exactly once per change, at the change's bar (the path allows at
    most one change per bar and none at the first), so call ``k`` returns change ``k``."""

    def __init__(self, path: TargetPath) -> None:
        self._path = path
        self._next = 0

    @property
    def method(self) -> str:
        return self._path.method

    def propose(
        self, closes: Mapping[str, Sequence[Decimal]], current: Mapping[str, Decimal]
    ) -> TargetProposal:
        if self._next >= len(self._path.changes):
            raise ValueError("the target path has no further change")
        when, targets = self._path.changes[self._next]
        self._next += 1
        return TargetProposal(dict(targets), f"target path change {self._next} (at {when})")
