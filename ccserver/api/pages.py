"""The HTML pages (login, agent, supervisor console, wallboard, flows, recordings, reports), /metrics,
/healthz, /readyz."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ccserver.api.metrics import Exposition
from ccserver.api.server import WEB_DIR, Api

#: page -> roles that may open it
PAGES = {
    "agent": frozenset({"agent", "supervisor", "admin"}),
    "console": frozenset({"supervisor", "admin"}),
    "wallboard": frozenset({"supervisor", "admin"}),
    "flows": frozenset({"admin"}),
    "recordings": frozenset({"supervisor", "admin"}),
    "reports": frozenset({"supervisor", "admin"}),
}


def add_routes(app: web.Application, api: Api) -> None:
    async def index(request: web.Request) -> web.StreamResponse:
        who = await api.authenticate(request)
        if who is None:
            raise web.HTTPFound("/login")
        raise web.HTTPFound("/agent" if who[0].role == "agent" else "/console")

    async def login(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB_DIR / "login.html")

    def page(name: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            who = await api.authenticate(request)
            if who is None:
                raise web.HTTPFound(f"/login?next=/{name}")
            if who[0].role not in PAGES[name]:
                return web.Response(status=403, content_type="text/html",
                                    text="<!doctype html><title>Forbidden</title><h1>Forbidden</h1>"
                                         f"<p>Your role ({who[0].role}) may not open this page. "
                                         "<a href=\"/\">Back</a></p>")
            return web.FileResponse(WEB_DIR / f"{name}.html", headers={"Cache-Control": "no-store"})
        return handler

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=render_metrics(api), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        problems = []
        if api.source.center() is None:
            problems.append("core not started")
        try:
            async with asyncio.timeout(2.0):
                await api.pool.fetchval("SELECT 1")
        except Exception as e:  # any failure to reach Postgres means "not ready"
            problems.append(f"database: {type(e).__name__}")
        if problems:
            return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
        return web.Response(text="ready\n")

    app.router.add_get("/", index)
    app.router.add_get("/login", login)
    for name in PAGES:
        app.router.add_get(f"/{name}", page(name))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_static("/static/", WEB_DIR / "static", follow_symlinks=False)


def render_metrics(api: Api) -> str:
    """One Prometheus scrape of the live state."""
    src, exp = api.source, Exposition()
    center, cfg, now = src.center(), src.config(), src.clock()
    by_state: dict[str, int] = {}
    if center is not None:
        for c in center.calls.values():
            by_state[c.state.value] = by_state.get(c.state.value, 0) + 1
    exp.gauge("ccserver_calls", "Live calls by state", [({"state": s}, n) for s, n in sorted(by_state.items())])
    agents: dict[str, int] = {}
    if center is not None:
        for a in center.agents.values():
            agents[a.state] = agents.get(a.state, 0) + 1
    exp.gauge("ccserver_agents", "Agents by state", [({"state": s}, n) for s, n in sorted(agents.items())])
    kpis = []
    if center is not None:
        for q in cfg.queues:
            k = api.kpis.kpis(center.queue_snapshot(q.name, now), q, now)
            kpis.append(k)
    exp.gauge("ccserver_queue_waiting", "Callers waiting per queue", [({"queue": k.queue}, k.waiting) for k in kpis])
    exp.gauge("ccserver_queue_longest_wait_seconds", "Longest current wait per queue",
              [({"queue": k.queue}, k.longest_wait_seconds) for k in kpis])
    exp.gauge("ccserver_queue_service_level_ratio", "Share answered within the queue's threshold (rolling window)",
              [({"queue": k.queue}, k.service_level) for k in kpis if k.service_level is not None])
    exp.gauge("ccserver_node_up", "PBX node connection (AMI / ESL) state, 1 = connected",
              [({"node": n}, 1.0 if up else 0.0) for n, up in sorted(src.nodes().items())])
    exp.gauge("ccserver_cdr_spool_depth", "CDR rows waiting in the local spool", [({}, src.spool_depth())])
    exp.gauge("ccserver_live_clients", "Connected live WebSocket clients", [({}, api.hub.subscribers)])
    exp.histogram("ccserver_routing_decision_seconds",
                  "Time the core takes to decide on one PBX event, timer tick or agent action",
                  src.decision_latency)
    return exp.text()
