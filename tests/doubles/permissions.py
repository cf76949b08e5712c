"""The exchange doubles, extended (by subclassing) with each exchange's key-permission call.

* :class:`BinancePermissions` serves signed ``GET /sapi/v1/account/apiRestrictions``;
* :class:`KrakenPermissions` serves ``POST /0/private/WithdrawMethods`` (``EGeneral:Permission
  denied`` for a trade-only key, a list of methods for a key that may withdraw);
* :class:`CoinbasePermissions` serves ``GET /api/v3/brokerage/key_permissions``.

``restrictions`` / ``can_withdraw`` / ``permissions`` set what the key may do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from doubles.binance import BinanceDouble, Recorded, body_text
from doubles.coinbase import PREFIX, CoinbaseDouble
from doubles.kraken import KrakenDouble

TRADE_ONLY = {
    "ipRestrict": True,
    "createTime": 1700000000000,
    "enableReading": True,
    "enableSpotAndMarginTrading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "permitsUniversalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "enableVanillaOptions": False,
    "enablePortfolioMarginTrading": False,
}


class BinancePermissions(BinanceDouble):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.restrictions: dict[str, Any] = dict(TRADE_ONLY)

    def _route(
        self, method: str, path: str
    ) -> tuple[Callable[[dict[str, str]], tuple[int, Any]], bool] | None:
        if (method, path) == ("GET", "/sapi/v1/account/apiRestrictions"):
            return (lambda p: (200, dict(self.restrictions))), True
        return super()._route(method, path)


class KrakenPermissions(KrakenDouble):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.can_withdraw = False

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        path = "/0/private/WithdrawMethods"
        if url.path != path:
            return super().send(request, **kwargs)
        body = body_text(request)
        params = dict(parse_qsl(body))
        self.log.append(Recorded("POST", path, params, True))
        problem = self._check_signature(request, path, body, params)
        if problem is not None:
            return self._respond(request, {"error": [problem]})
        if not self.can_withdraw:
            return self._respond(request, {"error": ["EGeneral:Permission denied"]})
        methods = [
            {"asset": "XXBT", "method": "Bitcoin", "network": "Bitcoin", "minimum": "0.0005"}
        ]
        return self._respond(request, {"error": [], "result": methods})


class CoinbasePermissions(CoinbaseDouble):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.permissions: dict[str, Any] = {
            "can_view": True,
            "can_trade": True,
            "can_transfer": False,
            "portfolio_uuid": "8f1a7c52-0000-4000-8000-000000000001",
            "portfolio_type": "DEFAULT",
        }

    def _route(self, method: str, key: str) -> Any:
        if (method, key) == ("GET", PREFIX + "key_permissions"):
            return (lambda path, query, data: (200, dict(self.permissions))), True
        return super()._route(method, key)
