"""What every exchange double shares: building a real ``requests.Response``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
