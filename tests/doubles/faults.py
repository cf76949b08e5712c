"""Fault injection around the doubles, without changing what any double does.

* :class:`FaultyWire` wraps any venue double (Binance, Kraken, Coinbase: all are
  ``requests`` transport adapters) and, when armed, breaks the next order request or the next
  read: a timeout before the request reaches the exchange, a timeout after the exchange
  processed it (the order is placed, the reply lost), HTTP 5xx, 429 or 418 with
  ``Retry-After``, or a simulated SIGKILL (:class:`Killed`) just before or just after the
  exchange processed it. ``down`` makes the exchange unreachable; ``guard`` is called with
  every order request at the moment it reaches the wire (the soak checks write-ahead and
  "not halted" there).
* :class:`FaultyExchange` does the same at the :class:`~rebalancer.ports.Exchange` port for
  an in-process account (paper), where there is no wire.
* :class:`FlakyJournal` wraps a :class:`~rebalancer.ports.Journal` and drops "the database
  connection" on its n-th call from now (an ``OperationalError``, as SQLAlchemy raises when
  the server went away), once.

:class:`Killed` derives from ``BaseException`` so that no ``except Exception`` in the code
under test can swallow it: it ends the daemon's run as a SIGKILL ends the process (the
journal and the account keep whatever was written before it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import requests
from requests.adapters import BaseAdapter
from sqlalchemy.exc import OperationalError

from doubles.wire import http_response
from rebalancer.core.errors import ExchangeBanned, OrderOutcomeUnknown, RetryLater
from rebalancer.core.model import Fill, OrderRequest, Snapshot


class Killed(BaseException):
    """A simulated SIGKILL: nothing in the code under test may catch it."""


class WireFault(Enum):
    TIMEOUT_BEFORE = "timeout before the exchange"
    TIMEOUT_AFTER = "timeout after the exchange processed it"
    HTTP_5XX = "HTTP 503"
    HTTP_429 = "HTTP 429 with Retry-After"
    HTTP_418 = "HTTP 418 with Retry-After"
    KILL_BEFORE = "SIGKILL before the exchange"
    KILL_AFTER = "SIGKILL after the exchange processed it"


def _status_response(request: requests.PreparedRequest, fault: WireFault, retry_after: str) -> Any:
    if fault is WireFault.HTTP_5XX:
        return http_response(request, 503, "<html>Service Unavailable</html>", "text/html")
    status = 429 if fault is WireFault.HTTP_429 else 418
    response = http_response(request, status, "Too Many Requests", "text/plain")
    response.headers["Retry-After"] = retry_after
    return response


class FaultyWire(BaseAdapter):
    """``inner``: a venue double. ``is_order(method, path)``: which requests place orders.

    Arm with :meth:`arm` (``on="order"`` or ``on="read"``); each armed fault hits the next
    matching request once. ``injected`` counts the faults that did hit.
    """

    def __init__(
        self,
        inner: BaseAdapter,
        is_order: Callable[[str, str], bool],
        *,
        retry_after: str = "1",
    ) -> None:
        super().__init__()
        self.inner = inner
        self.is_order = is_order
        self.retry_after = retry_after
        self.down = False
        self.guard: Callable[[], None] | None = None
        self.armed: dict[str, list[WireFault]] = {"order": [], "read": []}
        self.hits: list[tuple[str, WireFault]] = []  # (order or read, fault), as they hit

    def mount(self, client: Any) -> FaultyWire:
        client.session.mount("https://", self)
        client.session.mount("http://", self)
        return self

    def arm(self, fault: WireFault, *, on: str) -> None:
        self.armed[on].append(fault)

    def disarm(self) -> None:
        for queue in self.armed.values():
            queue.clear()

    def close(self) -> None:
        pass

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if self.down:
            raise requests.exceptions.ConnectionError("injected: the exchange is unreachable")
        path = requests.utils.urlparse(request.url or "").path
        kind = "order" if self.is_order(request.method or "GET", path) else "read"
        if kind == "order" and self.guard is not None:
            self.guard()
        queue = self.armed[kind]
        fault = queue.pop(0) if queue else None
        if fault is None:
            return self.inner.send(request, **kwargs)  # type: ignore[no-any-return]
        self.hits.append((kind, fault))
        if fault is WireFault.TIMEOUT_BEFORE:
            raise requests.exceptions.ConnectTimeout(f"injected: connect timeout {path}")
        if fault is WireFault.KILL_BEFORE:
            raise Killed(f"killed before {path}")
        if fault in (WireFault.HTTP_5XX, WireFault.HTTP_429, WireFault.HTTP_418):
            return _status_response(request, fault, self.retry_after)  # type: ignore[no-any-return]
        self.inner.send(request, **kwargs)  # processed by the exchange ...
        if fault is WireFault.KILL_AFTER:
            raise Killed(f"killed after {path}")
        raise requests.exceptions.ReadTimeout(f"injected: read timeout {path}")  # ... reply lost


class FaultyExchange:
    """An Exchange (paper) with the wire's faults at the port: ``arm(fault, on=...)``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "faulty")
        self.armed: dict[str, list[WireFault]] = {"order": [], "read": []}
        self.hits: list[tuple[str, WireFault]] = []
        self.guard: Callable[[], None] | None = None
        self.accepted: Counter[str] = Counter()  # orders the account traded, per client id

    def arm(self, fault: WireFault, *, on: str) -> None:
        self.armed[on].append(fault)

    def disarm(self) -> None:
        for queue in self.armed.values():
            queue.clear()

    def _next(self, kind: str) -> WireFault | None:
        queue = self.armed[kind]
        fault = queue.pop(0) if queue else None
        if fault is not None:
            self.hits.append((kind, fault))
        return fault

    def _read(self, what: str, call: Callable[[], Any]) -> Any:
        fault = self._next("read")
        if fault is None:
            return call()
        if fault is WireFault.KILL_BEFORE or fault is WireFault.KILL_AFTER:
            raise Killed(f"killed during {what}")
        if fault is WireFault.HTTP_418:
            raise ExchangeBanned(f"{what}: HTTP 418, IP banned (injected)", retry_after=1)
        raise RetryLater(f"{what}: {fault.value} (injected)")

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        snap: Snapshot = self._read("snapshot", lambda: self.inner.snapshot(assets, quote))
        return snap

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        found: Fill | None = self._read(
            "fetch_order", lambda: self.inner.fetch_order(client_order_id, symbol)
        )
        return found

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        found: Fill | None = self._read(
            "cancel_order", lambda: self.inner.cancel_order(client_order_id, symbol)
        )
        return found

    def _order(self, order: OrderRequest, call: Callable[[], Fill]) -> Fill:
        if self.guard is not None:
            self.guard()
        fault = self._next("order")
        if fault is None:
            return self._accept(order, call)
        what = f"order {order.client_order_id}"
        if fault is WireFault.KILL_BEFORE:
            raise Killed(f"killed before {what}")
        if fault in (WireFault.TIMEOUT_BEFORE, WireFault.HTTP_5XX, WireFault.HTTP_429):
            raise OrderOutcomeUnknown(f"{what}: {fault.value} (injected)")
        if fault is WireFault.HTTP_418:
            raise OrderOutcomeUnknown(f"{what}: {fault.value} (injected)")
        self._accept(order, call)  # the account traded ...
        if fault is WireFault.KILL_AFTER:
            raise Killed(f"killed after {what}")
        raise OrderOutcomeUnknown(f"{what}: {fault.value} (injected)")  # ... reply lost

    def _accept(self, order: OrderRequest, call: Callable[[], Fill]) -> Fill:
        fill = call()
        self.accepted[order.client_order_id] += 1
        return fill

    def create_market_order(self, order: OrderRequest) -> Fill:
        return self._order(order, lambda: self.inner.create_market_order(order))

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        return self._order(order, lambda: self.inner.create_limit_order(order, price, timeout))


class FlakyJournal:
    """A Journal whose connection drops once, on its n-th call from :meth:`drop_after`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.countdown: int | None = None
        self.drops = 0

    def drop_after(self, calls: int) -> None:
        """The ``calls``-th call from now (1 = the next) fails, as a lost connection does."""
        self.countdown = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.countdown is not None:
                self.countdown -= 1
                if self.countdown <= 0:
                    self.countdown = None
                    self.drops += 1
                    raise OperationalError(
                        f"journal.{name}", {}, Exception("server closed the connection")
                    )
            return attr(*args, **kwargs)

        return call


def accepted_ids(orders: Sequence[Any], field: str) -> dict[str, int]:
    """How many orders an exchange accepted per client order id (``field`` names it)."""
    out: dict[str, int] = {}
    for order in orders:
        cid = getattr(order, field)
        out[cid] = out.get(cid, 0) + 1
    return out
