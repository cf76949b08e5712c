"""Daily Binance spot candles embedded for the demo and tests; see PROVENANCE.md."""
