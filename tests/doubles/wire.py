"""What every exchange double shares: building a real ``requests.Response``."""

from __future__ import annotations

from http import HTTPStatus

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
