"""The composition root: the only place that picks adapters for a mode.

``paper`` (default): the paper exchange, its balances and the trigger's memory in a state
file under the user's data directory; prices as ``[paper] prices`` says
(:mod:`rebalancer.adapters.paper_prices`): with ``"auto"`` one short public call to the
exchange at start decides between its live tickers and the latest bar of a candle folder
(the embedded demo data unless ``paper.data_dir`` is set), loudly warned about.

``live``: the CCXT adapter with keys from the environment, only when the config says
``mode = "live"`` *and* the caller confirmed it -- on the account's first live start with an
explicit "I understand" too -- and only with keys the exchange says cannot withdraw or
transfer funds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.adapters.clock import SystemClock
from rebalancer.adapters.journal import AlreadyRunning, SqlJournal, open_journal
from rebalancer.adapters.market_list import MarketList, market_list, online
from rebalancer.adapters.notify import LogNotifier
from rebalancer.adapters.paper import PaperExchange, PriceFeed
from rebalancer.adapters.paper_prices import (
    PriceSource as PriceSource,  # re-exported: the dashboard reads it
)
from rebalancer.adapters.paper_prices import (
    PriceSourceFile,
    offline_requested,
    price_source_path,
)
from rebalancer.adapters.state_file import StateFile
from rebalancer.backtest.replay import decimal_rows
from rebalancer.config import Settings
from rebalancer.config.assets import cache_path
from rebalancer.core.errors import RetryLater, StopAndTell, UnknownSymbol
from rebalancer.core.risk import RiskLimits
from rebalancer.core.strategy import Strategy
from rebalancer.core.venue import VenueModel, venue_model
from rebalancer.core.vol_bands import history_bars
from rebalancer.data.history import FrameHistory
from rebalancer.data.panel import load_demo_panel, load_panel
from rebalancer.ports import Clock, Exchange, Journal, Notifier, PriceHistory
from rebalancer.service import CycleReport, Retarget, run_cycle

if TYPE_CHECKING:
    from rebalancer.adapters.ccxt.permissions import KeyPermissions
    from rebalancer.adapters.telegram import TelegramPoller

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
    # paper: which prices this run trades on (decided once at start; None live)
    price_source: PriceSource | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user must hear at start (the daemon logs and notifies each): frozen
        paper prices."""
        source = self.price_source
        return (source.warning,) if source is not None and source.frozen else ()

    def cycle(self, *, execute: bool = True, force: bool = False) -> CycleReport:
        """One :func:`rebalancer.service.run_cycle` now with everything this runtime wired
        (risk limits, price history, optimised targets, the wait between slices); plans
        only with ``execute=False``. A read-only runtime refuses ``execute=True``; a trading
        cycle first confirms the account's lock is still held
        (:class:`~rebalancer.adapters.journal.LockLost` when it is not)."""
        if execute and self.read_only:
            raise LiveNotConfirmed(
                "this runtime was built as a read-only view: it plans, it never sends orders"
            )
        confirm = getattr(self.journal, "confirm_lock", None)
        if execute and confirm is not None:
            confirm()
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


#: the probe of ``prices = "auto"``: a keyless CCXT client -> None when the exchange answered
#: a short public call, else why not (tests pass a double's client or a refusing one)
Probe = Callable[[Any], str | None]


@dataclass(frozen=True)
class _Candles:
    """The last close of the paper candles, their time and range, and where they are."""

    prices: dict[str, Decimal]
    at: datetime
    first: datetime
    source: str


def _paper_candles(settings: Settings, assets: tuple[str, ...]) -> _Candles:
    """The last close of the candles (``paper.data_dir``, else the embedded demo data)."""
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
                "candles (`rebalancer data download --assets "
                f"{','.join(assets)} --dir DIR`), or paper.prices = \"live\""
            )
        source = "the embedded Binance daily candles"
    closes = panel.closes[list(assets)]
    at = closes.index[-1].to_pydatetime().astimezone(UTC)
    first = closes.index[0].to_pydatetime().astimezone(UTC)
    return _Candles(decimal_rows(closes.iloc[-1:])[0], at, first, source)


def _live_feed(
    settings: Settings, public_client: Callable[[str], Any] | None, probe: Probe | None
) -> tuple[PriceFeed | None, str]:
    """The live feed of ``[paper] prices`` ("live": always; "auto": when the probe reached
    the exchange; "candles": never) and, when "auto" chose none, why not. The only network
    attempt of a paper start besides the feed's own reads."""
    setting = settings.paper.prices
    if setting == "candles":
        return None, ""
    if setting == "auto" and offline_requested(os.environ):
        return None, "REBALANCER_OFFLINE is set: no network attempt"
    from rebalancer.adapters.ccxt.public import PublicTickers, reach  # needs a network

    client = public_client(settings.exchange) if public_client is not None else None
    feed = PublicTickers(settings.exchange, settings.quote, client)
    if setting == "live":
        return feed, ""
    why = (probe or reach)(feed.client)
    if why is not None:
        log.info('paper prices = "auto": %s; trading on the candles', why)
        return None, f"no network: {why}"
    return feed, ""


def _paper_prices(
    settings: Settings,
    assets: tuple[str, ...],
    feed: PriceFeed | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> tuple[dict[str, Decimal], datetime, PriceSource]:
    """The paper account's first prices: one read of the live ``feed``, else the last close
    of the candles; their time and the run's :class:`PriceSource` (``reason``: why "auto"
    took the candles)."""
    decided = now or datetime.now(UTC)
    setting = settings.paper.prices
    if feed is not None:
        quotes = feed.read(assets)
        return quotes.prices, quotes.at, PriceSource("live", setting, feed.source, decided)
    candles = _paper_candles(settings, assets)
    source = PriceSource(
        "candles", setting, candles.source, decided, candles.first, candles.at, reason
    )
    return candles.prices, candles.at, source


def paper_price_source(settings: Settings) -> PriceSource | None:
    """The prices the paper account last traded on (written by every trading paper run);
    None before the first, or live."""
    if settings.mode != "paper":
        return None
    return PriceSourceFile(price_source_path(settings.state_dir, settings.exchange)).read()


def paper_venue(settings: Settings) -> VenueModel:
    """How the paper exchange executes on ``settings.exchange`` (ConfigError for a venue
    without a model, naming it and the fix)."""
    return venue_model(settings.exchange)


def _market_rules(
    settings: Settings, prices: dict[str, Decimal], feed: PriceFeed | None = None
) -> MarketList:
    """The venue's real rules for the priced assets, with ``[markets.X]`` overrides.

    Online (live paper prices: the feed's CCXT client) from the venue's
    ``load_markets``, cached on disk; offline from the snapshot shipped in the package;
    assets on neither list get the labelled made-up fallback (``MarketList.fallback``).
    Fees: ``[fees]`` where the config sets them, else the venue's lowest tier."""
    venue = paper_venue(settings)
    given = settings.fees.model_fields_set
    taker = settings.fees.taker if "taker" in given else None
    maker = settings.fees.maker if given else None  # maker left out = the taker's
    listing = None
    client = getattr(feed, "client", None)
    if client is not None:
        listing = _online_list(settings, client)
    found = market_list(
        venue, settings.quote, prices, taker_fee=taker, maker_fee=maker, listing=listing
    )
    if found.fallback:
        log.info("paper: %s", found.source)
    return MarketList(settings.market_rules(found.rules), found.fallback, found.source)


def _online_list(settings: Settings, client: Any) -> dict[str, Any] | None:
    """The venue's public market list through ``client`` (cached on disk for a day); None
    when it cannot be read and nothing is cached."""

    def load() -> tuple[Any, int]:
        try:
            return client.load_markets(), int(client.precisionMode)
        except Exception as exc:  # any CCXT or network failure: offline
            raise RetryLater(str(exc)) from exc

    cache = cache_path(settings.state_dir, settings.exchange)
    return online(settings.exchange, load, cache, datetime.now(UTC))


def refresh_market_list(
    settings: Settings, public_client: Callable[[str], Any] | None = None
) -> dict[str, Any] | None:
    """Read the venue's whole public market list now (network, no keys) into the cache
    that ``config check`` and paper read; None when offline and nothing is cached.
    ``public_client`` makes the keyless CCXT client (None: the real one)."""
    if public_client is None:
        from rebalancer.adapters.ccxt.public import public_client as keyless  # needs ccxt

        return _online_list(settings, keyless(settings.exchange))
    return _online_list(settings, public_client(settings.exchange))


def build_paper(
    settings: Settings,
    *,
    lock: bool = False,
    public_client: Callable[[str], Any] | None = None,
    probe: Probe | None = None,
) -> Runtime:
    """The paper runtime. On live prices (``[paper] prices = "live"``, or ``"auto"`` when
    the exchange answered the start-up ``probe``) the exchange reads the public tickers
    before every snapshot and its limits watch them; else the prices are the candles' last
    close, and the runtime's :attr:`Runtime.warnings` say so. ``public_client`` makes the
    keyless CCXT client for an exchange id (None: the real one; tests mount a double);
    ``probe`` asks it whether the exchange can be reached (None:
    :func:`rebalancer.adapters.ccxt.public.reach`, one server-time call of at most 2 s).

    ``lock``: the account's lock is taken **before** the paper state is read, and only a
    locked runtime writes the state file (its balances and orders); an unlocked one (status,
    plan) reads it and never writes, so two overlapping runs never lose each other's fills.
    """
    jr = journal(settings, lock=lock)
    try:
        return _paper_runtime(settings, jr, public_client, probe)
    except BaseException:
        jr.close()
        raise


def _paper_runtime(
    settings: Settings,
    jr: SqlJournal,
    public_client: Callable[[str], Any] | None,
    probe: Probe | None = None,
) -> Runtime:
    """The paper runtime around an open journal ``jr`` (locked when it may write)."""
    writes = jr.holds_lock
    strategy = settings.strategy()
    state = paper_state(settings)
    if writes:
        state.clean_orphans()  # temp files of writers killed mid-write (all held this lock)
    balances = state.balances()
    if balances is None:
        balances = dict(settings.paper.initial_balances)
        if writes:
            state.save_balances(balances)
    feed, reason = _live_feed(settings, public_client, probe)
    prices, at, source = _paper_prices(settings, strategy.assets, feed, reason)
    markets = _market_rules(settings, prices, feed)
    exchange = PaperExchange(
        settings.quote,
        balances,
        settings.fees.taker,
        settings.rebalance.slippage,
        markets.rules,
        on_change=state.save_balances if writes else None,
        on_order=state.save_account if writes else None,
        orders=state.orders(),
        maker_fee=settings.fees.maker,
        quote_book=strategy.execution.limit_inside,  # limits: priced from the paper book
        feed=feed,  # live: fresh prices at every snapshot, limits watch the market
        venue=paper_venue(settings),  # fills as the configured exchange fills
    )
    exchange.set_prices(prices, at)
    if writes:  # the dashboard and `report` tell which prices the account traded on
        PriceSourceFile(price_source_path(settings.state_dir, settings.exchange)).write(source)
    note = (
        f"paper account ({state.path}); prices: {source.describe()} as of "
        f"{at:%Y-%m-%d %H:%M} UTC; {markets.source}"
    )
    return Runtime(
        "paper",
        strategy,
        exchange,
        jr,
        LogNotifier(),
        SystemClock(),
        note,
        risk_limits(settings),
        _paper_history(settings, strategy, source, feed),
        retarget(settings),
        price_source=source,
    )


def _paper_history(
    settings: Settings, strategy: Strategy, source: PriceSource, feed: PriceFeed | None = None
) -> PriceHistory | None:
    """The daily closes a look-back trigger (vol bands) or optimised targets ([optimise])
    need: on live prices the exchange's public daily candles (fetched once a day per asset,
    as live mode does), on frozen prices those of the paper candles; None when not needed."""
    wanted = history_bars(strategy.trigger) or settings.optimise.on
    if not wanted:
        return None
    if not source.frozen:
        if feed is None or not hasattr(feed, "markets"):
            return None
        from rebalancer.adapters.ccxt.history import ExchangeHistory

        return ExchangeHistory([feed], settings.quote)
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
    from rebalancer.optimise.weights import Constraints, WindowOptimiser

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


class PaperAccountInUse(StopAndTell):
    """``paper reset`` while another process trades the paper account."""


def reset_paper(settings: Settings) -> Path:
    """Forget the paper account (and the record of its last run's prices); the next run
    starts from ``paper.initial_balances``.

    Under the account's lock, like every writer of the paper state: refused with
    :class:`PaperAccountInUse` while another process (a daemon, a rebalance) holds it."""
    try:
        jr = journal(settings, lock=True)
    except AlreadyRunning as exc:
        raise PaperAccountInUse(
            f"the paper account {account_name(settings)} is in use by another rebalancer "
            f"process ({exc}). Stop it (e.g. the `rebalancer run` daemon) first, then run "
            "`rebalancer paper reset` again"
        ) from None
    try:
        state = paper_state(settings)
        state.remove()
        state.clean_orphans()
        # the prices of the forgotten account's last run
        price_source_path(settings.state_dir, settings.exchange).unlink(missing_ok=True)
    finally:
        jr.close()
    return state.path


def build_notifier(settings: Settings) -> Notifier:
    """The log, plus apprise when ``REBALANCER_NOTIFY_URLS`` (the environment, else the
    ``.env`` next to the config) is set.

    Raises :class:`~rebalancer.core.errors.ConfigError` for a URL apprise does not know
    (naming its position, never the URL).
    """
    from rebalancer.adapters.notify_apprise import AppriseNotifier, FanOut, notify_urls

    urls = notify_urls(dotenv=settings.dotenv_path)
    if not urls:
        return LogNotifier()
    return FanOut([LogNotifier(), AppriseNotifier(urls)])


def notify_secrets(settings: Settings | None = None) -> list[str]:
    """The notification URLs (they hold tokens), for the logs to mask (the environment's,
    and those in the ``.env`` next to ``settings``' config)."""
    from rebalancer.adapters.notify_apprise import notify_urls

    return notify_urls(dotenv=None if settings is None else settings.dotenv_path)


def telegram_poller(
    token: str, answer: Callable[[int, str], str | None], *, base_url: str | None = None
) -> TelegramPoller:
    """The Telegram transport (python-telegram-bot, imported only here and only then)."""
    from rebalancer.adapters.telegram import TelegramPoller

    return TelegramPoller(token, answer, base_url=base_url)
