"""What differs per exchange (one :class:`Venue` row each) and the CCXT client we require."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ccxt

from rebalancer.core.errors import ConfigError
from rebalancer.core.venue import venue_model


@dataclass(frozen=True)
class Venue:
    """What differs per exchange, found by reading CCXT's implementation of it.

    ``client_id_param``: where order creation takes our client order id.
    ``lookup_param``: the ``fetch_order`` parameter that finds an order by our client id;
    None: the exchange cannot, so closed then open orders are listed filtered by client id.
    ``ticker_time``: "exchange" -- tickers carry the exchange's timestamp (missing: refused);
    "received" -- the exchange sends none (Kraken), the age is measured from when the
    response arrived, so the stale check only catches our own delays.
    ``buy_by_cost``: market buys are sent as a quote amount where the exchange allows it.
    ``order_params``: sent with every order (Kraken: ``oflags=fciq``, fee in the quote, so the
    order tells which currency the fee was taken in).
    ``lookup_recent``: the exchange cannot filter orders by client id at all (Coinbase): the
    recent orders of the market are listed (any status) and filtered here.
    ``bids_asks``: prices come from ``fetch_bids_asks`` (best bid/ask with a timestamp) because
    the batched tickers carry neither (Coinbase's product list).
    ``poll_by_id``: once the exchange order id is known, poll the order by it (one exact
    read) instead of looking it up by client id again.
    """

    client_id_param: str
    lookup_param: str | None
    ticker_time: Literal["exchange", "received"] = "exchange"
    buy_by_cost: bool = True
    order_params: Mapping[str, str] = field(default_factory=dict)
    lookup_recent: bool = False
    bids_asks: bool = False
    poll_by_id: bool = False


# Only venues whose orders can be found again by our client id through CCXT. How each one
# charges fees and sends buys comes from the core venue model (rebalancer.core.venue), so
# paper and live agree: ``buy_by_cost`` is the model's ``buy_by``, and Kraken's ``fciq``
# flag is what makes its fee the quote's, as the model says.
VENUES = {
    "binance": Venue(
        "newClientOrderId",
        "origClientOrderId",
        buy_by_cost=venue_model("binance").buy_by == "cost",
    ),
    # kraken: AddOrder takes ``cl_ord_id``; CCXT's fetch_order would send a client id as
    # ``userref`` (an integer) next to ``txid``, so look-ups use ClosedOrders/OpenOrders with
    # ``cl_ord_id``. Buying by cost (``viqc``) is not relied on.
    "kraken": Venue(
        "cl_ord_id",
        None,
        ticker_time="received",
        buy_by_cost=venue_model("kraken").buy_by == "cost",
        order_params={"oflags": "fciq" if venue_model("kraken").fee_in == "quote" else "fcib"},
    ),
    # coinbase (Advanced Trade): CCXT's create_order drops the unified clientOrderId and
    # sends its own "ccxt-<uuid>" unless ``client_order_id`` is passed; fetch_order needs the
    # exchange's order id and the order list has no client id filter, so a look-up by client
    # id lists the market's recent orders. Buys go by quote (``quote_size``, fee included);
    # the fee is always in the quote. No sandbox for Advanced Trade.
    "coinbase": Venue(
        "client_order_id",
        None,
        buy_by_cost=venue_model("coinbase").buy_by == "cost",
        lookup_recent=True,
        bids_asks=True,
        poll_by_id=True,
    ),
}


def make_client(
    exchange_id: str, api_key: str, secret: str, *, sandbox: bool = False, **extra: Any
) -> Any:
    """A CCXT client configured the way :class:`CcxtExchange` requires.

    ``sandbox`` switches to the exchange's test network (Binance: testnet.binance.vision).

    Rate limiting on, CCXT's own retries off (they would re-send orders), spot markets
    only, and no private currency list (Binance's ``capital/config/getall``) at start-up.
    """
    options: dict[str, Any] = {"maxRetriesOnFailure": 0, "fetchCurrencies": False}
    config: dict[str, Any] = {}
    if exchange_id == "binance":
        options.update({"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False})
    if exchange_id == "coinbase":
        # Advanced Trade balances (v3 accounts, one page of 250) instead of the v2 wallet
        # API, and no three v2 currency calls on every markets load.
        options.update({"fetchBalance": "v3PrivateGetBrokerageAccounts"})
        config["has"] = {"fetchCurrencies": False}
    options.update(extra.pop("options", {}))
    config |= {"apiKey": api_key, "secret": secret, "enableRateLimit": True, "options": options}
    config.update(extra)
    client = getattr(ccxt, exchange_id)(config)
    if sandbox:
        if not client.urls.get("test"):  # Coinbase lists "test": None; CCXT then crashes
            raise ConfigError(
                f"sandbox = true: CCXT has no test network for {exchange_id!r}; set sandbox "
                "= false (and start with small amounts) or use binance's testnet"
            )
        client.set_sandbox_mode(True)
    return client


def retries_configured(options: Mapping[str, Any]) -> list[str]:
    """Every option that asks CCXT to retry a failed request, as "path=value"."""
    found: list[str] = []
    keys = ("maxRetriesOnFailure", "defaultMaxRetriesOnFailure")
    for key in keys:
        if options.get(key) not in (None, 0):
            found.append(f"options.{key}={options[key]!r}")
    for name, value in options.items():
        if isinstance(value, Mapping):
            for key in keys:
                if value.get(key) not in (None, 0):
                    found.append(f"options.{name}.{key}={value[key]!r}")
    return found
