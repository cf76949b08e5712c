"""Live wiring of the CCXT adapter from the settings and the keys in the environment."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from rebalancer.adapters.ccxt.exchange import CcxtExchange, make_client
from rebalancer.config import Settings, load_secrets

MAX_TICKER_AGE = timedelta(seconds=60)
MAX_PRICE_JUMP = Decimal("0.20")


def build_live(settings: Settings) -> tuple[CcxtExchange, str]:
    """A CCXT exchange for ``settings.exchange`` with keys from env / ``.env``.

    Raises :class:`~rebalancer.core.errors.AuthError` naming the missing variables.
    """
    keys = load_secrets(settings.exchange).require_keys()
    creds = keys.ccxt_credentials()
    extra = {"password": creds["password"]} if "password" in creds else {}
    client = make_client(
        settings.exchange, creds["apiKey"], creds["secret"], sandbox=settings.sandbox, **extra
    )
    exchange = CcxtExchange(client, max_ticker_age=MAX_TICKER_AGE, max_price_jump=MAX_PRICE_JUMP)
    where = "sandbox (testnet)" if settings.sandbox else "LIVE account"
    return exchange, f"{settings.exchange} {where}; prices and balances from the exchange"
