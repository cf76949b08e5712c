"""Live trading through CCXT: the only package of the project that imports ``ccxt``."""

from rebalancer.adapters.ccxt.exchange import CcxtExchange, MarketDataRejected
from rebalancer.adapters.ccxt.venues import VENUES, Venue, make_client

__all__ = ["VENUES", "CcxtExchange", "MarketDataRejected", "Venue", "make_client"]
