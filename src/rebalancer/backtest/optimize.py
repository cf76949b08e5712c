"""Optimised target weights from a trailing window of closes (NumPy + SciPy, outside the core).

Methods (``returns``: daily log returns of the window, one column per asset):

* ``inverse_vol`` -- ``w_i`` proportional to ``1 / sigma_i``;
* ``risk_parity`` -- equal risk contributions ``w_i (C w)_i`` (SLSQP from inverse vol);
* ``min_variance`` -- ``min w' C w``;
* ``max_sharpe`` -- ``max mu' w / sqrt(w' C w)`` with ``mu`` the window's mean returns.

``C`` is the Ledoit-Wolf shrunk covariance (towards a scaled identity, the closed form of
Ledoit & Wolf 2004, as in scikit-learn's ``LedoitWolf``; a dozen NumPy lines here, no extra
dependency). Constraints: every risky weight in ``[min_weight, max_weight]``, the quote (cash)
at ``cash_floor`` (the risky weights sum to ``1 - cash_floor``), and at most ``max_turnover``
(sum of |changes|) away from the previous targets -- the move is shortened along the line
from the previous weights, which keeps every other constraint. SciPy's SLSQP does the
constrained solves; NumPy the rest. Chosen over PyPortfolioOpt / riskfolio / skfolio: four
small problems with box and sum constraints do not need a modelling layer or cvxpy.

No look-ahead: :func:`target_schedule` decides at each rebalance date from the closes strictly
before it (the window ends at the last close at or before the decision time). When a change is
due is :func:`rebalancer.core.retarget.targets_due`, the same function the live service asks,
so a backtest and a live run change targets on the same dates. :class:`WindowOptimiser` is
the :class:`rebalancer.ports.TargetOptimiser` the live service uses (wired by bootstrap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from rebalancer.core.cron import Cron
from rebalancer.core.retarget import MONTHLY, Cadence, targets_due
from rebalancer.ports import TargetProposal

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
OptMethod = Literal["inverse_vol", "risk_parity", "min_variance", "max_sharpe"]
OPT_METHODS: tuple[str, ...] = ("inverse_vol", "risk_parity", "min_variance", "max_sharpe")


@dataclass(frozen=True)
class Constraints:
    min_weight: float = 0.0
    max_weight: float = 1.0
    cash_floor: float = 0.0
    max_turnover: float | None = None

    def check(self, n: int) -> None:
        budget = 1.0 - self.cash_floor
        if not 0 <= self.cash_floor < 1:
            raise ValueError(f"cash_floor must be in [0, 1), got {self.cash_floor}")
        if not 0 <= self.min_weight <= self.max_weight <= 1:
            raise ValueError(
                f"need 0 <= min_weight <= max_weight <= 1, got {self.min_weight}, {self.max_weight}"
            )
        if n * self.min_weight > budget + 1e-12 or n * self.max_weight < budget - 1e-12:
            raise ValueError(
                f"{n} assets cannot share {budget:.4f} within [{self.min_weight}, "
                f"{self.max_weight}] each: loosen min_weight / max_weight or the cash floor"
            )


def ledoit_wolf(returns: FloatArray) -> tuple[FloatArray, float]:
    """Shrunk covariance ``(1 - d) S + d mu I`` and the shrinkage ``d`` (Ledoit-Wolf 2004)."""
    x = returns - returns.mean(axis=0)
    t, n = x.shape
    s = x.T @ x / t
    mu = float(np.trace(s)) / n
    delta2 = float(((s - mu * np.eye(n)) ** 2).sum()) / n
    beta2 = float(sum(((np.outer(r, r) - s) ** 2).sum() for r in x)) / (n * t * t)
    shrink = 0.0 if delta2 == 0 else min(beta2, delta2) / delta2
    return (1 - shrink) * s + shrink * mu * np.eye(n), shrink


def _project(w: FloatArray, c: Constraints) -> FloatArray:
    """The closest weights (in the bisection sense) inside the box that sum to the budget."""
    budget = 1.0 - c.cash_floor
    lo, hi = -1.0, 1.0 + abs(w).max()
    for _ in range(200):  # shift t so that sum(clip(w - t)) = budget
        mid = (lo + hi) / 2
        if np.clip(w - mid, c.min_weight, c.max_weight).sum() > budget:
            lo = mid
        else:
            hi = mid
    return np.asarray(np.clip(w - (lo + hi) / 2, c.min_weight, c.max_weight), dtype=np.float64)


def _solve(objective: Any, start: FloatArray, c: Constraints) -> FloatArray:
    from scipy.optimize import minimize  # type: ignore[import-untyped]

    budget = 1.0 - c.cash_floor
    res = minimize(
        objective,
        start,
        method="SLSQP",
        bounds=[(c.min_weight, c.max_weight)] * len(start),
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - budget}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    return _project(np.asarray(res.x, dtype=np.float64), c)


def optimise(
    returns: FloatArray,
    method: OptMethod,
    constraints: Constraints = Constraints(),
    previous: FloatArray | None = None,
) -> tuple[FloatArray, dict[str, float]]:
    """Risky weights (summing to ``1 - cash_floor``) and what explains them."""
    n = returns.shape[1]
    constraints.check(n)
    cov, shrink = ledoit_wolf(returns)
    vol = np.sqrt(np.diag(cov))
    budget = 1.0 - constraints.cash_floor
    inv = (1 / vol) / (1 / vol).sum() * budget
    start = _project(inv, constraints)
    if method == "inverse_vol":
        w = start
    elif method == "min_variance":
        scale = 1 / float(np.trace(cov))
        w = _solve(lambda x: float(x @ cov @ x) * scale, start, constraints)
    elif method == "risk_parity":

        def spread(x: FloatArray) -> float:
            rc = x * (cov @ x)
            return float(((rc - rc.mean()) ** 2).sum()) / float(np.trace(cov)) ** 2 * 1e4

        w = _solve(spread, start, constraints)
    elif method == "max_sharpe":
        mu = returns.mean(axis=0)
        w = _solve(
            lambda x: -float(mu @ x) / float(np.sqrt(x @ cov @ x) + 1e-18), start, constraints
        )
    else:
        raise ValueError(f"method must be one of {', '.join(OPT_METHODS)}, got {method!r}")
    turnover = 0.0
    if previous is not None:
        turnover = float(np.abs(w - previous).sum())
        cap = constraints.max_turnover
        if cap is not None and turnover > cap:
            w = previous + (w - previous) * (cap / turnover)
            turnover = cap
    risk = float(np.sqrt(w @ cov @ w * 365))
    return w, {"shrinkage": shrink, "annual_vol": risk, "turnover": turnover}


def to_targets(assets: Sequence[str], w: FloatArray, quote: str) -> dict[str, Decimal]:
    """Decimal targets (rounded to 1e-6) summing to exactly 1, the rest on the quote."""
    out = {a: Decimal(repr(round(float(x), 6))) for a, x in zip(assets, w, strict=True)}
    out[quote] = Decimal(1) - sum(out.values(), Decimal(0))
    return out


def cadence_of(every: Cadence | str) -> Cadence:
    """A :class:`Cadence` from itself, a period text ("30d") or a 5-field cron expression."""
    if isinstance(every, Cadence):
        return every
    if len(every.split()) == 5:
        return Cadence(cron=Cron.parse(every))
    from rebalancer.config.fields import parse_period

    return Cadence(period=parse_period(every))


def target_schedule(
    closes: pd.DataFrame,
    method: OptMethod,
    constraints: Constraints,
    *,
    window: int = 90,
    every: Cadence | str = MONTHLY,
    initial: Mapping[str, float] | None = None,
    bar: timedelta = timedelta(days=1),
    start: datetime | None = None,
) -> list[tuple[pd.Timestamp, FloatArray]]:
    """Weights decided at each bar close where :func:`~rebalancer.core.retarget.targets_due`
    says a change is due (``every``: a cadence, period text or cron; the 1st of each month by
    default), from the ``window`` daily returns of the closes at or before it. As live: the
    first bar's close is the start (the configured targets; ``start``: another time, e.g. a
    live run's first cycle, with the bars before it only as history), a change due without
    ``window + 1`` closes waits for the next bar, and the last change is the reference."""
    cadence = cadence_of(every)
    assets = list(closes.columns)
    logret = np.log(closes.to_numpy(dtype=np.float64))
    close_times = pd.DatetimeIndex(closes.index) + bar
    previous = None if initial is None else np.array([initial[a] for a in assets])
    out: list[tuple[pd.Timestamp, FloatArray]] = []
    last = close_times[0].to_pydatetime() if start is None else start
    for i, when in enumerate(close_times):
        now = when.to_pydatetime()
        if now <= last or not targets_due(cadence, last, now):
            continue
        end = i + 1  # rows closed at or before `now`
        if end - window - 1 < 0:
            continue  # too little history: keep the targets, ask again at the next bar
        rets = np.diff(logret[end - window - 1 : end], axis=0)
        w, _ = optimise(rets, method, constraints, previous)
        out.append((when, w))
        previous, last = w, now
    return out


@dataclass(frozen=True)
class WindowOptimiser:
    """The :class:`rebalancer.ports.TargetOptimiser` over :func:`optimise` (live and paper).

    ``closes``: per asset, ``window + 1`` daily closes, oldest first (the same length for
    each); the current targets are the turnover cap's starting point. Returns Decimal
    targets (rounded to 1e-6) summing to exactly 1, the rest on ``quote``.
    """

    method: str
    constraints: Constraints
    quote: str

    def propose(
        self, closes: Mapping[str, Sequence[Decimal]], current: Mapping[str, Decimal]
    ) -> TargetProposal:
        assets = [a for a in closes if a != self.quote]
        lengths = {len(closes[a]) for a in assets}
        if len(lengths) != 1 or min(lengths) < 3:
            raise ValueError(f"need the same number (>= 3) of closes per asset, got {lengths}")
        prices = np.array([[float(x) for x in closes[a]] for a in assets], dtype=np.float64).T
        if not np.all(prices > 0):
            raise ValueError("closes must be positive")
        returns = np.diff(np.log(prices), axis=0)
        previous = np.array([float(current.get(a, 0)) for a in assets], dtype=np.float64)
        w, why = optimise(returns, cast(OptMethod, self.method), self.constraints, previous)
        targets = to_targets(assets, w, self.quote)
        weights = ", ".join(f"{a} {targets[a]:.1%}" for a in [*assets, self.quote])
        return TargetProposal(
            targets,
            f"window of {len(returns)} daily returns; {weights}; portfolio volatility "
            f"{why['annual_vol']:.0%} a year, shrinkage {why['shrinkage']:.2f}, turnover "
            f"{why['turnover']:.2f}",
        )


@dataclass
class OptimisedRun:
    """A backtest whose targets change on a schedule: the segments' equity and fills."""

    equity: FloatArray
    metrics: Any
    fills: list[Any]
    schedule: list[tuple[pd.Timestamp, dict[str, Decimal]]]
    gains: dict[int, Any]


def backtest_optimised(
    closes: pd.DataFrame,
    start_targets: Mapping[str, Decimal],
    method: OptMethod,
    constraints: Constraints,
    *,
    quote: str = "USDT",
    window: int = 90,
    every: Cadence | str = MONTHLY,
    band: Decimal = Decimal("0.05"),
    capital: Decimal = Decimal(10000),
    taker_fee: Decimal = Decimal("0.001"),
    slippage: Decimal = Decimal("0.0005"),
    lots: str = "fifo",
) -> OptimisedRun:
    """Run the live loop segment by segment: ``start_targets`` until the first decision date,
    then at each date the optimiser's targets (bought on that bar, threshold ``band`` in
    between). Holdings carry over; lots and gains are computed over every fill."""
    from datetime import timedelta

    from rebalancer.backtest.engine import FirstBar, run_backtest
    from rebalancer.backtest.metrics import compute_metrics
    from rebalancer.core.lots import TimedFill, gains_by_year, realise
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import AnyOf, Threshold

    assets = [a for a in start_targets if a != quote]
    closes = closes[assets]
    index = pd.DatetimeIndex(closes.index)
    initial = {a: float(start_targets[a]) for a in assets}
    plan = target_schedule(closes, method, constraints, window=window, every=every, initial=initial)
    cuts = [0] + [int(index.searchsorted(when)) - 1 for when, _ in plan] + [len(closes)]
    targets_at = [dict(start_targets)] + [to_targets(assets, w, quote) for _, w in plan]
    segments = [
        (cuts[k], cuts[k + 1], targets_at[k])
        for k in range(len(targets_at))
        if cuts[k + 1] - cuts[k] >= 2
    ]
    policy = PlanPolicy(min_trade=Decimal(10), slippage=slippage)
    bar = timedelta(days=1)
    balances: dict[str, Decimal] = {quote: capital}
    equity: list[float] = []
    fills: list[TimedFill] = []
    rebalances, fees, traded, turnover = 0, Decimal(0), Decimal(0), 0.0
    for lo, hi, targets in segments:
        strategy = Strategy(quote, targets, AnyOf((FirstBar(), Threshold(band))), policy)
        start = {k: v for k, v in balances.items() if v > 0}
        res = run_backtest(
            closes.iloc[lo:hi],
            strategy,
            initial=start,
            taker_fee=taker_fee,
            slippage=slippage,
            bar=bar,
            benchmarks=False,
        )
        run = res.run
        equity.extend(float(x) for x in run.equity)
        for _, r in run.cycles:
            fills.extend(TimedFill(r.at, f, quote) for f in r.fills)
            if r.fills:
                rebalances += 1
                turnover += float(r.traded_value / r.drift.total_value)
        fees += run.fees
        traded += run.traded
        balances = dict(run.final_balances)
    eq = np.asarray(equity, dtype=np.float64)
    metrics = compute_metrics(
        eq,
        bar,
        initial=float(capital),
        n_rebalances=rebalances,
        fees=float(fees),
        traded=float(traded),
        turnover=turnover,
    )
    _, disposals = realise(fills, lots)  # type: ignore[arg-type]
    schedule = [(index[lo], t) for lo, _, t in segments]
    return OptimisedRun(eq, metrics, fills, schedule, gains_by_year(disposals))
