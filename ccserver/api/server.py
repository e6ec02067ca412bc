"""The aiohttp application: authentication, CSRF, validation, authorization, audit, wiring.

Every API route is declared once in :data:`ccserver.api.routes.ROUTES`; :func:`build_app`
wraps each handler with the same checks, in this order, and the OpenAPI document is generated
from the same table:

1. who: session cookie (pages) or ``Authorization: Bearer`` (API clients) -> 401 if missing,
   expired, revoked or forged;
2. CSRF: a state change made with the cookie must carry ``X-CSRF-Token`` (derived from the
   session secret by HMAC) -> 403;
3. role -> 403; team scope is checked by the handler (it knows the target) -> 403;
4. body: JSON only (415), size-limited (413), valid JSON (400), valid fields (422, naming each).

State-changing calls are written to the audit log whatever the outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from ccserver.api.hub import LiveHub
from ccserver.api.metrics import Histogram
from ccserver.api.ratelimit import FailureLimiter
from ccserver.api.store import Store, User
from ccserver.api.views import queue_out
from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.config import ApiConfig, Config
from ccserver.core.center import ContactCenter
from ccserver.stats.live import KpiWindow

log = logging.getLogger(__name__)

SESSION_COOKIE = "ccs_session"
CSRF_HEADER = "X-CSRF-Token"
WEB_DIR = Path(__file__).resolve().parents[1] / "web"


@dataclass
class LiveSource:
    """Read access to the running server's live state, and the way to act on it."""

    config: Callable[[], Config]
    center: Callable[[], ContactCenter | None]
    #: PBX node -> connected
    nodes: Callable[[], dict[str, bool]]
    spool_depth: Callable[[], int]
    #: carries out the core's decisions (Server._dispatch)
    dispatch: Callable[[list], None]
    clock: Callable[[], float] = time.time
    decision_latency: Histogram = field(default_factory=Histogram)
    #: spy sessions (ccserver.supervision.service.SupervisionDesk), None when not running
    supervision: Any = None
    #: recording registry (ccserver.recording.service.Recorder), None when not running
    recorder: Any = None
    #: carries out one PBX command now, raising if the node refuses it (Server.run_command)
    run_command: Callable[[Any], Awaitable[None]] | None = None
    #: the live queue KPIs, fed by the server from its first event on (Server.kpis)
    kpis: KpiWindow = field(default_factory=KpiWindow)
    #: standing site problems staff see as alerts (published IVR flows naming what the
    #: configuration no longer serves)
    alerts: Callable[[], tuple[str, ...]] = tuple

    def decide(self, decide: Callable[[], list]) -> list:
        """Run one core method (an agent action), timed like every routing decision, and carry
        out its decisions; returns them."""
        decisions = self.decision_latency.time(decide)
        self.dispatch(decisions)
        return decisions


class ApiError(Exception):
    """Refuse a request with ``status`` and a message (and field errors for 422)."""

    def __init__(self, status: int, message: str, fields: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or []


def query_time(raw: str | None, name: str) -> datetime | None:
    """A time from a query parameter: ISO 8601 with a time zone, else a 422 naming ``name``."""
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(422, "invalid query", [{"field": name, "reason": "must be an ISO 8601 time"}]) from None
    if t.tzinfo is None:
        raise ApiError(422, "invalid query", [{"field": name, "reason": "must include a time zone"}])
    return t


def error_response(status: int, message: str, fields: list[dict] | None = None, **headers: str) -> web.Response:
    return web.json_response({"error": message, "fields": fields or []}, status=status, headers=headers or None)


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: an HMAC of the session secret (never stored, never guessable)."""
    return hmac.new(session_token.encode(), b"ccserver-csrf", hashlib.sha256).hexdigest()


def remote_of(request: web.Request) -> str:
    return request.remote or ""


class Api:
    """Everything a handler needs: the store, the live state, the hub, settings."""

    def __init__(self, settings: ApiConfig, pool: asyncpg.Pool, source: LiveSource) -> None:
        self.settings = settings
        self.pool = pool
        self.store = Store(pool)
        self.source = source
        self.hub = LiveHub(settings.ws_queue_size)
        self.kpis = source.kpis
        #: agent id -> when it last changed state (epoch seconds), for "time in state"
        self.agent_since: dict[str, float] = {}
        self.login_limiter = FailureLimiter(settings.login_failures, settings.login_window_seconds)
        self._views: tuple[float, dict[str, dict]] | None = None

    def queue_views(self, now: float) -> dict[str, dict]:
        """Every queue's live view (JSON-ready) at ``now``, computed once per tick for all clients."""
        if self._views is not None and self._views[0] == now:
            return self._views[1]
        center, cfg = self.source.center(), self.source.config()
        views = {} if center is None else {
            name: queue_out(snap, cfg, self.kpis, now).model_dump(mode="json")
            for name, snap in center.queue_snapshots(now).items()
        }
        self._views = (now, views)
        return views

    def observe(self, row: AgentStateChange | CallRecord) -> None:
        """A row the core produced: update time in state, tell the WebSocket clients (the
        server has fed the KPIs already)."""
        if isinstance(row, AgentStateChange):
            self.agent_since[row.agent_id] = row.at
        self.hub.publish(row)

    async def authenticate(self, request: web.Request) -> tuple[User, str | None] | None:
        """(user, session secret or None for a bearer token), or None if not authenticated."""
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            found = await self.store.resolve(token.strip(), "token")
            return (found[1], None) if found else None
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            found = await self.store.resolve(session, "session")
            return (found[1], session) if found else None
        return None


def body_model(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """Parse and validate a JSON body; ApiError 400 / 422 naming the fields otherwise."""
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"body is not valid JSON: {e}") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)",
             "reason": "unknown field" if err["type"] == "extra_forbidden" else err["msg"]}
            for err in e.errors()
        ]
        raise ApiError(422, "invalid request body", fields) from None


@web.middleware
async def _errors(request: web.Request, handler):
    """JSON errors for the API; an unexpected exception is logged, never shown."""
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.message, e.fields)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "request body too large")
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400:
            return error_response(e.status, e.reason)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")


@web.middleware
async def _security_headers(request: web.Request, handler):
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    )
    return resp


API_KEY: web.AppKey[Api] = web.AppKey("api", Api)


def build_app(api: Api) -> web.Application:
    """The aiohttp application: API routes from the route table, pages, metrics, health."""
    from ccserver.api import live, pages, routes
    from ccserver.api.openapi import openapi_document

    app = web.Application(middlewares=[_security_headers, _errors], client_max_size=api.settings.max_body_bytes)
    app[API_KEY] = api
    for route in routes.ROUTES:
        app.router.add_route(route.method, route.path, routes.wrap(api, route), name=route.name)
    doc = openapi_document(routes.ROUTES)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(doc)

    async def live_stream(request: web.Request) -> web.StreamResponse:
        return await live.stream(api, request)

    app.router.add_get("/openapi.json", openapi, name="openapi")
    app.router.add_get("/api/v1/live", live_stream, name="live")
    pages.add_routes(app, api)
    return app


class ApiServer:
    """Runs the HTTP server on ``settings.host:port``; ``port`` holds the bound port once started."""

    def __init__(self, settings: ApiConfig, pool: asyncpg.Pool, source: LiveSource) -> None:
        self.api = Api(settings, pool, source)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None

    async def start(self) -> int:
        self._runner = web.AppRunner(build_app(self.api), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.api.settings.host, self.api.settings.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.create_task(self._tick(), name="ccserver-api-tick")
        return self.port

    async def _tick(self) -> None:
        # KPI ticks: queue waits grow with time, so clients get fresh figures without an event.
        while True:
            await asyncio.sleep(self.api.settings.tick_seconds)
            self.api.hub.publish(self.api.source.clock())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
