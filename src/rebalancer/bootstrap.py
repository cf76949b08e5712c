"""The composition root: the only place that picks adapters for a mode.

``paper`` (default): the paper exchange, its balances and the trigger's memory in a state
file under the user's data directory, prices from the latest bar of a candle folder (the
embedded demo data unless ``paper.data_dir`` is set). ``live``: the CCXT adapter with keys
from the environment, only when the config says ``mode = "live"`` *and* the caller
confirmed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from rebalancer.adapters.clock import SystemClock
from rebalancer.adapters.notify import LogNotifier
from rebalancer.adapters.paper import PaperExchange, default_rules
from rebalancer.adapters.state_file import FileJournal, StateFile
from rebalancer.backtest.data import load_demo_panel, load_panel
from rebalancer.backtest.replay import decimal_rows
from rebalancer.config import Settings
from rebalancer.core.errors import StopAndTell, UnknownSymbol
from rebalancer.core.model import MarketRules
from rebalancer.core.strategy import Strategy
from rebalancer.ports import Clock, Exchange, Journal, Notifier


@dataclass
class Runtime:
    """Everything a command needs, wired for one mode."""

    mode: str
    strategy: Strategy
    exchange: Exchange
    journal: Journal
    notifier: Notifier
    clock: Clock
    prices_note: str


class LiveNotConfirmed(StopAndTell):
    """Live mode was configured but not confirmed on the command line."""


def paper_state(settings: Settings) -> StateFile:
    return StateFile(settings.state_dir / f"paper-{settings.exchange}.json")


def _paper_prices(
    settings: Settings, assets: tuple[str, ...]
) -> tuple[dict[str, Decimal], datetime, str]:
    data_dir = settings.paper.data_dir
    if data_dir is not None:
        panel = load_panel(data_dir, list(assets), "1d", quote=settings.quote)
        source = f"candles in {data_dir}"
    else:
        panel = load_demo_panel()
        missing = [a for a in assets if a not in panel.closes.columns]
        if missing:
            raise UnknownSymbol(
                f"the embedded demo data has no {', '.join(missing)} (it has "
                f"{', '.join(panel.closes.columns)}); set paper.data_dir to a folder of "
                f"candles such as ../shared/data/binance_spot_2024_2026"
            )
        source = "the embedded Binance daily candles"
    closes = panel.closes[list(assets)]
    at = closes.index[-1].to_pydatetime().astimezone(UTC)
    return decimal_rows(closes.iloc[-1:])[0], at, source


def _market_rules(settings: Settings, prices: dict[str, Decimal]) -> dict[str, MarketRules]:
    """Binance-like default rules at today's prices, with ``[markets.X]`` overrides."""
    defaults = {
        a: default_rules(a, settings.quote, p, settings.fees.taker) for a, p in prices.items()
    }
    return settings.market_rules(defaults)


def build_paper(settings: Settings) -> Runtime:
    strategy = settings.strategy()
    state = paper_state(settings)
    balances = state.balances()
    if balances is None:
        balances = dict(settings.paper.initial_balances)
        state.save_balances(balances)
    prices, at, source = _paper_prices(settings, strategy.assets)
    exchange = PaperExchange(
        settings.quote,
        balances,
        settings.fees.taker,
        settings.rebalance.slippage,
        _market_rules(settings, prices),
        on_change=state.save_balances,
    )
    exchange.set_prices(prices, at)
    note = f"paper account ({state.path}); prices: {source} as of {at:%Y-%m-%d %H:%M} UTC"
    return Runtime(
        "paper", strategy, exchange, FileJournal(state), LogNotifier(), SystemClock(), note
    )


def build(settings: Settings, *, confirm_live: bool = False) -> Runtime:
    """Wire the adapters for ``settings.mode``; live needs ``confirm_live``."""
    if settings.mode != "live":
        return build_paper(settings)
    if not confirm_live:
        raise LiveNotConfirmed(
            'mode = "live" in the config: real orders would be sent. Re-run with '
            '--live to confirm, or set mode = "paper"'
        )
    from rebalancer.adapters.live import build_live  # the only path that reaches ccxt

    exchange, note = build_live(settings)
    state = paper_state(settings)
    live_state = StateFile(state.path.with_name(f"live-{settings.exchange}.json"))
    return Runtime(
        "live",
        settings.strategy(),
        exchange,
        FileJournal(live_state),
        LogNotifier(),
        SystemClock(),
        note,
    )


def reset_paper(settings: Settings) -> Path:
    """Forget the paper account; the next run starts from ``paper.initial_balances``."""
    state = paper_state(settings)
    if state.path.exists():
        state.path.unlink()
    return state.path
