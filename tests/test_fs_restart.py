"""FreeSWITCH calls ccserver did not see from their start. After a restart in the middle of a
connected call the restarted server finds the agent leg by what the switch keeps (the
``cc_device`` ccserver set on it at the originate), not by its channel name, so the agent stays
on that call and is offered nothing else. A call that came in while the ESL link was cut
arrives when the switch created its channel, not when its IVR ended."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from test_e2e_asterisk import call_id, fs_device, make_rig  # noqa: F401  (fixture)

from ccserver.api.store import User
from ccserver.api.views import Scope
from ccserver.app import Server
from ccserver.sim.asterisk import CallerScript


async def restart(rig) -> None:
    """Stop the rig's server and start a new one on the same site, database and switch."""
    old = rig.server
    await old.stop()
    rig.server = Server(old.config, old.nodes)
    await rig.server.start()
    await rig.until(lambda: rig.adapter.connected, what="PBX login after the restart")


@pytest.mark.parametrize("make_rig", ["freeswitch"], indirect=True)
async def test_an_agent_talking_across_a_restart_stays_on_call_and_gets_no_second_call(make_rig):  # noqa: F811
    rig = await make_rig()
    first, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=60))
    agent_id = rig.server.center.calls[cid].agent_id
    await restart(rig)
    center = rig.server.center
    await rig.until(lambda: cid in center.calls, what="the live call adopted at resync")
    call, agent = center.calls[cid], center.agents[agent_id]
    assert (call.state.value, call.agent_id) == ("connected", agent_id)
    assert (agent.state, agent.call_id) == ("on_call", cid)
    admin = User(1, "root", "Root", "admin", None, False)
    assert Scope(admin, rig.server.config, center).sees_call(call)
    second, cid2 = await rig.connected_call(CallerScript(digits=["1"], talk_time=0.3))
    assert center.calls[cid2].agent_id != agent_id
    assert fs_device(f"PJSIP/{agent_id}") not in second.agents_rung


@pytest.mark.parametrize("make_rig", ["freeswitch"], indirect=True)
async def test_a_call_whose_channel_create_was_missed_arrives_when_the_switch_created_it(make_rig):  # noqa: F811
    rig = await make_rig()
    await rig.sim.cut_esl(True)
    await rig.until(lambda: not rig.adapter.connected, what="link cut")
    call = rig.sim.place_call(CallerScript(digits=["1"], dtmf_delay=0.6, talk_time=0.2))
    created = rig.sim.channels[call.uniqueid].created
    cid = call_id(call)
    # the IVR runs over the outbound socket meanwhile; its end is the first ccserver hears of it
    await rig.until(lambda: cid in rig.server.center.calls, what="adopted at the IVR's end")
    await rig.sim.cut_esl(False)
    assert await call.wait(15) == "answered"
    row = await rig.cdr(cid)
    assert abs((row["arrived_at"] - datetime.fromtimestamp(created, timezone.utc)).total_seconds()) < 0.01
    assert (row["ivr_ended_at"] - row["arrived_at"]).total_seconds() >= 0.5
