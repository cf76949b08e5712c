"""Historical candles: files, loading and checking, gaps, downloads, price history."""
