"""The composition root: the only place that picks adapters for a mode.

``paper`` (default): the paper exchange, its balances and the trigger's memory in a state
file under the user's data directory, prices from the latest bar of a candle folder (the
embedded demo data unless ``paper.data_dir`` is set). ``live``: the CCXT adapter with keys
from the environment, only when the config says ``mode = "live"`` *and* the caller
confirmed it -- on the account's first live start with an explicit "I understand" too --
and only with keys the exchange says cannot withdraw or transfer funds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.adapters.clock import SystemClock
from rebalancer.adapters.journal import SqlJournal, open_journal
from rebalancer.adapters.notify import LogNotifier
from rebalancer.adapters.paper import PaperExchange, PriceFeed, default_rules
from rebalancer.adapters.state_file import StateFile
from rebalancer.backtest.data import load_demo_panel, load_panel
from rebalancer.backtest.history import FrameHistory
from rebalancer.backtest.replay import decimal_rows
from rebalancer.config import Settings
from rebalancer.core.errors import StopAndTell, UnknownSymbol
from rebalancer.core.model import MarketRules
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import Clock, Exchange, Journal, Notifier, PriceHistory
from rebalancer.service import CycleReport, Retarget, run_cycle

if TYPE_CHECKING:
    from rebalancer.adapters.ccxt.permissions import KeyPermissions

log = logging.getLogger(__name__)


def sleep_between_slices(period: timedelta) -> None:
    """The real wait between two slices of an order (``[execution] slice_interval``)."""
    time.sleep(period.total_seconds())


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
    risk: RiskLimits | None = None
    history: PriceHistory | None = None  # recent closes, for look-back triggers
    retarget: Retarget | None = None  # optimised targets on a schedule ([optimise])
    # how run_cycle waits [execution] slice_interval between the slices of an order
    pause: Callable[[timedelta], None] = field(default=sleep_between_slices)
    # a view (status, plan): built without the live confirmation, so it never sends an order
    read_only: bool = False

    def cycle(self, *, execute: bool = True, force: bool = False) -> CycleReport:
        """One :func:`rebalancer.service.run_cycle` now with everything this runtime wired
        (risk limits, price history, optimised targets, the wait between slices); plans
        only with ``execute=False``. A read-only runtime refuses ``execute=True``."""
        if execute and self.read_only:
            raise LiveNotConfirmed(
                "this runtime was built as a read-only view: it plans, it never sends orders"
            )
        return run_cycle(
            self.exchange,
            self.journal,
            self.notifier,
            self.strategy,
            self.clock.now(),
            execute=execute,
            force=force,
            risk=self.risk if execute else None,
            history=self.history,
            retarget=self.retarget,
            pause=self.pause,
        )

    def close(self) -> None:
        """Release the journal (and the account's lock when trading)."""
        close = getattr(self.journal, "close", None)
        if close is not None:
            close()


class LiveNotConfirmed(StopAndTell):
    """Live mode was configured but not confirmed on the command line."""


class LiveRefused(StopAndTell):
    """``--live`` was given but the config is not live: nothing is run, not even on paper."""


def journal_url(settings: Settings) -> str:
    """``journal_url`` from the config, else SQLite in the state folder."""
    return settings.journal_url or f"sqlite:///{settings.state_dir / 'journal.sqlite'}"


def account_name(settings: Settings) -> str:
    """Which account the journal's rows and the instance lock belong to."""
    if settings.mode == "live" and settings.accounts:  # several accounts, one portfolio
        return "live:accounts:" + "+".join(sorted(settings.accounts))
    testnet = ":sandbox" if settings.mode == "live" and settings.sandbox else ""
    return f"{settings.mode}:{settings.exchange}{testnet}"


def journal(settings: Settings, *, lock: bool = False) -> SqlJournal:
    """The SQL journal for the configured account; ``lock`` when about to trade."""
    return open_journal(journal_url(settings), account_name(settings), lock=lock)


def risk_limits(settings: Settings) -> RiskLimits:
    r = settings.risk
    return RiskLimits(
        max_drawdown=r.max_drawdown,
        window=r.window_period,
        max_cycle_turnover=r.max_cycle_turnover,
        max_order_notional=r.max_order_notional,
        max_cycle_notional=r.max_cycle_notional,
    )


def paper_state(settings: Settings) -> StateFile:
    return StateFile(settings.state_dir / f"paper-{settings.exchange}.json")


def _paper_prices(
    settings: Settings, assets: tuple[str, ...], feed: PriceFeed | None = None
) -> tuple[dict[str, Decimal], datetime, str]:
    """The paper account's first prices: one read of the live ``feed`` (``prices =
    "live"``), else the last close of the candles; their time and a description."""
    if feed is not None:
        quotes = feed.read(assets)
        return quotes.prices, quotes.at, feed.source
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


def build_paper(
    settings: Settings,
    *,
    lock: bool = False,
    public_client: Callable[[str], Any] | None = None,
) -> Runtime:
    """The paper runtime. With ``[paper] prices = "live"`` the exchange reads the public
    tickers before every snapshot and its limits watch them; ``public_client`` makes the
    keyless CCXT client for an exchange id (None: the real one; tests mount a double)."""
    strategy = settings.strategy()
    state = paper_state(settings)
    balances = state.balances()
    if balances is None:
        balances = dict(settings.paper.initial_balances)
        state.save_balances(balances)
    feed: PriceFeed | None = None
    if settings.paper.prices == "live":
        from rebalancer.adapters.ccxt.public import PublicTickers  # needs a network

        client = public_client(settings.exchange) if public_client is not None else None
        feed = PublicTickers(settings.exchange, settings.quote, client)
    prices, at, source = _paper_prices(settings, strategy.assets, feed)
    exchange = PaperExchange(
        settings.quote,
        balances,
        settings.fees.taker,
        settings.rebalance.slippage,
        _market_rules(settings, prices),
        on_change=state.save_balances,
        on_order=state.save_account,
        orders=state.orders(),
        maker_fee=settings.fees.maker,
        quote_book=strategy.execution.limit_inside,  # limits: priced from the paper book
        feed=feed,  # live: fresh prices at every snapshot, limits watch the market
    )
    exchange.set_prices(prices, at)
    note = f"paper account ({state.path}); prices: {source} as of {at:%Y-%m-%d %H:%M} UTC"
    return Runtime(
        "paper",
        strategy,
        exchange,
        journal(settings, lock=lock),
        LogNotifier(),
        SystemClock(),
        note,
        risk_limits(settings),
        _paper_history(settings, strategy),
        retarget(settings),
    )


def _paper_history(settings: Settings, strategy: Strategy) -> PriceHistory | None:
    """The daily closes of the paper candles, when the trigger looks back (vol bands) or
    optimised targets are on ([optimise])."""
    wanted = history_bars(strategy.trigger) or settings.optimise.on
    if settings.paper.prices != "candles" or not wanted:
        return None
    data_dir = settings.paper.data_dir
    panel = (
        load_panel(data_dir, list(strategy.assets), "1d", quote=settings.quote)
        if data_dir is not None
        else load_demo_panel()
    )
    return FrameHistory(panel.closes[list(strategy.assets)], timedelta(days=1))


def build(
    settings: Settings,
    *,
    confirm_live: bool = False,
    lock: bool = False,
    first_live: bool = False,
    allow_withdrawals: bool = False,
    read_only: bool = False,
) -> Runtime:
    """Wire the adapters for ``settings.mode``; live needs ``confirm_live`` to trade.

    ``lock``: take the account's lock (commands that trade), so that one process at a time
    trades one account; call :meth:`Runtime.close` when done.

    ``read_only`` (``status``, ``plan``): a view that never sends an order, so live needs no
    confirmation; the runtime refuses to execute a cycle. ``confirm_live`` with a config that
    is not live is refused (:class:`LiveRefused`): the user asked for real orders and would
    otherwise get paper ones without noticing.

    Live checks the keys first (a missing key is named before any confirmation is asked);
    to trade it also needs, on the account's first live start only, ``first_live`` (the
    user's explicit "I understand", then remembered in the state folder), and checks the
    keys' permissions with the exchange: a key that can withdraw or transfer is refused
    unless ``allow_withdrawals``; a missing IP whitelist is logged as a warning.
    """
    if settings.mode != "live":
        if confirm_live:
            raise LiveRefused(
                f"--live was given but the config ({settings.source}) says mode = "
                f'"{settings.mode}": nothing was run, on paper or live. Fix: set mode = "live" '
                "in the config to trade real money, or drop --live to run on paper"
            )
        return build_paper(settings, lock=lock)
    from rebalancer.adapters.live import (  # the path to ccxt
        build_live,
        live_history,
        require_live_keys,
    )

    require_live_keys(settings)
    first = not live_confirmed(settings)
    if not read_only:
        _require_confirmation(settings, confirm_live=confirm_live, first_live=first_live)
    exchange, note = build_live(settings)
    strategy = settings.strategy()
    if not read_only:
        from rebalancer.adapters.ccxt.permissions import check_live_keys

        for warning in check_live_keys(exchange, allow_withdrawals=allow_withdrawals):
            log.warning("keys check: %s", warning)
        if first:
            record_live_confirmation(settings, datetime.now(UTC))
    return Runtime(
        "live",
        strategy,
        exchange,
        journal(settings, lock=lock),
        LogNotifier(),
        SystemClock(),
        f"{note} (read-only view: nothing is sent)" if read_only else note,
        risk_limits(settings),
        live_history(exchange, strategy) or _live_optimiser_history(settings, exchange),
        retarget(settings),
        read_only=read_only,
    )


def _require_confirmation(settings: Settings, *, confirm_live: bool, first_live: bool) -> None:
    """Raise :class:`LiveNotConfirmed` unless the command line confirmed live trading (and,
    on the account's first live start, said "I understand")."""
    if not confirm_live:
        raise LiveNotConfirmed(
            'mode = "live" in the config: real orders would be sent. Re-run with '
            '--live to confirm, or set mode = "paper"'
        )
    if not live_confirmed(settings) and not first_live:
        raise LiveNotConfirmed(
            f"first live start for {account_name(settings)}: real orders will be sent on "
            f"{settings.exchange} with real money. Run once with --live --i-understand "
            "(`rebalancer rebalance --live --i-understand`), or confirm without trading with "
            "`rebalancer keys check --i-understand`; later starts need only --live"
        )


def retarget(settings: Settings) -> Retarget | None:
    """The optimised targets of ``[optimise]`` (None when ``method = "off"``)."""
    opt = settings.optimise
    if not opt.on:
        return None
    from rebalancer.backtest.optimize import Constraints, WindowOptimiser

    constraints = Constraints(
        min_weight=float(opt.min_weight),
        max_weight=float(opt.max_weight),
        cash_floor=float(settings.optimise_cash_floor),
        max_turnover=None if opt.max_turnover is None else float(opt.max_turnover),
    )
    optimiser = WindowOptimiser(opt.method, constraints, settings.quote)
    return Retarget(
        optimiser, settings.optimise_cadence(), opt.window, start_now=opt.start == "now"
    )


def _live_optimiser_history(settings: Settings, exchange: Exchange) -> PriceHistory | None:
    """The exchange's daily closes for the optimiser when the trigger asked for none."""
    if not settings.optimise.on:
        return None
    from rebalancer.adapters.ccxt.history import ExchangeHistory, history_sources

    sources = history_sources(exchange)
    return ExchangeHistory(sources, settings.quote) if sources else None


def key_permissions(settings: Settings) -> list[KeyPermissions]:
    """Ask each configured exchange what its API key may do (``rebalancer keys check``)."""
    from rebalancer.adapters.ccxt.permissions import clients_of
    from rebalancer.adapters.ccxt.permissions import key_permissions as ask
    from rebalancer.adapters.live import build_live

    exchange, _ = build_live(settings)
    return [ask(client) for client in clients_of(exchange)]


def live_confirmations(settings: Settings) -> StateFile:
    """Where the first live start's confirmation is remembered, per account."""
    return StateFile(settings.state_dir / "live-confirmed.json")


def live_confirmed(settings: Settings) -> bool:
    return account_name(settings) in live_confirmations(settings).read()


def record_live_confirmation(settings: Settings, at: datetime) -> None:
    live_confirmations(settings).update(
        **{account_name(settings): {"at": at.isoformat(), "exchange": settings.exchange}}
    )


def reset_paper(settings: Settings) -> Path:
    """Forget the paper account; the next run starts from ``paper.initial_balances``."""
    state = paper_state(settings)
    if state.path.exists():
        state.path.unlink()
    return state.path


def build_notifier(settings: Settings) -> Notifier:
    """The log, plus apprise when ``REBALANCER_NOTIFY_URLS`` (environment or ./.env) is set.

    Raises :class:`~rebalancer.core.errors.ConfigError` for a URL apprise does not know
    (naming its position, never the URL).
    """
    from rebalancer.adapters.notify_apprise import AppriseNotifier, FanOut, notify_urls

    urls = notify_urls()
    if not urls:
        return LogNotifier()
    return FanOut([LogNotifier(), AppriseNotifier(urls)])


def notify_secrets() -> list[str]:
    """The notification URLs (they hold tokens), for the logs to mask."""
    from rebalancer.adapters.notify_apprise import notify_urls

    return notify_urls()
