"""A local Kraken spot exchange speaking the wire format CCXT's ``kraken`` expects.

Like :mod:`doubles.binance`: a ``requests`` transport adapter mounted on the client's
``session``; CCXT signs, parses and maps errors for real; an unhandled request raises.
No recorded Kraken fixtures exist in ../shared, so the bodies follow the examples in CCXT's
own kraken.py (AssetPairs, Assets, Ticker, BalanceEx, AddOrder, Open/ClosedOrders) and
Kraken's documented error strings (``{"error": ["EOrder:Insufficient funds"]}``, HTTP 200),
held against the responses CCXT captured from the real API (``ts/src/test/static/
response/kraken.json`` and ``markets/kraken.json`` in the ccxt repository, see
``tests/adapters/test_doubles_vs_ccxt.py``): order numbers are strings (``userref``
"0", ``opentm``/``closetm`` "1705260547.472000", ``cost``/``fee`` at the pair's
``cost_decimals``), a closed order lists its ``trades``, AssetPairs' decimals are strings,
and the fee is rounded half up to ``cost_decimals`` (captured: cost 7.105741 USDT at
0.26 % -> fee "0.018475", not the 0.018474 a truncation gives).

Served on ``https://api.kraken.com``: ``GET /0/public/Assets``, ``/0/public/AssetPairs``,
``/0/public/Ticker?pair=...``, ``/0/public/Depth`` (``depth`` levels behind the best
prices); signed ``POST /0/private/BalanceEx``, ``AddOrder`` (market
orders, and GTC limit orders that rest until :meth:`KrakenDouble.trade_through` or ``tape``
fills them -- with ``oflags`` post one that would cross is accepted and cancelled at once,
reason "Post only order" --; ``cl_ord_id``, ``oflags`` fciq/fcib, ``ordermin``/``costmin``),
``CancelOrder`` (``txid`` or ``cl_ord_id``; "EOrder:Unknown order" when not open),
``ClosedOrders`` (closed, canceled and expired orders) and ``OpenOrders`` (``cl_ord_id``
filter). Signed requests need the right ``API-Key``,
``API-Sign`` (HMAC-SHA512 of path + SHA256(nonce + body) with the base64 secret) and a
nonce above the last one seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter

from doubles.binance import Fault, Recorded, UnhandledRequest, body_text
from doubles.wire import Tape, crosses, http_response

HOST = "api.kraken.com"
ZERO = Decimal(0)
COST_DECIMALS = 5  # every pair served here (XBTUSD, ETHUSD, ... as on the real API)

# asset id -> (altname, decimals)
ASSETS = {
    "XXBT": ("XBT", 10),
    "XETH": ("ETH", 10),
    "ZUSD": ("USD", 4),
    "SOL": ("SOL", 10),
    "USDT": ("USDT", 8),
}
# pair id -> (altname, base id, quote id, pair_decimals, lot_decimals, ordermin, costmin)
PAIRS = {
    "XXBTZUSD": ("XBTUSD", "XXBT", "ZUSD", 1, 8, "0.00005", "0.5"),
    "XETHZUSD": ("ETHUSD", "XETH", "ZUSD", 2, 8, "0.002", "0.5"),
    "SOLUSD": ("SOLUSD", "SOL", "ZUSD", 2, 8, "0.02", "0.5"),
    "XBTUSDT": ("XBTUSDT", "XXBT", "USDT", 1, 8, "0.00005", "0.5"),
    "ETHUSDT": ("ETHUSDT", "XETH", "USDT", 2, 8, "0.002", "0.5"),
}


def asset_pair(pair_id: str) -> dict[str, Any]:
    alt, base, quote, pair_dec, lot_dec, ordermin, costmin = PAIRS[pair_id]
    return {
        "altname": alt,
        "wsname": f"{ASSETS[base][0]}/{ASSETS[quote][0]}",
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": str(COST_DECIMALS),
        "pair_decimals": str(pair_dec),
        "lot_decimals": str(lot_dec),
        "lot_multiplier": "1",
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24]],
        "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14]],
        "fee_volume_currency": "ZUSD",
        "margin_call": "80",
        "margin_stop": "40",
        "ordermin": ordermin,
        "costmin": costmin,
        "tick_size": str(Decimal(1).scaleb(-pair_dec)),
        "status": "online",
    }


def kraken_fee(fee: Decimal, in_base: bool) -> Decimal:
    """A fee as Kraken books it: half up to the pair's cost_decimals in the quote (the
    captured 0.018475), to 8 decimals in the base (``fcib``)."""
    quantum = Decimal("0.00000001") if in_base else Decimal(1).scaleb(-COST_DECIMALS)
    return fee.quantize(quantum, ROUND_HALF_UP)


@dataclass
class KrakenOrder:
    txid: str
    cl_ord_id: str
    pair: str
    side: str
    volume: Decimal
    price: Decimal
    fee: Decimal
    oflags: str
    opentm: float
    status: str = "closed"
    ordertype: str = "market"
    limit: Decimal = ZERO  # limit orders: the limit price
    executed: Decimal | None = None  # limit orders: volume filled so far (market: all)
    exec_cost: Decimal = ZERO  # limit orders: quote value filled so far
    reason: str | None = None


class KrakenDouble(BaseAdapter):
    def __init__(
        self,
        api_key: str,
        secret_b64: str,
        *,
        balances: dict[str, str] | None = None,
        books: dict[str, tuple[str, str]] | None = None,
        taker_fee: str = "0.004",
        maker_fee: str | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = base64.b64decode(secret_b64)
        self.balances = {a: Decimal(v) for a, v in (balances or {}).items()}
        self.books = {p: (Decimal(b), Decimal(a)) for p, (b, a) in (books or {}).items()}
        self.taker_fee = Decimal(taker_fee)
        self.maker_fee = Decimal(maker_fee) if maker_fee is not None else self.taker_fee
        # scripted trades through resting limit orders (see doubles.wire.Tape)
        self.tape = Tape()
        self.last_nonce = 0
        # pair id -> (price step, volume per level) behind the best prices (/0/public/Depth;
        # market orders still fill at the best price)
        self.depth: dict[str, tuple[Decimal, Decimal]] = {}
        self.orders: list[KrakenOrder] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.log: list[Recorded] = []
        self._faults: dict[tuple[str, str], list[Fault | None]] = {}
        self._next = 1

    def mount(self, client: Any) -> KrakenDouble:
        client.session.mount("https://", self)
        client.session.mount("http://", self)
        return self

    def inject(self, method: str, path: str, fault: Fault, *, after: int = 0) -> None:
        """Make the next ``method path`` request (after ``after`` good ones) fail with
        ``fault`` (TIMEOUT_BEFORE or TIMEOUT_AFTER)."""
        queue = self._faults.setdefault((method, path), [])
        queue.extend([None] * after)
        queue.append(fault)

    def placed(self) -> list[Recorded]:
        return [r for r in self.log if r.path == "/0/private/AddOrder"]

    def close(self) -> None:
        pass

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        method = request.method or "GET"
        if url.scheme != "https" or url.hostname != HOST:
            raise UnhandledRequest(f"no network in tests: {method} {request.url}")
        body = body_text(request)
        params = dict(parse_qsl(url.query)) | dict(parse_qsl(body))
        path = url.path
        self.calls[(method, path)] += 1
        self.log.append(Recorded(method, path, params, "nonce" in params))
        queue = self._faults.get((method, path))
        fault = queue.pop(0) if queue else None
        if fault is Fault.TIMEOUT_BEFORE:
            raise requests.exceptions.ConnectTimeout(f"injected: connect timeout {path}")
        routes: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/0/public/Assets"): self._assets,
            ("GET", "/0/public/AssetPairs"): self._asset_pairs,
            ("GET", "/0/public/Ticker"): self._ticker,
            ("GET", "/0/public/Depth"): self._depth,
            ("POST", "/0/private/BalanceEx"): self._balance,
            ("POST", "/0/private/AddOrder"): self._add_order,
            ("POST", "/0/private/ClosedOrders"): lambda p: self._orders(p, "closed"),
            ("POST", "/0/private/OpenOrders"): lambda p: self._orders(p, "open"),
            ("POST", "/0/private/CancelOrder"): self._cancel_order,
        }
        handler = routes.get((method, path))
        if handler is None:
            raise UnhandledRequest(f"the Kraken double does not serve {method} {path}")
        if path.startswith("/0/private/"):
            problem = self._check_signature(request, path, body, params)
            if problem is not None:
                return self._respond(request, {"error": [problem]})
        result = handler(params)
        if fault is Fault.TIMEOUT_AFTER:
            raise requests.exceptions.ReadTimeout(f"injected: read timeout {path}")
        if isinstance(result, str):
            return self._respond(request, {"error": [result]})
        return self._respond(request, {"error": [], "result": result})

    def _check_signature(
        self, request: requests.PreparedRequest, path: str, body: str, params: dict[str, str]
    ) -> str | None:
        if request.headers.get("API-Key") != self.api_key:
            return "EAPI:Invalid key"
        nonce = params.get("nonce", "")
        digest = hashlib.sha256((nonce + body).encode()).digest()
        mac = hmac.new(self.secret, path.encode() + digest, hashlib.sha512).digest()
        if not hmac.compare_digest(
            str(request.headers.get("API-Sign", "")), base64.b64encode(mac).decode()
        ):
            return "EAPI:Invalid signature"
        if not nonce.isdigit() or int(nonce) <= self.last_nonce:
            return "EAPI:Invalid nonce"
        self.last_nonce = int(nonce)
        return None

    def _respond(self, request: requests.PreparedRequest, data: Any) -> requests.Response:
        return http_response(request, 200, json.dumps(data), "application/json; charset=utf-8")

    # -- endpoints ------------------------------------------------------------------------

    def _assets(self, params: dict[str, str]) -> Any:
        return {
            a: {
                "aclass": "currency",
                "altname": alt,
                "decimals": dec,
                "display_decimals": min(dec, 5),
                "status": "enabled",
            }
            for a, (alt, dec) in ASSETS.items()
        }

    def _asset_pairs(self, params: dict[str, str]) -> Any:
        return {p: asset_pair(p) for p in PAIRS}

    def _ticker(self, params: dict[str, str]) -> Any:
        wanted = params.get("pair", ",".join(self.books)).split(",")
        if any(p not in self.books for p in wanted):
            return "EQuery:Unknown asset pair"
        out = {}
        for p in wanted:
            bid, ask = self.books[p]
            out[p] = {
                "a": [str(ask), "1", "1.000"],
                "b": [str(bid), "2", "2.000"],
                "c": [str(ask), "0.00100000"],
                "v": ["100.00000000", "200.00000000"],
                "p": [str(ask), str(ask)],
                "t": [1000, 2000],
                "l": [str(bid), str(bid)],
                "h": [str(ask), str(ask)],
                "o": str(ask),
            }
        return out

    def _depth(self, params: dict[str, str]) -> Any:
        pair = params.get("pair", "")
        if pair not in self.books:
            return "EQuery:Unknown asset pair"
        bid, ask = self.books[pair]
        step, volume = self.depth.get(pair, (ZERO, Decimal(1000)))
        levels = range(int(params.get("count", "100")) if step > 0 else 1)
        stamp = int(time.time())
        return {
            pair: {
                "asks": [[str(ask + i * step), f"{volume:.3f}", stamp] for i in levels],
                "bids": [[str(bid - i * step), f"{volume:.3f}", stamp] for i in levels],
            }
        }

    def _balance(self, params: dict[str, str]) -> Any:
        return {
            a: {"balance": f"{v:.10f}", "hold_trade": "0.0000000000"}
            for a, v in self.balances.items()
        }

    def _add_order(self, params: dict[str, str]) -> Any:
        pair = params.get("pair", "")
        if pair not in PAIRS or pair not in self.books:
            return "EQuery:Unknown asset pair"
        alt, base, quote, _pd, lot_dec, ordermin, costmin = PAIRS[pair]
        if params.get("ordertype") == "limit":
            return self._add_limit(params)
        if params.get("ordertype") != "market":
            return "EGeneral:Invalid arguments:ordertype"
        side = params.get("type", "")
        volume = Decimal(params.get("volume", "0"))
        if volume.as_tuple().exponent < -lot_dec:  # type: ignore[operator]
            return "EGeneral:Invalid arguments:volume"
        if volume < Decimal(ordermin):
            return "EOrder:Order minimum not met"
        bid, ask = self.books[pair]
        price = ask if side == "buy" else bid
        cost = volume * price
        if cost < Decimal(costmin):
            return "EOrder:Cost minimum not met"
        pay, amount = (quote, cost) if side == "buy" else (base, volume)
        oflags = params.get("oflags", "")
        fee_in_base = "fcib" in oflags
        fee = kraken_fee((volume if fee_in_base else cost) * self.taker_fee, fee_in_base)
        if self.balances.get(pay, ZERO) < amount + (fee if (pay == quote) != fee_in_base else ZERO):
            return "EOrder:Insufficient funds"
        sign = 1 if side == "buy" else -1
        self.balances[base] = self.balances.get(base, ZERO) + sign * volume
        self.balances[quote] = self.balances.get(quote, ZERO) - sign * cost
        fee_asset = base if fee_in_base else quote
        self.balances[fee_asset] -= fee
        txid = f"O{self._next:05d}-KRKN-TXID{self._next:02d}"
        self._next += 1
        self.orders.append(
            KrakenOrder(
                txid,
                params.get("cl_ord_id", ""),
                pair,
                side,
                volume,
                price,
                fee,
                oflags,
                time.time(),
            )
        )
        return {"descr": {"order": f"{side} {volume:.8f} {alt} @ market"}, "txid": [txid]}

    def _add_limit(self, params: dict[str, str]) -> Any:
        """A GTC limit order; with ``oflags`` "post" one that would take liquidity is
        accepted and cancelled at once (status "canceled", reason "Post only order")."""
        pair = params["pair"]
        alt, base, quote, pair_dec, lot_dec, ordermin, costmin = PAIRS[pair]
        side = params.get("type", "")
        volume = Decimal(params.get("volume", "0"))
        price = Decimal(params.get("price", "0"))
        if volume.as_tuple().exponent < -lot_dec:  # type: ignore[operator]
            return "EGeneral:Invalid arguments:volume"
        if price <= 0 or price.as_tuple().exponent < -pair_dec:  # type: ignore[operator]
            return "EGeneral:Invalid arguments:price"
        if volume < Decimal(ordermin):
            return "EOrder:Order minimum not met"
        if volume * price < Decimal(costmin):
            return "EOrder:Cost minimum not met"
        oflags = params.get("oflags", "")
        pay, amount = (quote, volume * price) if side == "buy" else (base, volume)
        if self.balances.get(pay, ZERO) < amount:
            return "EOrder:Insufficient funds"
        bid, ask = self.books[pair]
        post = "post" in oflags.split(",")
        if not post and crosses(side, price, bid, ask):
            return "EGeneral:Invalid arguments:the double rests limit orders only"
        txid = f"O{self._next:05d}-KRKN-TXID{self._next:02d}"
        self._next += 1
        order = KrakenOrder(
            txid,
            params.get("cl_ord_id", ""),
            pair,
            side,
            volume,
            ZERO,
            ZERO,
            oflags,
            time.time(),
            status="open",
            ordertype="limit",
            limit=price,
            executed=ZERO,
        )
        if crosses(side, price, bid, ask):
            order.status, order.reason = "canceled", "Post only order"
        self.orders.append(order)
        return {"descr": {"order": f"{side} {volume:.8f} {alt} @ limit {price}"}, "txid": [txid]}

    def resting(self, pair: str | None = None) -> list[KrakenOrder]:
        """The limit orders still open (of ``pair``, or all)."""
        return [
            o
            for o in self.orders
            if o.ordertype == "limit" and o.status == "open" and pair in (None, o.pair)
        ]

    def trade_through(self, pair: str | None, fraction: Decimal | str) -> None:
        """The market trades through the open limit orders of ``pair`` (None: all): each
        fills ``fraction`` of its volume more (capped at what is left) at its limit price,
        as maker (``maker_fee``, in the quote with ``fciq``, else in the base)."""
        for o in self.resting(pair):
            _alt, base, quote, _pd, lot_dec, _min, _cmin = PAIRS[o.pair]
            done = o.executed or ZERO
            volume = min(o.volume * Decimal(fraction), o.volume - done)
            volume = volume.quantize(Decimal(1).scaleb(-lot_dec), ROUND_DOWN)
            if volume <= 0:
                continue
            cost = volume * o.limit
            fee_in_base = "fcib" in o.oflags
            fee = kraken_fee((volume if fee_in_base else cost) * self.maker_fee, fee_in_base)
            sign = 1 if o.side == "buy" else -1
            self.balances[base] = self.balances.get(base, ZERO) + sign * volume
            self.balances[quote] = self.balances.get(quote, ZERO) - sign * cost
            fee_asset = base if fee_in_base else quote
            self.balances[fee_asset] = self.balances.get(fee_asset, ZERO) - fee
            o.executed = done + volume
            o.exec_cost += cost
            o.fee += fee
            o.price = o.exec_cost / o.executed
            if o.executed == o.volume:
                o.status = "closed"

    def _cancel_order(self, params: dict[str, str]) -> Any:
        """CancelOrder by ``txid`` (or ``cl_ord_id``): {"count": 1, "pending": false};
        "EOrder:Unknown order" when no such order is open."""
        if self.tape.at_cancel is not None:  # the market fills it while the cancel is in flight
            fraction, self.tape.at_cancel = self.tape.at_cancel, None
            self.trade_through(None, fraction)
        txid, cid = params.get("txid"), params.get("cl_ord_id")
        found = next(
            (o for o in self.orders if (txid and o.txid == txid) or (cid and o.cl_ord_id == cid)),
            None,
        )
        if found is None or found.status != "open":
            return "EOrder:Unknown order"
        found.status, found.reason = "canceled", "User requested"
        return {"count": 1, "pending": False}

    def _order_json(self, o: KrakenOrder) -> dict[str, Any]:
        alt = PAIRS[o.pair][0]
        limit = o.ordertype == "limit"
        executed = o.volume if o.executed is None else o.executed
        cost = o.exec_cost if limit else o.volume * o.price
        pair_dec = PAIRS[o.pair][3]
        out: dict[str, Any] = {
            "refid": None,
            "userref": "0",
            "cl_ord_id": o.cl_ord_id,
            "status": o.status,
            "reason": o.reason,
            "opentm": f"{o.opentm:.6f}",
            "starttm": "0",
            "expiretm": "0",
            "descr": {
                "pair": alt,
                "type": o.side,
                "ordertype": o.ordertype,
                "price": str(o.limit) if limit else "0",
                "price2": "0",
                "leverage": "none",
                "order": (
                    f"{o.side} {o.volume:.8f} {alt} @ limit {o.limit}"
                    if limit
                    else f"{o.side} {o.volume:.8f} {alt} @ market"
                ),
                "close": "",
            },
            "vol": f"{o.volume:.8f}",
            "vol_exec": f"{executed:.8f}",
            "cost": f"{cost:.{COST_DECIMALS}f}",
            "fee": f"{o.fee:.{COST_DECIMALS if 'fcib' not in o.oflags else 8}f}",
            "price": f"{o.price:.{pair_dec}f}" if executed else "0.00000",
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": o.oflags,
        }
        if executed:  # a closed or partly filled order lists its trades, as the real API
            out["trades"] = [f"T{o.txid[1:7]}-{i:05d}" for i in range(1, 2)]
        if o.status != "open":
            out["closetm"] = f"{o.opentm + 0.01:.7f}"
        return out

    def _orders(self, params: dict[str, str], kind: str) -> Any:
        """ClosedOrders (closed, canceled and expired orders) or OpenOrders, filtered by
        ``cl_ord_id``. A ClosedOrders look-up of a resting order counts as a poll of the tape
        (CCXT's look-up asks for closed orders first)."""
        cid = params.get("cl_ord_id")
        if kind == "closed" and any(cid in (None, o.cl_ord_id) for o in self.resting()):
            fraction = self.tape.on_poll()
            if fraction is not None:
                self.trade_through(None, fraction)
        statuses = ("closed", "canceled", "expired") if kind == "closed" else ("open",)
        found = {
            o.txid: self._order_json(o)
            for o in self.orders
            if o.status in statuses and (cid is None or o.cl_ord_id == cid)
        }
        return {kind: found, "count": len(found)} if kind == "closed" else {kind: found}
