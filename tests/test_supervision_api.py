"""Supervision and recordings over HTTP: roles, team scope, audit, Range playback, traversal."""

from __future__ import annotations

import contextlib
import hashlib

import aiohttp

from ccserver.api.store import Store
from ccserver.db.pool import open_pool

PASSWORD = "correct horse battery staple"

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)


async def people(rig) -> dict[str, int]:
    """admin; sup_a supervises team A (agents 1001, 1002); sup_b team B (no agents); agent1."""
    pool = await open_pool(rig.dsn, 1, 2)
    try:
        store = Store(pool)
        ids = {}
        for name, role, agent in (("admin", "admin", None), ("sup_a", "supervisor", None),
                                  ("sup_b", "supervisor", None), ("agent1", "agent", "1001")):
            ids[name] = (await store.create_user(name, PASSWORD, role, agent_id=agent)).id
        a, b = await store.create_team("A"), await store.create_team("B")
        await store.set_team_members(a.id, ["1001", "1002"], ["support"], [ids["sup_a"]])
        await store.set_team_members(b.id, [], [], [ids["sup_b"]])
    finally:
        await pool.close()
    return ids


async def login(rig, username: str) -> tuple[aiohttp.ClientSession, dict]:
    s = aiohttp.ClientSession(f"http://127.0.0.1:{rig.server.api.port}", cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post("/api/v1/login", json={"username": username, "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return s, {"X-CSRF-Token": (await r.json())["csrf_token"]}


async def spy_messages(ws, session_id: str, event: str) -> dict:
    """The live view's message that ``session_id`` had ``event`` (other messages skipped)."""
    for _ in range(200):
        msg = await ws.receive_json(timeout=5)
        if msg["type"] == "spy" and msg["event"] == event and msg["session"]["id"] == session_id:
            return msg
    raise AssertionError(f"no spy {event} message")


async def test_spy_over_http_with_scope_devices_and_audit(media_rig):
    rig = await media_rig(policy="none")
    ids = await people(rig)
    admin, ah = await login(rig, "admin")
    sup_a, h = await login(rig, "sup_a")
    sup_b, hb = await login(rig, "sup_b")
    agent, agh = await login(rig, "agent1")
    async with admin, sup_a, sup_b, agent:
        async with admin.put(f"/api/v1/users/{ids['sup_a']}/devices", headers=ah,
                             json={"devices": {rig.node: "PJSIP/9000,foo"}}) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == f"devices.{rig.node}"
        async with admin.put(f"/api/v1/users/{ids['sup_a']}/devices", headers=ah,
                             json={"devices": {rig.node: rig.supervisor_device}}) as r:
            assert r.status == 200, await r.text()
        _call, _cid, agent_id = await rig.connected_call(talk_time=30.0)
        base = f"http://127.0.0.1:{rig.server.api.port}"
        ws_a = await sup_a.ws_connect("/api/v1/live", origin=base)
        ws_agent = await agent.ws_connect("/api/v1/live", origin=base)
        assert (await ws_a.receive_json())["spies"] == []
        await ws_agent.receive_json()
        async with agent.post("/api/v1/supervision/sessions", headers=agh, json={"agent_id": agent_id}) as r:
            assert r.status == 403
        async with sup_b.post("/api/v1/supervision/sessions", headers=hb, json={"agent_id": agent_id}) as r:
            assert r.status == 403 and "not in a team you supervise" in (await r.json())["error"]
        async with sup_a.post("/api/v1/supervision/sessions", headers=h,
                              json={"agent_id": agent_id, "mode": "spy-everything"}) as r:
            assert r.status == 422
        async with sup_a.post("/api/v1/supervision/sessions", headers=h, json={"agent_id": agent_id}) as r:
            assert r.status == 201, await r.text()
            session = await r.json()
        async with sup_a.get("/api/v1/supervision/sessions") as r:
            assert [s["id"] for s in await r.json()] == [session["id"]]
        seen = await spy_messages(ws_a, session["id"], "started")
        assert seen["session"]["supervisor"] == "sup_a" and seen["session"]["agent_id"] == agent_id
        async with sup_b.get("/api/v1/supervision/sessions") as r:
            assert await r.json() == []  # not their team's agent
        async with sup_a.patch(f"/api/v1/supervision/sessions/{session['id']}", headers=h,
                               json={"mode": "whisper"}) as r:
            assert r.status == 200 and (await r.json())["mode"] == "whisper"
        async with sup_a.patch("/api/v1/supervision/sessions/..%2f..%2fetc", headers=h, json={"mode": "barge"}) as r:
            assert r.status == 404
        async with sup_a.delete(f"/api/v1/supervision/sessions/{session['id']}", headers=h) as r:
            assert r.status == 200
        await rig.until(lambda: not rig.server.supervision.sessions.sessions, what="spy over")
        await spy_messages(ws_a, session["id"], "ended")
        await ws_a.close()
        # the agent's screen never says they are listened to
        agent_msgs = []
        with contextlib.suppress(TimeoutError):
            while len(agent_msgs) < 50:
                agent_msgs.append(await ws_agent.receive_json(timeout=0.5))
        assert not [m for m in agent_msgs if m["type"] == "spy" or m.get("spies")]
        await ws_agent.close()
    actions = [(r["username"], r["action"], r["outcome"]) for r in await rig.until_rows(
        "SELECT * FROM audit_log WHERE action LIKE 'spy.%' ORDER BY id")]
    assert actions[:6] == [("agent1", "spy.start", "denied"), ("sup_b", "spy.start", "denied"),
                           ("sup_a", "spy.start", "failed"), ("sup_a", "spy.start", "ok"),
                           ("sup_a", "spy.mode", "ok"), ("sup_a", "spy.mode", "failed")]
    # the PBX may report the end before the stop request's own audit row is written
    assert sorted(actions[6:]) == [("sup_a", "spy.ended", "ok"), ("sup_a", "spy.stop", "ok")]


async def test_find_play_with_range_and_download_a_recording(media_rig):
    rig = await media_rig(policy="all")
    await people(rig)
    call, cid, _agent_id = await rig.connected_call(talk_time=0.6, caller="+15550001111")
    assert await call.wait(15) == "answered"
    await rig.until_rows("SELECT 1 FROM recordings WHERE call_id = $1 AND sha256 IS NOT NULL", cid)
    await rig.until_rows("SELECT 1 FROM calls WHERE call_id = $1", cid)
    sup_a, _h = await login(rig, "sup_a")
    sup_b, _ = await login(rig, "sup_b")
    async with sup_a, sup_b:
        async with sup_a.get("/api/v1/recordings/calls", params={"caller": "+15550001111"}) as r:
            found = await r.json()
        assert [c["call_id"] for c in found] == [cid]
        rec = found[0]["recordings"][0]
        async with sup_a.get("/api/v1/recordings/calls", params={"caller": "+15550001111", "agent": "nobody"}) as r:
            assert await r.json() == []
        async with sup_a.get("/api/v1/recordings/calls", params={"since": "yesterday"}) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "since"
        async with sup_b.get("/api/v1/recordings/calls", params={"caller": "+15550001111"}) as r:
            assert await r.json() == []  # outside sup_b's teams
        async with sup_b.get(rec["audio_url"]) as r:
            assert r.status == 404
        data = (rig.root / (await rig.rows("SELECT file FROM recordings WHERE id = $1", rec["id"]))[0]["file"]).read_bytes()
        async with sup_a.get(rec["audio_url"], headers={"Range": "bytes=44-99"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 44-99/{len(data)}"
            assert await r.read() == data[44:100]
        async with sup_a.get(rec["download_url"]) as r:
            assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
            body = await r.read()
        assert hashlib.sha256(body).hexdigest() == rec["sha256"]
        for bad in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "1%2F..%2F..", "-1", "1e3"):
            async with sup_a.get(f"/api/v1/recordings/{bad}/audio") as r:
                assert r.status == 404, bad
    audit = [(r["action"], r["target"]) for r in await rig.rows(
        "SELECT * FROM audit_log WHERE action LIKE 'recording.%' ORDER BY id")]
    assert audit == [("recording.play", str(rec["id"])), ("recording.download", str(rec["id"]))]
