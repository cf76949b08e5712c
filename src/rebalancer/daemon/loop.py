"""The daemon's loop: one cycle at start, then one per scheduled time, until told to stop.

Errors are handled by what they ask for (:mod:`rebalancer.core.errors`):

* :class:`~rebalancer.core.errors.RetryLater`, and any unexpected error: the tick failed;
  try again after ``retry_after``, doubling on each consecutive failure up to
  ``max_backoff``; a success resets it and the schedule resumes. The user hears about the
  first failure of a run of failures, when the back-off reaches its cap, and the recovery.
* :class:`~rebalancer.core.errors.StopAndTell` (bad keys, a broken invariant, ...): a halt
  is journaled (no order until ``rebalancer resume``), the user is told, the daemon stops
  with exit code 3 (``RestartPreventExitStatus=3`` in the systemd unit).

While a halt is active (circuit breaker, a ban, ``rebalancer resume`` not run yet) no
order may be sent, so a tick reads nothing from the exchange: it only logs "halted" --
unless the journal holds order intents whose outcome is unknown, which are then looked up
(reconciliation is the one thing a halted daemon still does).

SIGTERM/SIGINT only set a flag: the cycle in progress (its sells, its buys, each journaled
before it is sent) runs to its end, then the loop stops; no order intent is left open.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import FrameType
from typing import Any, Protocol

from rebalancer.core.errors import RetryLater, StopAndTell
from rebalancer.core.flows import expected_balances
from rebalancer.core.model import ZERO
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.daemon.heartbeat import Heartbeat
from rebalancer.daemon.schedule import Schedule
from rebalancer.ports import Clock, Event, Exchange, Journal, Notifier, PriceHistory
from rebalancer.service import CycleReport, Retarget, reconcile, run_cycle

log = logging.getLogger("rebalancer.daemon")

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # --once / --max-ticks: the run ended on a failed check
EXIT_STOPPED_BY_ERROR = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Waiter(Protocol):
    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        """Return at ``when`` (by the daemon's clock), or as soon as ``stop`` is set."""
        ...


@dataclass
class SystemWaiter:
    """Sleeps on ``stop`` in naps of at most ``max_nap`` seconds, re-reading the clock
    after each (a suspended laptop or a clock step does not make it oversleep)."""

    clock: Clock
    max_nap: float = 30.0

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        while not stop.is_set():
            remaining = (when - self.clock.now()).total_seconds()
            if remaining <= 0:
                return
            stop.wait(min(remaining, self.max_nap))


def backoff_delay(failures: int, first: timedelta, cap: timedelta) -> timedelta:
    """``first``, then twice as long for each further consecutive failure, at most ``cap``."""
    if failures <= 0:
        return timedelta(0)
    return min(first * (1 << min(failures - 1, 40)), cap)


def checks(n: int) -> str:
    """``"1 check"``, ``"3 checks"``."""
    return f"{n} check" if n == 1 else f"{n} checks"


@dataclass(frozen=True)
class DaemonPolicy:
    schedule: Schedule
    retry_after: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=1)
    daily_summary: bool = False
    max_ticks: int | None = None
    # the command-line flag that set max_ticks, named when the daemon stops on it
    max_ticks_flag: str = "--max-ticks"

    @classmethod
    def from_config(
        cls, daemon: Any, max_ticks: int | None = None, max_ticks_flag: str = "--max-ticks"
    ) -> DaemonPolicy:
        """From a validated ``[daemon]`` table (:class:`rebalancer.config.schema.Daemon`)."""
        from rebalancer.config import parse_period

        return cls(
            Schedule.from_config(daemon),
            parse_period(daemon.retry_after),
            parse_period(daemon.max_backoff),
            daemon.notify_daily_summary,
            max_ticks,
            max_ticks_flag,
        )


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    ticks: int
    reason: str


@dataclass
class _Day:
    """What happened on one UTC day, for the daily summary."""

    day: date
    checks: int = 0
    rebalances: int = 0
    orders: int = 0
    fees: Decimal = ZERO
    failures: int = 0
    last: CycleReport | None = None


@dataclass
class Daemon:
    exchange: Exchange
    journal: Journal
    notifier: Notifier
    strategy: Strategy
    clock: Clock
    policy: DaemonPolicy
    waiter: Waiter
    heartbeat: Callable[[Heartbeat], None] | None = None
    risk: RiskLimits | None = None
    mode: str = "paper"
    ticks: int = 0
    failures: int = 0
    reports: list[CycleReport] = field(default_factory=list)
    keep_reports: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _stop_reason: str = ""
    _beat: Heartbeat | None = None
    _day: _Day | None = None
    history: PriceHistory | None = None  # recent closes, for look-back triggers
    _expected: dict[str, Decimal] | None = None  # post-trade balances of the last cycle
    retarget: Retarget | None = None  # optimised targets on a schedule ([optimise])
    # told at start (logged as warnings, and each a "warning" event): e.g. frozen paper prices
    warnings: tuple[str, ...] = ()

    # -- stopping ------------------------------------------------------------------------

    def request_stop(self, reason: str = "asked to stop") -> None:
        """Stop after the cycle in progress (safe from a signal handler: sets a flag)."""
        if not self._stop.is_set():
            self._stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _pause(self, period: timedelta) -> None:
        """Wait ``period`` between two slices, cut short by a stop request: the cycle in
        progress then sends its remaining slices at once and ends (every slice is
        journaled; the next start re-plans from the balances)."""
        self._stop.wait(period.total_seconds())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(f"signal {signal.Signals(signum).name}")

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT request a stop while inside (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- the loop ------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> RunResult:
        """Tick until stopped, ``max_ticks`` are done, or an error needs the user."""
        if handle_signals:
            with self.stop_on_signals():
                return self._run()
        return self._run()

    def _run(self) -> RunResult:
        schedule = self.policy.schedule.describe()
        self._beat = Heartbeat(self.mode, schedule, os.getpid(), self.clock.now())
        log.info("daemon started (%s): checks %s, the first one now", self.mode, schedule)
        self._send(Event("start", f"rebalancer started ({self.mode})", f"checks {schedule}"))
        for warning in self.warnings:
            log.warning("%s", warning)
            title = f"rebalancer started with a warning ({self.mode})"
            self._send(Event("warning", title, warning))
        exit_code, reason = EXIT_OK, ""
        next_at = self.clock.now()
        try:
            while True:
                if self.policy.max_ticks is not None and self.ticks >= self.policy.max_ticks:
                    exit_code, reason = self._ticks_done()
                    break
                self._beat.next_tick = next_at
                self._write_beat()
                self.waiter.wait_until(next_at, self._stop)
                if self._stop.is_set():
                    break
                now = self.clock.now()
                fatal = self._tick(now)
                if fatal:
                    exit_code, reason = EXIT_STOPPED_BY_ERROR, fatal
                    break
                next_at = self._next_after(now)
        finally:
            if self._stop.is_set() and not reason:
                reason = self._stop_reason
            self._finish(exit_code, reason)
        return RunResult(exit_code, self.ticks, reason)

    def _ticks_done(self) -> tuple[int, str]:
        """Exit code and reason once ``max_ticks`` are done: a failure when the last check
        failed (``run --once`` in a cron job must see it; a halted check is no failure)."""
        reason = f"done ({self.policy.max_ticks_flag})"
        if not self.failures:
            return EXIT_OK, reason
        last = self._beat.last_error if self._beat is not None else ""
        return EXIT_CHECK_FAILED, f"{reason}; the last check failed: {last}"

    def _next_after(self, now: datetime) -> datetime:
        if self.failures:
            return now + backoff_delay(
                self.failures, self.policy.retry_after, self.policy.max_backoff
            )
        return self.policy.schedule.next_after(now)

    def _finish(self, exit_code: int, reason: str) -> None:
        beat = self._beat
        assert beat is not None
        beat.state = "failed" if exit_code else "stopped"
        beat.next_tick = None
        beat.stopped_at = self.clock.now()
        self._write_beat()
        log.info("daemon stopped after %s: %s", checks(self.ticks), reason or "done")
        if not exit_code:  # a failure was already told (a halt, or the failed check)
            self._send(Event("stop", f"rebalancer stopped ({self.mode})", reason or "done", {}))

    # -- one tick --------------------------------------------------------------------------

    def _tick(self, now: datetime) -> str:
        """Run one cycle at ``now``; the reason when the daemon must stop, else ""."""
        self.ticks += 1
        beat = self._beat
        assert beat is not None
        beat.ticks, beat.last_tick = self.ticks, now
        try:
            getattr(self.journal, "confirm_lock", lambda: None)()  # LockLost: stop at once
            if self._halted_tick(now):
                return ""
            report = run_cycle(
                self.exchange,
                self.journal,
                self.notifier,
                self.strategy,
                now,
                risk=self.risk,
                history=self.history,
                expected=self._expected,
                retarget=self.retarget,
                pause=self._pause,
            )
            # what the next cycle should find; unknown after a stop (an order may be open)
            self._expected = (
                None
                if report.stopped or report.reconciled is None or not report.reconciled.clear
                else expected_balances(report.snapshot.balances, report.fills, self.strategy.quote)
            )
        except StopAndTell as exc:
            self._expected = None
            return self._fatal(now, exc)
        except RetryLater as exc:
            self._expected = None
            self._failed(now, exc)
        except Exception as exc:  # a bug or a surprise: this cycle fails, the daemon lives
            self._expected = None
            log.exception("tick at %s failed unexpectedly", f"{now:%Y-%m-%d %H:%M}")
            self._failed(now, exc)
        else:
            self._succeeded(now, report)
        return ""

    def _halted_tick(self, now: datetime) -> bool:
        """While a halt is active: only resolve unresolved intents (if any), read no
        balance or price, and say so; False when trading is not halted."""
        halt = self.journal.halt_status().active
        if halt is None:
            return False
        self._expected = None  # balances unread while halted: flows cannot be told apart
        result = f"halted since {halt.at:%Y-%m-%d %H:%M} UTC: {halt.reason}"
        if self.journal.unresolved_intents():
            found = reconcile(self.exchange, self.journal, now)
            result += f"; reconciled {len(found.resolved)} order(s)"
            if found.unknown:
                result += f", still unknown: {', '.join(found.unknown)}"
        beat = self._beat
        assert beat is not None
        self.failures = 0
        beat.consecutive_failures = 0
        beat.last_result = result + "; run `rebalancer resume` to trade again"
        log.info("tick %d at %s: %s", self.ticks, f"{now:%Y-%m-%d %H:%M}", beat.last_result)
        return True

    def _succeeded(self, now: datetime, report: CycleReport) -> None:
        beat = self._beat
        assert beat is not None
        if self.failures:
            self._send(
                Event(
                    "recovered",
                    "checks work again",
                    f"after {self.failures} failed attempt(s); last error: {beat.last_error}",
                )
            )
        self.failures = 0
        beat.consecutive_failures = 0
        beat.last_ok = now
        beat.last_result = describe(report)
        log.info("tick %d at %s: %s", self.ticks, f"{now:%Y-%m-%d %H:%M}", beat.last_result)
        if report.stopped:
            log.warning("cycle stopped: %s", report.stopped)
        if self.keep_reports:
            self.reports = [*self.reports, report][-self.keep_reports :]
        self._count(now, report)

    def _failed(self, now: datetime, exc: Exception) -> None:
        beat = self._beat
        assert beat is not None
        self.failures += 1
        beat.consecutive_failures = self.failures
        beat.last_error = f"{now:%Y-%m-%d %H:%M} UTC {type(exc).__name__}: {exc}"
        delay = backoff_delay(self.failures, self.policy.retry_after, self.policy.max_backoff)
        log.warning(
            "tick %d failed (%d in a row): %s: %s; retry in %s",
            self.ticks,
            self.failures,
            type(exc).__name__,
            exc,
            delay,
        )
        if self._day is not None:
            self._day.failures += 1
        previous = backoff_delay(
            self.failures - 1, self.policy.retry_after, self.policy.max_backoff
        )
        if self.failures == 1 or (delay == self.policy.max_backoff and previous < delay):
            self._send(
                Event(
                    "error",
                    f"check failed ({self.failures} in a row)",
                    f"{type(exc).__name__}: {exc}\nretrying in {delay}",
                    {"failures": self.failures, "retry_in_s": delay.total_seconds()},
                )
            )

    def _fatal(self, now: datetime, exc: StopAndTell) -> str:
        reason = f"{type(exc).__name__}: {exc}"
        beat = self._beat
        assert beat is not None
        beat.last_error = f"{now:%Y-%m-%d %H:%M} UTC {reason}"
        log.error("stopping: %s", reason)
        try:
            self.journal.record_halt(f"daemon stopped: {reason}", now)
        except Exception:
            log.exception("could not journal the halt")
        self._send(
            Event(
                "halt",
                "rebalancer stopped: it needs you",
                f"{reason}\nFix the cause, run `rebalancer resume`, then start "
                "`rebalancer run` again.",
            )
        )
        return reason

    # -- daily summary ---------------------------------------------------------------------

    def _count(self, now: datetime, report: CycleReport) -> None:
        if not self.policy.daily_summary:
            return
        day = self._day
        if day is not None and now.date() != day.day:
            self._send(daily_summary(day, self.strategy.quote))
            day = None
        if day is None:
            day = self._day = _Day(now.date())
        day.checks += 1
        day.rebalances += bool(report.fills)
        day.orders += len(report.fills)
        day.fees += report.fees_in_quote()
        day.last = report

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, event: Event) -> None:
        try:
            self.notifier.send(event)
        except Exception:  # the port says "never raises"; a broken notifier must not stop us
            log.exception("notifier failed on a %s event", event.kind)

    def _write_beat(self) -> None:
        if self.heartbeat is None or self._beat is None:
            return
        try:
            self.heartbeat(self._beat)
        except Exception:
            log.exception("could not write the heartbeat")


def describe(report: CycleReport) -> str:
    """One line: what a cycle decided and did."""
    parts = [("rebalance: " if report.decision.fire else "no rebalance: ") + report.decision.reason]
    if report.fills:
        parts.append(f"{len(report.fills)} orders filled")
    if report.failed:
        parts.append(f"{len(report.failed)} not placed")
    if report.stopped:
        parts.append(f"stopped: {report.stopped}")
    if report.targets_note and " next at " not in report.targets_note:
        parts.append(report.targets_note)  # a change, a reset, or why none was made
    return "; ".join(parts)


def daily_summary(day: _Day, quote: str) -> Event:
    lines = [
        f"{day.checks} checks, {day.rebalances} rebalances, {day.orders} orders, "
        f"fees {day.fees:.2f} {quote}, {day.failures} failed checks"
    ]
    data: dict[str, Any] = {
        "day": day.day.isoformat(),
        "checks": day.checks,
        "rebalances": day.rebalances,
        "orders": day.orders,
        "fees_quote": str(day.fees),
        "failures": day.failures,
    }
    if day.last is not None:
        drift = day.last.drift_after or day.last.drift
        lines.append(f"value {drift.total_value:.2f} {quote}")
        lines.extend(
            f"{a.asset}: {float(a.weight) * 100:.1f}% (target {float(a.target) * 100:.1f}%)"
            for a in drift.assets
        )
        data["total_value"] = str(drift.total_value)
    return Event("summary", f"daily summary {day.day.isoformat()}", "\n".join(lines), data)
