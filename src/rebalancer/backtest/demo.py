"""The embedded default: a deliberately drifted paper portfolio replayed over real history.

Starts from 60 % BTC / 15 % ETH / 5 % SOL / 20 % USDT of 10,000 USDT at the first bar's
close while the targets are the seed's 40 / 30 / 20 / 10, so the first cycle must fire;
then runs the bot's own loop once per daily bar over the embedded Binance candles.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from rebalancer.backtest.replay import (
    BarCallback,
    ReplayResult,
    decimal_rows,
    holdings_from_weights,
    replay,
)
from rebalancer.core.strategy import Strategy
from rebalancer.data.panel import load_demo_panel

DEMO_CAPITAL = Decimal(10000)
DEMO_START_WEIGHTS = {
    "BTC": Decimal("0.60"),
    "ETH": Decimal("0.15"),
    "SOL": Decimal("0.05"),
    "USDT": Decimal("0.20"),
}


def run_demo(
    strategy: Strategy, *, taker_fee: Decimal, slippage: Decimal, on_bar: BarCallback | None = None
) -> ReplayResult:
    """Replay ``strategy`` over the embedded daily candles from the drifted start."""
    panel = load_demo_panel()
    closes = panel.closes[list(strategy.assets)]
    first = decimal_rows(closes.iloc[:1])[0]
    weights = {a: w for a, w in DEMO_START_WEIGHTS.items() if a in first or a == strategy.quote}
    initial = holdings_from_weights(weights, first, DEMO_CAPITAL, strategy.quote)
    return replay(
        closes,
        strategy,
        initial,
        taker_fee=taker_fee,
        slippage=slippage,
        bar=timedelta(days=1),
        on_bar=on_bar,
    )
