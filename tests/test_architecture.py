"""The import rule, checked on the source: the architecture stays visible in the tree.

core <- ports, config, optimise <- service, daemon, logs <- adapters, data <- backtest <- reports
     <- bootstrap <- cli, web
(templates: the HTML templates and their Jinja2 environment, for backtest and web)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "rebalancer"

# layer -> the project layers it may import
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "ports": {"core", "ports"},
    "config": {"core", "config"},
    "service": {"core", "ports", "config", "service"},
    "daemon": {"core", "ports", "config", "service", "daemon"},
    "logs": {"logs"},
    "adapters": {"core", "ports", "config", "adapters"},
    "data": {"core", "ports", "config", "adapters", "data", "demo_data"},
    "optimise": {"core", "ports", "config", "optimise"},
    "backtest": {
        "core",
        "ports",
        "config",
        "service",
        "adapters",
        "data",
        "optimise",
        "backtest",
        "demo_data",
    },
    "reports": {"core", "ports", "config", "data", "backtest", "reports", "templates"},
    "bootstrap": {
        "core",
        "ports",
        "config",
        "service",
        "adapters",
        "data",
        "optimise",
        "backtest",
        "bootstrap",
    },
    "cli": {
        "core",
        "ports",
        "config",
        "service",
        "daemon",
        "logs",
        "data",
        "optimise",
        "backtest",
        "reports",
        "bootstrap",
        "cli",
        "web",
    },
    "web": {
        "core",
        "ports",
        "config",
        "service",
        "daemon",
        "logs",
        "data",
        "optimise",
        "backtest",
        "reports",
        "bootstrap",
        "web",
        "templates",
    },
    "demo_data": set(),
    "templates": set(),  # the HTML templates and the one Jinja2 environment
    "__init__": set(),
    "__main__": {"cli"},
}
EXCHANGE_LIBS = {"ccxt"}
IO_LIBS = {
    "sqlalchemy",
    "sqlite3",
    "alembic",
    "psycopg",
    "psycopg2",
    "requests",
    "httpx",
    "aiohttp",
    "urllib3",
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(PKG.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert MODULES, "no source found"
    unknown = {layer_of(p) for p in MODULES} - ALLOWED.keys()
    assert not unknown, f"add these top-level modules to a layer: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_import_rule(path: Path) -> None:
    layer = layer_of(path)
    for name in imports_of(path):
        top, _, rest = name.partition(".")
        if top == "rebalancer":
            target = rest.split(".")[0] or "__init__"
            if target == "__init__" or name == "rebalancer":
                continue
            assert target in ALLOWED[layer], f"{layer} may not import rebalancer.{target} ({name})"
            continue
        if layer == "core":
            assert top in sys.stdlib_module_names, f"core imports {name}: standard library only"
        if top in EXCHANGE_LIBS:
            assert layer == "adapters", f"only adapters may import {top} (found in {path.name})"
        if top in IO_LIBS:
            assert layer == "adapters", f"only adapters may import {top} (found in {path.name})"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import ccxt\nfrom rebalancer.adapters import paper\n")
    assert imports_of(bad) == ["ccxt", "rebalancer.adapters"]
    assert "adapters" not in ALLOWED["core"]
