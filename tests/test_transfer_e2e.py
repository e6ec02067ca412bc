"""Transferring a live call over HTTP, through the simulated Asterisk and FreeSWITCH: who may,
the exact AMI / ESL command, the caller reaching ``ccserver-transfer``, the CDR and the audit."""

from __future__ import annotations

import pytest
from test_supervision_api import login, people

from ccserver.core.commands import TransferCall
from ccserver.pbx.base import CommandFailed
from ccserver.sim.asterisk import CallerScript

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)

NUMBER = "+4930123456"


def transfers(rig) -> list:
    """What the simulated PBX was asked to transfer, in its own wire shape."""
    if rig.kind == "asterisk":
        return [(m["Channel"], m["Context"], m["Exten"], m["Priority"]) for m in rig.sim.received
                if m.get("Action") == "Redirect" and m.get("Context") != "ccserver-connect"]
    return [c for c in rig.sim.received if "uuid_transfer" in c]


def expected(rig, channel: str, number: str) -> list:
    if rig.kind == "asterisk":
        return [(channel, "ccserver-transfer", number, "1")]
    return [f"api uuid_transfer {channel} {number} XML ccserver-transfer"]


async def test_connected_call_transferred_by_its_supervisor(media_rig):
    rig = await media_rig(policy="none")
    await people(rig)
    # the caller talks 6 s to the agent, then as long again to the number transferred to
    call, cid, agent_id = await rig.connected_call(talk_time=6.0)
    channel = rig.server.center.calls[cid].channel
    url = f"/api/v1/calls/{cid}/transfer"
    agent, agh = await login(rig, "agent1")
    sup_a, h = await login(rig, "sup_a")
    sup_b, hb = await login(rig, "sup_b")
    async with agent, sup_a, sup_b:
        async with agent.post(url, headers=agh, json={"destination": NUMBER}) as r:
            assert r.status == 403
        async with sup_b.post(url, headers=hb, json={"destination": NUMBER}) as r:
            assert r.status == 404  # not their team's call: looks unknown
        for bad in ("did:5000", "123;Hangup", "12 34 XML default"):
            async with sup_a.post(url, headers=h, json={"destination": bad}) as r:
                body = await r.json()
                assert r.status == 422 and body["fields"][0]["field"] == "destination", body
        assert transfers(rig) == []  # nothing reached the PBX
        assert rig.server.center.calls[cid].state == "connected"
        async with sup_a.post(url, headers=h, json={"destination": NUMBER}) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"call_id": cid, "destination": NUMBER, "queue": "support",
                                      "agent_id": agent_id}
    assert transfers(rig) == expected(rig, channel, NUMBER)
    assert await call.wait(20) == "transferred" and call.transferred_to == NUMBER
    (row,) = await rig.until_rows("SELECT * FROM calls WHERE call_id = $1", cid)
    assert (row["disposition"], row["agent_id"], row["queue"]) == ("transferred", agent_id, "support")
    assert '"CC_TRANSFER_TO": "+4930123456"' in row["variables"]
    audit = [(r["username"], r["outcome"], r["target"]) for r in await rig.until_rows(
        "SELECT * FROM audit_log WHERE action = 'call.transfer' ORDER BY id")]
    assert audit == [("agent1", "denied", cid), ("sup_b", "failed", cid),
                     *[("sup_a", "failed", cid)] * 3, ("sup_a", "ok", cid)]


async def test_waiting_caller_transferred_by_an_admin(media_rig):
    rig = await media_rig(policy="none")
    await people(rig)
    admin, ah = await login(rig, "admin")
    async with admin:
        for agent_id in ("1001", "1002"):
            async with admin.post(f"/api/v1/agents/{agent_id}/pause", headers=ah,
                                  json={"reason": "meeting"}) as r:
                assert r.status == 200, await r.text()
        call = rig.sim.place_call(CallerScript(caller="+15550002222", did="support", digits=["1"],
                                               patience=30.0, talk_time=0.5))
        cid = f"{rig.node}:{call.uniqueid}"
        calls = rig.server.center.calls
        await rig.until(lambda: cid in calls and calls[cid].state == "queued", what="queued")
        channel = calls[cid].channel
        async with admin.post(f"/api/v1/calls/{cid}/transfer", headers=ah,
                              json={"destination": "08001234"}) as r:
            assert r.status == 200, await r.text()
        async with admin.post(f"/api/v1/calls/{cid}/transfer", headers=ah,
                              json={"destination": "08001234"}) as r:
            assert r.status == 404  # gone from ccserver's live calls at once
    assert transfers(rig) == expected(rig, channel, "08001234")
    assert await call.wait(15) == "transferred" and call.transferred_to == "08001234"
    (row,) = await rig.until_rows("SELECT * FROM calls WHERE call_id = $1", cid)
    assert (row["disposition"], row["agent_id"], row["answered_at"]) == ("transferred", None, None)


async def test_a_refused_transfer_raises_command_failed(media_rig):
    rig = await media_rig(policy="none")
    gone = "PJSIP/trunk-00000999" if rig.kind == "asterisk" else "7f1c2b9e-0000-4000-8000-000000000999"
    with pytest.raises(CommandFailed, match="(?i)channel"):
        await rig.server.run_command(TransferCall(rig.node, f"{rig.node}:gone", gone, "123"))
    assert transfers(rig) == expected(rig, gone, "123")  # asked, and the PBX said no
