"""Parameter grids: bands x fee rates x trigger kinds x rebalance styles, on one price panel.

Every row of one grid has one meaning, chosen by ``semantics``:

* ``semantics="full"`` (the default): the bot's own rule. Every kind (``abs``, ``rel``,
  ``hybrid``, ``vol``, ``cost``), both styles (``target``, ``band_edge``) and buy-and-hold
  run with the strategy's own policy (``min_trade``, slippage, cost-aware legs), the
  venue's market rules (step, minimum amount and notional: :func:`market_rules`) and the
  venue's fee side (:func:`fill_model`), the fee being the combination's rate.
  ``engine="compiled"`` (the default) runs them in the compiled engine
  (:mod:`rebalancer.backtest.compiled`, all cores, proven equal to the replay by
  ``tests/backtest/test_compiled_oracle.py``; its rows carry no realised gains);
  ``engine="replay"`` in the Decimal replay of the live loop, for audits (same rows, plus
  realised gains by lot).
* ``semantics="reference"``: the plain rule of :mod:`rebalancer.backtest.reference` (fee
  from cash, no step, no minimum, no ``min_trade``, no slippage), only to compare with
  vectorbt and bt. It runs in the reference kernel (:mod:`.sweep`), which implements the
  absolute band with style ``target`` only: any other kind or style is refused, never
  mixed in.

Buy-and-hold (buy to target on bar 0, never trade again) is run per fee rate by the same
engine and semantics as the rows, and each row carries its final value (``bh_final_value``).

**Break-even threshold** per fee rate, kind and style: the smallest band in the grid whose
final value is >= buy-and-hold's at that fee (NaN when no band gets there).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from multiprocessing import get_context
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from rebalancer.backtest.engine import Engine, FirstBar, check_closes, run_backtest
from rebalancer.backtest.metrics import calendar_span
from rebalancer.backtest.sweep import sweep
from rebalancer.core.errors import ConfigError
from rebalancer.core.lots import Method
from rebalancer.core.model import ONE, ZERO, MarketRules
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold, Trigger, hybrid
from rebalancer.core.venue import REFERENCE, FeeIn, VenueModel
from rebalancer.core.vol_bands import VolScaledThreshold

Kind = Literal["abs", "rel", "hybrid", "vol", "cost"]
Semantics = Literal["full", "reference"]
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
        market: Market,
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

    def policy(self, base: PlanPolicy) -> PlanPolicy:
        """``base`` with this combination's style (and cost-aware legs for the cost kind)."""
        policy = replace(base, style=self.style)  # type: ignore[arg-type]
        if self.kind == "cost":
            policy = replace(policy, cost_aware=True, risk_aversion=COST_RISK_AVERSION)
        return policy


@dataclass(frozen=True)
class GridResult:
    """``rows``: one per combination; ``break_even``: one per (kind, style, fee_rate);
    ``semantics``: ``"full"`` or ``"reference"`` (every row the same); ``venue``: the fill
    model's venue; ``rules_source``: where the market rules came from."""

    rows: pd.DataFrame
    break_even: pd.DataFrame
    semantics: str
    seconds: float
    venue: str = "reference"
    rules_source: str = ""
    notes: tuple[str, ...] = ()

    def engines(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rows["engine"].value_counts().items()}


def combos(
    bands: Sequence[float], fee_rates: Sequence[float], kinds: Sequence[str], styles: Sequence[str]
) -> list[Combo]:
    """Every combination, checked (bands > 0, fees in [0, 1), known kinds and styles).
    Kind ``vol`` has no ``band_edge`` style: that pair is left out (:func:`grid_notes`)."""
    bad_kinds = [k for k in kinds if k not in KINDS]
    bad_styles = [s for s in styles if s not in STYLES]
    if bad_kinds or bad_styles:
        raise ConfigError(
            f"unknown kinds {bad_kinds} / styles {bad_styles}: kinds are {', '.join(KINDS)}, "
            f"styles {', '.join(STYLES)}"
        )
    if list(kinds) == ["vol"] and list(styles) == ["band_edge"]:
        raise ConfigError(
            "kind vol has no band_edge style (its band moves with the volatility between the "
            "decision and the trade): sweep vol with --styles target"
        )
    if not bands or any(not (math.isfinite(b) and b > 0) for b in bands):
        raise ConfigError(f"bands must be numbers > 0 (0.05 = 5 points), got {list(bands)}")
    if not fee_rates or any(not (0 <= f < 1) for f in fee_rates):
        raise ConfigError(f"fee rates must be in [0, 1) (0.001 = 0.1 %), got {list(fee_rates)}")
    return [
        Combo(k, s, float(b), float(f))
        for k in kinds
        for s in styles
        if (k, s) != ("vol", "band_edge")
        for f in fee_rates
        for b in sorted(set(bands))
    ]


@dataclass(frozen=True)
class Market:
    """Where the full-semantics rows trade: per asset the venue's market rules (step,
    minimum and maximum amount, minimum notional, fee side; the fee a placeholder: each row
    sets its own rate; no ``cost_step``: the quote's precision is outside the fill model)
    and the fill model (:func:`fill_model`); ``source``: where the rules came from."""

    rules: dict[str, MarketRules]
    venue: VenueModel
    source: str

    @property
    def fee_currency(self) -> FeeIn:
        """The compiled engine's fee side (``"received"`` or ``"quote"``)."""
        return self.venue.fee_in

    def __post_init__(self) -> None:
        # the quote's precision (fee rounding, buys by cost) is outside the fill model
        exact = {a: replace(r, cost_step=None) for a, r in self.rules.items()}
        object.__setattr__(self, "rules", exact)

    def at_fee(self, fee: Decimal) -> dict[str, MarketRules]:
        """The rules with taker fee ``fee``."""
        return {a: replace(r, taker_fee=fee) for a, r in self.rules.items()}


def fill_model(venue: VenueModel) -> VenueModel:
    """How a sweep fills on ``venue``: its fee side (the asset received, or the quote on
    top of a buy), fees exact and buys by amount (what the compiled engine models; the
    venue's fee rounding and quote precision are left out). A venue paying fees in a third
    asset (BNB) is refused: no sweep can value it."""
    if venue.fee_currency is not None:
        raise ConfigError(
            f"{venue.name}: fees paid in {venue.fee_currency} cannot be swept (the engines "
            f"value fees in the traded assets only); turn {venue.fee_currency} fees off"
        )
    return replace(REFERENCE, name=venue.name, fee_in=venue.fee_in)


def market_rules(
    closes: pd.DataFrame,
    strategy: Strategy,
    venue: VenueModel = REFERENCE,
    rules: Mapping[str, MarketRules] | None = None,
) -> Market:
    """The market the full-semantics rows trade in: ``rules`` where given (every asset of
    the targets), else the venue's shipped market list, with the labelled made-up
    Binance-like fallback (from the first bar's prices) for an asset it does not list."""
    from rebalancer.adapters.market_list import market_list
    from rebalancer.backtest.replay import decimal_rows

    model = fill_model(venue)
    assets = [a for a in strategy.assets if a != strategy.quote]
    if rules is not None:
        missing = [a for a in assets if a not in rules]
        if missing:
            raise ConfigError(f"no market rules for {', '.join(missing)}: give every asset's")
        found = {a: model.market(rules[a], ONE) for a in assets}
        return Market(found, model, "the given market rules")
    first = decimal_rows(closes[assets].iloc[:1])[0]
    listed = market_list(venue, strategy.quote, first, taker_fee=ONE)
    found = {a: model.market(listed.rules[a], ONE) for a in assets}
    return Market(found, model, listed.source)


# -- the replay path (one process per core) ----------------------------------------------------

_SHARED: dict[str, Any] = {}
#: fewer replay rows than this run in-process (starting worker processes costs ~1 s)
_MIN_POOL = 16


def _init_worker(
    closes: pd.DataFrame, strategy: Strategy, capital: Decimal, bar: timedelta, market: Market
) -> None:
    _SHARED.update(closes=closes, strategy=strategy, capital=capital, bar=bar, market=market)


def _replay_row(combo: Combo) -> dict[str, Any]:
    return replay_one(
        combo,
        _SHARED["closes"],
        _SHARED["strategy"],
        _SHARED["capital"],
        _SHARED["bar"],
        _SHARED["market"],
    )


def combo_strategy(combo: Combo, base: Strategy) -> Strategy:
    """``base`` with ``combo``'s trigger (buy-and-hold for an infinite band) and policy."""
    trigger: Trigger = FirstBar() if math.isinf(combo.band) else combo.trigger()
    return replace(base, trigger=trigger, policy=combo.policy(base.policy))


def replay_one(
    combo: Combo,
    closes: pd.DataFrame,
    base: Strategy,
    capital: Decimal,
    bar: timedelta,
    market: Market,
) -> dict[str, Any]:
    """One combination through the Decimal replay (full semantics, see the module doc)."""
    fee = Decimal(repr(combo.fee_rate))
    res = run_backtest(
        closes,
        combo_strategy(combo, base),
        capital=capital,
        taker_fee=fee,
        slippage=base.policy.slippage,
        bar=bar,
        rules=market.at_fee(fee),
        benchmarks=False,
        engine="replay",
        venue=market.venue,
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
    market: Market,
    workers: int,
    progress: Progress,
) -> list[dict[str, Any]]:
    args = (closes, strategy, capital, bar, market)
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


# -- the reference kernel path -----------------------------------------------------------------


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


def grid_notes(kinds: Sequence[str], styles: Sequence[str]) -> list[str]:
    """What the grid leaves out of the asked kinds x styles, for the outputs."""
    if "vol" in kinds and "band_edge" in styles:
        return [
            "kind vol has no band_edge style (its band moves with the volatility between the "
            "decision and the trade): vol runs with style target only"
        ]
    return []


def _check_reference(kinds: Sequence[str], styles: Sequence[str], engine: str) -> None:
    """The reference semantics run only what the reference kernel implements."""
    other = [k for k in kinds if k != "abs"] + [s for s in styles if s != "target"]
    if other:
        raise ConfigError(
            f"--semantics reference runs only kind abs with style target (the plain rule "
            f"vectorbt and bt implement), not {', '.join(other)}: drop --semantics reference "
            "(the default, full, runs every kind and style) or sweep --kinds abs --styles "
            "target"
        )
    if engine != "compiled":
        raise ConfigError(
            "--semantics reference runs in the reference kernel only, not --engine "
            f"{engine}: drop --engine (the replay has the full semantics)"
        )


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
    semantics: Semantics = "full",
    workers: int | None = None,
    on_total: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    engine: Engine = "compiled",
    market: Market | None = None,
) -> GridResult:
    """Run every combination over ``closes`` with ``strategy``'s targets (its trigger and
    style are replaced by each combination's). See the module docstring for the semantics
    and engines.

    ``market``: where the full-semantics rows trade (:func:`market_rules`; None: the
    reference fill model, the fee in the asset received, with made-up Binance-like rules).
    ``executor``: where the rows run instead of this machine (an :class:`Executor`, e.g.
    :class:`rebalancer.backtest.executors.DaskExecutor`): reference rows in the reference
    kernel, full rows in the replay. ``workers``: processes for replay rows (default: all
    cores). ``on_total`` is told the number of runs first, then ``progress`` is called with
    the runs just finished.
    """
    import time

    if semantics not in ("reference", "full"):
        raise ConfigError(f"semantics must be 'full' or 'reference', not {semantics!r}")
    if engine not in ("compiled", "replay"):
        raise ConfigError(f"engine must be 'compiled' or 'replay', not {engine!r}")
    if semantics == "reference":
        _check_reference(kinds, styles, engine)
    frame = check_closes(closes, strategy)
    grid = combos(bands, fee_rates, kinds, styles)
    holds = [Combo("abs", "target", math.inf, f) for f in sorted(set(map(float, fee_rates)))]
    todo = [*grid, *holds]
    if on_total is not None:
        on_total(len(todo))
    tick = progress or (lambda _n: None)
    t0 = time.perf_counter()
    span = calendar_span(frame.index)  # calendar time: missing bars count
    if semantics == "reference":
        market = None
        label = "reference"
        prices = frame.to_numpy(dtype=np.float64)
        targets = np.array([float(strategy.targets[a]) for a in strategy.assets])
        if executor is not None:  # e.g. a Dask cluster (rebalancer.backtest.executors)
            results = executor.kernel_rows(todo, prices, targets, float(capital), bar, tick, span)
        else:
            results = _run_kernel(todo, prices, targets, float(capital), bar, tick, span=span)
    else:
        market = market or market_rules(frame, strategy)
        if executor is not None:
            label = "replay"
            results = executor.replay_rows(todo, frame, strategy, capital, bar, market, tick)
        elif engine == "compiled":
            from rebalancer.backtest.compiled.grid_rows import compiled_rows

            label = "compiled"
            results = compiled_rows(todo, frame, strategy, capital, bar, market, tick, span=span)
        else:
            label = "replay"
            workers = workers or os.cpu_count() or 1
            results = _run_replays(todo, frame, strategy, capital, bar, market, workers, tick)
    seconds = time.perf_counter() - t0
    bh = {c.fee_rate: r["final_value"] for c, r in zip(holds, results[len(grid) :], strict=True)}
    rows = [
        {
            "kind": c.kind,
            "style": c.style,
            "band": c.band,
            "fee_rate": c.fee_rate,
            "engine": label,
            **r,
            "bh_final_value": bh[c.fee_rate],
        }
        for c, r in zip(grid, results, strict=False)
    ]
    table = pd.DataFrame(rows)
    for gains in GAIN_COLUMNS:  # replay rows only: the kernels keep no lots
        if gains not in table:
            table[gains] = math.nan
    table["semantics"] = semantics
    table["premium"] = table["final_value"] / table["bh_final_value"] - 1
    table["beats_bh"] = table["final_value"] >= table["bh_final_value"]
    table = table.sort_values(["kind", "style", "fee_rate", "band"], kind="stable")
    table = table.reset_index(drop=True)
    venue_text = "reference rule" if market is None else market.venue.name
    source = "none (the reference rule has no market rules)" if market is None else market.source
    return GridResult(
        table,
        break_even(table),
        semantics,
        seconds,
        venue=venue_text,
        rules_source=source,
        notes=tuple(grid_notes(kinds, styles)),
    )


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
