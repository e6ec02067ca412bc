"""The live WebSocket: a snapshot of what the user may see, then the changes.

A client that reconnects gets a fresh snapshot, so it never has to replay what it missed. A
client that does not read fast enough is dropped (close code 1013, "try again later") when its
queue in the hub fills, and may reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from ccserver.api.server import Api, error_response
from ccserver.api.supervision import session_out
from ccserver.api.views import Scope, agent_out, call_out
from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.supervision.service import SpyChange

log = logging.getLogger(__name__)

#: seconds allowed to close a dropped client politely before the connection is cut
CLOSE_TIMEOUT = 2.0
#: how often a live stream re-checks its session / token
REAUTH_SECONDS = 10.0


async def stream(api: Api, request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/live``."""
    who = await api.authenticate(request)
    if who is None:
        return error_response(401, "authentication required")
    user, session = who
    origin = request.headers.get("Origin")
    if session is not None and origin is not None and urlsplit(origin).netloc != request.host:
        # Cookies ride along on cross-site WebSocket handshakes: refuse other origins.
        return error_response(403, f"origin {origin!r} is not allowed")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        return error_response(400, "expected a WebSocket upgrade")
    await ws.prepare(request)
    sub = api.hub.subscribe()
    try:
        view = _View(api, user)
        await ws.send_json(view.snapshot())
        writer = asyncio.create_task(_write(ws, sub.queue, view, api, request))
        reader = asyncio.create_task(_read(ws))
        dropped = asyncio.create_task(sub.dropped.wait())
        done, pending = await asyncio.wait({writer, reader, dropped}, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if dropped in done:
            log.info("live: dropping slow client %s (%s)", request.remote, user.username)
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
            except (TimeoutError, ConnectionError):
                if request.transport is not None:
                    request.transport.abort()
        elif writer in done and writer.exception() is not None and not ws.closed:
            await ws.close()
    finally:
        api.hub.unsubscribe(sub)
    return ws


async def _read(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # clients only listen; reading keeps pings and the close handshake going
        pass


async def _write(ws: web.WebSocketResponse, queue: asyncio.Queue, view: "_View", api: Api,
                 request: web.Request) -> None:
    checked = time.monotonic()
    while True:
        change = await queue.get()
        if time.monotonic() - checked >= REAUTH_SECONDS:
            # A session logged out, a token revoked or a user disabled ends the stream too;
            # team changes reach the user's scope here as well.
            checked = time.monotonic()
            who = await api.authenticate(request)
            if who is None:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"credentials revoked")
                return
            view.user = who[0]
        message = view.change(change)
        if message is not None:
            await ws.send_json(message)


class _View:
    """Turns live changes into messages for one user, filtered by their scope."""

    def __init__(self, api: Api, user) -> None:
        self.api, self.user = api, user
        self._last_nodes: dict | None = None
        self._last_alerts: list[str] | None = None

    def _scope(self) -> Scope:
        return Scope(self.user, self.api.source.config(), self.api.source.center())

    def _queues_and_calls(self, scope: Scope, now: float) -> tuple[list, list]:
        center, cfg = self.api.source.center(), self.api.source.config()
        if center is None:
            return [], []
        views = self.api.queue_views(now)
        queues = [views[q.name] for q in cfg.queues if q.name in scope.queues]
        calls = [call_out(c).model_dump(mode="json") for c in center.calls.values() if scope.sees_call(c)]
        return queues, calls

    def _nodes(self) -> dict:
        return dict(sorted(self.api.source.nodes().items())) if self.user.role != "agent" else {}

    def _alerts(self) -> list[str]:
        return list(self.api.source.alerts()) if self.user.role != "agent" else []

    def snapshot(self) -> dict:
        scope, now = self._scope(), self.api.source.clock()
        center, cfg = self.api.source.center(), self.api.source.config()
        agents = [agent_out(center.agents[a], cfg, self.api.agent_since.get(a), center).model_dump(mode="json")
                  for a in sorted(scope.agents)] if center else []
        queues, calls = self._queues_and_calls(scope, now)
        self._last_nodes, self._last_alerts = self._nodes(), self._alerts()
        return {"type": "snapshot", "now": now, "user": self.user.username, "role": self.user.role,
                "agents": agents, "queues": queues, "calls": calls, "nodes": self._last_nodes,
                "alerts": self._last_alerts,
                "spies": self._spies(scope)}

    def _spies(self, scope: Scope) -> list[dict]:
        """Who monitors whom, for staff (an agent is never told they are listened to)."""
        desk = self.api.source.supervision
        if desk is None or self.user.role == "agent":
            return []
        return [session_out(s).model_dump(mode="json") for s in desk.sessions.sessions.values()
                if s.agent_id in scope.agents]

    def change(self, change) -> dict | None:
        scope = self._scope()
        if isinstance(change, SpyChange):
            if self.user.role == "agent" or change.session.agent_id not in scope.agents:
                return None
            return {"type": "spy", "event": change.what, "session": session_out(change.session).model_dump(mode="json")}
        if isinstance(change, AgentStateChange):
            center = self.api.source.center()
            if center is None or change.agent_id not in scope.agents:
                return None
            agent = center.agents[change.agent_id]
            return {"type": "agent", "agent": agent_out(agent, self.api.source.config(),
                                                        self.api.agent_since.get(change.agent_id),
                                                        center).model_dump(mode="json")}
        if isinstance(change, CallRecord):
            if change.queue not in scope.queues and change.agent_id not in scope.agents:
                return None
            return {"type": "call_ended", "call_id": change.call_id, "queue": change.queue,
                    "agent_id": change.agent_id, "disposition": change.disposition}
        # a tick: queue contents and KPIs (calls joining / leaving, waits growing)
        queues, calls = self._queues_and_calls(scope, change)
        nodes = self._nodes()
        out: dict = {"type": "queues", "now": change, "queues": queues, "calls": calls}
        if nodes != self._last_nodes:
            out["nodes"] = self._last_nodes = nodes
        alerts = self._alerts()
        if alerts != self._last_alerts:
            out["alerts"] = self._last_alerts = alerts
        return out
