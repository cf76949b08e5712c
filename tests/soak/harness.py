"""The soak: the daemon's own loop (:class:`rebalancer.daemon.Daemon`) for days of 5-minute
checks on one venue (:mod:`soak.venues`), with faults drawn from a seeded generator, and the
invariants checked after every cycle and at the end.

Time: a :class:`ManualClock` that the waiter moves to each wake-up time the daemon asks for
(the schedule, or its back-off after a failed check); nothing sleeps. Between two ticks the
waiter hands over to :meth:`Soak.between`: check the cycle that just ran, then move the
market and draw the faults for the next one. A kill (:class:`doubles.faults.Killed`, raised
in the middle of a cycle) ends :meth:`Daemon.run` as a SIGKILL ends the process; the soak
then restarts: a new journal connection on the same database, a new CCXT client (or paper
exchange read from its state file) on the same account, a new daemon.

Invariants (each counted in the tally every time it is checked):

1. no client order id accepted twice by an account, none accepted without a journaled intent;
2. on the wire, an order is sent only with exactly its own intent unresolved and no halt;
3. when no intent is unresolved, each account's balances (summed) equal the start plus the
   deposits and withdrawals plus every journaled fill (amount, cost and fee);
4. the circuit breaker halts exactly when its condition holds (the value fell more than
   ``max_drawdown`` below its peak within the window since the last resume; a 0.2 % band
   around the limit is left undecided) and a halt stays until the operator's ``resume``;
   a ban (HTTP 418) halts only on a tick that met one;
5. no API key or secret in any output (logs, notifications, errors);
6. the daemon never stops on its own (no "needs you" exit) and, at the end, no intent is
   left unresolved.
"""

from __future__ import annotations

import io
import math
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from doubles.faults import FlakyJournal, Killed, WireFault
from rebalancer.adapters.clock import ManualClock
from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.journal.models import FillRow
from rebalancer.adapters.journal.models import Order as OrderRow
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.core.model import ZERO
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.daemon import EXIT_CHECK_FAILED, Daemon, DaemonPolicy, Schedule
from rebalancer.logs import reset_logging, setup_logging
from rebalancer.service import CycleReport
from soak.venues import ASSETS, PRICES, Venue, venue

T0 = datetime(2026, 11, 2, tzinfo=UTC)
STEP = timedelta(minutes=5)
RESTART = timedelta(seconds=30)  # deploy/rebalancer.service: RestartSec=30
DAY = int(timedelta(days=1) / STEP)  # 288 cycles
TWO_WEEKS = 14 * DAY  # 4,032 cycles
VOL = 0.003  # standard deviation of a 5-minute log return
REVERSION = 0.01  # per 5 minutes, of the log distance to the start price
MAX_DRAWDOWN = Decimal("0.15")
BAND = Decimal("0.002")  # undecided band around the drawdown limit (prices: last vs mid)
STUCK = 48  # checks (4 hours) that fire and place nothing: the bot is stuck
TOLERANCE = Decimal("1e-7")  # CCXT hands amounts over as floats
PARTIAL = {"BTC": Decimal("0.002"), "ETH": Decimal("0.03"), "SOL": Decimal("0.5")}
WIRE = {
    "timeout_before": ("order", WireFault.TIMEOUT_BEFORE),
    "timeout_after": ("order", WireFault.TIMEOUT_AFTER),
    "http_5xx_order": ("order", WireFault.HTTP_5XX),
    "http_5xx_read": ("read", WireFault.HTTP_5XX),
    "http_429_order": ("order", WireFault.HTTP_429),
    "http_429_read": ("read", WireFault.HTTP_429),
    "http_418_read": ("read", WireFault.HTTP_418),
    "kill_before": ("order", WireFault.KILL_BEFORE),
    "kill_after": ("order", WireFault.KILL_AFTER),
    "kill_mid_read": ("read", WireFault.KILL_BEFORE),  # the scheduled kill and restart
}
NAMES = {(on, fault): name for name, (on, fault) in WIRE.items()}


@dataclass
class Tally:
    venue: str
    cycles: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    invariants: int = 0
    violations: list[str] = field(default_factory=list)
    restarts: int = 0
    halts: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items()))
        return (
            f"soak {self.venue}: {self.cycles} cycles, {sum(self.faults.values())} faults "
            f"({kinds}), {self.restarts} restarts, {self.halts} halts, {self.orders} orders, "
            f"{self.invariants} invariants checked, {len(self.violations)} violations"
        )


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder for the journal and the paper state: in memory (/dev/shm) where there is
    one, since SQLite syncs every commit to disk (12 ms each on a busy disk)."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(
        prefix="rebalancer-soak-", dir=shm if shm.is_dir() else None
    ) as folder:
        yield Path(folder)


TALLIES: list[Tally] = []  # the pytest run's tallies, printed in its summary (conftest)


def strategy(quote: str) -> Strategy:
    targets = {"BTC": Decimal("0.4"), "ETH": Decimal("0.3"), "SOL": Decimal("0.2")}
    targets[quote] = Decimal("0.1")
    return Strategy(quote, targets, Threshold(Decimal("0.02")), PlanPolicy(min_trade=Decimal(10)))


class Drain(io.StringIO):
    """The log's console: what was written since the last :meth:`drain` (each line is read
    once, so checking every cycle stays linear in the log's length)."""

    def drain(self) -> str:
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return text


class SoakWaiter:
    """The daemon's waiter: hands over to the soak between ticks, then jumps the clock."""

    def __init__(self, soak: Soak, daemon: Daemon) -> None:
        self.soak, self.daemon = soak, daemon

    def wait_until(self, when: datetime, stop: Any) -> None:
        self.soak.between(self.daemon, when)
        if when > self.soak.clock.now():
            self.soak.clock.set(when)


class Soak:
    """One venue for ``cycles`` checks, faults drawn with probability ``rate`` per cycle
    (or, with ``script``, exactly the faults it names on the cycles it names)."""

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        cycles: int,
        seed: int = 12,
        rate: float = 0.2,
        script: dict[int, list[str]] | None = None,
        log_level: str = "DEBUG",
    ) -> None:
        self.venue: Venue = venue(name, folder)
        self.cycles = cycles
        self.rate = rate
        self.script = script  # cycle (1-based) -> faults "kind" or "kind@account"; no draws
        self.rng = random.Random(f"{seed}:{name}")
        self.clock = ManualClock(T0)
        self.url = f"sqlite:///{folder / 'journal.sqlite'}"
        self.account = f"live:soak-{name}"
        self.strategy = strategy(self.venue.quote)
        self.risk = RiskLimits(MAX_DRAWDOWN, timedelta(hours=24), max_cycle_turnover=None)
        self.notifier = MemoryNotifier()
        self.log = Drain()
        self.log_level = log_level  # DEBUG: CCXT's lines too (signed URLs, headers)
        self.tally = Tally(name)
        self.mids = dict(PRICES)
        self.priced_at = T0
        self.start = self.venue.balances()
        self.external: Counter[str] = Counter()
        self.values: list[tuple[datetime, Decimal]] = []
        self.last_resume: datetime | None = None
        self.halt_ticks = 0  # ticks left before the operator resumes
        self.down_ticks = 0
        self.next_restart = self.rng.randint(100, 300) if script is None else 10**9
        self.seen_ticks = 0
        self.seen_events = 0
        self.seen_hits: dict[str, int] = {}
        self.tick_at = T0
        self.tick_faults: list[str] = []
        self.halted_before = False
        self.journal: SqlJournal | None = None
        self.flaky: FlakyJournal | None = None
        self.last_error = ""
        self.idle = 0  # checks in a row that fired and filled nothing

    # -- running -----------------------------------------------------------------------------

    def run(self) -> Tally:
        setup_logging(self.log_level, secrets=self.venue.secrets, console=self.log)
        try:
            while self.tally.cycles < self.cycles:
                self._segment(self.cycles - self.tally.cycles)
            self._settle()
        finally:
            reset_logging()
            if self.journal is not None:
                self.journal.close()
        return self.tally

    def _open(self, max_ticks: int | None = None) -> Daemon:
        """Start the bot (again, after a kill or a stop): a journal connection holding the
        account's lock, a new client on each account, a daemon for ``max_ticks`` checks."""
        if self.journal is not None:
            self.journal.close()  # the process died: its connection and lock went with it
            self.tally.restarts += 1
            self.clock.set(self.clock.now() + RESTART)  # systemd's RestartSec
        self.journal = open_journal(self.url, self.account, lock=True)
        self.flaky = FlakyJournal(self.journal)
        exchange = self.venue.exchange()
        for account in self.venue.accounts:
            port = account.wire if account.wire is not None else account.port
            port.guard = self._guard
        policy = DaemonPolicy(
            Schedule(period=STEP), timedelta(minutes=1), timedelta(minutes=15), max_ticks=max_ticks
        )
        daemon = Daemon(
            exchange,
            self.flaky,  # type: ignore[arg-type]
            self.notifier,
            self.strategy,
            self.clock,
            policy,
            waiter=None,  # type: ignore[arg-type]
            risk=self.risk,
            mode="live",
            keep_reports=1,
        )
        daemon.waiter = SoakWaiter(self, daemon)
        self.seen_ticks = 0
        return daemon

    def _segment(self, left: int) -> None:
        daemon = self._open(left)
        try:
            result = daemon.run(handle_signals=False)
        except Killed:  # the loop's `finally` still ran: a real SIGKILL would not even log
            self._after_tick(daemon)
            return
        self._after_tick(daemon)
        if result.exit_code == EXIT_CHECK_FAILED and result.ticks >= left:
            return  # the tick budget ran out on a failed check: `run --once` says so, exit 1
        if result.exit_code != 0:
            self._violation(f"the daemon stopped on its own: {result.reason}")
            self._resume("after a stop")

    # -- between two ticks -------------------------------------------------------------------

    def between(self, daemon: Daemon, when: datetime) -> None:
        """Check the tick that just ran (if any); prepare the next one at ``when``."""
        self._after_tick(daemon)
        if self.tally.cycles >= self.cycles:
            daemon.request_stop("soak: done")
            return
        if self.tally.cycles >= self.next_restart:
            self.next_restart += self.rng.randint(100, 300)
            self._arm_kill()
        when = max(when, self.clock.now())
        self._move_market(when)
        self._draw_faults()
        self.tick_at = when
        assert self.journal is not None
        self.halted_before = self.journal.halt_status().active is not None

    def _arm_kill(self) -> None:
        """The scheduled kill: in the middle of the next cycle's reads."""
        account = self.venue.accounts[0]
        port = account.wire if account.wire is not None else account.port
        port.arm(WireFault.KILL_BEFORE, on="read")

    def _move_market(self, when: datetime) -> None:
        steps = max((when - self.priced_at) / STEP, 0.0)
        vol = VOL * math.sqrt(steps) * (4 if self.down_ticks else 1)
        for asset, mid in self.mids.items():
            # a random walk pulled gently back to the start: two weeks of crashes and
            # jumps must not walk a price down to nothing
            pull = -REVERSION * steps * math.log(mid / PRICES[asset])
            move = math.exp(self.rng.gauss(pull, vol)) if vol else 1.0
            self.mids[asset] = (mid * Decimal(str(move))).quantize(Decimal("0.01"))
        self.priced_at = when
        self.venue.set_prices(self.mids, when)
        for account in self.venue.accounts:
            for asset in ASSETS:
                if account.stale is not None:
                    account.stale(asset, False)
                if account.partial is not None:
                    account.partial(asset, None)
        if self.down_ticks:
            self.down_ticks -= 1
            self._set_down(self.down_ticks > 0)

    def _set_down(self, down: bool) -> None:
        for account in self.venue.accounts:
            if account.wire is not None:
                account.wire.down = down

    def _draw_faults(self) -> None:
        self.tick_faults = []
        if self.script is not None:  # a scripted case: these faults on this cycle
            for kind in self.script.get(self.tally.cycles + 1, ()):
                kind, _, name = kind.partition("@")
                account = next(a for a in self.venue.accounts if a.name == (name or a.name))
                self._inject(kind, account)
            return
        if self.rng.random() >= self.rate:
            return
        self._inject(self.rng.choice(self.venue.faults), self.rng.choice(self.venue.accounts))

    def _inject(self, kind: str, account: Any) -> None:
        """Inject one fault of ``kind`` (a name of :data:`WIRE` or of the market and account
        faults of :mod:`soak.venues`) on ``account`` for the coming cycle."""
        port = account.wire if account.wire is not None else account.port
        asset = self.rng.choice([a for a in ASSETS if a in account.book_ids])
        if kind in WIRE:
            on, fault = WIRE[kind]
            if not port.armed[on]:  # at most one armed per kind of request
                port.arm(fault, on=on)
            return  # counted when it hits
        self.tick_faults.append(kind)
        self.tally.faults[kind] += 1
        if kind == "price_jump":
            self.mids[asset] *= Decimal(str(self.rng.choice((0.7, 0.75, 1.3, 1.4))))
            self.venue.set_prices(self.mids, self.priced_at)
        elif kind == "crash":
            for a in self.mids:
                self.mids[a] = (self.mids[a] * Decimal("0.75")).quantize(Decimal("0.01"))
            self.venue.set_prices(self.mids, self.priced_at)
        elif kind == "price_gap":
            self.down_ticks = self.rng.randint(2, 8)
            self._set_down(True)
        elif kind == "crossed_book":
            self.venue.set_prices(self.mids, self.priced_at, crossed=asset)
        elif kind == "stale_ticker" and account.stale is not None:
            account.stale(asset, True)
        elif kind == "partial_fill" and account.partial is not None:
            account.partial(asset, PARTIAL[asset])
        elif kind in ("deposit", "withdrawal"):
            self._flow(account, kind)
        elif kind == "db_drop":
            assert self.flaky is not None
            self.flaky.drop_after(self.rng.randint(1, 12))

    def _flow(self, account: Any, kind: str) -> None:
        quote = self.venue.quote
        held = account.balances()[quote]
        value = sum((self.venue.balances()[a] * self.mids[a] for a in ASSETS), ZERO) + held
        amount = (value * Decimal(str(self.rng.uniform(0.03, 0.12)))).quantize(Decimal("0.01"))
        if kind == "withdrawal":
            amount = -min(amount, (held * Decimal("0.8")).quantize(Decimal("0.01")))
        account.deposit(quote, amount)
        self.external[quote] += amount  # type: ignore[assignment]

    # -- the operator ------------------------------------------------------------------------

    def _resume(self, why: str) -> None:
        assert self.journal is not None
        if self.journal.halt_status().active is None:
            return
        self.journal.record_resume(self.clock.now(), f"soak operator: {why}")
        self.last_resume = self.clock.now()

    # -- checks ------------------------------------------------------------------------------

    def _guard(self) -> None:
        """On the wire, as an order request goes out: its intent alone, and no halt."""
        assert self.journal is not None
        self.tally.invariants += 1
        unresolved = [o.client_order_id for o in self.journal.unresolved_intents()]
        if len(unresolved) != 1:
            self._violation(f"order sent with unresolved intents {unresolved} (want its own)")
        halt = self.journal.halt_status().active
        if halt is not None:
            self._violation(f"order sent while halted ({halt.reason})")

    def _violation(self, text: str) -> None:
        self.tally.violations.append(f"{self.tally.venue} {self.clock.now():%m-%d %H:%M}: {text}")

    def _after_tick(self, daemon: Daemon) -> None:
        if daemon.ticks <= self.seen_ticks:
            return
        self.seen_ticks = daemon.ticks
        self.tally.cycles += 1
        self._count_hits()
        report = daemon.reports[-1] if daemon.reports else None
        if report is not None and report.at != self.tick_at:
            report = None
        if report is not None:
            self.tally.orders += len(report.fills)
            self._check_progress(report)
        beat = daemon._beat
        if beat is not None and beat.last_error != self.last_error:
            self.last_error = beat.last_error or ""
        self._check_halt(report)
        self._check_orders()
        self._check_secrets()

    def _check_progress(self, report: CycleReport) -> None:
        """Liveness: a rule that keeps firing must get orders out. ``STUCK`` checks in a row
        that decided to trade and filled nothing (faults last a check or a few; a halt
        or a failed check is not counted) are one violation."""
        self.tally.invariants += 1
        if not report.decision.fire or report.fills:
            self.idle = 0
            return
        self.idle += 1
        if self.idle == STUCK:
            why = report.stopped or "; ".join(f.error for f in report.failed[:1])
            self._violation(f"{STUCK} checks in a row fired and placed no order: {why}")

    def _count_hits(self) -> None:
        for account in self.venue.accounts:
            port = account.wire if account.wire is not None else account.port
            if port is None:
                continue
            seen = self.seen_hits.get(account.name, 0)
            for on, fault in port.hits[seen:]:
                self.tally.faults[NAMES[(on, fault)]] += 1
                self.tick_faults.append(NAMES[(on, fault)])
            self.seen_hits[account.name] = len(port.hits)

    def _check_halt(self, report: CycleReport | None) -> None:
        assert self.journal is not None
        self.tally.invariants += 1
        halt = self.journal.halt_status().active
        if self.halted_before:
            if halt is None:
                self._violation("a halt was lifted without `resume`")
            self.halt_ticks -= 1
            if self.halt_ticks <= 0:
                self._resume("checked")
            return
        banned = any(k == "http_418_read" for k in self.tick_faults)
        if report is not None and report.reconciled is not None and report.reconciled.clear:
            self._check_breaker(report, halt is not None and not banned)
            self.values.append((report.at, report.drift.total_value))
        if halt is not None:
            self.tally.halts += 1
            self.halt_ticks = self.rng.randint(3, 12)
            if "banned" in halt.reason and not banned:
                self._violation(f"halted for a ban no 418 caused: {halt.reason}")
            if "banned" not in halt.reason and "fell" not in halt.reason:
                self._violation(f"halted for no injected cause: {halt.reason}")

    def _check_breaker(self, report: CycleReport, halted: bool) -> None:
        since = report.at - self.risk.window
        if self.last_resume is not None and self.last_resume > since:
            since = self.last_resume
        # what the breaker reads: every journaled value (a cycle that failed after its read is
        # journaled too, and a restart forgets nothing) and those this harness saw
        assert self.journal is not None
        journaled = [(at, v) for at, v in self.journal.value_history(since) if at < report.at]
        recent = [v for at, v in [*self.values, *journaled] if since <= at <= report.at and v > 0]
        if not recent:
            if halted:
                self._violation("the breaker halted with no history")
            return
        peak = max(recent)
        fall = (peak - report.drift.total_value) / peak
        if fall > MAX_DRAWDOWN + BAND and not halted:
            self._violation(f"value fell {fall:.2%} from its peak and the breaker did not halt")
        if halted and fall < MAX_DRAWDOWN - BAND:
            self._violation(f"the breaker halted at a fall of only {fall:.2%}")

    def _check_orders(self) -> None:
        assert self.journal is not None
        journal = self.journal
        with journal._session() as s:
            intents = {
                cid
                for cid in s.scalars(
                    select(OrderRow.client_order_id).where(OrderRow.account == journal.account)
                )
            }
            fills = list(s.scalars(select(FillRow).where(FillRow.account == journal.account)))
        self.tally.invariants += 1
        for name, accepted in self.venue.accepted().items():
            for cid, n in accepted.items():
                if n > 1:
                    self._violation(f"{name}: client id {cid} accepted {n} times")
                if cid.startswith("rb") and cid not in intents:  # others: placed by hand
                    self._violation(f"{name}: order {cid} accepted without a journaled intent")
        if journal.unresolved_intents():
            return  # an outcome is unknown: the ledger is checked once it is found
        self.tally.invariants += 1
        expected = dict(self.start)
        for asset, delta in self.external.items():
            expected[asset] = expected.get(asset, ZERO) + Decimal(delta)
        quote = self.venue.quote
        for f in fills:
            sign = 1 if f.side == "buy" else -1
            expected[f.asset] = expected.get(f.asset, ZERO) + sign * f.amount
            expected[quote] = expected.get(quote, ZERO) - sign * f.cost
            expected[f.fee_asset] = expected.get(f.fee_asset, ZERO) - f.fee
        held = self.venue.balances()
        bad = {
            a: (str(expected.get(a, ZERO)), str(v))
            for a, v in held.items()
            if abs(expected.get(a, ZERO) - v) > TOLERANCE
        }
        if bad:
            self._violation(f"account != start + flows + journaled fills: {bad}")
            self.start = {
                a: self.start.get(a, ZERO) + v - expected.get(a, ZERO) for a, v in held.items()
            }

    def _check_secrets(self) -> None:
        self.tally.invariants += 1
        text = self.log.drain()
        events = self.notifier.events[self.seen_events :]
        self.seen_events += len(events)
        texts = [text, self.last_error, *(f"{e.title} {e.body}" for e in events)]
        for secret in self.venue.secrets:
            if any(secret in t for t in texts):
                self._violation(f"a secret ({secret[:8]}...) appears in the output")

    # -- the end -----------------------------------------------------------------------------

    def _settle(self) -> None:
        """Faults off, halt lifted; clean cycles until every intent is resolved; final checks."""
        for account in self.venue.accounts:
            port = account.wire if account.wire is not None else account.port
            port.disarm()
        self.down_ticks = 0
        self._set_down(False)
        assert self.flaky is not None
        self.flaky.countdown = None
        self.rate = 0.0
        self.script = {} if self.script is not None else None
        self._resume("the end")
        target = self.cycles
        self.cycles += 3
        while self.tally.cycles < self.cycles:
            self._segment(self.cycles - self.tally.cycles)
        self.cycles = target
        assert self.journal is not None
        self.tally.invariants += 1
        left = [o.client_order_id for o in self.journal.unresolved_intents()]
        if left:
            self._violation(f"intents unresolved at the end: {left}")
