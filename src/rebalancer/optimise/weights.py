"""Optimised target weights from a trailing window of closes (NumPy + SciPy, outside the core).

Methods (``returns``: daily log returns of the window, one column per asset):

* ``inverse_vol`` -- ``w_i`` proportional to ``1 / sigma_i``;
* ``risk_parity`` -- equal risk contributions ``w_i (C w)_i`` (Spinu's convex log-barrier
  form, solved by Newton's method; when a weight bound binds, the feasible weights closest
  to equal contributions);
* ``min_variance`` -- ``min w' C w``;
* ``max_sharpe`` -- ``max mu' w / sqrt(w' C w)`` with ``mu`` the window's mean returns (risk-
  free rate 0), the global optimum under the constraints: the convex reformulation when some
  feasible mix has ``mu' w > 0``; otherwise the best corner of the constraints, which is
  provably optimal (see :func:`max_sharpe`) and reported as a negative ``sharpe``.

``C`` is the Ledoit-Wolf shrunk covariance (towards a scaled identity, the closed form of
Ledoit & Wolf 2004, as in scikit-learn's ``LedoitWolf``; a dozen NumPy lines here, no extra
dependency). Constraints: every risky weight in ``[min_weight, max_weight]``, the quote (cash)
at ``cash_floor`` (the risky weights sum to ``1 - cash_floor``), and at most ``max_turnover``
(sum of |changes|) away from the previous targets -- the move is shortened along the line
from the previous weights, which keeps every other constraint. SciPy's SLSQP does the
constrained solves; NumPy the rest. Chosen over PyPortfolioOpt / riskfolio / skfolio: four
small problems with box and sum constraints do not need a modelling layer or cvxpy.

No look-ahead: :func:`rebalancer.optimise.schedule.target_schedule` decides at each rebalance
date from the closes strictly before it (the window ends at the last close at or before the
decision time). When a change is due is :func:`rebalancer.core.retarget.targets_due`, the
same function the live service asks, so a backtest and a live run change targets on the same
dates. :class:`WindowOptimiser` is
the :class:`rebalancer.ports.TargetOptimiser` the live service uses (wired by bootstrap).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, cast

import numpy as np

from rebalancer.ports import TargetProposal

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
OptMethod = Literal["inverse_vol", "risk_parity", "min_variance", "max_sharpe"]
OPT_METHODS: tuple[str, ...] = ("inverse_vol", "risk_parity", "min_variance", "max_sharpe")
MAX_CORNERS = 200_000  # vertices of the constraints searched when every mean is <= 0


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


def _best_return(mu: FloatArray, c: Constraints) -> float:
    """``max mu' w`` over the box ``[min_weight, max_weight]`` with ``sum w = 1 - cash_floor``
    (a linear programme: the minimum everywhere, the rest to the best means first)."""
    w = np.full(len(mu), c.min_weight, dtype=np.float64)
    left = 1.0 - c.cash_floor - w.sum()
    for i in np.argsort(-mu, kind="stable"):
        step = min(c.max_weight - c.min_weight, max(left, 0.0))
        w[i] += step
        left -= step
    return float(mu @ w)


def corners(n: int, c: Constraints, limit: int | None = None) -> FloatArray | None:
    """Every vertex of ``{min_weight <= w_i <= max_weight, sum w = 1 - cash_floor}`` (one row
    each), or None when there are more than ``limit``. At a vertex at most one weight lies
    strictly inside the box: ``k`` weights at the maximum, one free, the rest at the minimum."""
    limit = MAX_CORNERS if limit is None else limit
    lo, hi, budget = c.min_weight, c.max_weight, 1.0 - c.cash_floor
    if hi - lo <= 1e-15:
        return np.full((1, n), budget / n, dtype=np.float64)
    rows: list[FloatArray] = []
    for k in range(n):
        free = budget - k * hi - (n - 1 - k) * lo
        if not lo - 1e-12 <= free <= hi + 1e-12:
            continue
        count = n * math.comb(n - 1, k)
        if len(rows) + count > limit:
            return None
        for j in range(n):
            others = [i for i in range(n) if i != j]
            for top in itertools.combinations(others, k):
                w = np.full(n, lo, dtype=np.float64)
                w[list(top)] = hi
                w[j] = min(max(free, lo), hi)
                rows.append(w)
    return np.unique(np.round(np.array(rows), 15), axis=0)


def _max_sharpe_convex(mu: FloatArray, cov: FloatArray, c: Constraints, best: float) -> FloatArray:
    """The max-Sharpe weights when some feasible mix has ``mu' w > 0``: the convex
    reformulation ``min y' C y`` s.t. ``mu' y = best``, ``sum y = budget * k``,
    ``min_weight * k <= y_i <= max_weight * k``, ``k >= 0``; then ``w = y / k``. A convex
    quadratic programme, so SLSQP's answer is the global optimum (to its tolerance)."""
    from scipy.optimize import minimize

    n = len(mu)
    budget = 1.0 - c.cash_floor
    scale = 1 / float(np.trace(cov))
    eye = np.eye(n)
    cons = [
        {
            "type": "eq",
            "fun": lambda z: float(mu @ z[:n]) - best,
            "jac": lambda z: np.append(mu, 0.0),
        },
        {
            "type": "eq",
            "fun": lambda z: z[:n].sum() - budget * z[n],
            "jac": lambda z: np.append(np.ones(n), -budget),
        },
        {
            "type": "ineq",
            "fun": lambda z: z[:n] - c.min_weight * z[n],
            "jac": lambda z: np.hstack([eye, -c.min_weight * np.ones((n, 1))]),
        },
        {
            "type": "ineq",
            "fun": lambda z: c.max_weight * z[n] - z[:n],
            "jac": lambda z: np.hstack([-eye, c.max_weight * np.ones((n, 1))]),
        },
    ]
    start = np.append(_project(np.full(n, budget / n), c), 1.0)
    res = minimize(
        lambda z: float(z[:n] @ cov @ z[:n]) * scale,
        start,
        jac=lambda z: np.append(2 * (cov @ z[:n]) * scale, 0.0),
        method="SLSQP",
        bounds=[(0.0, None)] * (n + 1),
        constraints=cons,
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    z = np.asarray(res.x, dtype=np.float64)
    return _project(z[:n] / z[n], c)


def sharpe_of(w: FloatArray, mu: FloatArray, cov: FloatArray) -> float:
    """``mu' w / sqrt(w' C w)`` per bar (risk-free rate 0)."""
    return float(mu @ w) / float(np.sqrt(w @ cov @ w))


def max_sharpe(mu: FloatArray, cov: FloatArray, c: Constraints) -> tuple[FloatArray, str]:
    """The weights of the highest Sharpe ratio under the constraints, and how it was found.

    * Some feasible mix earns ``mu' w > 0``: the convex reformulation (global optimum).
    * Every feasible mix earns ``mu' w <= 0``: the Sharpe ratio is ``-g / h`` with
      ``g = -mu' w >= 0`` linear and ``h = sqrt(w' C w)`` convex, so maximising it maximises
      ``h / g``, a quasi-convex function (its sublevel sets ``{h - t g <= 0}`` are convex),
      whose maximum over a polytope is at a vertex: the best of every corner of the
      constraints is the global optimum. Past :data:`MAX_CORNERS` corners, the best of a
      multi-start local search is returned and said not to be proven.
    """
    best = _best_return(mu, c)
    if best > 0:
        return _max_sharpe_convex(mu, cov, c, best), "convex"
    vertices = corners(len(mu), c)
    if vertices is not None:
        scores = (vertices @ mu) / np.sqrt(np.einsum("ij,jk,ik->i", vertices, cov, vertices))
        return vertices[int(np.argmax(scores))], "corners"
    starts = [_project(np.eye(len(mu))[i] + 0.0, c) for i in range(len(mu))]
    starts.append(_project(np.full(len(mu), 1.0), c))
    found = [_solve(lambda x: -sharpe_of(x, mu, cov), s, c) for s in starts]
    return max(found, key=lambda x: sharpe_of(x, mu, cov)), "local"


def spinu(cov: FloatArray, tol: float = 1e-28) -> FloatArray:
    """The positive ``x`` minimising ``1/2 x' A x - (1/n) sum log x_i`` (``A = C n / tr C``),
    strictly convex for a positive definite ``C``; at its optimum ``x_i (A x)_i = 1/n`` for
    every ``i``, so ``x / sum x`` has equal risk contributions. Newton's method, each step
    halved until it stays positive and lowers the objective (Spinu 2013); full steps once
    the Newton decrement is below 1e-8, where they converge quadratically."""
    n = len(cov)
    a = cov * (n / float(np.trace(cov)))

    def f(y: FloatArray) -> float:
        return 0.5 * float(y @ a @ y) - float(np.log(y).sum()) / n

    x = 1 / np.sqrt(np.diag(a))
    for _ in range(100):
        grad = a @ x - 1 / (n * x)
        step = np.linalg.solve(a + np.diag(1 / (n * x * x)), -grad)
        decrement = float(-grad @ step)
        if decrement / 2 <= tol:
            break
        t = 1.0
        while np.any(x + t * step <= 0) or (
            decrement > 1e-8 and f(x + t * step) > f(x) - 0.25 * t * decrement
        ):
            t /= 2
            if t < 1e-12:
                return np.asarray(x, dtype=np.float64)
        x = x + t * step
    return np.asarray(x, dtype=np.float64)


def risk_parity(cov: FloatArray, c: Constraints) -> FloatArray:
    """Equal risk contributions ``w_i (C w)_i``: Spinu's convex form
    ``min 1/2 x' C x - (1/n) sum log x_i`` (x > 0; its optimum has ``x_i (C x)_i = 1/n``),
    scaled to the budget. When that breaks a weight bound, the constrained weights closest
    to equal contributions (least squares of the contributions' spread, from the Spinu
    weights projected into the box)."""
    x = spinu(cov)
    budget = 1.0 - c.cash_floor
    w = x / x.sum() * budget
    if w.min() >= c.min_weight - 1e-12 and w.max() <= c.max_weight + 1e-12:
        return np.asarray(np.clip(w, c.min_weight, c.max_weight), dtype=np.float64)

    def spread(y: FloatArray) -> float:
        rc = y * (cov @ y)
        return float(((rc - rc.mean()) ** 2).sum()) / float(np.trace(cov)) ** 2 * 1e4

    return _solve(spread, _project(w, c), c)


def sharpe_note(why: Mapping[str, float]) -> str:
    """What a ``max_sharpe`` result means, for people ("" for the other methods)."""
    if "sharpe" not in why:
        return ""
    note = f"Sharpe ratio {why['sharpe']:.2f} a year (risk-free rate 0)"
    if why["sharpe"] <= 0:
        note += (
            "; every mix allowed lost money on average over the window, so this is the "
            "least bad one (a corner of the constraints)"
        )
    if not why.get("proven", 1.0):
        note += "; the best of several local searches, not proven optimal"
    return note


def optimise(
    returns: FloatArray,
    method: OptMethod,
    constraints: Constraints = Constraints(),
    previous: FloatArray | None = None,
) -> tuple[FloatArray, dict[str, float]]:
    """Risky weights (summing to ``1 - cash_floor``) and what explains them: ``shrinkage``,
    ``annual_vol`` (the portfolio's, 365-day years), ``turnover``; for ``max_sharpe`` also
    ``sharpe`` (annualised, risk-free rate 0, before any turnover cap) and ``proven``
    (1.0 when the weights are the global optimum under the constraints, else 0.0)."""
    n = returns.shape[1]
    constraints.check(n)
    cov, shrink = ledoit_wolf(returns)
    vol = np.sqrt(np.diag(cov))
    budget = 1.0 - constraints.cash_floor
    inv = (1 / vol) / (1 / vol).sum() * budget
    start = _project(inv, constraints)
    extra: dict[str, float] = {}
    if method == "inverse_vol":
        w = start
    elif method == "min_variance":
        scale = 1 / float(np.trace(cov))
        w = _solve(lambda x: float(x @ cov @ x) * scale, start, constraints)
    elif method == "risk_parity":
        w = risk_parity(cov, constraints)
    elif method == "max_sharpe":
        mu = returns.mean(axis=0)
        w, how = max_sharpe(mu, cov, constraints)
        extra = {
            "sharpe": sharpe_of(w, mu, cov) * math.sqrt(365),
            "proven": 0.0 if how == "local" else 1.0,
        }
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
    return w, {"shrinkage": shrink, "annual_vol": risk, "turnover": turnover, **extra}


UNIT = 10**6  # targets are rounded to 1e-6


def _round_units(w: FloatArray, c: Constraints) -> list[int]:
    """``w`` in whole 1e-6 units that keep every bound and the budget: each weight rounded
    down, then the units still owed (``round(sum w * 1e6)`` in all) to the largest remainders
    first, never past ``max_weight`` (largest-remainder rounding within the bounds)."""
    lo = math.ceil(c.min_weight * UNIT - 1e-6)
    hi = math.floor(c.max_weight * UNIT + 1e-6)
    scaled = [float(x) * UNIT for x in w]
    units = [min(max(math.floor(x + 1e-6), lo), hi) for x in scaled]
    owed = round(sum(scaled)) - sum(units)
    order = sorted(range(len(units)), key=lambda i: units[i] - scaled[i])  # most owed first
    while owed != 0:
        step = 1 if owed > 0 else -1
        movable = [i for i in order if lo <= units[i] + step <= hi]
        if not movable:
            break
        for i in movable if step > 0 else reversed(movable):
            if owed == 0:
                break
            units[i] += step
            owed -= step
    return units


def to_targets(
    assets: Sequence[str], w: FloatArray, quote: str, constraints: Constraints = Constraints()
) -> dict[str, Decimal]:
    """Decimal targets in 1e-6 steps summing to exactly 1, the rest on the quote. The
    rounding keeps ``constraints``: every weight within its bounds and the quote at its
    floor when ``w`` sums to ``1 - cash_floor`` (see :func:`_round_units`)."""
    units = _round_units(w, constraints)
    out = {a: Decimal(u).scaleb(-6).normalize() for a, u in zip(assets, units, strict=True)}
    out[quote] = (Decimal(1) - sum(out.values(), Decimal(0))).normalize()
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
        targets = to_targets(assets, w, self.quote, self.constraints)
        weights = ", ".join(f"{a} {targets[a]:.1%}" for a in [*assets, self.quote])
        return TargetProposal(
            targets,
            f"window of {len(returns)} daily returns; {weights}; portfolio volatility "
            f"{why['annual_vol']:.0%} a year, shrinkage {why['shrinkage']:.2f}, turnover "
            f"{why['turnover']:.2f}" + (f"; {sharpe_note(why)}" if "sharpe" in why else ""),
        )
