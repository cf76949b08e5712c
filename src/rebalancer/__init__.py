"""rebalancer: keep a crypto portfolio at its target allocation.

Layers (the import rule, enforced by ``tests/test_architecture.py``)::

    core  <-  ports, config  <-  service  <-  adapters, backtest  <-  bootstrap  <-  cli
"""

__version__ = "0.1.0"
