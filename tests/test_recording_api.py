"""Recording over HTTP for agents and supervisors (both PBX kinds): an agent pauses, resumes and
starts the recording of their own call only; the live recording state the agent page shows; a
playback is audited once, not once per Range request of a seeking player."""

from __future__ import annotations

import json

from ccserver.api.store import Store
from ccserver.db.pool import open_pool
from rig import SYSTEM_GRANTED
from test_supervision_api import PASSWORD, login, people

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)


async def add_agent_user(rig, username: str, agent_id: str) -> None:
    pool = await open_pool(rig.dsn, 1, 1)
    try:
        await Store(pool).create_user(username, PASSWORD, "agent", agent_id=agent_id)
    finally:
        await pool.close()


async def two_connected_calls(rig) -> dict[str, str]:
    """Agent id -> the id of the call they talk on, for both agents."""
    calls = {}
    for caller in ("+15550000001", "+15550000002"):
        _call, cid, agent_id = await rig.connected_call(talk_time=60.0, caller=caller)
        calls[agent_id] = cid
    assert sorted(calls) == ["1001", "1002"]
    return calls


def mutes(rig) -> list[str]:
    """The pause / resume commands the node received (MixMonitorMute / uuid_record mask|unmask)."""
    if rig.kind == "asterisk":
        return [f"{m['Channel']} {m['State']}" for m in rig.sim.received if m.get("Action") == "MixMonitorMute"]
    return [c for c in rig.sim.received if " mask " in c or " unmask " in c]


async def state(session, call_id: str) -> dict:
    async with session.get(f"/api/v1/calls/{call_id}/recording") as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def mine_and_theirs(rig) -> tuple[str, str]:
    """The people, an agent user for 1002 too, and a call connected to each agent:
    (agent1's call id, agent2's call id)."""
    await people(rig)
    await add_agent_user(rig, "agent2", "1002")
    calls = await two_connected_calls(rig)
    return calls["1001"], calls["1002"]


async def test_an_agent_pauses_and_resumes_only_their_own_calls_recording(media_rig):
    rig = await media_rig(policy="all")
    mine, theirs = await mine_and_theirs(rig)
    for cid in (mine, theirs):
        await rig.until_rows("SELECT 1 FROM recordings WHERE call_id = $1", cid)
    agent, h = await login(rig, "agent1")
    sup_b, hb = await login(rig, "sup_b")
    async with agent, sup_b:
        assert await state(agent, mine) == {"call_id": mine, "policy": "all", "state": "running",
                                            "recording_id": (await rig.rows(
                                                "SELECT id FROM recordings WHERE call_id = $1", mine))[0]["id"],
                                            "reason": None}
        for action in ("pause", "resume", "start"):
            async with agent.post(f"/api/v1/calls/{theirs}/recording/{action}", headers=h) as r:
                assert r.status == 403, await r.text()
                assert "not your call" in (await r.json())["error"]
        async with agent.get(f"/api/v1/calls/{theirs}/recording") as r:
            assert r.status == 403
        async with sup_b.post(f"/api/v1/calls/{mine}/recording/pause", headers=hb) as r:
            assert r.status == 403  # not a call of sup_b's teams
        assert mutes(rig) == []
        assert [r["paused_since"] for r in await rig.rows("SELECT paused_since FROM recordings")] == [None, None]

        async with agent.post(f"/api/v1/calls/{mine}/recording/pause", headers=h) as r:
            assert r.status == 200, await r.text()
        assert (await state(agent, mine))["state"] == "paused"
        async with agent.post(f"/api/v1/calls/{mine}/recording/pause", headers=h) as r:
            assert r.status == 409 and "already paused" in (await r.json())["error"]
        async with agent.post(f"/api/v1/calls/{mine}/recording/resume", headers=h) as r:
            assert r.status == 200, await r.text()
        assert (await state(agent, mine))["state"] == "running"
        async with agent.post(f"/api/v1/calls/{mine}/recording/start", headers=h) as r:
            assert r.status == 409  # policy all: already recorded
    spans = {r["call_id"]: json.loads(r["paused_spans"])
             for r in await rig.rows("SELECT call_id, paused_spans FROM recordings")}
    assert len(spans[mine]) == 1 and spans[theirs] == []
    assert len(mutes(rig)) == 2
    audit = [(r["username"], r["action"], r["target"], r["outcome"]) for r in await rig.rows(
        "SELECT * FROM audit_log WHERE action LIKE 'recording.%' ORDER BY id")]
    assert audit[:4] == [("agent1", f"recording.{a}", theirs, "denied") for a in ("pause", "resume", "start")] + [
        ("sup_b", "recording.pause", mine, "denied")]
    assert audit[4:6] == [("agent1", "recording.pause", mine, "ok"), ("agent1", "recording.pause", mine, "failed")]


async def test_an_agent_starts_an_on_demand_recording_of_their_own_call_only(media_rig):
    rig = await media_rig(policy="on_demand", ami_write=SYSTEM_GRANTED)
    mine, theirs = await mine_and_theirs(rig)
    agent, h = await login(rig, "agent1")
    other, h2 = await login(rig, "agent2")
    async with agent, other:
        assert await state(agent, mine) == {"call_id": mine, "policy": "on_demand", "state": "none",
                                            "recording_id": None, "reason": None}
        async with other.post(f"/api/v1/calls/{mine}/recording/start", headers=h2) as r:
            assert r.status == 403
        assert rig.server.center.calls[mine].recording is None
        async with agent.post(f"/api/v1/calls/{mine}/recording/start", headers=h) as r:
            assert r.status == 200, await r.text()
            file = (await r.json())["file"]
        await rig.until_rows("SELECT 1 FROM recordings WHERE call_id = $1", mine)
        assert (await state(agent, mine))["state"] == "running"
        assert (await state(other, theirs))["state"] == "none"
    assert [r["file"] for r in await rig.rows("SELECT file FROM recordings")] == [file]


async def test_a_playback_is_audited_once_not_per_range_request(media_rig):
    rig = await media_rig(policy="all")
    await people(rig)
    call, cid, _agent_id = await rig.connected_call(talk_time=0.6)
    assert await call.wait(15) == "answered"
    [rec] = await rig.until_rows("SELECT id FROM recordings WHERE call_id = $1 AND sha256 IS NOT NULL", cid)
    audio, download = f"/api/v1/recordings/{rec['id']}/audio", f"/api/v1/recordings/{rec['id']}/download"
    sup, _ = await login(rig, "sup_a")
    admin, _ = await login(rig, "admin")

    async def get(session, url, rng=None, status=206):
        async with session.get(url, headers={"Range": rng} if rng else {}) as r:
            assert r.status == (status if rng else 200), url
            await r.read()

    async def audited():
        return [(r["username"], r["action"], r["detail"]) for r in await rig.rows(
            "SELECT username, action, detail->>'range' AS detail FROM audit_log "
            "WHERE action LIKE 'recording.%' ORDER BY id")]

    async with sup, admin:
        await get(sup, audio)  # a plain GET: audited
        await get(sup, audio, "bytes=0-")  # a player starting (again): audited
        for rng in ("bytes=100-199", "bytes=2000-", "bytes=-100"):
            await get(sup, audio, rng)  # seeking in what was just played: not audited
        await get(admin, audio, "bytes=100-199")  # never played it: audited even mid-file
        await get(sup, download, "bytes=100-")  # downloads always
        await get(sup, download)
        assert await audited() == [("sup_a", "recording.play", ""), ("sup_a", "recording.play", "bytes=0-"),
                                   ("admin", "recording.play", "bytes=100-199"),
                                   ("sup_a", "recording.download", "bytes=100-"),
                                   ("sup_a", "recording.download", "")]
        # an hour later the same seek is a new playback
        await rig.rows("UPDATE audit_log SET at = at - interval '61 minutes'")
        await get(sup, audio, "bytes=100-199")
        assert (await audited())[-1] == ("sup_a", "recording.play", "bytes=100-199")
        # admins find every call (supervisors only their teams': test_supervision_api)
        await rig.until_rows("SELECT 1 FROM calls WHERE call_id = $1", cid)
        async with admin.get("/api/v1/recordings/calls", params={"call_id": cid}) as r:
            [found] = await r.json()
        assert found["recordings"][0]["id"] == rec["id"] and found["ivr_path"]
