"""Which optional extra of the package brings a third-party module, so that a command that
needs a missing one can name the fix (``pip install 'rebalancer[backtest]'``).

The bot itself (status, plan, rebalance, run, demo, config, keys, history, ...) needs only
the core dependencies; research, the dashboard, PostgreSQL, Dask and the peer benchmarks
are extras (see ``pyproject.toml``). Stdlib only: imported on the error path of every
command.
"""

from __future__ import annotations

#: top-level module -> the extra of ``pyproject.toml`` that installs it
EXTRA_OF: dict[str, str] = {
    "numba": "backtest",
    "llvmlite": "backtest",
    "matplotlib": "backtest",
    "scipy": "backtest",
    "pyarrow": "backtest",
    "fastapi": "web",
    "starlette": "web",
    "uvicorn": "web",
    "psycopg": "postgres",
    "dask": "cluster",
    "distributed": "cluster",
    "vectorbt": "bench",
    "bt": "bench",
}


def missing_extra(exc: ImportError) -> str | None:
    """The message for an import that failed because an extra is not installed, else None.

    ``exc.name`` names the module for a plain ``import``; pandas reports a missing Parquet
    engine only in its text, so ``pyarrow`` is also looked for there.
    """
    name = (exc.name or "").split(".")[0]
    if name not in EXTRA_OF and "pyarrow" in str(exc):
        name = "pyarrow"
    extra = EXTRA_OF.get(name)
    if extra is None:
        return None
    return (
        f"this command needs {name}, which is not installed: it comes with the {extra!r} "
        f"extra. Fix: pip install 'rebalancer[{extra}]' (or 'rebalancer[all]' for every "
        "extra)"
    )
