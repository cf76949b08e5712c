"""Decimals written for other programs (CSV, JSON strings): positional notation only.

``str(Decimal)`` switches to scientific notation for small and large exponents
(``str(Decimal("0.0000001")) == "1E-7"``), which tax tools and spreadsheets import as text
or refuse. :func:`plain` writes the same digits without an exponent.
"""

from __future__ import annotations

from decimal import Decimal


def plain(x: Decimal) -> str:
    """``x`` exactly, never with an exponent: ``1E-7`` -> ``0.0000001``, ``1E+3`` -> ``1000``,
    ``0.100`` -> ``0.100`` (the digits kept as given). NaN and infinities as ``str`` writes
    them."""
    return format(x, "f") if x.is_finite() else str(x)


def text(value: object) -> str:
    """``str(value)``, with Decimals in positional notation (:func:`plain`)."""
    return plain(value) if isinstance(value, Decimal) else str(value)
