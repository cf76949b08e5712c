"""The dashboard: one self-contained page (inline CSS and JS, charts drawn as inline SVG).

It is opened as ``/?token=TOKEN``; the script keeps the token for the tab, removes it from
the address bar, and sends it as ``Authorization: Bearer`` with every API request. The page
is the template ``rebalancer/templates/dashboard.html`` (rendered once, by the one Jinja2
environment of :mod:`rebalancer.templates`); its data comes from ``/api/*``.
"""

from __future__ import annotations

from rebalancer import templates

PAGE = templates.render("dashboard.html")
