"""Walk-forward: choose the band in-sample, score it out-of-sample, stitch the results.

Windows over the bars: ``train`` bars in-sample followed by ``test`` bars out-of-sample,
moved forward by ``test`` bars each time; ``anchored`` keeps every in-sample window starting
at bar 0 (it grows), otherwise it rolls (fixed length). Window bounds in the table are candle
open times.

* **rule**: ``kind`` is one of the sweep's kinds (:class:`rebalancer.backtest.grid.Combo`):
  ``abs`` (the absolute band), ``vol`` (the volatility-scaled rule, the band its base band)
  or ``cost`` (the absolute band with cost-aware legs).
* **choice**: on the in-sample bars every band of the grid runs at the given fee; the band
  with the best ``objective`` (``sharpe``, ``cagr`` or ``calmar``; ties to the smaller band)
  is chosen. ``abs`` runs in the compiled kernel (reference semantics, :mod:`.sweep`); the
  other kinds, which the kernel does not implement, in the full engine with the strategy's
  policy. A ``vol`` rule's volatility is estimated from the bars of the window it runs on
  (the first bars of each window use bands from a short history).
* **out-of-sample**: the chosen band runs in the full engine (:mod:`.engine`, the bot's own
  loop) on the test bars, starting from the holdings the previous test window ended with
  (the first one from ``capital`` in cash), so the stitched equity is one continuous account.
  A window's return runs from the value the previous window ended with (its last bar's
  close; ``capital`` for the first) to its own last bar's close, so the move over the bar
  where two windows meet belongs to exactly one window and the returns compound exactly:
  ``prod(1 + out_of_sample_return) == final_value / capital``.
* **hindsight**: every band of the grid run by the full engine, fixed, over the whole
  out-of-sample span from ``capital``; the best by the objective is the benchmark the
  walk-forward choice must be compared with.
* **buy-and-hold**: the targets bought on the first out-of-sample bar from ``capital`` (at
  the same fee) and never traded again, over the same span: what not rebalancing gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from rebalancer.backtest.engine import BacktestResult, FirstBar, check_closes, run_backtest
from rebalancer.backtest.grid import Combo
from rebalancer.backtest.metrics import Metrics, calendar_span, compute_metrics
from rebalancer.backtest.sweep import sweep
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
    #: per out-of-sample bar (index as ``equity``): traded, fees (quote), turnover
    bar_flows: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        best = self.hindsight.iloc[0]
        m = self.metrics
        return {
            "objective": self.objective,
            "kind": self.kind,
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


def _choose(
    prices: np.ndarray[Any, np.dtype[np.float64]],
    targets: np.ndarray[Any, np.dtype[np.float64]],
    bands: Sequence[float],
    fee: float,
    capital: float,
    bar: timedelta,
    objective: str,
    span: timedelta | None = None,
) -> tuple[float, float]:
    res = sweep(prices, targets, list(bands), [fee] * len(bands), capital=capital)
    frame = res.to_frame(bar, span)
    scores = frame[objective].to_numpy(dtype=np.float64)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    k = int(np.argmax(scores))  # first maximum: the smaller band on ties
    return float(bands[k]), float(scores[k])


def _choose_replayed(
    frame: pd.DataFrame,
    strategy: Strategy,
    combos: Sequence[Combo],
    bar: timedelta,
    objective: str,
    capital: Decimal,
) -> tuple[float, float]:
    scores = [
        _score(_run(frame, strategy, c, bar, capital=capital).run.metrics, objective)
        for c in combos
    ]
    k = int(np.argmax(scores))  # first maximum: the smaller band on ties
    return combos[k].band, scores[k]


def _run(
    frame: pd.DataFrame,
    strategy: Strategy,
    combo: Combo,
    bar: timedelta,
    **start: Any,
) -> BacktestResult:
    """``combo``'s rule and policy on ``strategy``'s targets, fee and slippage, over ``frame``."""
    return run_backtest(
        frame,
        replace(strategy, trigger=combo.trigger(), policy=combo.policy(strategy.policy)),
        taker_fee=Decimal(repr(combo.fee_rate)),
        slippage=strategy.policy.slippage,
        bar=bar,
        benchmarks=False,
        **start,
    )


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
) -> WalkForwardResult:
    """Walk forward over ``closes`` with ``strategy``'s targets and policy (its trigger is
    replaced by ``kind``'s rule at each band, e.g. ``Threshold(band_abs=band)`` for
    ``abs``). ``train`` and ``test`` are in bars."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if kind not in WALK_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(WALK_KINDS)}, not {kind!r}")
    if not bands or any(not (math.isfinite(b) and b > 0) for b in bands):
        raise ConfigError(f"bands must be numbers > 0, got {list(bands)}")
    frame = check_closes(closes, strategy)
    grid = sorted(set(map(float, bands)))
    rules = [Combo(kind, "target", b, float(fee_rate)) for b in grid]
    wins = windows(len(frame), train, test, anchored)
    prices = frame.to_numpy(dtype=np.float64)
    targets = np.array([float(strategy.targets[a]) for a in strategy.assets])
    holdings: dict[str, Decimal] | None = None
    rows: list[dict[str, Any]] = []
    pieces: list[pd.Series] = []
    flow_pieces: list[pd.DataFrame] = []
    n_reb, fees, traded, turnover = 0, 0.0, 0.0, 0.0
    before = float(capital)  # the account's value when the window starts
    total = len(wins) + len(grid)
    for i, w in enumerate(wins):
        (a, b), (c, d) = w.train, w.test
        if kind == "abs":
            in_span = calendar_span(frame.index[a:b])
            band, in_score = _choose(
                prices[a:b], targets, grid, float(fee_rate), float(capital), bar, objective, in_span
            )
        else:
            band, in_score = _choose_replayed(
                frame.iloc[a:b], strategy, rules, bar, objective, capital
            )
        start = {"capital": capital} if holdings is None else {"initial": holdings}
        res = _run(frame.iloc[c:d], strategy, rules[grid.index(band)], bar, **start)
        holdings = dict(res.run.final_balances)
        m = res.run.metrics
        n_reb += m.n_rebalances
        fees += m.fees
        traded += m.traded
        turnover += m.turnover
        pieces.append(pd.Series(res.run.equity, index=res.run.times))
        flow_pieces.append(flows_frame(res.run))
        rows.append(
            {
                "train_start": frame.index[a].isoformat(),
                "train_end": frame.index[b - 1].isoformat(),
                "test_start": frame.index[c].isoformat(),
                "test_end": frame.index[d - 1].isoformat(),
                "band": band,
                f"in_sample_{objective}": in_score,
                f"out_of_sample_{objective}": float(getattr(m, objective)),
                "start_value": before,
                "end_value": float(res.run.final_value),
                "out_of_sample_return": float(res.run.final_value) / before - 1,
                "rebalances": m.n_rebalances,
            }
        )
        before = float(res.run.final_value)
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
    fixed: list[dict[str, Any]] = []
    curves: dict[float, pd.Series] = {}
    for j, (band, rule) in enumerate(zip(grid, rules, strict=True)):
        one = _run(span, strategy, rule, bar, capital=capital)
        m = one.run.metrics
        curves[band] = pd.Series(one.run.equity, index=one.run.times)
        fixed.append(
            {
                "band": band,
                "final_value": m.final_value,
                "cagr": m.cagr,
                "sharpe": m.sharpe,
                "calmar": m.calmar,
                "max_drawdown": m.max_drawdown,
                "rebalances": m.n_rebalances,
                "score": _score(m, objective),
            }
        )
        if progress is not None:
            progress(len(wins) + j + 1, total)
    hindsight = pd.DataFrame(fixed).sort_values(["score", "band"], ascending=[False, True])
    hindsight = hindsight.reset_index(drop=True)
    best_band = float(hindsight["band"].iloc[0])
    hold = run_backtest(
        span,
        replace(strategy, trigger=FirstBar()),
        capital=capital,
        taker_fee=fee_rate,
        slippage=strategy.policy.slippage,
        bar=bar,
        benchmarks=False,
    ).run
    return WalkForwardResult(
        pd.DataFrame(rows),
        equity,
        metrics,
        hindsight,
        curves[best_band],
        objective,
        kind,
        pd.Series(hold.equity, index=hold.times),
        hold.metrics,
        pd.concat(flow_pieces),
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
