"""Optimised targets applied on a schedule (``[optimise]``): :func:`apply_targets`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from rebalancer.core.model import ZERO
from rebalancer.core.numbers import plain
from rebalancer.core.retarget import Cadence, next_due, targets_due
from rebalancer.core.strategy import Strategy
from rebalancer.ports import (
    Event,
    Journal,
    Notifier,
    PriceHistory,
    TargetChange,
    TargetOptimiser,
)


@dataclass(frozen=True)
class Retarget:
    """Optimised targets applied on a schedule (``[optimise]``): the optimiser, when it is
    due, and how many daily returns it reads (``window``; it needs ``window + 1`` closes)."""

    optimiser: TargetOptimiser
    cadence: Cadence
    window: int
    start_now: bool = False  # [optimise] start = "now": optimise at once on a (re)start


@dataclass(frozen=True)
class TargetsStep:
    """The targets a cycle uses and what happened to them: ``changed`` when the optimiser
    replaced them in this cycle (journaled first when executing), ``note`` for the report."""

    strategy: Strategy
    note: str
    changed: bool = False


def apply_targets(
    retarget: Retarget,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    history: PriceHistory | None,
    *,
    execute: bool = True,
) -> TargetsStep:
    """The targets in force at ``now``: the journal's latest, or new ones when due.

    ``strategy.targets`` are the config's. With no journaled change, or one made under other
    config targets or another method, the config's targets are (re)applied and journaled
    (method ``"config"``): the first optimisation is at the next scheduled time, or at once
    with ``retarget.start_now`` (``[optimise] start = "now"``). Otherwise
    the latest journaled targets hold until :func:`~rebalancer.core.retarget.targets_due`;
    then, with ``window + 1`` daily closes of every asset, the optimiser's targets are
    journaled *before* they are used and the user is told. Too little history keeps the
    current targets and says why (asked again at the next cycle). ``execute=False`` (plan,
    status) journals and notifies nothing.
    """
    method = retarget.optimiser.method
    config = dict(strategy.targets)
    latest = journal.latest_target_change()
    if latest is None or latest.config_method != method or latest.config_targets != config:
        reset = _reset_to_config(retarget, journal, notifier, latest, config, now, execute)
        if not retarget.start_now:
            return TargetsStep(strategy, reset.explanation)
        current = config
    else:
        current = dict(latest.new)
        if not targets_due(retarget.cadence, latest.at, now):
            when = next_due(retarget.cadence, latest.at)
            source = "configured" if latest.method == "config" else f"{latest.method}"
            return TargetsStep(
                replace(strategy, targets=current),
                f"{source} targets since {latest.at:%Y-%m-%d %H:%M} UTC; "
                f"{method} next at {when:%Y-%m-%d %H:%M} UTC",
            )
    return _optimise(retarget, journal, notifier, strategy, now, history, current, execute)


def _reset_to_config(
    retarget: Retarget,
    journal: Journal,
    notifier: Notifier,
    latest: TargetChange | None,
    config: dict[str, Decimal],
    now: datetime,
    execute: bool,
) -> TargetChange:
    """Journal the configured targets as in force (first start, or the config changed)."""
    method = retarget.optimiser.method
    why = "first start" if latest is None else "the configured targets or method changed"
    first = "now" if retarget.start_now else f"{next_due(retarget.cadence, now):%Y-%m-%d %H:%M} UTC"
    baseline = TargetChange(
        now,
        "config",
        config if latest is None else dict(latest.new),
        config,
        f"configured targets applied ({why}); {method} from {first}",
        config,
        method,
    )
    if execute:
        journal.record_target_change(baseline)
        if latest is not None and latest.new != config:
            notifier.send(Event("targets", "targets reset to the config", baseline.explanation))
    return baseline


def _optimise(
    retarget: Retarget,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    history: PriceHistory | None,
    current: dict[str, Decimal],
    execute: bool,
) -> TargetsStep:
    """New targets from the optimiser over the trailing closes, journaled before use."""
    method = retarget.optimiser.method
    in_force = replace(strategy, targets=current)
    bars = retarget.window + 1
    closes = history.closes(strategy.assets, now, bars) if history is not None else {}
    short = {a: len(closes.get(a, ())) for a in strategy.assets if len(closes.get(a, ())) < bars}
    if short:
        have = ", ".join(f"{a} {n}" for a, n in short.items())
        return TargetsStep(
            in_force,
            f"{method} targets due but not enough price history ({bars} daily closes needed; "
            f"have {have}): keeping the current targets",
        )
    try:
        proposal = retarget.optimiser.propose(
            {a: list(closes[a])[-bars:] for a in strategy.assets}, current
        )
    except ValueError as exc:
        return TargetsStep(in_force, f"{method} targets due but failed ({exc}): keeping them")
    change = TargetChange(
        now,
        method,
        current,
        dict(proposal.targets),
        proposal.explanation,
        dict(strategy.targets),
        method,
    )
    if execute:
        journal.record_target_change(change)  # durable before a single order uses them
        lines = [f"{a}: {current.get(a, ZERO)} -> {w}" for a, w in change.new.items()]
        notifier.send(
            Event(
                "targets",
                "targets changed",
                "\n".join([*lines, proposal.explanation]),
                {
                    "method": method,
                    "old": {a: plain(w) for a, w in current.items()},
                    "new": {a: plain(w) for a, w in change.new.items()},
                },
            )
        )
    verb = "targets changed" if execute else "targets would change"
    return TargetsStep(
        replace(strategy, targets=change.new),
        f"{verb} by {method}: {proposal.explanation}",
        changed=change.new != current,
    )
