"""A ccserver restart in the middle of a connected FreeSWITCH call: the restarted server finds
the agent leg by what the switch keeps (the ``cc_device`` ccserver set on it at the originate),
not by its channel name, so the agent stays on that call and is offered nothing else."""

from __future__ import annotations

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
