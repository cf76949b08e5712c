"""Parameter grids: bands x fee rates x trigger kinds x rebalance styles, on one price panel.

Each combination is run by the fastest engine that implements it *exactly*:

* ``semantics="reference"`` (the default): the reference rule of
  :mod:`rebalancer.backtest.reference`. Absolute bands with style ``target`` run in the
  compiled kernel (:mod:`.sweep`, all cores). Combinations the kernel does not implement
  (relative bands, ``band_edge``, the hybrid rule, the volatility-scaled ``vol`` and the
  cost-aware ``cost`` kinds) are never approximated by it: they run
  in the full replay (:mod:`.engine`) with the reference's frictions -- no ``min_trade``, no
  slippage, no step or minimum notional -- and their rows say ``engine = "replay"``. The one
  difference left is the fee's currency: the replay charges it as Binance does (in the asset
  received), the reference from cash.
* ``semantics="full"``: every combination through the full replay with the strategy's own
  policy (``min_trade``, slippage) and Binance-like market rules.

``engine="compiled"`` (the default) runs what the list above sends to the replay through
the compiled engine with the same semantics (:mod:`rebalancer.backtest.compiled`, proven
equal to the replay by ``tests/backtest/test_compiled_oracle.py``; its rows say
``engine = "compiled"`` and carry no realised gains); ``engine="replay"`` keeps the Decimal
replay, for audits.

Buy-and-hold (buy to target on bar 0, never trade again) is run per fee rate by the same
engine as each row, and each row carries its final value (``bh_final_value``).

**Break-even threshold** per fee rate, kind and style: the smallest band in the grid whose
final value is >= buy-and-hold's at that fee (NaN when no band gets there).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from multiprocessing import get_context
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from rebalancer.backtest.engine import FirstBar, check_closes, run_backtest
from rebalancer.backtest.metrics import calendar_span
from rebalancer.backtest.sweep import sweep
from rebalancer.core.errors import ConfigError
from rebalancer.core.lots import Method
from rebalancer.core.model import ZERO, MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold, Trigger, hybrid
from rebalancer.core.vol_bands import VolScaledThreshold

Kind = Literal["abs", "rel", "hybrid", "vol", "cost"]
Semantics = Literal["reference", "full"]
Engine = Literal["compiled", "replay"]
KINDS: tuple[str, ...] = ("abs", "rel", "hybrid", "vol", "cost")
STYLES: tuple[str, ...] = ("target", "band_edge")
DEFAULT_BANDS = tuple(round(0.01 * i, 2) for i in range(1, 26))
DEFAULT_FEES = (0.0005, 0.001, 0.0025)
#: the hybrid kind looks once a week (since the last check) and acts when out of band
HYBRID_PERIOD = timedelta(days=7)
#: the vol kind: the band is the base band of a volatility-scaled rule (per asset, EWMA
#: half-life 20 bars, reference volatility 4 % a bar) kept within [0.4, 3] x the band
VOL_HALF_LIFE, VOL_REFERENCE, VOL_FLOOR, VOL_CAP = 20.0, 0.04, Decimal("0.4"), Decimal(3)
#: the cost kind: the absolute band with cost-aware legs at this risk aversion
COST_RISK_AVERSION = Decimal("0.1")

METRICS = [
    "final_value",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_bars",
    "calmar",
    "n_rebalances",
    "fees",
    "traded",
    "turnover",
]

#: realised gains in the quote over the run, lots closed FIFO / HIFO (NaN in kernel rows)
GAIN_COLUMNS = ("realised_gain_fifo", "realised_gain_hifo")

Progress = Callable[[int], None]


class Executor(Protocol):
    """Runs a grid's rows somewhere else (a cluster); results identical to the local run."""

    def kernel_rows(
        self,
        todo: list[Combo],
        prices: np.ndarray[Any, np.dtype[np.float64]],
        targets: np.ndarray[Any, np.dtype[np.float64]],
        capital: float,
        bar: timedelta,
        progress: Progress,
        span: timedelta | None = None,
    ) -> list[dict[str, Any]]: ...

    def replay_rows(
        self,
        todo: list[Combo],
        closes: pd.DataFrame,
        strategy: Strategy,
        capital: Decimal,
        bar: timedelta,
        semantics: str,
        progress: Progress,
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Combo:
    kind: str
    style: str
    band: float
    fee_rate: float

    def trigger(self) -> Trigger:
        b = Decimal(repr(self.band))
        if self.kind == "abs":
            return Threshold(b, None)
        if self.kind == "rel":
            return Threshold(None, b)
        if self.kind == "hybrid":
            return hybrid(Calendar(period=HYBRID_PERIOD), Threshold(b, None))
        if self.kind == "cost":
            return Threshold(b, None)
        if self.kind == "vol":
            return VolScaledThreshold(
                half_life=VOL_HALF_LIFE,
                base_band=b,
                floor=b * VOL_FLOOR,
                cap=b * VOL_CAP,
                reference_vol=VOL_REFERENCE,
            )
        raise ConfigError(f"trigger kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def kernel(self) -> bool:
        """Whether the compiled kernel implements this combination exactly."""
        return self.kind == "abs" and self.style == "target"

    def policy(self, base: PlanPolicy) -> PlanPolicy:
        """``base`` with this combination's style (and cost-aware legs for the cost kind)."""
        policy = replace(base, style=self.style)  # type: ignore[arg-type]
        if self.kind == "cost":
            policy = replace(policy, cost_aware=True, risk_aversion=COST_RISK_AVERSION)
        return policy


@dataclass(frozen=True)
class GridResult:
    """``rows``: one per combination; ``break_even``: one per (kind, style, fee_rate)."""

    rows: pd.DataFrame
    break_even: pd.DataFrame
    semantics: str
    seconds: float

    def engines(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rows["engine"].value_counts().items()}


def combos(
    bands: Sequence[float], fee_rates: Sequence[float], kinds: Sequence[str], styles: Sequence[str]
) -> list[Combo]:
    """Every combination, checked (bands > 0, fees in [0, 1), known kinds and styles)."""
    bad_kinds = [k for k in kinds if k not in KINDS]
    bad_styles = [s for s in styles if s not in STYLES]
    if bad_kinds or bad_styles:
        raise ConfigError(
            f"unknown kinds {bad_kinds} / styles {bad_styles}: kinds are {', '.join(KINDS)}, "
            f"styles {', '.join(STYLES)}"
        )
    if "vol" in kinds and "band_edge" in styles:
        raise ConfigError(
            "kind vol has no band_edge style (its band moves with the volatility between the "
            "decision and the trade): sweep vol with --styles target, band_edge in another run"
        )
    if not bands or any(not (math.isfinite(b) and b > 0) for b in bands):
        raise ConfigError(f"bands must be numbers > 0 (0.05 = 5 points), got {list(bands)}")
    if not fee_rates or any(not (0 <= f < 1) for f in fee_rates):
        raise ConfigError(f"fee rates must be in [0, 1) (0.001 = 0.1 %), got {list(fee_rates)}")
    return [
        Combo(k, s, float(b), float(f))
        for k in kinds
        for s in styles
        for f in fee_rates
        for b in sorted(set(bands))
    ]


def _ref_rules(assets: Sequence[str], quote: str, fee: Decimal) -> dict[str, MarketRules]:
    return {a: MarketRules(f"{a}/{quote}", a, quote, taker_fee=fee) for a in assets}


# -- the replay path (one process per core) ----------------------------------------------------

_SHARED: dict[str, Any] = {}
#: fewer replay rows than this run in-process (starting worker processes costs ~1 s)
_MIN_POOL = 16


def _init_worker(
    closes: pd.DataFrame, strategy: Strategy, capital: Decimal, bar: timedelta, semantics: str
) -> None:
    _SHARED.update(closes=closes, strategy=strategy, capital=capital, bar=bar, semantics=semantics)


def _replay_row(combo: Combo) -> dict[str, Any]:
    return replay_one(
        combo,
        _SHARED["closes"],
        _SHARED["strategy"],
        _SHARED["capital"],
        _SHARED["bar"],
        _SHARED["semantics"],
    )


def replay_one(
    combo: Combo,
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    semantics: str,
) -> dict[str, Any]:
    """One combination through the full replay (see the module docstring)."""
    fee = Decimal(repr(combo.fee_rate))
    trigger: Trigger = FirstBar() if math.isinf(combo.band) else combo.trigger()
    if semantics == "reference":
        policy = combo.policy(PlanPolicy(min_trade=ZERO, slippage=ZERO))
        rules: dict[str, MarketRules] | None = _ref_rules(base.assets, base.quote, fee)
        slippage = ZERO
    else:
        policy = combo.policy(base.policy)
        rules, slippage = None, base.policy.slippage
    strategy = replace(base, trigger=trigger, policy=policy)
    res = run_backtest(
        closes,
        strategy,
        capital=capital,
        taker_fee=fee,
        slippage=slippage,
        bar=bar,
        rules=rules,
        benchmarks=False,
        engine="replay",
    )
    m = res.run.metrics
    row = {name: getattr(m, name) for name in METRICS if name != "max_drawdown_bars"}
    row["max_drawdown_bars"] = m.max_drawdown_bars
    row["final_value"] = float(res.run.final_value)
    methods: tuple[Method, ...] = ("fifo", "hifo")
    for method, column in zip(methods, GAIN_COLUMNS, strict=True):
        gains = res.run.realised_gains(method)
        row[column] = float(sum((g.net for g in gains.values()), ZERO))
    return row


def _run_replays(
    todo: list[Combo],
    closes: pd.DataFrame,
    strategy: Strategy,
    capital: Decimal,
    bar: timedelta,
    semantics: str,
    workers: int,
    progress: Progress,
) -> list[dict[str, Any]]:
    args = (closes, strategy, capital, bar, semantics)
    if workers <= 1 or len(todo) < _MIN_POOL:
        _init_worker(*args)
        out = []
        for combo in todo:
            out.append(_replay_row(combo))
            progress(1)
        return out
    ctx = get_context("spawn")  # never fork a process that runs numba's thread pool
    with ProcessPoolExecutor(min(workers, len(todo)), ctx, _init_worker, args) as pool:
        out = []
        for row in pool.map(_replay_row, todo, chunksize=max(1, len(todo) // (8 * workers))):
            out.append(row)
            progress(1)
        return out


# -- the kernel path ---------------------------------------------------------------------------


def _run_kernel(
    todo: list[Combo],
    prices: np.ndarray[Any, np.dtype[np.float64]],
    targets: np.ndarray[Any, np.dtype[np.float64]],
    capital: float,
    bar: timedelta,
    progress: Progress,
    chunk: int = 256,
    span: timedelta | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        res = sweep(
            prices, targets, [c.band for c in part], [c.fee_rate for c in part], capital=capital
        )
        frame = res.to_frame(bar, span)
        out.extend({str(k): v for k, v in r.items()} for r in frame[METRICS].to_dict("records"))
        progress(len(part))
    return out


def run_grid(
    closes: pd.DataFrame,
    strategy: Strategy,
    *,
    bands: Sequence[float] = DEFAULT_BANDS,
    fee_rates: Sequence[float] = DEFAULT_FEES,
    kinds: Sequence[str] = ("abs",),
    styles: Sequence[str] = ("target",),
    capital: Decimal = Decimal(10000),
    bar: timedelta,
    semantics: Semantics = "reference",
    workers: int | None = None,
    on_total: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    engine: Engine = "compiled",
) -> GridResult:
    """Run every combination over ``closes`` with ``strategy``'s targets (its trigger and
    style are replaced by each combination's). See the module docstring for the engines.

    ``executor``: where the rows run instead of this machine (an :class:`Executor`, e.g.
    :class:`rebalancer.backtest.executors.DaskExecutor`); the rows are the same.
    ``workers``: processes for the replay rows (default: all cores). ``on_total`` is told
    the number of runs first, then ``progress`` is called with the runs just finished.
    """
    import time

    if semantics not in ("reference", "full"):
        raise ConfigError(f"semantics must be 'reference' or 'full', not {semantics!r}")
    if engine not in ("compiled", "replay"):
        raise ConfigError(f"engine must be 'compiled' or 'replay', not {engine!r}")
    frame = check_closes(closes, strategy)
    grid = combos(bands, fee_rates, kinds, styles)
    holds = [Combo("abs", "target", math.inf, f) for f in sorted(set(map(float, fee_rates)))]
    use_kernel = semantics == "reference"
    k_todo = [c for c in grid if use_kernel and c.kernel]
    r_todo = [c for c in grid if not (use_kernel and c.kernel)]
    k_holds = holds if k_todo else []
    r_holds = [replace(h, kind="replay-hold") for h in holds] if r_todo else []
    if on_total is not None:
        on_total(len(k_todo) + len(k_holds) + len(r_todo) + len(r_holds))
    tick = progress or (lambda _n: None)
    t0 = time.perf_counter()
    prices = frame.to_numpy(dtype=np.float64)
    span = calendar_span(frame.index)  # calendar time: missing bars count
    targets = np.array([float(strategy.targets[a]) for a in strategy.assets])
    if executor is not None:  # e.g. a Dask cluster (rebalancer.backtest.executors)
        k_rows = executor.kernel_rows(
            [*k_todo, *k_holds], prices, targets, float(capital), bar, tick, span
        )
        r_rows = executor.replay_rows(
            [*r_todo, *r_holds], frame, strategy, capital, bar, semantics, tick
        )
    elif engine == "compiled":
        from rebalancer.backtest.compiled.grid_rows import compiled_rows

        k_rows = _run_kernel(
            [*k_todo, *k_holds], prices, targets, float(capital), bar, tick, span=span
        )
        r_rows = compiled_rows(
            [*r_todo, *r_holds], frame, strategy, capital, bar, semantics, tick, span=span
        )
    else:
        k_rows = _run_kernel(
            [*k_todo, *k_holds], prices, targets, float(capital), bar, tick, span=span
        )
        r_rows = _run_replays(
            [*r_todo, *r_holds],
            frame,
            strategy,
            capital,
            bar,
            semantics,
            workers or os.cpu_count() or 1,
            tick,
        )
    seconds = time.perf_counter() - t0
    bh_kernel = {
        c.fee_rate: r["final_value"] for c, r in zip(k_holds, k_rows[len(k_todo) :], strict=True)
    }
    bh_replay = {
        c.fee_rate: r["final_value"] for c, r in zip(r_holds, r_rows[len(r_todo) :], strict=True)
    }
    rows = []
    r_engine = "replay" if executor is not None or engine == "replay" else "compiled"
    for combos_, results, label, bh in (
        (k_todo, k_rows, "kernel", bh_kernel),
        (r_todo, r_rows, r_engine, bh_replay),
    ):
        for c, r in zip(combos_, results, strict=False):
            rows.append(
                {
                    "kind": c.kind,
                    "style": c.style,
                    "band": c.band,
                    "fee_rate": c.fee_rate,
                    "engine": label,
                    **r,
                    "bh_final_value": bh[c.fee_rate],
                }
            )
    table = pd.DataFrame(rows)
    for gains in GAIN_COLUMNS:  # replay rows only: the kernel keeps no lots
        if gains not in table:
            table[gains] = math.nan
    table["premium"] = table["final_value"] / table["bh_final_value"] - 1
    table["beats_bh"] = table["final_value"] >= table["bh_final_value"]
    table = table.sort_values(["kind", "style", "fee_rate", "band"], kind="stable")
    table = table.reset_index(drop=True)
    return GridResult(table, break_even(table), semantics, seconds)


def break_even(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, style, fee_rate): the smallest band with final value >= buy-and-hold's,
    whether every band beats it, and the best band with its premium."""
    out = []
    for (kind, style, fee), g in rows.groupby(["kind", "style", "fee_rate"], sort=True):
        g = g.sort_values("band")
        beating = g[g["beats_bh"]]
        best = g.iloc[int(np.argmax(g["final_value"].to_numpy()))]
        out.append(
            {
                "kind": kind,
                "style": style,
                "fee_rate": fee,
                "break_even_band": float(beating["band"].iloc[0]) if len(beating) else math.nan,
                "beats_at_all_bands": bool(g["beats_bh"].all()),
                "best_band": float(best["band"]),
                "best_premium": float(best["premium"]),
                "bh_final_value": float(g["bh_final_value"].iloc[0]),
            }
        )
    return pd.DataFrame(out)


# -- outputs -----------------------------------------------------------------------------------
