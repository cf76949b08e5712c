"""Compare the smarter rules with the plain threshold rule on real daily closes.

``python -m rebalancer.backtest.compare_rules DATA_DIR [--start 2018-01-01]`` runs each rule
through :func:`rebalancer.backtest.engine.run_backtest` on the replay engine (the live loop
itself, which the execution rows below need, so one engine for the whole table) and prints a
Markdown table: total return, CAGR, annualised volatility, max drawdown, rebalances, turnover, fees
and realised gains (FIFO and HIFO lots). Same capital, fees and slippage for every rule.
Then the plain threshold with other execution (:func:`execution_rules`): post-only limits a
quarter into the simulated spread (maker fee = taker fee, Binance's base rate; a limit fills
when the next bar's range reaches it, else the rest goes at market; and again with a one-hour
wait: the range of the next day's first hourly candle, read from the ``*-1h`` files beside
the daily ones) and slices of at most 2,000 USDT. The last rows recompute the targets
monthly from the trailing 90 days (risk parity, minimum variance; weights 2-50 %, the
quote's target as cash floor, turnover <= 0.5 per change).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rebalancer.backtest.engine import FirstBar, Run, run_backtest
from rebalancer.backtest.metrics import Metrics
from rebalancer.backtest.optimised import OptimisedRun, backtest_optimised
from rebalancer.core.cron import Cron
from rebalancer.core.execution import ExecutionPolicy
from rebalancer.core.lots import realise
from rebalancer.core.model import ZERO
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Calendar, Threshold, Trigger
from rebalancer.core.vol_bands import VolScaledThreshold
from rebalancer.data.panel import load_panel, load_ranges
from rebalancer.optimise.weights import Constraints

D = Decimal
DAY = timedelta(days=1)
FEE = D("0.001")
MAKER = D("0.001")  # Binance's base spot maker fee equals its taker fee
SLIPPAGE = D("0.0005")


def rules() -> list[tuple[str, Trigger, PlanPolicy]]:
    base = PlanPolicy(min_trade=D(10), slippage=SLIPPAGE)
    aware = replace(base, cost_aware=True, risk_aversion=D("0.1"))
    vol = VolScaledThreshold(
        half_life=20, base_band=D("0.05"), floor=D("0.02"), cap=D("0.15"), reference_vol=0.04
    )
    vol_port = replace(vol, per_asset=False, reference_vol=0.035)
    return [
        ("buy and hold", FirstBar(), base),
        ("calendar monthly", Calendar(cron=Cron.parse("0 0 1 * *")), base),
        ("threshold 5% (plain)", Threshold(D("0.05")), base),
        ("vol bands per asset", vol, base),
        ("vol bands portfolio", vol_port, base),
        ("threshold 5% + cost-aware", Threshold(D("0.05")), aware),
        ("vol per asset + cost-aware", vol, aware),
    ]


def execution_rules() -> list[tuple[str, Trigger, PlanPolicy, ExecutionPolicy, str | None]]:
    """The plain threshold rule sent as limits inside the spread, or in slices; the last
    item is the timeframe of the candles whose first hour is a limit's wait (None: the
    whole next daily bar)."""
    base = PlanPolicy(min_trade=D(10), slippage=SLIPPAGE)
    limit = ExecutionPolicy(order_type="limit_inside", limit_offset=D("0.25"))
    hour = ExecutionPolicy(
        order_type="limit_inside", limit_offset=D("0.25"), limit_timeout=timedelta(hours=1)
    )
    slices = ExecutionPolicy(slice_above=D(2000))
    five = Threshold(D("0.05"))
    return [
        ("threshold 5% + limit inside spread", five, base, limit, None),
        ("threshold 5% + limit, 1 h wait (hourly ranges)", five, base, hour, "1h"),
        ("threshold 5% + slices above 2,000", five, base, slices, None),
    ]


def row(name: str, run: Run) -> list[str]:
    fifo = sum((g.net for g in run.realised_gains("fifo").values()), ZERO)
    hifo = sum((g.net for g in run.realised_gains("hifo").values()), ZERO)
    return metrics_row(name, run.metrics, fifo, hifo)


def metrics_row(name: str, m: Metrics, fifo: Decimal, hifo: Decimal) -> list[str]:
    """One table row: the metrics and the realised gains (USDT) of FIFO and HIFO lots."""
    return [
        name,
        f"{m.total_return:+.1%}",
        f"{m.cagr:+.1%}",
        f"{m.volatility:.1%}",
        f"{m.max_drawdown:.1%}",
        str(m.n_rebalances),
        f"{m.turnover:.2f}",
        f"{m.fees:,.0f}",
        f"{fifo:,.0f}",
        f"{hifo:,.0f}",
    ]


HEADER = [
    "rule",
    "return",
    "CAGR",
    "volatility",
    "max DD",
    "rebalances",
    "turnover",
    "fees",
    "realised FIFO",
    "realised HIFO",
]


def compare(
    data: Path, targets: dict[str, Decimal], start: str | None, end: str | None
) -> list[list[str]]:
    assets = [a for a in targets if a != "USDT"]
    panel = load_panel(data, assets, "1d", start=start, end=end)
    closes = panel.closes
    print(f"{len(closes)} daily closes {closes.index[0]:%Y-%m-%d} .. {closes.index[-1]:%Y-%m-%d}\n")
    rows = []
    for name, trigger, policy in rules():
        strategy = Strategy("USDT", targets, trigger, policy)
        result = run_backtest(
            closes,
            strategy,
            capital=D(10000),
            taker_fee=FEE,
            slippage=SLIPPAGE,
            bar=DAY,
            benchmarks=False,
            engine="replay",
        )
        rows.append(row(name, result.run))
    for name, trigger, policy, execution, fine in execution_rules():
        strategy = Strategy("USDT", targets, trigger, policy, execution)
        ranges = load_ranges(panel, fine, execution.limit_timeout if fine else None)
        result = run_backtest(
            closes,
            strategy,
            capital=D(10000),
            taker_fee=FEE,
            maker_fee=MAKER,
            slippage=SLIPPAGE,
            bar=DAY,
            benchmarks=False,
            engine="replay",
            ranges=ranges if execution.limit_inside else None,
        )
        rows.append(row(name, result.run))
    floor = float(targets.get("USDT", ZERO))
    limits = Constraints(min_weight=0.02, max_weight=0.5, cash_floor=floor, max_turnover=0.5)
    for method in ("risk_parity", "min_variance"):
        opt = backtest_optimised(
            closes,
            targets,
            method,
            limits,
            window=90,
            capital=D(10000),
            taker_fee=FEE,
            slippage=SLIPPAGE,
        )
        rows.append(optimised_row(f"{method.replace('_', ' ')} monthly (90d)", opt))
    return rows


def optimised_row(name: str, opt: OptimisedRun) -> list[str]:
    _, fifo = realise(opt.fills, "fifo")
    _, hifo = realise(opt.fills, "hifo")
    gain = (sum((d.gain for d in lots), ZERO) for lots in (fifo, hifo))
    return metrics_row(name, opt.metrics, *gain)


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of <ASSET>_USDT-1d.csv candle files")
    parser.add_argument("--targets", default="BTC=0.3,ETH=0.25,BNB=0.15,XRP=0.1,ADA=0.1,USDT=0.1")
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args(argv)
    targets = {k: D(v) for k, v in (p.split("=") for p in args.targets.split(","))}
    print(markdown(compare(args.data, targets, args.start, args.end)))


if __name__ == "__main__":
    main()
