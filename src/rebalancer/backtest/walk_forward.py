"""Walk-forward: choose the band in-sample, score it out-of-sample, stitch the results.

Windows over the bars: ``train`` bars in-sample followed by ``test`` bars out-of-sample,
moved forward by ``test`` bars each time; ``anchored`` keeps every in-sample window starting
at bar 0 (it grows), otherwise it rolls (fixed length). Window bounds in the table are candle
open times.

* **rule**: ``kind`` is one of the sweep's kinds (:class:`rebalancer.backtest.grid.Combo`):
  ``abs`` (the absolute band), ``vol`` (the volatility-scaled rule, the band its base band)
  or ``cost`` (the absolute band with cost-aware legs).
* **one engine**: every run below -- the in-sample choice, the out-of-sample score, the
  hindsight rows and buy-and-hold -- has the bot's full semantics (the strategy's policy,
  the market's rules and fee side, :class:`~.grid.Market`) and runs in the same engine:
  ``engine="compiled"`` (the default, :mod:`rebalancer.backtest.compiled`, proven equal to
  the replay) or ``"replay"`` (the Decimal replay of the live loop, for audits).
* **choice**: on the in-sample bars every band of the grid runs at the given fee from
  ``capital`` in cash; the band with the best ``objective`` (``sharpe``, ``cagr`` or
  ``calmar``; ties to the smaller band) is chosen. A ``vol`` rule's volatility is estimated
  from the bars of the window it runs on (the first bars of each window use bands from a
  short history).
* **out-of-sample**: the chosen band runs on the test bars, starting from the holdings the
  previous test window ended with (the first one from ``capital`` in cash), so the stitched
  equity is one continuous account. A window's return runs from the value the previous
  window ended with (its last bar's close; ``capital`` for the first) to its own last bar's
  close, so the move over the bar where two windows meet belongs to exactly one window and
  the returns compound exactly: ``prod(1 + out_of_sample_return) == final_value / capital``.
* **hindsight**: every band of the grid, fixed, over the whole out-of-sample span from
  ``capital``; the best by the objective is the benchmark the walk-forward choice must be
  compared with.
* **buy-and-hold**: the targets bought on the first out-of-sample bar from ``capital`` (at
  the same fee) and never traded again, over the same span: what not rebalancing gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from rebalancer.backtest.compiled.grid_rows import compiled_rows
from rebalancer.backtest.engine import Engine, check_closes, check_engine, run_backtest
from rebalancer.backtest.grid import METRICS, Combo, Market, combo_strategy, market_rules
from rebalancer.backtest.metrics import Metrics, calendar_span, compute_metrics
from rebalancer.backtest.trust.regime_stats import flows_frame
from rebalancer.core.errors import ConfigError
from rebalancer.core.strategy import Strategy

Objective = Literal["sharpe", "cagr", "calmar"]
OBJECTIVES: tuple[str, ...] = ("sharpe", "cagr", "calmar")
#: the rules a walk-forward can choose the band of (see :class:`~.grid.Combo`)
WALK_KINDS: tuple[str, ...] = ("abs", "vol", "cost")


@dataclass(frozen=True)
class Window:
    train: tuple[int, int]  # [start, end) bar indices
    test: tuple[int, int]


@dataclass(frozen=True)
class WalkForwardResult:
    """``windows``: one row per window; ``equity``: the stitched out-of-sample curve (index =
    bar close times); ``hindsight``: every fixed band over the same span, best first;
    ``hold_equity`` / ``hold_metrics``: buy-and-hold over the same span."""

    windows: pd.DataFrame
    equity: pd.Series
    metrics: Metrics
    hindsight: pd.DataFrame
    hindsight_equity: pd.Series
    objective: str
    kind: str = "abs"
    hold_equity: pd.Series | None = None
    hold_metrics: Metrics | None = None
    engine: str = "compiled"
    #: per out-of-sample bar (index as ``equity``): traded, fees (quote), turnover
    bar_flows: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        best = self.hindsight.iloc[0]
        m = self.metrics
        return {
            "objective": self.objective,
            "kind": self.kind,
            "engine": self.engine,
            "windows": self.windows.to_dict("records"),
            "walk_forward": {
                "final_value": m.final_value,
                "total_return": m.total_return,
                "cagr": m.cagr,
                "sharpe": m.sharpe,
                "calmar": m.calmar,
                "max_drawdown": m.max_drawdown,
                "rebalances": m.n_rebalances,
                "fees": m.fees,
            },
            "best_fixed_in_hindsight": {k: _py(v) for k, v in best.items()},
            "buy_and_hold": None if self.hold_metrics is None else _brief(self.hold_metrics),
        }


def _brief(m: Metrics) -> dict[str, Any]:
    return {
        "final_value": m.final_value,
        "total_return": m.total_return,
        "cagr": m.cagr,
        "sharpe": m.sharpe,
        "calmar": m.calmar,
        "max_drawdown": m.max_drawdown,
    }


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def windows(n_bars: int, train: int, test: int, anchored: bool) -> list[Window]:
    """The windows over ``n_bars`` bars. The last test window may be shorter; a remainder of
    fewer than 2 bars is left out (no return can be measured on one bar)."""
    if train < 2 or test < 2:
        raise ConfigError(f"train and test need at least 2 bars each, got {train} and {test}")
    if train + test > n_bars:
        raise ConfigError(
            f"train {train} + test {test} bars exceed the {n_bars} bars of data: shorten the "
            "windows or load more history"
        )
    out: list[Window] = []
    start = train
    while start + 2 <= n_bars:
        end = min(n_bars, start + test)
        lo = 0 if anchored else start - train
        out.append(Window((lo, start), (start, end)))
        start = end
    return out


def _score(m: Metrics, objective: str) -> float:
    value = float(getattr(m, objective))
    return value if math.isfinite(value) else -math.inf


@dataclass(frozen=True)
class _Run:
    """One run of a window: its per-bar equity (after each bar's trades) at the bars'
    close times, final balances, value (the curve's last value) and metrics, and its
    per-bar flows (traded, fees in the quote, turnover) for the regime figures."""

    equity: pd.Series
    final_balances: dict[str, Decimal]
    final_value: float
    metrics: Metrics
    flows: pd.DataFrame


def _window_run(
    frame: pd.DataFrame, strategy: Strategy, combo: Combo, bar: timedelta, market: Market,
    start: Mapping[str, Decimal], engine: Engine = "compiled",
) -> _Run:
    """``combo``'s rule and policy from balances ``start``, on ``engine`` (the compiled
    engine or the Decimal replay: :func:`rebalancer.backtest.engine.run_backtest`, one
    backtest model for both); the window's final value is its curve's last value, so the
    windows compound exactly to the stitched curve."""
    fee = Decimal(repr(combo.fee_rate))
    run = run_backtest(
        frame,
        combo_strategy(combo, strategy),
        initial=start,
        taker_fee=fee,
        slippage=strategy.policy.slippage,
        bar=bar,
        rules=market.at_fee(fee),
        benchmarks=False,
        venue=market.venue,
        engine=engine,
    ).run
    return _Run(
        pd.Series(run.equity, index=run.times),
        dict(run.final_balances),
        float(run.equity[-1]),
        run.metrics,
        flows_frame(run),
    )


def _rows(
    frame: pd.DataFrame, strategy: Strategy, combos: Sequence[Combo], bar: timedelta,
    market: Market, capital: Decimal, engine: Engine,
) -> list[dict[str, Any]]:
    """Metrics of every combination over ``frame`` from ``capital`` in cash."""
    if engine == "compiled":
        span = calendar_span(frame.index)
        return compiled_rows(
            combos, frame, strategy, capital, bar, market, lambda _n: None, span=span
        )
    out = []
    for c in combos:
        m = _window_run(frame, strategy, c, bar, market, {strategy.quote: capital}, "replay")
        out.append({name: getattr(m.metrics, name) for name in METRICS})
    return out


def _choose(rows: Sequence[Mapping[str, Any]], objective: str) -> int:
    """The index of the best score (first maximum: the smaller band on ties)."""
    scores = [_finite(r[objective]) for r in rows]
    return int(np.argmax(scores))


def _finite(x: Any) -> float:
    value = float(x)
    return value if math.isfinite(value) else -math.inf


def walk_forward(
    closes: pd.DataFrame,
    strategy: Strategy,
    *,
    kind: str = "abs",
    bands: Sequence[float],
    fee_rate: Decimal,
    train: int,
    test: int,
    bar: timedelta,
    anchored: bool = False,
    objective: str = "sharpe",
    capital: Decimal = Decimal(10000),
    progress: Callable[[int, int], None] | None = None,
    engine: str = "compiled",
    market: Market | None = None,
) -> WalkForwardResult:
    """Walk forward over ``closes`` with ``strategy``'s targets and policy (its trigger is
    replaced by ``kind``'s rule at each band, e.g. ``Threshold(band_abs=band)`` for
    ``abs``). ``train`` and ``test`` are in bars. ``engine``: ``"compiled"`` or
    ``"replay"``, for the choice, the scores, the hindsight rows and buy-and-hold alike;
    ``market``: where they trade (:func:`grid.market_rules`; None: the reference fill
    model with made-up Binance-like rules)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if kind not in WALK_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(WALK_KINDS)}, not {kind!r}")
    which = check_engine(engine)
    if not bands or any(not (math.isfinite(b) and b > 0) for b in bands):
        raise ConfigError(f"bands must be numbers > 0, got {list(bands)}")
    frame = check_closes(closes, strategy)
    market = market or market_rules(frame, strategy)
    def one(
        span: pd.DataFrame, strategy: Strategy, combo: Combo, bar: timedelta, market: Market,
        start: Mapping[str, Decimal],
    ) -> _Run:
        return _window_run(span, strategy, combo, bar, market, start, which)

    grid = sorted(set(map(float, bands)))
    rules = [Combo(kind, "target", b, float(fee_rate)) for b in grid]
    wins = windows(len(frame), train, test, anchored)
    start: dict[str, Decimal] = {strategy.quote: capital}
    rows: list[dict[str, Any]] = []
    pieces: list[pd.Series] = []
    flow_pieces: list[pd.DataFrame] = []
    n_reb, fees, traded, turnover = 0, 0.0, 0.0, 0.0
    before = float(capital)  # the account's value when the window starts
    total = len(wins) + 1
    for i, w in enumerate(wins):
        (a, b), (c, d) = w.train, w.test
        scored = _rows(frame.iloc[a:b], strategy, rules, bar, market, capital, which)
        k = _choose(scored, objective)
        res = one(frame.iloc[c:d], strategy, rules[k], bar, market, start)
        start = res.final_balances
        m = res.metrics
        n_reb += m.n_rebalances
        fees += m.fees
        traded += m.traded
        turnover += m.turnover
        pieces.append(res.equity)
        flow_pieces.append(res.flows)
        rows.append(
            {
                "train_start": frame.index[a].isoformat(),
                "train_end": frame.index[b - 1].isoformat(),
                "test_start": frame.index[c].isoformat(),
                "test_end": frame.index[d - 1].isoformat(),
                "band": grid[k],
                f"in_sample_{objective}": _finite(scored[k][objective]),
                f"out_of_sample_{objective}": float(getattr(m, objective)),
                "start_value": before,
                "end_value": res.final_value,
                "out_of_sample_return": res.final_value / before - 1,
                "rebalances": m.n_rebalances,
            }
        )
        before = res.final_value
        if progress is not None:
            progress(i + 1, total)
    equity = pd.concat(pieces)
    metrics = compute_metrics(
        equity.to_numpy(),
        bar,
        times=equity.index,
        initial=float(capital),
        n_rebalances=n_reb,
        fees=fees,
        traded=traded,
        turnover=turnover,
    )
    span = frame.iloc[wins[0].test[0] : wins[-1].test[1]]
    fixed = [
        {
            "band": band,
            **{k: r[k] for k in ("final_value", "cagr", "sharpe", "calmar", "max_drawdown")},
            "rebalances": int(r["n_rebalances"]),
            "score": _finite(r[objective]),
        }
        for band, r in zip(
            grid, _rows(span, strategy, rules, bar, market, capital, which), strict=True
        )
    ]
    hindsight = pd.DataFrame(fixed).sort_values(["score", "band"], ascending=[False, True])
    hindsight = hindsight.reset_index(drop=True)
    best = rules[grid.index(float(hindsight["band"].iloc[0]))]
    cash = {strategy.quote: capital}
    best_run = one(span, strategy, best, bar, market, cash)
    hold = one(span, strategy, replace(best, band=math.inf), bar, market, cash)
    if progress is not None:
        progress(total, total)
    return WalkForwardResult(
        pd.DataFrame(rows),
        equity,
        metrics,
        hindsight,
        best_run.equity,
        objective,
        kind,
        hold.equity,
        hold.metrics,
        engine=engine,
        bar_flows=pd.concat(flow_pieces),
    )


def equity_figure(result: WalkForwardResult, window: str = "") -> Any:
    """The stitched out-of-sample equity against the best fixed band in hindsight and
    buy-and-hold over the same span; ``window`` (the data window) goes in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    final = result.metrics.final_value
    ax.plot(
        result.equity.index,
        result.equity.to_numpy(),
        lw=1.2,
        label=f"walk-forward (out-of-sample): final {final:,.0f}",
    )
    best = result.hindsight.iloc[0]
    ax.plot(
        result.hindsight_equity.index,
        result.hindsight_equity.to_numpy(),
        lw=1.0,
        color="#ff7f0e",
        label=f"best fixed band in hindsight ({float(best['band']):.0%}): "
        f"final {float(best['final_value']):,.0f}",
    )
    if result.hold_equity is not None and result.hold_metrics is not None:
        ax.plot(
            result.hold_equity.index,
            result.hold_equity.to_numpy(),
            lw=1.0,
            color="#7f7f7f",
            ls="--",
            label=f"buy-and-hold: final {result.hold_metrics.final_value:,.0f}",
        )
    for start in result.windows["test_start"]:
        ax.axvline(pd.Timestamp(start), color="#d62728", lw=0.5, alpha=0.4)  # type: ignore[arg-type]
    ax.set_yscale("log")
    money = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
    ax.yaxis.set_major_formatter(money)
    ax.yaxis.set_minor_formatter(money)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    title = f"Walk-forward by {result.objective}: out-of-sample equity (red: window starts)"
    ax.set_title(f"{title}\n{window}" if window else title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
