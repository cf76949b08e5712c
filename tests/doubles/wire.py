"""What every exchange double shares: building a real ``requests.Response``, and the
scripted market activity (:class:`Tape`) that fills resting limit orders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict


def http_response(
    request: requests.PreparedRequest, status: int, text: str, content_type: str
) -> requests.Response:
    """A response to ``request`` as the HTTP layer would build it from the wire."""
    response = requests.Response()
    response.status_code = status
    response._content = text.encode()
    response.headers = CaseInsensitiveDict({"Content-Type": content_type})
    try:
        response.reason = HTTPStatus(status).phrase
    except ValueError:
        response.reason = "Error"
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    return response


def snapshot_calls(
    build: Callable[[], tuple[Any, Any, Any]], asset_sets: Sequence[Sequence[str]], quote: str
) -> list[dict[tuple[str, str], int]]:
    """Requests per endpoint for one snapshot of each asset set, each on a fresh double.

    ``build()`` returns ``(client, double, exchange)``; every snapshot must price its assets.
    """
    counts = []
    for assets in asset_sets:
        _, double, exchange = build()
        snap = exchange.snapshot(list(assets), quote)
        assert set(snap.prices) == set(assets)
        counts.append(dict(double.calls))
    return counts


@dataclass
class Tape:
    """Scripted market activity against a double's resting limit orders (all three doubles).

    ``at_poll[n] = fraction``: just before the double answers the n-th look-up of a resting
    order (1-based), the market trades through every resting order for ``fraction`` of its
    original amount (capped at what is left), at the order's limit price. ``at_cancel``: the
    same just before a cancel request is processed -- a fill racing the cancel.
    """

    at_poll: dict[int, Decimal] = field(default_factory=dict)
    at_cancel: Decimal | None = None
    polls: int = 0

    def on_poll(self) -> Decimal | None:
        """Count one look-up of a resting order; the fraction to trade now, if scripted."""
        self.polls += 1
        return self.at_poll.get(self.polls)


def crosses(side: str, price: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """Would a limit at ``price`` take liquidity from the book ``bid``/``ask``?
    (``side``: buy or sell, any case.)"""
    return price >= ask if side.lower() == "buy" else price <= bid
