"""Live wiring of the CCXT adapter from the settings and the keys in the environment.

One account: ``exchange`` and ``sandbox`` at the top of the config, keys in
``{EXCHANGE}_API_KEY`` / ``{EXCHANGE}_API_SECRET``. Several accounts as one portfolio:
``[accounts.NAME]`` tables (``exchange``, ``sandbox``); each account's keys come from
``{EXCHANGE}_API_KEY`` when it is the only account on that exchange, else from
``{NAME}_API_KEY``, and a :class:`~rebalancer.adapters.multi.MultiAccountExchange` joins them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rebalancer.adapters.ccxt.exchange import CcxtExchange, make_client
from rebalancer.adapters.ccxt.history import ExchangeHistory, history_sources
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.config import Settings, load_secrets
from rebalancer.config.schema import Account, Execution
from rebalancer.core.strategy import Strategy
from rebalancer.core.vol_bands import history_bars
from rebalancer.ports import Exchange, PriceHistory

MAX_TICKER_AGE = timedelta(seconds=60)
MAX_PRICE_JUMP = Decimal("0.20")


def key_prefixes(accounts: Mapping[str, Account]) -> dict[str, str]:
    """Account name -> prefix of its key variables (the exchange id, unless shared)."""
    per_exchange = Counter(a.exchange for a in accounts.values())
    return {
        name: account.exchange if per_exchange[account.exchange] == 1 else name
        for name, account in accounts.items()
    }


def connect(
    exchange_id: str,
    *,
    sandbox: bool,
    execution: Execution | None = None,
    prefix: str = "",
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> CcxtExchange:
    """One CCXT account with keys from env / ``.env`` (AuthError names what is missing)."""
    keys = load_secrets(exchange_id, env, dotenv_path, prefix=prefix).require_keys()
    creds = keys.ccxt_credentials()
    extra = {"password": creds["password"]} if "password" in creds else {}
    client = make_client(exchange_id, creds["apiKey"], creds["secret"], sandbox=sandbox, **extra)
    how = execution or Execution()
    return CcxtExchange(
        client,
        max_ticker_age=MAX_TICKER_AGE,
        max_price_jump=MAX_PRICE_JUMP,
        max_slippage=how.slippage_cap,
        thin_book=how.thin_book,
        order_type=how.order_type,
    )


def require_live_keys(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> None:
    """Raise :class:`~rebalancer.core.errors.AuthError` naming the missing key variables of
    the first account that lacks one; nothing is built and the network is not touched."""
    if not settings.accounts:
        load_secrets(settings.exchange, env, dotenv_path).require_keys()
        return
    prefixes = key_prefixes(settings.accounts)
    for name, account in settings.accounts.items():
        load_secrets(account.exchange, env, dotenv_path, prefix=prefixes[name]).require_keys()


def build_live(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> tuple[Exchange, str]:
    """The live exchange for ``settings`` and a one-line note saying what it is.

    Raises :class:`~rebalancer.core.errors.AuthError` naming the missing variables. The
    keys come from ``env`` (default ``os.environ``) and ``dotenv_path`` (default: the
    ``.env`` next to the config, ``settings.dotenv_path``).
    """
    dotenv_path = settings.dotenv_path if dotenv_path is None else dotenv_path
    if not settings.accounts:
        exchange = connect(
            settings.exchange,
            sandbox=settings.sandbox,
            execution=settings.execution,
            env=env,
            dotenv_path=dotenv_path,
        )
        where = "sandbox (testnet)" if settings.sandbox else "LIVE account"
        return exchange, f"{settings.exchange} {where}; prices and balances from the exchange"
    prefixes = key_prefixes(settings.accounts)
    accounts: dict[str, Exchange] = {
        name: connect(
            account.exchange,
            sandbox=account.sandbox,
            execution=settings.execution,
            prefix=prefixes[name],
            env=env,
            dotenv_path=dotenv_path,
        )
        for name, account in settings.accounts.items()
    }
    described = ", ".join(
        f"{name} ({a.exchange}{' sandbox' if a.sandbox else ''})"
        for name, a in settings.accounts.items()
    )
    note = (
        f"{len(accounts)} accounts as one portfolio: {described}; transfers between them are "
        "only suggested, never made"
    )
    return MultiAccountExchange(accounts), note


def live_history(exchange: Exchange, strategy: Strategy) -> PriceHistory | None:
    """The exchange's daily closes for a trigger that looks back (volatility-scaled bands);
    None when the trigger needs no history (then no candle is ever requested)."""
    if not history_bars(strategy.trigger):
        return None
    sources = history_sources(exchange)
    return ExchangeHistory(sources, strategy.quote) if sources else None
