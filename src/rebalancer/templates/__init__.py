"""Every HTML page and report of rebalancer, rendered by one Jinja2 environment.

The templates (``*.html`` beside this module, shipped as package data) are rendered with
autoescape on: every value a template prints is HTML-escaped unless it is marked safe, so
an asset name, a label, a reason or a config value can never inject markup or script.
Python code passes plain values (strings, numbers, lists) and never builds HTML itself.

Pages: ``dashboard.html`` (the live dashboard), ``journal_report.html`` (``rebalancer
report``), ``backtest.html``, ``sweep.html`` and ``walk_forward.html`` (research reports);
``base.html`` holds the shared layout and style, ``macros.html`` the table, chart and
reproducibility blocks.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    """The one environment: autoescape on for every template, undefined names are errors."""
    return Environment(
        loader=PackageLoader("rebalancer", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **context: Any) -> str:
    """``name`` (e.g. ``"backtest.html"``) rendered with ``context``."""
    return environment().get_template(name).render(**context)


def png_uri(data: bytes) -> str:
    """A PNG as a ``data:`` URI, so a report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
