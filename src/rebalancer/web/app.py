"""The dashboard and its JSON API (FastAPI): read-only unless control is enabled.

Every route but ``/openapi.json`` needs the token, as ``Authorization: Bearer TOKEN`` or
``?token=TOKEN`` (the page is opened with the latter and sends the former). The journal is
only read, except by the two control routes, which exist only when ``[web] control = true``:
``POST /api/resume`` lifts a halt, ``POST /api/rebalance`` runs one cycle now.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from rebalancer import __version__
from rebalancer.core.errors import ConfigError, RebalancerError
from rebalancer.core.strategy import Strategy
from rebalancer.daemon import Heartbeat
from rebalancer.web import view
from rebalancer.web.models import (
    ActionOut,
    AssetWeightOut,
    DriftOut,
    EquityOut,
    EquityPointOut,
    FillOut,
    FlowOut,
    HaltOut,
    OrderOut,
    PricesOut,
    StatusOut,
    SummaryOut,
    TargetChangeOut,
    TickOut,
    WeightsOut,
)
from rebalancer.web.page import PAGE

if TYPE_CHECKING:
    from rebalancer.bootstrap import PriceSource

TOKEN_ENV = "REBALANCER_WEB_TOKEN"
Since = Annotated[
    str | None,
    Query(description="a period back from now (24h, 14d, 2w) or an ISO date or time (UTC)"),
]
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer TOKEN")
QUERY_TOKEN = APIKeyQuery(name="token", auto_error=False, description="or ?token=TOKEN")
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]


class Controls(Protocol):
    """The two actions control mode allows; each returns what it did, in one line."""

    def resume(self, note: str) -> str: ...

    def rebalance(self) -> str: ...


def _no_prices() -> PriceSource | None:
    return None


@dataclass
class Dashboard:
    """What the app reads: one account's journal, its strategy, the daemon's heartbeat,
    and (paper) the prices its last trading run used (``prices``; None: not known)."""

    journal: view.JournalReader
    strategy: Strategy | None
    mode: str
    account: str
    heartbeat: Callable[[], Heartbeat | None]
    now: Callable[[], datetime]
    prices: Callable[[], PriceSource | None] = _no_prices

    @property
    def quote(self) -> str:
        return self.strategy.quote if self.strategy is not None else "USDT"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("token", "")


def create_app(dash: Dashboard, token: str, controls: Controls | None = None) -> FastAPI:
    """The app; ``controls`` None means read-only (the control routes answer 403)."""
    if not token:
        raise ValueError("the dashboard needs a token")

    def auth(
        request: Request,
        _header: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        _query: Annotated[str | None, Depends(QUERY_TOKEN)],
    ) -> None:
        # the two parameters document the schemes in /openapi.json; the check reads both
        given = _bearer(request)
        if not given:
            detail = "no token: send Authorization: Bearer TOKEN, or open /?token=TOKEN"
        elif not secrets.compare_digest(given.encode(), token.encode()):
            detail = (
                f"wrong token: it does not match this dashboard's ({TOKEN_ENV}, or the one "
                "`rebalancer serve` printed when it made one)"
            )
        else:
            return
        raise HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(
        title="rebalancer dashboard",
        version=__version__,
        description="Read-only view of the journal (and, when enabled, resume / rebalance).",
        docs_url=None,  # the Swagger UI loads from a CDN: the schema is at /openapi.json
        redoc_url=None,
    )
    guard = [Depends(auth)]

    def since_of(text: str | None) -> datetime | None:
        try:
            return view.parse_since(text, dash.now())
        except ConfigError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    def rows(since: datetime | None = None) -> view.Rows:
        return view.load_rows(dash.journal, since)

    @app.get("/", response_class=HTMLResponse, dependencies=guard, include_in_schema=False)
    def page() -> str:
        return PAGE

    @app.get("/api/status", response_model=StatusOut, dependencies=guard)
    def status() -> StatusOut:
        """Mode, halt, the daemon's last and next check, whether control is enabled."""
        halt = dash.journal.halt_status().active
        cycles = dash.journal.cycle_details(None)
        last = cycles[-1] if cycles else None
        return StatusOut(
            mode=dash.mode,
            account=dash.account,
            quote=dash.quote,
            halted=halt is not None,
            halt=None if halt is None else HaltOut(at=halt.at, kind="halt", reason=halt.reason),
            heartbeat=_tick(dash.heartbeat(), dash.now()),
            control=controls is not None,
            checks=len(cycles),
            last_check=None if last is None else last["at"],
            total_value=None if last is None else last["total_value"],
            prices=_prices(dash.prices()),
        )

    @app.get("/api/weights", response_model=WeightsOut, dependencies=guard)
    def weights() -> WeightsOut:
        """Current weights vs targets, with the band around each target."""
        w = view.weights(rows(), dash.strategy, dash.quote)
        return WeightsOut(
            as_of=w.as_of,
            quote=w.quote,
            total_value=w.total_value,
            band=w.band,
            after_trades=w.after_trades,
            assets=[AssetWeightOut.of(a) for a in w.assets],
        )

    @app.get("/api/equity", response_model=EquityOut, dependencies=guard)
    def equity(since: Since = None) -> EquityOut:
        """Value at each check vs buy-and-hold of the starting holdings."""
        e = view.equity(rows(since_of(since)), dash.quote)
        return EquityOut(
            quote=e.quote,
            start_at=e.start_at,
            start_holdings=e.start_holdings,
            points=[EquityPointOut(at=p.at, value=p.value, hold=p.hold) for p in e.points],
        )

    @app.get("/api/drift", response_model=DriftOut, dependencies=guard)
    def drift(since: Since = None) -> DriftOut:
        """Each check's weight and drift (weight - target) per asset."""
        d = view.drift_history(rows(since_of(since)))
        return DriftOut(times=d.times, targets=d.targets, drift=d.drift, weight=d.weight)

    @app.get("/api/summary", response_model=SummaryOut, dependencies=guard)
    def summary(since: Since = None) -> SummaryOut:
        """Return vs buy-and-hold, trades, fees, drawdown, halts (what `report` prints)."""
        return SummaryOut.of(view.summary(rows(since_of(since)), dash.quote))

    @app.get("/api/orders", response_model=list[OrderOut], dependencies=guard)
    def orders(limit: Limit = 50) -> list[dict[str, Any]]:
        """The most recent orders, newest first, with their state and its source."""
        return dash.journal.history(None, ("orders",))["orders"][::-1][:limit]

    @app.get("/api/fills", response_model=list[FillOut], dependencies=guard)
    def fills(limit: Limit = 50) -> list[dict[str, Any]]:
        """The most recent fills and their fees, newest first."""
        return dash.journal.history(None, ("fills",))["fills"][::-1][:limit]

    @app.get("/api/flows", response_model=list[FlowOut], dependencies=guard)
    def flows(since: Since = None) -> list[dict[str, Any]]:
        """Deposits and withdrawals the checks found (balances the journal cannot explain),
        newest first."""
        return dash.journal.history(since_of(since), ("flows",))["flows"][::-1]

    @app.get("/api/targets", response_model=list[TargetChangeOut], dependencies=guard)
    def targets(since: Since = None) -> list[dict[str, Any]]:
        """Every change of the targets in use (``[optimise]``), newest first; each was
        journaled before the new targets traded."""
        return dash.journal.history(since_of(since), ("targets",))["targets"][::-1]

    @app.get("/api/halts", response_model=list[HaltOut], dependencies=guard)
    def halts() -> list[dict[str, Any]]:
        """Every halt and resume, newest first."""
        return dash.journal.history(None, ("halts",))["halts"][::-1]

    def control() -> Controls:
        if controls is None:
            raise HTTPException(
                status_code=403,
                detail="read-only dashboard: set control = true in [web] to allow this",
            )
        return controls

    def act(action: Callable[[], str]) -> ActionOut:
        try:
            return ActionOut(ok=True, detail=action())
        except RebalancerError as exc:
            raise HTTPException(status_code=409, detail=f"{type(exc).__name__}: {exc}") from None

    @app.post("/api/resume", response_model=ActionOut, dependencies=guard)
    def resume(note: Annotated[str, Query(max_length=500)] = "") -> ActionOut:
        """Lift a circuit-breaker halt (control mode only; 403 otherwise)."""
        c = control()
        return act(lambda: c.resume(note or "resumed from the dashboard"))

    @app.post("/api/rebalance", response_model=ActionOut, dependencies=guard)
    def rebalance() -> ActionOut:
        """Run one cycle now, trading even if the rule does not fire (control mode only;
        409 while another process, such as the daemon, holds the account)."""
        c = control()
        return act(c.rebalance)

    return app


def _prices(source: PriceSource | None) -> PricesOut | None:
    if source is None:
        return None
    return PricesOut(
        kind=source.kind,
        setting=source.setting,
        source=source.source,
        description=source.describe(),
        frozen=source.frozen,
        warning=source.warning,
        first=source.first,
        last=source.last,
        reason=source.reason,
        decided_at=source.decided_at,
    )


def _tick(beat: Heartbeat | None, now: datetime) -> TickOut | None:
    if beat is None:
        return None
    return TickOut(
        state="not responding" if beat.stale(now) else beat.state,
        schedule=beat.schedule,
        ticks=beat.ticks,
        last_tick=beat.last_tick,
        next_tick=beat.next_tick,
        last_result=beat.last_result,
        last_error=beat.last_error,
        consecutive_failures=beat.consecutive_failures,
    )
