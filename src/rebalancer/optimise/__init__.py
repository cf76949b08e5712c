"""Optimised target weights (NumPy + SciPy): used live, in paper and in backtests."""
