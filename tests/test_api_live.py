"""The live WebSocket (snapshot, then filtered changes; slow clients dropped) and the KPIs it
carries, with a real simulated call through the queue."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import aiohttp

from ccserver.cdr.record import AgentStateChange
from ccserver.core.events import IvrFinished
from ccserver.sim.asterisk import CallerScript
from test_api_rig import api_rig  # noqa: F401  (fixture)


async def next_matching(ws, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
        if predicate(msg):
            return msg


async def test_snapshot_then_filtered_changes_and_a_call_moving_the_kpis(api_rig):
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}
    sup_a, _ = await api_rig.login("sup_a")
    sup_b, _ = await api_rig.login("sup_b")
    async with sup_a, sup_b, api_rig.client() as adm:
        ws_a = await sup_a.ws_connect("/api/v1/live", origin=api_rig.base)
        ws_b = await sup_b.ws_connect("/api/v1/live")
        snap = await ws_a.receive_json(timeout=5)
        assert snap["type"] == "snapshot" and [a["id"] for a in snap["agents"]] == ["1001"]
        assert [q["name"] for q in snap["queues"]] == ["support"] and snap["nodes"] == {"pbx1": True}
        assert [a["id"] for a in (await ws_b.receive_json(timeout=5))["agents"]] == ["1002", "1003"]

        async with adm.post("/api/v1/agents/1001/pause", headers=admin, json={"reason": "lunch"}) as r:
            assert r.status == 200
        msg = await next_matching(ws_a, lambda m: m["type"] == "agent")
        assert (msg["agent"]["id"], msg["agent"]["state"], msg["agent"]["reason"]) == ("1001", "paused", "lunch")

        call = api_rig.sim.place_call(CallerScript(caller="+15550001111", digits=["1"], talk_time=0.5))
        msg = await next_matching(ws_a, lambda m: m["type"] == "queues" and m["queues"][0]["waiting"])
        (waiting,) = msg["queues"][0]["waiting"]
        assert waiting["caller"] == "+15550001111" and msg["queues"][0]["kpis"]["waiting"] == 1

        async with adm.post("/api/v1/agents/1001/ready", headers=admin) as r:
            assert r.status == 200
        assert await call.wait(15) == "answered"
        msg = await next_matching(ws_a, lambda m: m["type"] == "call_ended")
        assert msg["disposition"] == "answered" and msg["agent_id"] == "1001"
        msg = await next_matching(ws_a, lambda m: m["type"] == "queues" and m["queues"][0]["kpis"]["answered"])
        kpis = msg["queues"][0]["kpis"]
        assert kpis["service_level"] == 1.0 and kpis["abandon_rate"] == 0.0 and kpis["waiting"] == 0
        assert 0 < kpis["asa_seconds"] < 10

        # sup_b (team B: sales) saw none of it
        await ws_b.close()
        seen_b = [m for m in [*(await _drain(ws_b))]]
        assert not any(m.get("type") in ("agent", "call_ended") for m in seen_b)
        await ws_a.close()


async def _drain(ws) -> list:
    out = []
    while not ws.closed:
        try:
            out.append(await ws.receive_json(timeout=0.1))
        except (TypeError, asyncio.TimeoutError):
            break
    return out


async def test_websocket_refuses_missing_auth_and_cross_site_origin(api_rig):
    async with api_rig.client() as s:
        try:
            await s.ws_connect("/api/v1/live")
            raise AssertionError("connected without credentials")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 401
    s, _ = await api_rig.login("sup_a")
    async with s:
        try:
            await s.ws_connect("/api/v1/live", origin="https://evil.example")
            raise AssertionError("connected from another origin")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 403
        async with s.get("/api/v1/live") as r:  # a plain GET is not an upgrade
            assert r.status == 400


async def test_a_slow_client_is_dropped_and_the_others_keep_receiving(api_rig):
    api = api_rig.server.api.api
    api.hub.queue_size = 8
    token = await api_rig.token("admin")
    # A client that completes the handshake with a tiny receive buffer and then never reads.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", api_rig.server.api.port))
    reader, writer = await asyncio.open_connection(sock=raw, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    assert await reader.readexactly(12) == b"HTTP/1.1 101"
    async with api_rig.client() as fast:
        ws = await fast.ws_connect("/api/v1/live", headers={"Authorization": f"Bearer {token}"})
        await ws.receive_json(timeout=5)
        await api_rig.until(lambda: api.hub.subscribers == 2, what="two subscribers")
        change = AgentStateChange("x", "1001", "ready", "ready", time.time())
        received = 0
        for i in range(20_000):
            api.hub.publish(change)
            if i % 4 == 0:
                # the fast client keeps up; the slow one does not read at all
                while True:
                    try:
                        await ws.receive_json(timeout=0.001)
                        received += 1
                    except asyncio.TimeoutError:
                        break
            if api.hub.subscribers == 1:
                break
        assert api.hub.subscribers == 1, "the slow client was never dropped"
        assert received > 8
        api.hub.publish(change)
        assert (await next_matching(ws, lambda m: m["type"] == "agent"))["agent"]["id"] == "1001"
        await ws.close()
    writer.close()


async def test_a_revoked_session_ends_the_stream(api_rig, monkeypatch):
    from ccserver.api import live

    monkeypatch.setattr(live, "REAUTH_SECONDS", 0.2)
    s, csrf = await api_rig.login("sup_a")
    async with s:
        ws = await s.ws_connect("/api/v1/live")
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        await api_rig.rows("UPDATE auth_tokens SET revoked_at = now()")
        msg = await next_matching_close(ws)
        assert msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION


async def next_matching_close(ws, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return msg


async def test_a_pbx_node_going_down_reaches_the_stream_and_metrics(api_rig):
    s, _ = await api_rig.login("sup_a")
    async with s:
        ws = await s.ws_connect("/api/v1/live")
        assert (await ws.receive_json(timeout=5))["nodes"] == {"pbx1": True}
        await api_rig.sim.stop()
        msg = await next_matching(ws, lambda m: m.get("nodes") == {"pbx1": False})
        assert msg["type"] == "queues"
        async with s.get("/metrics") as r:
            assert 'ccserver_node_up{node="pbx1"} 0' in await r.text()
        await ws.close()


async def test_a_reconnect_starts_from_a_fresh_snapshot(api_rig):
    s, csrf = await api_rig.login("agent1")
    async with s:
        ws = await s.ws_connect("/api/v1/live")
        (me,) = (await ws.receive_json(timeout=5))["agents"]
        assert me["state"] == "ready"
        await ws.close()
        # while disconnected
        async with s.post("/api/v1/agents/1001/pause", json={"reason": "break"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        ws = await s.ws_connect("/api/v1/live")
        snap = await ws.receive_json(timeout=5)
        assert snap["type"] == "snapshot" and snap["nodes"] == {}  # agents do not see the PBX nodes
        assert [(a["id"], a["state"], a["reason"]) for a in snap["agents"]] == [("1001", "paused", "break")]
        async with s.post("/api/v1/agents/1001/ready", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        msg = await next_matching(ws, lambda m: m["type"] == "agent")
        assert msg["agent"]["state"] == "ready"
        await ws.close()


async def test_waiting_callers_show_their_place_expected_wait_and_escalation_step(api_rig):
    server = api_rig.server
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}
    talking = api_rig.sim.place_call(CallerScript(caller="+15550001111", digits=["1"], talk_time=30.0))
    await api_rig.until(lambda: server.center.agents["1001"].state == "on_call", what="1001 on call")
    now = server.clock()
    server.on_event(IvrFinished("pbx1:91.1", "pbx1", "PJSIP/carrier-91", "+15550009191", "5000", "support",
                                ("greeting",), at=now))
    # nobody has english 90 (1001: 80): the caller moves on to "any agent" at once, and says why
    server.on_event(IvrFinished("pbx1:92.1", "pbx1", "PJSIP/carrier-92", "+15550009292", "5000", "support",
                                ("greeting",), at=now + 1, skills=(("english", 90),)))
    async with api_rig.client() as s, s.get("/api/v1/queues/support", headers=admin) as r:
        waiting = (await r.json())["waiting"]
    # 1001 serves both (on a call, no other agent): one default handle time (180 s) per place
    assert [(w["call_id"], w["position"], w["expected_wait_seconds"], w["step"]) for w in waiting] == [
        ("pbx1:91.1", 1, 180.0, 0), ("pbx1:92.1", 2, 360.0, 1)]
    assert waiting[1]["routing_note"] == ("no agent of queue 'support' has english >= 90; escalation step 1 "
                                          "applied at once")
    assert waiting[0]["routing_note"] is None
    async with api_rig.client() as s, s.get("/openapi.json") as r:
        fields = (await r.json())["components"]["schemas"]["WaitingOut"]["properties"]
    assert {"position", "expected_wait_seconds", "step"} <= set(fields)
    assert not talking.done.is_set()


async def test_service_level_and_asa_move_when_the_agent_answers_not_when_the_call_ends(api_rig):
    server = api_rig.server
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}

    async def kpis() -> dict:
        async with api_rig.client() as s, s.get("/api/v1/queues/support", headers=admin) as r:
            assert r.status == 200
            return (await r.json())["kpis"]

    assert (await kpis())["answered"] == 0
    call = api_rig.sim.place_call(CallerScript(caller="+15550001111", digits=["1"], talk_time=2.0))
    await api_rig.until(lambda: server.center.agents["1001"].state == "on_call", what="1001 on call")
    during = await kpis()
    assert not call.done.is_set()  # still talking: no call record yet
    assert (during["answered"], during["service_level"], during["aht_seconds"]) == (1, 1.0, None)
    assert 0 < during["asa_seconds"] < 10
    assert await call.wait(15) == "answered"
    # the handle time counts once the 1 s wrap-up is over, the answer is not counted again
    await api_rig.until(lambda: server.center.agents["1001"].state == "ready", what="wrap-up end")
    after = await kpis()
    assert (after["answered"], after["asa_seconds"]) == (1, during["asa_seconds"])
    assert 2.0 <= after["aht_seconds"] < 10
