"""A local Coinbase Advanced Trade exchange under the real ``ccxt.coinbase``.

Like :mod:`doubles.binance`: a ``requests`` transport adapter mounted on the client's
``session``; CCXT builds the JWT, sends, parses and maps errors for real; an unhandled
request raises :class:`~doubles.binance.UnhandledRequest`. No recorded Coinbase responses
exist in ../shared, so the bodies follow the examples in CCXT's coinbase.py (which quotes
the Advanced Trade API reference) and the API's error shapes: 401 ``Unauthorized`` as plain
text for a bad JWT, gRPC-gateway bodies (``{"error": "NOT_FOUND", "error_details": ...,
"message": ...}``) for other HTTP errors, and HTTP 200 ``{"success": false,
"error_response": {...}}`` for a refused order.

Served on ``https://api.coinbase.com``, paths under ``/api/v3/brokerage/``: public
``market/products`` (``product_type=FUTURE`` answers no products), ``market/product_book``;
private ``transaction_summary`` (the fee tier), ``accounts``, ``best_bid_ask``
(``product_ids`` repeated), ``orders`` (POST; ``market_market_ioc`` with ``quote_size`` for
buys or ``base_size``, ``sor_limit_ioc`` with ``base_size`` + ``limit_price``, and
``limit_limit_gtc`` orders that rest OPEN until :meth:`CoinbaseDouble.trade_through` or
``tape`` fills them -- ``post_only`` ones that would cross refused with
INVALID_LIMIT_PRICE_POST_ONLY --; an existing ``client_order_id`` returns that order instead
of creating one, as Coinbase documents), ``orders/batch_cancel`` (per id ``success`` or a
failure_reason such as ORDER_IS_FULLY_FILLED), ``orders/historical/{order_id}``,
``orders/historical/batch`` and ``orders/historical/fills`` (one fill per book level walked,
each with its commission).

Authentication: ``Authorization: Bearer <JWT>``, ES256 over the key's EC private key (PEM),
or EdDSA over an Ed25519 key (CDP's newer keys: base64 of seed + public key); the double
verifies the signature with the public key, ``kid``/``sub`` (the key name), ``iss``, ``aud``,
``uri``/``uris`` (method, host and path of this very request) and ``nbf``/``exp``.

Market buys by ``quote_size`` include the fee (``filled_value + total_fees = quote_size``,
``filled_value = quote_size / (1 + taker fee)``, ``filled_size = filled_value / price``
uncut, as in a captured real order); fees are always charged in the quote currency. Order
bodies carry every field of the real ones CCXT captured (``ts/src/test/static/response/
coinbase.json`` in the ccxt repository; see ``tests/adapters/test_doubles_vs_ccxt.py``).
``liquidity`` caps the base amount a product fills (the rest of an IOC order is
cancelled: status ``CANCELLED`` with a partial fill);
``fill_after_polls`` keeps new orders ``OPEN`` for that many look-ups; ``depth`` gives the
book levels behind the best price (price step and size per level).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from requests.adapters import BaseAdapter

from doubles.binance import Fault, Recorded, UnhandledRequest, body_text
from doubles.wire import Tape, crosses, http_response

HOST = "api.coinbase.com"
PREFIX = "/api/v3/brokerage/"
ZERO = Decimal(0)

# product id -> (base_increment, quote_increment, base_min_size, quote_min_size, base_max_size)
PRODUCTS: dict[str, tuple[str, str, str, str, str]] = {
    "BTC-USD": ("0.00000001", "0.01", "0.00000001", "1", "3400"),
    "ETH-USD": ("0.00000001", "0.01", "0.00000001", "1", "42000"),
    "SOL-USD": ("0.001", "0.01", "0.001", "1", "100000"),
    "ADA-USD": ("0.00000001", "0.0001", "0.00000001", "1", "10000000"),
    "DOGE-USD": ("0.1", "0.00001", "0.1", "1", "50000000"),
    "LTC-USD": ("0.00000001", "0.01", "0.00000001", "1", "50000"),
    "LINK-USD": ("0.01", "0.001", "0.01", "1", "900000"),
    "XRP-USD": ("0.000001", "0.0001", "0.000001", "1", "50000000"),
    "DOT-USD": ("0.00000001", "0.001", "0.00000001", "1", "500000"),
    "AVAX-USD": ("0.00000001", "0.01", "0.00000001", "1", "300000"),
}


def new_key_pair() -> tuple[str, str]:
    """A fresh P-256 key, as (PEM private key for CCXT, PEM public key for the double)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def new_ed25519_key_pair() -> tuple[str, str]:
    """A fresh Ed25519 key as CDP issues it: (base64 of seed + public key, 88 characters,
    for CCXT; PEM public key for the double)."""
    key = ed25519.Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key()
    secret = base64.b64encode(seed + public.public_bytes(raw, serialization.PublicFormat.Raw))
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return secret.decode(), pem.decode()


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _steps(value: Decimal, step: Decimal) -> bool:
    return (value / step) == (value / step).to_integral_value()


@dataclass
class CbOrder:
    order_id: str
    client_order_id: str
    product_id: str
    side: str  # BUY / SELL
    configuration: dict[str, Any]
    created: float
    filled_size: Decimal = ZERO
    filled_value: Decimal = ZERO
    total_fees: Decimal = ZERO
    status: str = "FILLED"
    polls_left: int = 0
    pending_status: str = "FILLED"
    order_type: str = "MARKET"
    tif: str = "IMMEDIATE_OR_CANCEL"
    fills: list[dict[str, Any]] = field(default_factory=list)
    size: Decimal = ZERO  # resting limit orders: base_size ordered
    limit: Decimal = ZERO  # resting limit orders: limit_price


class CoinbaseDouble(BaseAdapter):
    def __init__(
        self,
        key_name: str,
        public_pem: str,
        *,
        balances: dict[str, str] | None = None,
        books: dict[str, tuple[str, str]] | None = None,
        taker_fee: str = "0.006",
        maker_fee: str | None = None,
    ) -> None:
        super().__init__()
        self.key_name = key_name
        self.public_key = serialization.load_pem_public_key(public_pem.encode())
        self.balances = {a: Decimal(v) for a, v in (balances or {}).items()}
        self.books = {p: (Decimal(b), Decimal(a)) for p, (b, a) in (books or {}).items()}
        self.taker_fee = Decimal(taker_fee)
        self.maker_fee = Decimal(maker_fee) if maker_fee is not None else self.taker_fee * 2 / 3
        # scripted trades through resting limit_limit_gtc orders (see doubles.wire.Tape)
        self.tape = Tape()
        self.liquidity: dict[str, Decimal] = {}
        # product id -> (price step between levels, size per level) behind the best price
        self.depth: dict[str, tuple[Decimal, Decimal]] = {}
        self.book_age_s: dict[str, float] = {}
        self.fill_after_polls = 0
        self.orders: list[CbOrder] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.log: list[Recorded] = []
        self.bodies: list[dict[str, Any]] = []
        self._faults: dict[tuple[str, str], list[Fault | tuple[int, str] | None]] = {}

    def mount(self, client: Any) -> CoinbaseDouble:
        client.session.mount("https://", self)
        client.session.mount("http://", self)
        return self

    def inject(
        self, method: str, path: str, fault: Fault | tuple[int, str], *, after: int = 0
    ) -> None:
        """Fail the next ``method path`` request (after ``after`` good ones): a Fault, or
        (HTTP status, JSON body text)."""
        queue = self._faults.setdefault((method, path), [])
        queue.extend([None] * after)
        queue.append(fault)

    def placed(self) -> list[dict[str, Any]]:
        """The JSON bodies of every order request received."""
        return self.bodies

    def close(self) -> None:
        pass

    # -- transport ------------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        method = request.method or "GET"
        if url.scheme != "https" or url.hostname != HOST:
            raise UnhandledRequest(f"no network in tests: {method} {request.url}")
        path = url.path
        query = {k: v for k, v in parse_qs(url.query).items()}
        body = body_text(request)
        data: dict[str, Any] = json.loads(body) if body else {}
        key = path
        if path.startswith(PREFIX + "orders/historical/") and path.rsplit("/", 1)[1] not in (
            "batch",
            "fills",
        ):
            key = PREFIX + "orders/historical/{order_id}"
        self.calls[(method, key)] += 1
        flat = {k: ",".join(v) for k, v in query.items()} | {
            k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in data.items()
        }
        self.log.append(Recorded(method, path, flat, "Authorization" in request.headers))
        queue = self._faults.get((method, key))
        fault = queue.pop(0) if queue else None
        if fault is Fault.TIMEOUT_BEFORE:
            raise requests.exceptions.ConnectTimeout(f"injected: connect timeout {path}")
        if isinstance(fault, tuple):
            return self._respond(request, fault[0], fault[1])
        if fault in (Fault.HTTP_500, Fault.HTTP_503):
            status = 500 if fault is Fault.HTTP_500 else 503
            return self._grpc_error(request, status, "INTERNAL", "Internal server error")
        if fault is Fault.HTTP_429:
            return self._grpc_error(request, 429, "RESOURCE_EXHAUSTED", "Too many requests")
        route = self._route(method, key)
        if route is None:
            raise UnhandledRequest(f"the Coinbase double does not serve {method} {path}")
        handler, private = route
        if private and not self._authorized(request, method, path):
            return self._respond(request, 401, "Unauthorized\n", "text/plain")
        status, out = handler(path, query, data)
        if fault is Fault.TIMEOUT_AFTER:
            raise requests.exceptions.ReadTimeout(f"injected: read timeout {path}")
        text = json.dumps(out)
        if fault is Fault.TRUNCATED:
            text = text[: len(text) // 2]
        return self._respond(request, status, text)

    Handler = Callable[[str, dict[str, list[str]], dict[str, Any]], tuple[int, Any]]

    def _route(self, method: str, key: str) -> tuple[Handler, bool] | None:
        p = PREFIX
        routes: dict[tuple[str, str], tuple[CoinbaseDouble.Handler, bool]] = {
            ("GET", p + "market/products"): (self._products, False),
            ("GET", p + "market/product_book"): (self._product_book, False),
            ("GET", p + "transaction_summary"): (self._transaction_summary, True),
            ("GET", p + "accounts"): (self._accounts, True),
            ("GET", p + "best_bid_ask"): (self._best_bid_ask, True),
            ("POST", p + "orders"): (self._create_order, True),
            ("POST", p + "orders/batch_cancel"): (self._batch_cancel, True),
            ("GET", p + "orders/historical/{order_id}"): (self._get_order, True),
            ("GET", p + "orders/historical/batch"): (self._list_orders, True),
            ("GET", p + "orders/historical/fills"): (self._list_fills, True),
        }
        return routes.get((method, key))

    def _authorized(self, request: requests.PreparedRequest, method: str, path: str) -> bool:
        auth = str(request.headers.get("Authorization", ""))
        if not auth.startswith("Bearer "):
            return False
        try:
            head_b64, claims_b64, sig_b64 = auth.removeprefix("Bearer ").split(".")
            head = json.loads(_b64url(head_b64))
            claims = json.loads(_b64url(claims_b64))
            raw = _b64url(sig_b64)
        except ValueError:
            return False
        if head.get("kid") != self.key_name or len(raw) != 64:
            return False
        signed = f"{head_b64}.{claims_b64}".encode()
        uri = f"{method} {HOST}{path}"
        key = self.public_key
        try:
            if head.get("alg") == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
                r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
                key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
                scope = (
                    claims.get("iss") == "coinbase-cloud"
                    and claims.get("aud") == ["retail_rest_api_proxy"]
                    and claims.get("uri") == uri
                )
            elif head.get("alg") == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(raw, signed)
                scope = (
                    claims.get("iss") == "cdp"
                    and claims.get("aud") == ["cdp_service"]
                    and claims.get("uris") == [uri]
                )
            else:
                return False
        except InvalidSignature:
            return False
        now = time.time()
        return bool(
            scope
            and claims.get("sub") == self.key_name
            and claims.get("nbf", now + 1) <= now + 1
            and now < claims.get("exp", 0)
        )

    def _respond(
        self,
        request: requests.PreparedRequest,
        status: int,
        text: str,
        content_type: str = "application/json; charset=utf-8",
    ) -> requests.Response:
        return http_response(request, status, text, content_type)

    def _grpc_error(
        self, request: requests.PreparedRequest, status: int, error: str, message: str
    ) -> requests.Response:
        body = {"error": error, "error_details": message, "message": message}
        return self._respond(request, status, json.dumps(body))

    # -- public endpoints -----------------------------------------------------------------

    def _product(self, pid: str) -> dict[str, Any]:
        base_inc, quote_inc, base_min, quote_min, base_max = PRODUCTS[pid]
        base, quote = pid.split("-")
        price = self.books.get(pid, (ZERO, ZERO))[1]
        return {
            "product_id": pid,
            "price": str(price),
            "price_percentage_change_24h": "0.5",
            "volume_24h": "1000",
            "volume_percentage_change_24h": "1",
            "base_increment": base_inc,
            "quote_increment": quote_inc,
            "quote_min_size": quote_min,
            "quote_max_size": "150000000",
            "base_min_size": base_min,
            "base_max_size": base_max,
            "base_name": base,
            "quote_name": "US Dollar",
            "watched": False,
            "is_disabled": False,
            "new": False,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": quote,
            "base_currency_id": base,
            "fcm_trading_session_details": None,
            "mid_market_price": "",
            "alias": "",
            "alias_to": [],
            "base_display_symbol": base,
            "quote_display_symbol": quote,
            "view_only": False,
            "price_increment": quote_inc,
            "display_name": pid,
            "product_venue": "CBE",
        }

    def _products(self, path: str, q: dict[str, list[str]], d: dict[str, Any]) -> tuple[int, Any]:
        if q.get("product_type") == ["FUTURE"]:
            return 200, {"products": [], "num_products": 0}
        wanted = q.get("product_ids") or list(PRODUCTS)
        products = [self._product(p) for p in wanted if p in PRODUCTS]
        return 200, {"products": products, "num_products": len(products)}

    def _levels(self, pid: str, side: str, limit: int) -> list[dict[str, str]]:
        bid, ask = self.books[pid]
        step, size = self.depth.get(pid, (ZERO, Decimal("1000000")))
        best, sign = (bid, -1) if side == "bids" else (ask, 1)
        return [
            {"price": str(best + sign * i * step), "size": str(size)}
            for i in range(limit if step > 0 else 1)
        ]

    def _pricebook(self, pid: str, limit: int) -> dict[str, Any]:
        return {
            "product_id": pid,
            "bids": self._levels(pid, "bids", limit),
            "asks": self._levels(pid, "asks", limit),
            "time": _iso(time.time() - self.book_age_s.get(pid, 0.05)),
        }

    def _product_book(
        self, path: str, q: dict[str, list[str]], d: dict[str, Any]
    ) -> tuple[int, Any]:
        pid = (q.get("product_id") or [""])[0]
        if pid not in self.books:
            return 404, {"error": "NOT_FOUND", "error_details": "", "message": "NotFound"}
        limit = int((q.get("limit") or ["50"])[0])
        return 200, {"pricebook": self._pricebook(pid, limit)}

    # -- private endpoints ----------------------------------------------------------------

    def _transaction_summary(
        self, path: str, q: dict[str, list[str]], d: dict[str, Any]
    ) -> tuple[int, Any]:
        return 200, {
            "total_volume": 0,
            "total_fees": 0,
            "fee_tier": {
                "pricing_tier": "Advanced 1",
                "usd_from": "0",
                "usd_to": "1000",
                "taker_fee_rate": str(self.taker_fee),
                "maker_fee_rate": str(self.maker_fee),
            },
            "margin_rate": None,
            "goods_and_services_tax": None,
            "advanced_trade_only_volume": 0,
            "advanced_trade_only_fees": 0,
            "coinbase_pro_volume": 0,
            "coinbase_pro_fees": 0,
        }

    def _accounts(self, path: str, q: dict[str, list[str]], d: dict[str, Any]) -> tuple[int, Any]:
        accounts = [
            {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.key_name}/{asset}")),
                "name": f"{asset} Wallet",
                "currency": asset,
                "available_balance": {"value": f"{value:.16f}", "currency": asset},
                "default": True,
                "active": True,
                "created_at": "2023-01-04T06:20:06.456Z",
                "updated_at": "2023-01-04T06:20:07.181Z",
                "deleted_at": None,
                "type": "ACCOUNT_TYPE_FIAT" if asset == "USD" else "ACCOUNT_TYPE_CRYPTO",
                "ready": True,
                "hold": {"value": "0.0000000000000000", "currency": asset},
            }
            for asset, value in sorted(self.balances.items())
        ]
        return 200, {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}

    def _best_bid_ask(
        self, path: str, q: dict[str, list[str]], d: dict[str, Any]
    ) -> tuple[int, Any]:
        wanted = q.get("product_ids") or sorted(self.books)
        return 200, {"pricebooks": [self._pricebook(p, 1) for p in wanted if p in self.books]}

    def _refuse(self, data: dict[str, Any], error: str, preview: str, message: str) -> Any:
        return {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": error,
                "message": message,
                "error_details": "",
                "preview_failure_reason": preview,
                "new_order_failure_reason": error,
            },
            "order_configuration": data.get("order_configuration"),
        }

    def _create_order(
        self, path: str, q: dict[str, list[str]], data: dict[str, Any]
    ) -> tuple[int, Any]:
        self.bodies.append(data)
        cid = str(data.get("client_order_id", ""))
        existing = next((o for o in self.orders if o.client_order_id == cid), None)
        if existing is not None:  # Coinbase: a known client_order_id returns that order
            return 200, self._created(existing)
        pid = str(data.get("product_id", ""))
        if pid not in PRODUCTS or pid not in self.books:
            return 200, self._refuse(data, "INVALID_PRODUCT_ID", "", "Invalid product_id")
        config = data.get("order_configuration") or {}
        side = str(data.get("side", ""))
        base_inc, quote_inc, base_min, quote_min, _max = map(Decimal, PRODUCTS[pid])
        bid, ask = self.books[pid]
        market = config.get("market_market_ioc")
        limit_ioc = config.get("sor_limit_ioc")
        if config.get("limit_limit_gtc") is not None:
            return 200, self._rest(data, config["limit_limit_gtc"])
        limit_price: Decimal | None = None
        if market is not None and side == "BUY" and "quote_size" in market:
            quote_size = Decimal(market["quote_size"])
            if not _steps(quote_size, quote_inc):
                return 200, self._refuse(
                    data,
                    "INVALID_SIZE_PRECISION",
                    "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
                    "Invalid quote size precision",
                )
            if quote_size < quote_min:
                return 200, self._refuse(
                    data,
                    "UNKNOWN_FAILURE_REASON",
                    "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                    "Quote size too small",
                )
            if self.balances.get("USD", ZERO) < quote_size:
                return 200, self._insufficient(data)
            spend = quote_size / (1 + self.taker_fee)
            if pid not in self.depth and pid not in self.liquidity:
                return 200, self._fill_by_quote(data, pid, config, quote_size, spend)
            size = (spend / ask / base_inc).to_integral_value(ROUND_DOWN) * base_inc
        elif (market is not None and "base_size" in market) or limit_ioc is not None:
            target = market if market is not None else limit_ioc
            size = Decimal(target["base_size"])
            if limit_ioc is not None:
                limit_price = Decimal(limit_ioc["limit_price"])
            if not _steps(size, base_inc):
                return 200, self._refuse(
                    data,
                    "INVALID_SIZE_PRECISION",
                    "PREVIEW_INVALID_BASE_SIZE_PRECISION",
                    "Invalid base size precision",
                )
            if size < base_min:
                return 200, self._refuse(
                    data,
                    "UNKNOWN_FAILURE_REASON",
                    "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
                    "Base size too small",
                )
            price = ask if side == "BUY" else bid
            if side == "SELL" and self.balances.get(pid.split("-")[0], ZERO) < size:
                return 200, self._insufficient(data)
            if side == "BUY" and self.balances.get("USD", ZERO) < size * price * (
                1 + self.taker_fee
            ):
                return 200, self._insufficient(data)
        else:
            return 200, self._refuse(
                data,
                "UNSUPPORTED_ORDER_CONFIGURATION",
                "",
                "the double serves market_market_ioc and sor_limit_ioc only",
            )
        order = CbOrder(
            order_id=str(uuid.uuid4()),
            client_order_id=cid,
            product_id=pid,
            side=side,
            configuration=config,
            created=time.time(),
            order_type="MARKET" if market is not None else "LIMIT",
        )
        self._fill(order, size, limit_price)
        self.orders.append(order)
        return 200, self._created(order)

    def _fill_by_quote(
        self,
        data: dict[str, Any],
        pid: str,
        config: dict[str, Any],
        quote_size: Decimal,
        spend: Decimal,
    ) -> Any:
        """A market buy by ``quote_size`` at the best ask, as the captured real order
        (quote_size "5" at 0.8 %: filled_value 5 / 1.008 = 4.9603174603174603, total_fees
        the rest, filled_size filled_value / price -- not cut to the base increment)."""
        ask = self.books[pid][1]
        order = CbOrder(
            order_id=str(uuid.uuid4()),
            client_order_id=str(data.get("client_order_id", "")),
            product_id=pid,
            side="BUY",
            configuration=config,
            created=time.time(),
        )
        size, fee = spend / ask, quote_size - spend
        order.fills.append(self._fill_json(order, ask, size, fee))
        base = pid.split("-")[0]
        self.balances[base] = self.balances.get(base, ZERO) + size
        self.balances["USD"] = self.balances.get("USD", ZERO) - quote_size
        order.filled_size, order.filled_value, order.total_fees = size, spend, fee
        if self.fill_after_polls:
            order.status, order.pending_status = "OPEN", "FILLED"
            order.polls_left = self.fill_after_polls
        self.orders.append(order)
        return self._created(order)

    def _rest(self, data: dict[str, Any], gtc: dict[str, Any]) -> Any:
        """A limit_limit_gtc order: refused when ``post_only`` and it would cross
        (INVALID_LIMIT_PRICE_POST_ONLY), else it rests OPEN until traded or cancelled."""
        pid, side = str(data["product_id"]), str(data.get("side", ""))
        base_inc, quote_inc, base_min, quote_min, _max = map(Decimal, PRODUCTS[pid])
        size, price = Decimal(gtc["base_size"]), Decimal(gtc["limit_price"])
        if not _steps(size, base_inc):
            return self._refuse(
                data,
                "INVALID_SIZE_PRECISION",
                "PREVIEW_INVALID_BASE_SIZE_PRECISION",
                "Invalid base size precision",
            )
        if price <= 0 or not _steps(price, quote_inc):
            return self._refuse(
                data,
                "INVALID_PRICE_PRECISION",
                "PREVIEW_INVALID_PRICE_PRECISION",
                "Invalid price precision",
            )
        if size < base_min:
            return self._refuse(
                data,
                "UNKNOWN_FAILURE_REASON",
                "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
                "Base size too small",
            )
        if size * price < quote_min:
            return self._refuse(
                data,
                "UNKNOWN_FAILURE_REASON",
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                "Quote size too small",
            )
        bid, ask = self.books[pid]
        if crosses(side, price, bid, ask):
            if gtc.get("post_only") is True:
                return self._refuse(
                    data,
                    "INVALID_LIMIT_PRICE_POST_ONLY",
                    "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
                    "Invalid limit price for post only order",
                )
            return self._refuse(
                data, "UNSUPPORTED_ORDER_CONFIGURATION", "", "the double rests limit orders only"
            )
        need = size * price * (1 + self.maker_fee) if side == "BUY" else size
        if self.balances.get("USD" if side == "BUY" else pid.split("-")[0], ZERO) < need:
            return self._insufficient(data)
        order = CbOrder(
            order_id=str(uuid.uuid4()),
            client_order_id=str(data.get("client_order_id", "")),
            product_id=pid,
            side=side,
            configuration=data["order_configuration"],
            created=time.time(),
            status="OPEN",
            order_type="LIMIT",
            tif="GOOD_UNTIL_CANCELLED",
            size=size,
            limit=price,
        )
        self.orders.append(order)
        return self._created(order)

    def resting(self, product_id: str | None = None) -> list[CbOrder]:
        """The limit_limit_gtc orders still OPEN (of ``product_id``, or all)."""
        return [
            o
            for o in self.orders
            if o.tif == "GOOD_UNTIL_CANCELLED"
            and o.status == "OPEN"
            and product_id in (None, o.product_id)
        ]

    def trade_through(self, product_id: str | None, fraction: Decimal | str) -> None:
        """The market trades through the resting orders of ``product_id`` (None: all): each
        fills ``fraction`` of its base_size more (capped at what is left, on the base
        increment) at its limit price, as maker (``maker_fee``, in the quote)."""
        for o in self.resting(product_id):
            base_inc = Decimal(PRODUCTS[o.product_id][0])
            take = min(o.size * Decimal(fraction), o.size - o.filled_size)
            take = (take / base_inc).to_integral_value(ROUND_DOWN) * base_inc
            if take <= 0:
                continue
            value = take * o.limit
            commission = (value * self.maker_fee).quantize(Decimal("0.0000000001"), ROUND_DOWN)
            fill = self._fill_json(o, o.limit, take, commission)
            fill["liquidity_indicator"] = "MAKER"
            o.fills.append(fill)
            sign = 1 if o.side == "BUY" else -1
            base = o.product_id.split("-")[0]
            self.balances[base] = self.balances.get(base, ZERO) + sign * take
            self.balances["USD"] = self.balances.get("USD", ZERO) - sign * value - commission
            o.filled_size += take
            o.filled_value += value
            o.total_fees += commission
            if o.filled_size == o.size:
                o.status = "FILLED"

    def _batch_cancel(
        self, path: str, q: dict[str, list[str]], data: dict[str, Any]
    ) -> tuple[int, Any]:
        """POST orders/batch_cancel {"order_ids": [...]}: one result per id; a refusal is
        ``success: false`` with its failure_reason (HTTP 200)."""
        if self.tape.at_cancel is not None:  # the market fills it while the cancel is in flight
            fraction, self.tape.at_cancel = self.tape.at_cancel, None
            self.trade_through(None, fraction)
        results = []
        for order_id in data.get("order_ids") or []:
            found = next((o for o in self.orders if o.order_id == order_id), None)
            reason = "UNKNOWN_CANCEL_FAILURE_REASON"
            if found is None:
                reason = "UNKNOWN_CANCEL_ORDER"
            elif found.status == "FILLED":
                reason = "ORDER_IS_FULLY_FILLED"
            elif found.status != "OPEN":
                reason = "DUPLICATE_CANCEL_REQUEST"
            else:
                found.status = "CANCELLED"
            ok = reason == "UNKNOWN_CANCEL_FAILURE_REASON"
            results.append({"success": ok, "failure_reason": reason, "order_id": order_id})
        return 200, {"results": results}

    def _insufficient(self, data: dict[str, Any]) -> Any:
        return self._refuse(
            data,
            "INSUFFICIENT_FUND",
            "PREVIEW_INSUFFICIENT_FUND",
            "Insufficient balance in source account",
        )

    def _fill(self, order: CbOrder, size: Decimal, limit: Decimal | None) -> None:
        """Walk the book (best price, then ``depth`` levels) up to ``size`` and ``limit``."""
        pid = order.product_id
        base = pid.split("-")[0]
        side = "asks" if order.side == "BUY" else "bids"
        cap = self.liquidity.get(pid)
        left = size if cap is None else min(size, cap)
        value = ZERO
        filled = ZERO
        for level in self._levels(pid, side, 1000):
            price, available = Decimal(level["price"]), Decimal(level["size"])
            if limit is not None and (price > limit if side == "asks" else price < limit):
                break
            take = min(left, available)
            if take <= 0:
                break
            filled += take
            value += take * price
            left -= take
            commission = (take * price * self.taker_fee).quantize(
                Decimal("0.0000000001"), ROUND_DOWN
            )
            order.fills.append(self._fill_json(order, price, take, commission))
            if left <= 0:
                break
        fee = sum((Decimal(f["commission"]) for f in order.fills), ZERO)
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self.balances.get(base, ZERO) + sign * filled
        self.balances["USD"] = self.balances.get("USD", ZERO) - sign * value - fee
        order.filled_size, order.filled_value, order.total_fees = filled, value, fee
        final = "FILLED" if filled == size else "CANCELLED"
        if self.fill_after_polls:
            order.status, order.pending_status = "OPEN", final
            order.polls_left = self.fill_after_polls
        else:
            order.status = final

    def _fill_json(
        self, order: CbOrder, price: Decimal, size: Decimal, commission: Decimal
    ) -> dict[str, Any]:
        trade_id = str(uuid.uuid4())
        return {
            "entry_id": trade_id,
            "trade_id": trade_id,
            "order_id": order.order_id,
            "trade_time": _iso(order.created),
            "trade_type": "FILL",
            "price": str(price),
            "size": str(size),
            "commission": str(commission),
            "product_id": order.product_id,
            "sequence_timestamp": _iso(order.created),
            "liquidity_indicator": "TAKER",
            "size_in_quote": False,
            "user_id": "11111111-1111-1111-1111-111111111111",
            "side": order.side,
            "retail_portfolio_id": "",
        }

    def _list_fills(self, path: str, q: dict[str, list[str]], d: dict[str, Any]) -> tuple[int, Any]:
        ids = set(q.get("order_ids", []) + q.get("order_id", []))
        products = set(q.get("product_ids", []) + q.get("product_id", []))
        fills = [
            f
            for o in self.orders
            for f in o.fills
            if (not ids or o.order_id in ids) and (not products or o.product_id in products)
        ]
        return 200, {"fills": fills, "cursor": ""}

    def _created(self, order: CbOrder) -> Any:
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": order.order_id,
            "success_response": {
                "order_id": order.order_id,
                "product_id": order.product_id,
                "side": order.side,
                "client_order_id": order.client_order_id,
            },
            "order_configuration": order.configuration,
        }

    def _order_json(self, o: CbOrder) -> dict[str, Any]:
        avg = o.filled_value / o.filled_size if o.filled_size else ZERO
        in_quote = "quote_size" in (o.configuration.get("market_market_ioc") or {})
        return {
            "order_id": o.order_id,
            "product_id": o.product_id,
            "user_id": "11111111-1111-1111-1111-111111111111",
            "order_configuration": o.configuration,
            "side": o.side,
            "client_order_id": o.client_order_id,
            "status": o.status,
            "time_in_force": o.tif,
            "created_time": _iso(o.created),
            "completion_percentage": (
                str(o.filled_size / o.size * 100)
                if o.size
                else ("100" if o.status == "FILLED" else "0")
            ),
            "filled_size": str(o.filled_size),
            "average_filled_price": str(avg),
            "fee": "",
            "number_of_fills": str(len(o.fills)),
            "filled_value": str(o.filled_value),
            "pending_cancel": False,
            "size_in_quote": in_quote,
            "total_fees": str(o.total_fees),
            "size_inclusive_of_fees": in_quote,
            "total_value_after_fees": str(
                o.filled_value + o.total_fees if o.side == "BUY" else o.filled_value - o.total_fees
            ),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": o.order_type,
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": o.status != "OPEN",
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "",
            # the eight fields real orders carry (CCXT's captured fetchClosedOrders)
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
            "is_liquidation": False,
            "last_fill_time": _iso(o.created) if o.fills else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "cursor": str(abs(hash(o.order_id)) % 10**9),
        }

    def _poll(self, o: CbOrder) -> None:
        if o.status == "OPEN" and o.polls_left > 0:
            o.polls_left -= 1
            if o.polls_left == 0:
                o.status = o.pending_status

    def _get_order(self, path: str, q: dict[str, list[str]], d: dict[str, Any]) -> tuple[int, Any]:
        order_id = path.rsplit("/", 1)[1]
        found = next((o for o in self.orders if o.order_id == order_id), None)
        if found is None:
            message = "order with this orderID was not found"
            return 404, {"error": "NOT_FOUND", "error_details": message, "message": message}
        self._poll(found)
        if found in self.resting():
            fraction = self.tape.on_poll()
            if fraction is not None:
                self.trade_through(found.product_id, fraction)
        return 200, {"order": self._order_json(found)}

    def _list_orders(
        self, path: str, q: dict[str, list[str]], d: dict[str, Any]
    ) -> tuple[int, Any]:
        products = set(q.get("product_ids", []) + q.get("product_id", []))
        statuses = set(q.get("order_status", []))
        start = q.get("start_date")
        since = datetime.fromisoformat(start[0].replace("Z", "+00:00")).timestamp() if start else 0
        limit = int((q.get("limit") or ["100"])[0])
        found = [
            o
            for o in sorted(self.orders, key=lambda o: o.created, reverse=True)
            if (not products or o.product_id in products)
            and (not statuses or o.status in statuses)
            and o.created >= since
        ]
        for o in found:
            self._poll(o)
        offset = int((q.get("cursor") or ["0"])[0] or 0)  # the cursor: where the next page starts
        page = found[offset : offset + limit]
        more = len(found) > offset + limit
        return 200, {
            "orders": [self._order_json(o) for o in page],
            "sequence": "0",
            "has_next": more,
            "cursor": str(offset + limit) if more else "",
        }
