"""A local Binance spot exchange speaking the real wire format, under the real ``ccxt.binance``.

:class:`BinanceDouble` is a ``requests`` transport adapter: mount it on a CCXT client's
``session`` (:meth:`BinanceDouble.mount`) and every HTTP request CCXT makes -- signed by
CCXT, answered here, parsed and error-mapped by CCXT -- stays in this process. A request the
double does not handle raises :class:`UnhandledRequest`: nothing can reach the network.

Served on ``https://api.binance.com`` (or ``host=``, e.g. ``testnet.binance.vision``):
``GET /api/v3/exchangeInfo`` (the fixture markets' raw ``info`` objects, plus synthetic
BNB/SOL/LINK markets), ``/api/v3/time``,
``/api/v3/ticker/24hr`` (``symbols=[...]`` or ``symbol=``; books moved between requests
by :meth:`BinanceDouble.serve_books`), ``/api/v3/depth`` (the best
prices, then ``depth`` levels behind them), signed ``/api/v3/account``,
``POST /api/v3/order`` (market orders by ``quantity`` or ``quoteOrderQty``, LIMIT IOC
orders filled at the best price when it is within the limit, LIMIT_MAKER orders that rest
until traded through -- refused with -2010 "Order would immediately match and take." when
they would cross --, PRICE_FILTER, LOT_SIZE and NOTIONAL filters, balances),
``DELETE /api/v3/order`` (cancel; -2011 "Unknown order sent." when not open),
``GET /api/v3/order`` (``origClientOrderId`` or ``orderId``)
and ``/api/v3/myTrades``, and ``GET /api/v3/klines`` (see :meth:`BinanceDouble.add_klines`).
Signed requests need the right API key and HMAC-SHA256 signature
and a timestamp inside ``recvWindow`` of the double's clock; errors are Binance's bodies.

Faults: :meth:`BinanceDouble.inject` queues one fault for the next request to an endpoint
(timeout before or after the order is accepted, 5xx, 429, 418, truncated body, or any
Binance error body); ``liquidity`` caps what a market order fills (the rest expires, as
Binance's market orders do); ``fill_after_polls`` keeps new orders open for that many
look-ups; ``split_fills`` fills in two trades, the second one tick worse;
:meth:`BinanceDouble.trade_through` and ``tape`` (:class:`doubles.wire.Tape`) fill resting
LIMIT_MAKER orders at their price and ``maker_fee``. ``calls``
counts requests per ``(method, path)``; ``log`` keeps each request's parsed parameters.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter

from doubles.wire import Tape, crosses, http_response

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "ccxt-fixtures" / "binance"
HOST = "api.binance.com"
ZERO = Decimal(0)
# request weights (Binance spot, 2024): klines 2, exchangeInfo 20, depth 5..250, others 1..20
_WEIGHTS = {
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/account"): 20,
}
_INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


def _kline_num(value: float) -> str:
    """Binance prints kline numbers with 8 decimals."""
    return f"{value:.8f}"


class UnhandledRequest(AssertionError):
    """The code under test made a request the double does not serve."""


class Fault(Enum):
    TIMEOUT_BEFORE = "timeout_before"  # the request never reached the exchange
    TIMEOUT_AFTER = "timeout_after"  # processed (order placed), the response was lost
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    HTTP_429 = "http_429"
    HTTP_418 = "http_418"
    TRUNCATED = "truncated"  # processed, body cut in half


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    signed: bool


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    orig_qty: Decimal
    executed_qty: Decimal
    quote_qty: Decimal
    status: str
    time_ms: int
    orig_quote_qty: Decimal = ZERO
    fills: list[dict[str, str]] = field(default_factory=list)
    polls_left: int = 0
    pending: Callable[[], None] | None = None
    limit_price: Decimal | None = None  # LIMIT IOC and LIMIT_MAKER orders only
    order_type: str = "MARKET"  # MARKET, LIMIT (IOC) or LIMIT_MAKER (post-only, GTC)
    time_in_force: str = "GTC"


def fixture_markets() -> dict[str, Any]:
    """The fixture's markets, unified symbol -> CCXT market (with raw ``info``)."""
    data = json.loads((FIXTURES / "binance_markets.json").read_text())
    markets: dict[str, Any] = data["markets"]
    return markets


def _synthetic(template: dict[str, Any], base: str, step: str) -> dict[str, Any]:
    info = copy.deepcopy(template)
    info["symbol"] = f"{base}USDT"
    info["baseAsset"] = base
    for f in info["filters"]:
        if f["filterType"] == "LOT_SIZE":
            f["minQty"] = step
            f["stepSize"] = step
    return info


def exchange_symbols() -> list[dict[str, Any]]:
    """Raw ``exchangeInfo`` symbol objects: the 7 fixture markets plus BNB, SOL, LINK."""
    infos = [m["info"] for m in fixture_markets().values()]
    eth = next(i for i in infos if i["symbol"] == "ETHUSDT")
    extra = [("BNB", "0.00100000"), ("SOL", "0.00100000"), ("LINK", "0.01000000")]
    return infos + [_synthetic(eth, base, step) for base, step in extra]


def body_text(request: requests.PreparedRequest) -> str:
    """The request body as text ("" when there is none)."""
    body = request.body
    if isinstance(body, bytes):
        return body.decode()
    return body if isinstance(body, str) else ""


def _d(text: str) -> str:
    """Binance prints numbers with 8 decimals."""
    return f"{Decimal(text):.8f}"


class BinanceDouble(BaseAdapter):
    def __init__(
        self,
        api_key: str,
        secret: str,
        *,
        balances: dict[str, str] | None = None,
        books: dict[str, tuple[str, str]] | None = None,
        taker_fee: str = "0.001",
        maker_fee: str | None = None,
        bnb_fees: bool = False,
        clock_offset_ms: int = 0,
        host: str = HOST,
    ) -> None:
        super().__init__()
        self.host = host
        self.api_key = api_key
        self.secret = secret
        self.symbols = {s["symbol"]: s for s in exchange_symbols()}
        self.balances: dict[str, Decimal] = {a: Decimal(v) for a, v in (balances or {}).items()}
        # symbol id -> (bid, ask); last trade = ask
        self.books: dict[str, tuple[Decimal, Decimal]] = {
            s: (Decimal(b), Decimal(a)) for s, (b, a) in (books or {}).items()
        }
        self.ticker_age_ms: dict[str, int] = {}
        # symbol id -> the books the next tickers requests move to, one each (serve_books)
        self.book_script: dict[str, list[tuple[Decimal, Decimal]]] = {}
        # symbol id -> most base units a market order can fill (the rest expires)
        self.liquidity: dict[str, Decimal] = {}
        # symbol id -> (price step, quantity per level) of the book behind the best prices
        # (served by /api/v3/depth; market orders still fill at the best price)
        self.depth: dict[str, tuple[Decimal, Decimal]] = {}
        self.taker_fee = Decimal(taker_fee)
        self.maker_fee = Decimal(maker_fee) if maker_fee is not None else self.taker_fee
        # scripted trades through resting LIMIT_MAKER orders (see doubles.wire.Tape)
        self.tape = Tape()
        self.bnb_fees = bnb_fees
        self.bnb_discount = Decimal("0.75")
        self.clock_offset_ms = clock_offset_ms
        self.fill_after_polls = 0
        self.split_fills = False
        self.orders: list[Order] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.log: list[Recorded] = []
        self._faults: dict[tuple[str, str], list[Fault | tuple[int, int, str] | None]] = {}
        self._next_id = 1000
        self._next_trade = 5000
        # klines: (symbol id, interval) -> int64 open times (ms) and the OHLCV rows (floats)
        self.klines: dict[tuple[str, str], tuple[Any, Any]] = {}
        # request weight per window (Binance: REQUEST_WEIGHT 6000 per minute); None: unlimited
        self.weight_limit: int | None = None
        self.weight_window_ms = 60_000
        self.weight_used = 0
        self._weight_window = -1
        self._banned_until_ms = 0
        # (double time ms, wall time s, params) of every klines request, and the statuses
        self.kline_requests: list[tuple[int, float, dict[str, str]]] = []
        self.kline_statuses: Counter[int] = Counter()

    # -- set-up ---------------------------------------------------------------------------

    def mount(self, client: Any) -> BinanceDouble:
        client.session.mount("https://", self)
        client.session.mount("http://", self)
        return self

    def set_book(self, symbol_id: str, bid: str, ask: str) -> None:
        self.books[symbol_id] = (Decimal(bid), Decimal(ask))

    def serve_books(self, symbol_id: str, books: list[tuple[str, str]]) -> None:
        """Move ``symbol_id``'s book (bid, ask) to each of ``books`` in turn, one per
        ``/api/v3/ticker/24hr`` request (before it is answered); the last one then stays."""
        self.book_script[symbol_id] = [(Decimal(b), Decimal(a)) for b, a in books]

    def inject(
        self, method: str, path: str, fault: Fault | tuple[int, int, str], *, after: int = 0
    ) -> None:
        """Make the next ``method path`` request (after ``after`` good ones) fail with ``fault``.

        A tuple ``(http_status, binance_code, msg)`` answers with that Binance error body.
        """
        queue = self._faults.setdefault((method, path), [])
        queue.extend([None] * after)
        queue.append(fault)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def placed(self, path: str = "/api/v3/order") -> list[Recorded]:
        return [r for r in self.log if r.method == "POST" and r.path == path]

    # -- transport ------------------------------------------------------------------------

    def close(self) -> None:
        pass

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        method = request.method or "GET"
        if url.scheme != "https" or url.hostname != self.host:
            raise UnhandledRequest(f"no network in tests: {method} {request.url}")
        query = url.query
        body = body_text(request)
        payload = query + body  # Binance signs the query string followed by the body
        params = dict(parse_qsl(query)) | dict(parse_qsl(body))
        path = url.path
        signed = "signature" in params
        self.calls[(method, path)] += 1
        self.log.append(Recorded(method, path, params, signed))
        fault = self._next_fault(method, path)
        if fault is Fault.TIMEOUT_BEFORE:
            raise requests.exceptions.ConnectTimeout(f"injected: connect timeout {path}")
        if isinstance(fault, tuple):
            return self._error(request, fault[0], fault[1], fault[2])
        if fault in (Fault.HTTP_500, Fault.HTTP_503):
            status = 500 if fault is Fault.HTTP_500 else 503
            return self._respond(request, status, "<html>Service Unavailable</html>", "text/html")
        if fault in (Fault.HTTP_429, Fault.HTTP_418):
            status = 429 if fault is Fault.HTTP_429 else 418
            return self._error(request, status, -1003, "Too many requests; IP banned.")
        limited = self._weigh(request, method, path, params)
        if limited is not None:
            return limited
        if (method, path) == ("GET", "/api/v3/klines") and self.klines:  # after add_klines
            return self._klines_response(request, params, fault)
        handler = self._route(method, path)
        if handler is None:
            raise UnhandledRequest(f"the Binance double does not serve {method} {path}")
        if handler[1]:
            problem = self._check_signature(request, payload, params)
            if problem is not None:
                return self._error(request, *problem)
        status, data = handler[0](params)
        if fault is Fault.TIMEOUT_AFTER:
            raise requests.exceptions.ReadTimeout(f"injected: read timeout {path}")
        text = json.dumps(data)
        if fault is Fault.TRUNCATED:
            text = text[: len(text) // 2]
        return self._respond(request, status, text)

    def _next_fault(self, method: str, path: str) -> Fault | tuple[int, int, str] | None:
        queue = self._faults.get((method, path))
        return queue.pop(0) if queue else None

    def _route(
        self, method: str, path: str
    ) -> tuple[Callable[[dict[str, str]], tuple[int, Any]], bool] | None:
        routes: dict[tuple[str, str], tuple[Callable[[dict[str, str]], tuple[int, Any]], bool]] = {
            ("GET", "/api/v3/exchangeInfo"): (self._exchange_info, False),
            ("GET", "/api/v3/time"): (lambda p: (200, {"serverTime": self.now_ms()}), False),
            ("GET", "/api/v3/ticker/24hr"): (self._ticker_24hr, False),
            ("GET", "/api/v3/depth"): (self._depth, False),
            ("GET", "/api/v3/account"): (self._account, True),
            ("POST", "/api/v3/order"): (self._new_order, True),
            ("GET", "/api/v3/order"): (self._query_order, True),
            ("DELETE", "/api/v3/order"): (self._cancel_order, True),
            ("GET", "/api/v3/myTrades"): (self._my_trades, True),
        }
        return routes.get((method, path))

    def _check_signature(
        self, request: requests.PreparedRequest, payload: str, params: dict[str, str]
    ) -> tuple[int, int, str] | None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return 401, -2015, "Invalid API-key, IP, or permissions for action."
        signed_part, _, signature = payload.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), signed_part.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return 400, -1022, "Signature for this request is not valid."
        stamp = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        now = self.now_ms()
        if not (stamp < now + 1000 and now - stamp <= window):
            return 400, -1021, "Timestamp for this request is outside of the recvWindow."
        return None

    def _respond(
        self,
        request: requests.PreparedRequest,
        status: int,
        text: str,
        content_type: str = "application/json;charset=UTF-8",
    ) -> requests.Response:
        return http_response(request, status, text, content_type)

    def _error(
        self, request: requests.PreparedRequest, status: int, code: int, msg: str
    ) -> requests.Response:
        return self._respond(request, status, json.dumps({"code": code, "msg": msg}))

    # -- public endpoints -----------------------------------------------------------------

    def _exchange_info(self, params: dict[str, str]) -> tuple[int, Any]:
        return 200, {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": list(self.symbols.values()),
        }

    def _ticker(self, symbol: str) -> dict[str, Any]:
        bid, ask = self.books[symbol]
        close = self.now_ms() - self.ticker_age_ms.get(symbol, 50)
        return {
            "symbol": symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _d(str(ask)),
            "prevClosePrice": _d(str(ask)),
            "lastPrice": _d(str(ask)),
            "lastQty": "0.10000000",
            "bidPrice": _d(str(bid)),
            "bidQty": "5.00000000",
            "askPrice": _d(str(ask)),
            "askQty": "5.00000000",
            "openPrice": _d(str(ask)),
            "highPrice": _d(str(ask)),
            "lowPrice": _d(str(bid)),
            "volume": "1000.00000000",
            "quoteVolume": "1000000.00000000",
            "openTime": close - 86_400_000,
            "closeTime": close,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def _ticker_24hr(self, params: dict[str, str]) -> tuple[int, Any]:
        for symbol, script in self.book_script.items():
            if script:
                self.books[symbol] = script.pop(0)
        if "symbols" in params:
            wanted = json.loads(params["symbols"])
        elif "symbol" in params:
            wanted = [params["symbol"]]
        else:
            wanted = sorted(self.books)
        unknown = [s for s in wanted if s not in self.books]
        if unknown:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        tickers = [self._ticker(s) for s in wanted]
        return 200, tickers[0] if "symbol" in params else tickers

    def _depth(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        if symbol not in self.books:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        limit = int(params.get("limit", "100"))
        bid, ask = self.books[symbol]
        step, qty = self.depth.get(symbol, (ZERO, Decimal(1000)))
        levels = range(limit if step > 0 else 1)
        return 200, {
            "lastUpdateId": 1027024,
            "bids": [[_d(str(bid - i * step)), _d(str(qty))] for i in levels],
            "asks": [[_d(str(ask + i * step)), _d(str(qty))] for i in levels],
        }

    # -- klines and request weight ---------------------------------------------------------

    def add_klines(self, symbol_id: str, interval: str, path: Path) -> None:
        """Serve the candles of a ``timestamp,open,high,low,close,volume`` CSV (``.csv.gz``
        too) as ``symbol_id`` ``interval`` klines. Candles opening after :meth:`now_ms` are
        not served yet; the one containing it is served still open (partial values)."""
        import numpy as np
        import pandas as pd

        frame = pd.read_csv(path)
        times = frame["timestamp"].to_numpy(dtype="int64")
        rows = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
        self.klines[(symbol_id, interval)] = (np.ascontiguousarray(times), rows)

    def _weigh(
        self, request: requests.PreparedRequest, method: str, path: str, params: dict[str, str]
    ) -> requests.Response | None:
        """Count the request's weight; 429 over the limit, 418 when asked again too soon."""
        now = self.now_ms()
        window = now // self.weight_window_ms
        if window != self._weight_window:
            self._weight_window, self.weight_used = window, 0
        weight = _WEIGHTS.get((method, path), 1)
        if self.weight_limit is None:
            self.weight_used += weight
            return None
        if now < self._banned_until_ms:
            # Binance: repeatedly violating the limit after a 429 earns an IP ban (418)
            self._banned_until_ms = now + 2 * self.weight_window_ms
            return self._limited(request, 418, now, "Way too much request weight used; IP banned")
        if self.weight_used + weight > self.weight_limit:
            self._banned_until_ms = (window + 1) * self.weight_window_ms
            return self._limited(request, 429, now, "Too much request weight used")
        self.weight_used += weight
        return None

    def _limited(
        self, request: requests.PreparedRequest, status: int, now: int, msg: str
    ) -> requests.Response:
        if urlsplit(request.url or "").path == "/api/v3/klines":
            self.kline_statuses[status] += 1
        retry_after = max(1, -(-(self._banned_until_ms - now) // 1000))
        response = self._error(
            request,
            status,
            -1003,
            f"{msg}; current limit is {self.weight_limit} request weight per "
            f"{self.weight_window_ms // 1000} SECOND. Please use WebSocket Streams for live "
            "updates to avoid polling the API.",
        )
        response.headers["Retry-After"] = str(retry_after)
        response.headers["x-mbx-used-weight-1m"] = str(self.weight_used)
        return response

    def _klines_response(
        self,
        request: requests.PreparedRequest,
        params: dict[str, str],
        fault: Fault | tuple[int, int, str] | None,
    ) -> requests.Response:
        self.kline_requests.append((self.now_ms(), time.time(), dict(params)))
        status, data = self._klines(params)
        self.kline_statuses[status] += 1
        if fault is Fault.TIMEOUT_AFTER:
            raise requests.exceptions.ReadTimeout("injected: read timeout /api/v3/klines")
        text = json.dumps(data)
        if fault is Fault.TRUNCATED:
            text = text[: len(text) // 2]
        response = self._respond(request, status, text)
        response.headers["x-mbx-used-weight-1m"] = str(self.weight_used)
        return response

    def _klines(self, params: dict[str, str]) -> tuple[int, Any]:
        """Binance's rules: ``limit`` default 500, max 1000; ``startTime``/``endTime`` bound
        open times (both inclusive); with neither, the latest ``limit`` candles."""
        import numpy as np

        symbol, interval = params.get("symbol", ""), params.get("interval", "")
        if symbol not in self.symbols:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if interval not in _INTERVAL_MS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        limit = int(params.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Invalid limit."}
        start = int(params["startTime"]) if "startTime" in params else None
        end = int(params["endTime"]) if "endTime" in params else None
        if start is not None and end is not None and start > end:
            return 400, {"code": -1023, "msg": "Start time is greater than end time."}
        times, rows = self.klines.get((symbol, interval), (np.zeros(0, "int64"), None))
        step = _INTERVAL_MS[interval]
        now = self.now_ms()
        hi = int(np.searchsorted(times, now, side="right"))  # opened by now
        if end is not None:
            hi = min(hi, int(np.searchsorted(times, end, side="right")))
        lo = int(np.searchsorted(times, start, side="left")) if start is not None else 0
        if start is None:
            lo = max(lo, hi - limit)
        hi = min(hi, lo + limit) if hi > lo else lo
        out = []
        for i in range(lo, hi):
            t = int(times[i])
            o, h, low, c, v = (float(x) for x in rows[i])
            close_time = t + step - 1
            if t + step > now:  # still open: the part of the candle traded so far
                h = low = c = o
                v *= (now - t) / step
            out.append(
                [
                    t,
                    _kline_num(o),
                    _kline_num(h),
                    _kline_num(low),
                    _kline_num(c),
                    _kline_num(v),
                    close_time,
                    _kline_num(v * c),
                    1000,
                    _kline_num(v / 2),
                    _kline_num(v * c / 2),
                    "0",
                ]
            )
        return 200, out

    # -- signed endpoints -----------------------------------------------------------------

    def _account(self, params: dict[str, str]) -> tuple[int, Any]:
        rate = f"{self.taker_fee:.8f}"
        return 200, {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": rate,
                "taker": rate,
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                for a, v in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"],
            "uid": 365859102,
        }

    def _filter(self, info: dict[str, Any], kind: str) -> dict[str, str] | None:
        return next((f for f in info["filters"] if f["filterType"] == kind), None)

    def _new_order(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        info = self.symbols.get(symbol)
        if info is None or symbol not in self.books:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        limit_price: Decimal | None = None
        kind = params.get("type")
        if (kind == "LIMIT" and params.get("timeInForce") == "IOC") or kind == "LIMIT_MAKER":
            if kind == "LIMIT_MAKER" and "timeInForce" in params:
                return 400, {
                    "code": -1106,
                    "msg": "Parameter 'timeInForce' sent when not required.",
                }
            limit_price = Decimal(params.get("price", "0"))
            tick = Decimal((self._filter(info, "PRICE_FILTER") or {}).get("tickSize", "0"))
            if limit_price <= 0 or (tick > 0 and limit_price % tick != 0):
                return 400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
        elif params.get("type") != "MARKET":
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        side = params.get("side", "")
        cid = params.get("newClientOrderId", "")
        if any(
            o.client_order_id == cid and o.status in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders
        ):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        if kind == "LIMIT_MAKER":
            assert limit_price is not None
            return self._new_resting(params, info, limit_price)
        bid, ask = self.books[symbol]
        price = ask if side == "BUY" else bid
        lot = self._filter(info, "LOT_SIZE") or {}
        step = Decimal(lot.get("stepSize", "0"))
        if "quoteOrderQty" in params:
            if not info.get("quoteOrderQtyMarketAllowed"):
                return 400, {
                    "code": -1013,
                    "msg": "Quote order qty market orders are not support for this symbol.",
                }
            quote_qty = Decimal(params["quoteOrderQty"])
            qty = (quote_qty / price / step).to_integral_value(ROUND_DOWN) * step
        else:
            quote_qty = ZERO
            qty = Decimal(params.get("quantity", "0"))
            if qty.as_tuple().exponent < -int(info["baseAssetPrecision"]):  # type: ignore[operator]
                return 400, {"code": -1111, "msg": "Parameter 'quantity' has too much precision."}
        problem = self._check_filters(info, qty, price)
        if problem:
            return 400, {"code": -1013, "msg": f"Filter failure: {problem}"}
        base, quote = info["baseAsset"], info["quoteAsset"]
        cost = qty * price
        pay, pay_amount = (quote, cost) if side == "BUY" else (base, qty)
        if self.balances.get(pay, ZERO) < pay_amount:
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        self._next_id += 1
        order = Order(
            self._next_id, cid, symbol, side, qty, ZERO, ZERO, "NEW", self.now_ms(), quote_qty
        )
        order.limit_price = limit_price
        if limit_price is not None:
            order.order_type, order.time_in_force = "LIMIT", "IOC"
        self.orders.append(order)
        order.pending = lambda: self._execute(order, info, price)
        order.polls_left = self.fill_after_polls
        if order.polls_left == 0:
            order.pending()
        return 200, self._order_json(order, full=True)

    def _new_resting(
        self, params: dict[str, str], info: dict[str, Any], price: Decimal
    ) -> tuple[int, Any]:
        """A LIMIT_MAKER order: refused if it would take liquidity, else it rests (NEW)."""
        symbol, side = params["symbol"], params.get("side", "")
        if "LIMIT_MAKER" not in info.get("orderTypes", []):
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        qty = Decimal(params.get("quantity", "0"))
        if qty.as_tuple().exponent < -int(info["baseAssetPrecision"]):  # type: ignore[operator]
            return 400, {"code": -1111, "msg": "Parameter 'quantity' has too much precision."}
        bid, ask = self.books[symbol]
        if crosses(side, price, bid, ask):
            return 400, {"code": -2010, "msg": "Order would immediately match and take."}
        problem = self._check_filters(info, qty, price, market=False)
        if problem:
            return 400, {"code": -1013, "msg": f"Filter failure: {problem}"}
        pay, pay_amount = (
            (info["quoteAsset"], qty * price) if side == "BUY" else (info["baseAsset"], qty)
        )
        if self.balances.get(pay, ZERO) < pay_amount:
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        self._next_id += 1
        order = Order(
            self._next_id,
            params.get("newClientOrderId", ""),
            symbol,
            side,
            qty,
            ZERO,
            ZERO,
            "NEW",
            self.now_ms(),
            limit_price=price,
            order_type="LIMIT_MAKER",
        )
        self.orders.append(order)
        return 200, self._order_json(order, full=True)

    def resting(self, symbol_id: str | None = None) -> list[Order]:
        """The LIMIT_MAKER orders still on the book (of ``symbol_id``, or all)."""
        return [
            o
            for o in self.orders
            if o.order_type == "LIMIT_MAKER"
            and o.status in ("NEW", "PARTIALLY_FILLED")
            and symbol_id in (None, o.symbol)
        ]

    def trade_through(self, symbol_id: str | None, fraction: Decimal | str) -> None:
        """The market trades through the resting orders of ``symbol_id`` (None: all): each
        fills ``fraction`` of its original quantity more (capped at what is left, truncated
        to the step), at its limit price, as maker (``maker_fee``)."""
        for order in self.resting(symbol_id):
            info = self.symbols[order.symbol]
            step = Decimal((self._filter(info, "LOT_SIZE") or {}).get("stepSize", "0"))
            qty = min(order.orig_qty * Decimal(fraction), order.orig_qty - order.executed_qty)
            if step > 0:
                qty = (qty / step).to_integral_value(ROUND_DOWN) * step
            if qty <= 0:
                continue
            assert order.limit_price is not None
            base, quote = info["baseAsset"], info["quoteAsset"]
            self._fill(order, base, quote, qty, order.limit_price, rate=self.maker_fee)
            order.status = "FILLED" if order.executed_qty == order.orig_qty else "PARTIALLY_FILLED"

    def _cancel_order(self, params: dict[str, str]) -> tuple[int, Any]:
        """DELETE /api/v3/order: cancel an open order by ``orderId`` or
        ``origClientOrderId``; -2011 "Unknown order sent." when it is not open."""
        if self.tape.at_cancel is not None:  # the market fills it while the cancel is in flight
            fraction, self.tape.at_cancel = self.tape.at_cancel, None
            self.trade_through(params.get("symbol"), fraction)
        order = self._find(params)
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        order.status = "CANCELED"
        self._next_id += 1
        return 200, {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": f"cancel{self._next_id}",
            "transactTime": self.now_ms(),
            "price": _d(str(order.limit_price or 0)),
            "origQty": _d(str(order.orig_qty)),
            "executedQty": _d(str(order.executed_qty)),
            "origQuoteOrderQty": _d(str(order.orig_quote_qty)),
            "cummulativeQuoteQty": _d(str(order.quote_qty)),
            "status": order.status,
            "timeInForce": order.time_in_force,
            "type": order.order_type,
            "side": order.side,
            "selfTradePreventionMode": "NONE",
        }

    def _check_filters(
        self, info: dict[str, Any], qty: Decimal, price: Decimal, *, market: bool = True
    ) -> str | None:
        lot = self._filter(info, "LOT_SIZE")
        if lot:
            step = Decimal(lot["stepSize"])
            if qty < Decimal(lot["minQty"]) or qty > Decimal(lot["maxQty"]):
                return "LOT_SIZE"
            if step > 0 and (qty - Decimal(lot["minQty"])) % step != 0:
                return "LOT_SIZE"
        market_lot = self._filter(info, "MARKET_LOT_SIZE")
        if (
            market
            and market_lot
            and Decimal(market_lot["maxQty"]) > 0
            and qty > Decimal(market_lot["maxQty"])
        ):
            return "MARKET_LOT_SIZE"
        notional = self._filter(info, "NOTIONAL")
        if (
            notional
            and (notional.get("applyMinToMarket") or not market)
            and qty * price < Decimal(notional["minNotional"])
        ):
            return "NOTIONAL"
        legacy = self._filter(info, "MIN_NOTIONAL")
        if legacy and legacy.get("applyToMarket") and qty * price < Decimal(legacy["minNotional"]):
            return "MIN_NOTIONAL"
        return None

    def _execute(self, order: Order, info: dict[str, Any], price: Decimal) -> None:
        base, quote = info["baseAsset"], info["quoteAsset"]
        qty = min(order.orig_qty, self.liquidity.get(order.symbol, order.orig_qty))
        limit = order.limit_price
        if limit is not None and (price > limit if order.side == "BUY" else price < limit):
            qty = ZERO  # IOC: the best price is beyond the limit, nothing fills
        if qty <= 0:
            order.status, order.pending = "EXPIRED", None
            return
        for leg_qty, leg_price in self._legs(info, order.side, qty, price):
            self._fill(order, base, quote, leg_qty, leg_price)
        order.status = "FILLED" if qty == order.orig_qty else "EXPIRED"
        order.pending = None

    def _legs(
        self, info: dict[str, Any], side: str, qty: Decimal, price: Decimal
    ) -> list[tuple[Decimal, Decimal]]:
        """One fill, or two (half at ``price``, the rest one tick worse) with split_fills."""
        step = Decimal((self._filter(info, "LOT_SIZE") or {}).get("stepSize", "0"))
        tick = Decimal((self._filter(info, "PRICE_FILTER") or {}).get("tickSize", "0"))
        if not self.split_fills or step <= 0 or qty < 2 * step:
            return [(qty, price)]
        first = (qty / 2 / step).to_integral_value(ROUND_DOWN) * step
        worse = price + tick if side == "BUY" else price - tick
        return [(first, price), (qty - first, worse)]

    def _fill(
        self,
        order: Order,
        base: str,
        quote: str,
        qty: Decimal,
        price: Decimal,
        rate: Decimal | None = None,
    ) -> None:
        rate = self.taker_fee if rate is None else rate
        cost = qty * price
        fee_asset, fee = (base, qty * rate) if order.side == "BUY" else (quote, cost * rate)
        if self.bnb_fees and "BNBUSDT" in self.books:
            bnb_fee = (cost * rate * self.bnb_discount / self.books["BNBUSDT"][1]).quantize(
                Decimal("0.00000001"), ROUND_DOWN
            )
            if self.balances.get("BNB", ZERO) >= bnb_fee:
                fee_asset, fee = "BNB", bnb_fee
        fee = fee.quantize(Decimal("0.00000001"), ROUND_DOWN)
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self.balances.get(base, ZERO) + sign * qty
        self.balances[quote] = self.balances.get(quote, ZERO) - sign * cost
        self.balances[fee_asset] = self.balances.get(fee_asset, ZERO) - fee
        self._next_trade += 1
        order.fills.append(
            {
                "price": _d(str(price)),
                "qty": _d(str(qty)),
                "commission": _d(str(fee)),
                "commissionAsset": fee_asset,
                "tradeId": self._next_trade,  # type: ignore[dict-item]
            }
        )
        order.executed_qty += qty
        order.quote_qty += cost

    def _order_json(self, order: Order, *, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": _d(str(order.limit_price or 0)),
            "origQty": _d(str(order.orig_qty)),
            "executedQty": _d(str(order.executed_qty)),
            "cummulativeQuoteQty": _d(str(order.quote_qty)),
            "status": order.status,
            "timeInForce": order.time_in_force,
            "type": order.order_type,
            "side": order.side,
        }
        if full:
            out["transactTime"] = order.time_ms
            out["fills"] = order.fills
        else:
            out |= {
                "stopPrice": "0.00000000",
                "icebergQty": "0.00000000",
                "time": order.time_ms,
                "updateTime": order.time_ms,
                "isWorking": True,
                "workingTime": order.time_ms,
                "origQuoteOrderQty": _d(str(order.orig_quote_qty)),
                "selfTradePreventionMode": "NONE",
            }
        return out

    def _find(self, params: dict[str, str]) -> Order | None:
        cid, oid = params.get("origClientOrderId"), params.get("orderId")
        for order in self.orders:
            if order.symbol != params.get("symbol"):
                continue
            if (cid and order.client_order_id == cid) or (oid and str(order.order_id) == oid):
                return order
        return None

    def _query_order(self, params: dict[str, str]) -> tuple[int, Any]:
        order = self._find(params)
        if order is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        if order.pending is not None:
            order.polls_left -= 1
            if order.polls_left <= 0:
                order.pending()
        if order in self.resting():
            fraction = self.tape.on_poll()
            if fraction is not None:
                self.trade_through(order.symbol, fraction)
        return 200, self._order_json(order, full=False)

    def _my_trades(self, params: dict[str, str]) -> tuple[int, Any]:
        order = self._find(params)
        if order is None:
            return 200, []
        return 200, [
            {
                "symbol": order.symbol,
                "id": f["tradeId"],
                "orderId": order.order_id,
                "orderListId": -1,
                "price": f["price"],
                "qty": f["qty"],
                "quoteQty": _d(str(Decimal(f["price"]) * Decimal(f["qty"]))),
                "commission": f["commission"],
                "commissionAsset": f["commissionAsset"],
                "time": order.time_ms,
                "isBuyer": order.side == "BUY",
                "isMaker": order.order_type == "LIMIT_MAKER",
                "isBestMatch": True,
            }
            for f in order.fills
        ]
