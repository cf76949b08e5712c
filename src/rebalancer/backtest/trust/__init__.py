"""Which rule to trust: regimes, bootstrap intervals, overfitting odds and the advice.

Engine-agnostic analytics: each statistic takes a *run function* (prices -> per-row results,
see :mod:`.runner`) rather than an engine, so the compiled sweep kernel drives them today and
a full-fidelity engine can be swapped in without touching the statistics.
"""
