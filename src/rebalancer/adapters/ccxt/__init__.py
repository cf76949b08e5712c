"""Live trading through CCXT: the only package of the project that imports ``ccxt``."""

from rebalancer.adapters.ccxt.exchange import CcxtExchange, MarketDataRejected, make_client

__all__ = ["CcxtExchange", "MarketDataRejected", "make_client"]
