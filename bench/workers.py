"""One measurement per process: ``python bench/run.py --worker NAME --grid G --out FILE``.

Each worker loads its grid, warms up (numba compile or cache load, reported apart), times the
work, and reports its own peak RSS (``getrusage``: the whole process -- interpreter, pandas,
numba, data -- so a fresh process per measurement) and, where it means something, the peak of
the Python heap traced by ``tracemalloc`` during one extra, untimed run.
"""

from __future__ import annotations

import functools
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from common import CAPITAL, GRIDS, Grid, Panel, combos, load, peak_rss_mb

#: CPU seconds (process_time: all threads of this process) of the last _timed call's runs
LAST_CPU: list[float] = []


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Best wall time of ``repeat`` runs, all wall times, the last result; the CPU times
    go to :data:`LAST_CPU` (a load-robust second measure on a shared machine)."""
    times = []
    LAST_CPU.clear()
    out = None
    for _ in range(repeat):
        out = None  # drop the previous result first: one result alive at a time
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        LAST_CPU.append(time.process_time() - c0)
    return min(times), times, out


def _traced(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _bars_of(flags: np.ndarray[Any, Any]) -> list[list[int]]:
    return [np.flatnonzero(row).tolist() for row in flags]


# -- ours: the compiled sweep ------------------------------------------------------------------


def ours_sweep(grid: Grid, args: dict[str, Any]) -> dict[str, Any]:
    from rebalancer.backtest.sweep import sweep

    t0 = time.perf_counter()
    panel = load(grid)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()
    p, w = panel.prices, panel.targets
    t0 = time.perf_counter()
    sweep(p[:3], w, [0.05], [0.0])  # compile or load numba's cache
    compile_s = time.perf_counter() - t0
    cs = combos(grid)
    gates = sorted({e for _, _, e in cs})

    def run_all() -> list[Any]:
        out = []
        for e in gates:
            part = [(b, f) for b, f, g in cs if g == e]
            out.append(
                sweep(
                    p,
                    w,
                    [b for b, _ in part],
                    [f for _, f in part],
                    capital=CAPITAL,
                    every=None if e == 1 else e,
                )
            )
        return out

    best, times, results = _timed(run_all, int(args.get("repeat", 5)))
    traced = _traced(run_all)
    final = np.concatenate([r.final_value for r in results]).tolist()
    n_reb = np.concatenate([r.n_rebalances for r in results]).astype(int).tolist()
    out: dict[str, Any] = {
        "bars": int(p.shape[0]),
        "assets": int(p.shape[1]),
        "skipped_bars": panel.skipped,
        "start": str(panel.closes.index[0]),
        "end": str(panel.closes.index[-1]),
        "combos": len(cs),
        "load_s": load_s,
        "compile_s": compile_s,
        "seconds": best,
        "times": times,
        "cpu_s": min(LAST_CPU),
        "traced_mb": traced,
        "rss_after_load_mb": rss_loaded,
        "final_value": final,
        "n_rebalances": n_reb,
    }
    out["peak_rss_mb"] = peak_rss_mb()  # before the recording run below
    if args.get("record"):
        # untimed: each combination's rebalance bars, to compare with the peers'
        rec = sweep(
            p, w, [b for b, _, _ in cs], [f for _, f, _ in cs], capital=CAPITAL, record=True
        )
        assert rec.rebalanced is not None
        out["rebalance_bars"] = _bars_of(rec.rebalanced)
        del rec
    return out


# -- ours: one full-fidelity run (real planner, market rules, trade log) -----------------------


def ours_full(grid: Grid, args: dict[str, Any]) -> dict[str, Any]:
    from rebalancer.backtest.engine import run_backtest
    from rebalancer.core.planner import PlanPolicy
    from rebalancer.core.strategy import Strategy
    from rebalancer.core.triggers import Threshold

    panel = load(grid)
    n = panel.prices.shape[1]
    w = (Decimal(1) / Decimal(n + 1)).quantize(Decimal("1e-12"))
    targets = {a: w for a in grid.assets}
    targets["USDT"] = Decimal(1) - w * n
    strategy = Strategy(
        quote="USDT",
        targets=targets,
        trigger=Threshold(Decimal(repr(args["band"])), None),
        policy=PlanPolicy(),  # min_trade 10 USDT, no slippage, trade to target
    )

    def one() -> Any:
        return run_backtest(
            panel.closes,
            strategy,
            capital=Decimal(int(CAPITAL)),
            taker_fee=Decimal(repr(args["fee"])),
            bar=timedelta(seconds=panel.step_seconds),
            benchmarks=False,
        )

    rss0 = peak_rss_mb()
    best, times, res = _timed(one, int(args.get("repeat", 2)))
    return {
        "bars": int(panel.prices.shape[0]),
        "seconds": best,
        "times": times,
        "final_value": float(res.run.final_value),
        "rebalances": len(res.run.rebalance_bars),
        "orders": len(res.trades),
        "rss_after_load_mb": rss0,
        "peak_rss_mb": peak_rss_mb(),
    }


# -- vectorbt ------------------------------------------------------------------------------------


@functools.cache
def _vbt_funcs() -> tuple[Any, Any]:
    """The threshold rule as vectorbt callbacks (flexible order function, numba); made
    once per process, as vectorbt compiles its simulator for each new callback object."""
    from numba import njit
    from vectorbt.portfolio import nb as pnb
    from vectorbt.portfolio.enums import Direction, SizeType

    target_pct = SizeType.TargetPercent
    long_only = Direction.LongOnly

    @njit(cache=True)
    def pre_segment(
        c: Any,
        bands: Any,
        every: Any,
        targets: Any,
        cash_target: float,
        size_type: Any,
        direction: Any,
        order_value: Any,
        call_seq: Any,
    ) -> Any:
        g = c.group
        i = c.i
        n = c.to_col - c.from_col
        for col in range(c.from_col, c.to_col):
            c.last_val_price[col] = pnb.get_col_elem_nb(c, col, c.close)  # value at the close
        value = pnb.get_group_value_ctx_nb(c)
        if i == 0:
            fire = True
        elif every[g] > 1 and i % every[g] != 0:
            fire = False
        else:
            drift = abs(c.last_cash[g] / value - cash_target)
            for k in range(n):
                col = c.from_col + k
                d = abs(c.last_position[col] * c.last_val_price[col] / value - targets[k])
                if d > drift:
                    drift = d
            fire = drift > bands[g]
        if fire:
            for k in range(n):
                call_seq[k] = k
            # sell first: vectorbt's own "auto" call sequence, by approximate order value
            pnb.sort_call_seq_out_nb(
                c, targets, size_type, direction, order_value, call_seq, ctx_select=False
            )
        return (fire, call_seq)

    @njit(cache=True)
    def flex_order(c: Any, fire: bool, call_seq: Any, fees: Any, targets: Any) -> Any:
        if not fire or c.call_idx >= c.group_len:
            return -1, pnb.order_nothing_nb()
        k = call_seq[c.call_idx]
        return c.from_col + k, pnb.order_nb(
            size=targets[k],
            size_type=target_pct,
            direction=long_only,
            fees=fees[c.group],
        )

    return pre_segment, flex_order


def _vbt_threshold(
    prices: np.ndarray[Any, Any],
    targets: np.ndarray[Any, Any],
    cash_target: float,
    bands: np.ndarray[Any, Any],
    fees: np.ndarray[Any, Any],
    every: np.ndarray[Any, Any],
) -> Any:
    """All combinations in one vectorbt simulation: one column group per combination
    (``n`` asset columns, cash shared in the group), prices tiled across groups."""
    import vectorbt as vbt
    from vectorbt.portfolio.enums import Direction, SizeType

    pre_segment, flex_order = _vbt_funcs()
    k, n = bands.size, prices.shape[1]
    close = np.tile(prices, (1, k))
    return vbt.Portfolio.from_order_func(
        close,
        flex_order,
        fees,
        targets,
        flexible=True,
        init_cash=CAPITAL,
        cash_sharing=True,
        group_by=np.repeat(np.arange(k), n),
        pre_segment_func_nb=pre_segment,
        pre_segment_args=(
            bands,
            every,
            targets,
            cash_target,
            np.array([SizeType.TargetPercent]),
            np.array([Direction.LongOnly]),
            np.empty(n),
            np.empty(n, dtype=np.int64),
        ),
        update_value=False,
        freq="1D",
    )


def _vbt_bars(pf: Any, k: int, n: int) -> list[list[int]]:
    rec = pf.orders.values
    groups = rec["col"] // n
    out: list[list[int]] = [[] for _ in range(k)]
    pairs = np.unique(np.stack([groups, rec["idx"]], axis=1), axis=0)
    for g, i in pairs:
        if i > 0:
            out[int(g)].append(int(i))
    return out


def vbt_sweep(grid: Grid, args: dict[str, Any]) -> dict[str, Any]:
    import vectorbt as vbt

    panel = load(grid)
    p, w = panel.prices, panel.targets
    cs = combos(grid)
    subset = args.get("subset")
    picked = list(range(len(cs))) if subset is None else [int(i) for i in subset]
    bands = np.array([cs[i][0] for i in picked])
    fees = np.array([cs[i][1] for i in picked])
    every = np.array([cs[i][2] for i in picked], dtype=np.int64)
    t0 = time.perf_counter()
    _vbt_threshold(p[:5], w, panel.cash_target, bands[:2], fees[:2], every[:2])  # compile
    compile_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()

    def run() -> tuple[Any, Any]:
        pf = _vbt_threshold(p, w, panel.cash_target, bands, fees, every)
        return pf, pf.final_value().to_numpy()

    best, times, (pf, final) = _timed(run, int(args.get("repeat", 1)))
    out: dict[str, Any] = {
        "version": vbt.__version__,
        "picked": picked,
        "combos_run": len(picked),
        "combos_grid": len(cs),
        "compile_s": compile_s,
        "seconds": best,
        "times": times,
        "cpu_s": min(LAST_CPU),
        "final_value": final.tolist(),
        "rebalance_bars": _vbt_bars(pf, len(picked), p.shape[1]),
        "rss_after_load_mb": rss_loaded,
    }
    del pf
    gc.collect()
    out["peak_rss_mb"] = peak_rss_mb()
    if args.get("orders"):
        out["from_orders"] = _vbt_from_orders(panel, cs, picked, out["rebalance_bars"])
    return out


def _vbt_from_orders(
    panel: Panel, cs: list[tuple[float, float, int]], picked: list[int], bars: list[list[int]]
) -> dict[str, Any]:
    """Replay each combination's rebalance bars (found by the threshold run) with
    ``Portfolio.from_orders``: size = target weight, ``size_type="targetpercent"``, cash
    sharing, ``call_seq="auto"`` (sells first), fees per group -- one simulation for all."""
    import vectorbt as vbt

    p, w = panel.prices, panel.targets
    k, n = len(picked), p.shape[1]
    size = np.full((p.shape[0], k * n), np.nan)
    for g, rows in enumerate(bars):
        cols = slice(g * n, (g + 1) * n)
        size[[0, *rows], cols] = w
    fees = np.repeat([cs[i][1] for i in picked], n)[None, :]

    def run() -> Any:
        pf = vbt.Portfolio.from_orders(
            np.tile(p, (1, k)),
            size,
            size_type="targetpercent",
            direction="longonly",
            fees=fees,
            init_cash=CAPITAL,
            cash_sharing=True,
            group_by=np.repeat(np.arange(k), n),
            call_seq="auto",
            freq="1D",
        )
        return pf.final_value().to_numpy()

    run()  # compile
    best, _, final = _timed(run, 1)
    return {"seconds": best, "final_value": final.tolist()}


def vbt_single(grid: Grid, args: dict[str, Any]) -> dict[str, Any]:
    """One vectorbt run (one combination) for the full-fidelity comparison."""
    panel = load(grid)
    p, w = panel.prices, panel.targets
    one = (np.array([args["band"]]), np.array([args["fee"]]), np.array([1], dtype=np.int64))
    t0 = time.perf_counter()
    _vbt_threshold(p[:5], w, panel.cash_target, *one)
    compile_s = time.perf_counter() - t0

    def run() -> Any:
        pf = _vbt_threshold(p, w, panel.cash_target, *one)
        return float(np.atleast_1d(pf.final_value())[0]), pf.orders.count().sum()

    best, times, (final, n_orders) = _timed(run, int(args.get("repeat", 3)))
    return {
        "compile_s": compile_s,
        "seconds": best,
        "times": times,
        "final_value": float(final),
        "orders": int(n_orders),
        "peak_rss_mb": peak_rss_mb(),
    }


# -- bt ------------------------------------------------------------------------------------------


def _bt_strategy(panel: Panel, band: float, fired: list[Any]) -> Any:
    import bt

    names = [str(c) for c in panel.closes.columns]
    weights = dict(zip(names, panel.targets.tolist(), strict=True))
    cash_target = panel.cash_target

    class RunIfOutOfAbsBand(bt.Algo):  # type: ignore[misc]
        """``RunIfOutOfBounds`` with the reference rule: fire when the largest *absolute*
        |weight - target| over the securities and the cash leg exceeds ``band`` (bt's own
        algo compares *relative* deviations of the securities). Always fires on bar 0."""

        def __call__(self, target: Any) -> bool:
            value = target.value
            if not target.children or value <= 0:
                return True
            drift = abs(target.capital / value - cash_target)
            for name, wt in weights.items():
                child = target.children.get(name)
                cur = child.weight if child is not None else 0.0
                drift = max(drift, abs(cur - wt))
            if drift > band:
                fired.append(target.now)
                return True
            return False

    return bt.Strategy(
        "s",
        [
            bt.algos.SelectAll(),
            bt.algos.WeighSpecified(**weights),
            RunIfOutOfAbsBand(),
            bt.algos.Rebalance(),
        ],
    )


def bt_runs(grid: Grid, args: dict[str, Any]) -> dict[str, Any]:
    import bt

    panel = load(grid)
    cs = combos(grid)
    bars = args.get("bars")
    data = panel.closes.copy()
    data.index = data.index.tz_localize(None)
    if bars:
        data = data.iloc[: int(bars)]
    pos = {t: i for i, t in enumerate(data.index)}
    rows = []
    for idx in args["subset"]:
        band, fee, _ = cs[int(idx)]
        fired: list[Any] = []
        strategy = _bt_strategy(panel, band, fired)

        def commission(q: float, price: float, rate: float = fee) -> float:
            return abs(q) * price * rate

        test = bt.Backtest(
            strategy,
            data,
            initial_capital=CAPITAL,
            integer_positions=False,
            commissions=commission,
            progress_bar=False,
        )
        t0 = time.perf_counter()
        test.run()
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "index": int(idx),
                "band": band,
                "fee": fee,
                "seconds": seconds,
                "final_value": float(test.strategy.values.iloc[-1]),
                "fees": float(test.strategy.fees.sum()),
                "rebalance_bars": [pos[pd_t] for pd_t in fired if pd_t in pos],
            }
        )
        del test
        gc.collect()
    per = float(np.mean([r["seconds"] for r in rows]))
    return {
        "version": bt.__version__,
        "bars_run": len(data),
        "bars_grid": int(panel.prices.shape[0]),
        "runs": rows,
        "seconds_per_run": per,
        "peak_rss_mb": peak_rss_mb(),
    }


WORKERS: dict[str, Callable[[Grid, dict[str, Any]], dict[str, Any]]] = {
    "ours_sweep": ours_sweep,
    "ours_full": ours_full,
    "vbt_sweep": vbt_sweep,
    "vbt_single": vbt_single,
    "bt_runs": bt_runs,
}


def run_worker(name: str, grid: str, args: dict[str, Any]) -> dict[str, Any]:
    return WORKERS[name](GRIDS[grid], args)
