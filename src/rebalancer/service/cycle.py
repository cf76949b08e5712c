"""One cycle as a pipeline of named steps over one :class:`~.context.Cycle`:

retarget -> reconcile -> read -> decide -> plan -> risk -> sells -> re-plan -> buys -> read
after, then record (journal and notify), whatever step failed.

Failures, by when they happen:

* before the account was read (retarget, reconcile, read): nothing to record; the error
  goes to the caller (a ban is journaled as a halt first);
* after it, a transient failure (:class:`~rebalancer.core.errors.RetryLater`) stops the
  cycle: ``stopped`` says which step and why (a ban also halts), and the cycle is
  recorded and told -- as fired when it traded, so a calendar rule does not fire again;
* after it, any other error is recorded the same way, then raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from rebalancer.core.errors import ExchangeBanned, RetryLater
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.ports import Exchange, Journal, Notifier, PriceHistory
from rebalancer.service import guard, steps
from rebalancer.service.context import Cycle, Request, Wiring
from rebalancer.service.notices import tell
from rebalancer.service.report import CycleReport
from rebalancer.service.targets import Retarget

log = logging.getLogger("rebalancer.service")


@dataclass(frozen=True)
class Step:
    """A named step; ``failure``: what ``stopped`` says when it fails for a transient
    reason, ``{}`` standing for the error (default: "<name> failed (<error>)")."""

    name: str
    run: Callable[[Cycle], bool]
    failure: str = ""


STEPS: tuple[Step, ...] = (
    Step("retarget", steps.retarget),
    Step("reconcile", steps.reconcile_intents),
    Step("read", steps.read_account),
    Step("decide", steps.decide),
    Step("plan", steps.plan_orders),
    Step("risk", steps.check_risk),
    Step("sells", steps.sell, "the sells failed ({})"),
    Step(
        "re-plan", steps.replan_buys, "balances could not be read after the sells ({}); buys wait"
    ),
    Step("buys", steps.buy, "the buys failed ({})"),
    Step("read after", steps.read_after, "balances could not be read after the buys ({})"),
)


def run(wiring: Wiring, request: Request) -> CycleReport:
    """Run one cycle: the steps in order until one says stop, then record and tell (when
    executing), also when a step raised. Returns the report (see the module docstring for
    what is raised)."""
    cycle = Cycle(wiring, request, wiring.strategy)
    failure: BaseException | None = None
    try:
        _advance(cycle)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        report = _close(cycle, failure)
    assert report is not None  # no failure: the account was read
    return report


def _advance(cycle: Cycle) -> None:
    """Run the steps until one returns False; a transient failure after the account was
    read stops the cycle instead of failing it."""
    for step in STEPS:
        cycle.step = step.name
        try:
            if not step.run(cycle):
                return
        except RetryLater as exc:
            cycle.stopped = _transient(cycle, step, exc)
            return


def _transient(cycle: Cycle, step: Step, exc: RetryLater) -> str:
    """What a transient failure of ``step`` does: a ban halts (once, when executing);
    before the account was read the failure is raised; after it, the cycle stops and
    ``stopped`` says why."""
    banned = isinstance(exc, ExchangeBanned) and cycle.request.execute
    halted = _halt_once(cycle, str(exc)) if banned else ""
    if not cycle.read:
        raise exc
    return halted or (step.failure or f"{step.name} failed ({{}})").format(exc)


def _halt_once(cycle: Cycle, reason: str) -> str:
    """A ban lengthens with every request: halt (once) until the user resumes."""
    if cycle.wiring.journal.halt_status().active is not None:
        return f"halted: {reason}"
    return guard.halt(cycle, reason)


def _close(cycle: Cycle, failure: BaseException | None) -> CycleReport | None:
    """The report (None when the account was never read), journaled and told when
    executing. A failure that escaped a step is named in ``stopped``. A journal that
    cannot record does not hide the step's own failure (it is logged instead)."""
    if not cycle.read:
        return None
    if failure is not None and not cycle.stopped:
        cycle.stopped = f"{cycle.step} failed: {type(failure).__name__}: {failure}"
    report = cycle.report()
    if not cycle.request.execute:
        return report
    try:
        cycle.wiring.journal.record_cycle(report)
    except Exception:
        if failure is None:
            raise
        log.exception("the cycle at %s could not be journaled", report.at)
    finally:
        tell(cycle.wiring.notifier, report)
    return report


def run_cycle(
    exchange: Exchange,
    journal: Journal,
    notifier: Notifier,
    strategy: Strategy,
    now: datetime,
    *,
    execute: bool = True,
    force: bool = False,
    risk: RiskLimits | None = None,
    history: PriceHistory | None = None,
    expected: Mapping[str, Decimal] | None = None,
    retarget: Retarget | None = None,
    pause: Callable[[timedelta], None] | None = None,
) -> CycleReport:
    """Run one cycle at ``now``: :func:`run` with its :class:`Wiring` and :class:`Request`
    spelt out (their docstrings say what each argument does)."""
    wiring = Wiring(exchange, journal, notifier, strategy, risk, history, retarget, pause)
    return run(wiring, Request(now, execute, force, expected))
