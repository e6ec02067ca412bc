"""End to end: calls ccserver must keep track of whatever context they were born in, and calls
that end while the PBX link is down."""

from __future__ import annotations

import time

import pytest
from test_e2e_asterisk import call_id, make_rig  # noqa: F401  (fixture)

from ccserver.recording.store import CallSearch, RecordingStore
from ccserver.sim.asterisk import CallerScript


@pytest.mark.parametrize("make_rig", ["asterisk"], indirect=True)
async def test_a_call_sent_from_the_carriers_context_with_goto_is_tracked_to_its_cdr(make_rig):  # noqa: F811
    # README step 1's own example: the trunk's context sends the call on with
    # Goto(ccserver-inbound,${EXTEN},1), and the node lists only ccserver-inbound (the default)
    rig = await make_rig()
    assert rig.server.nodes[0].inbound_contexts == ["ccserver-inbound"]
    call = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.5, did="5551000",
                                           context="from-carrier"))
    cid = call_id(call)
    assert await call.wait(20) == "answered"
    row = await rig.cdr(cid)
    assert (row["disposition"], row["did"], row["queue"], row["hangup_by"]) == (
        "answered", "5551000", "support", "caller")
    assert row["agent_id"] == call.agent.split("/")[1] and row["ring_no_answer"] == 0
    states = [s for a in ("1001", "1002") for s in await rig.agent_states(a)]
    assert not [s for s in states if s[1] == "paused"], states


@pytest.mark.parametrize("make_rig", ["asterisk"], indirect=True)
async def test_a_call_answered_by_the_carriers_context_is_ours_from_its_ivr_session(make_rig):  # noqa: F811
    # Answer() then Goto: no Newstate in ccserver-inbound, and a caller who presses nothing
    # shows no event there until the wait music, after the IVR; its FastAGI session says it
    rig = await make_rig(on_sim=lambda sim: setattr(sim, "time_scale", 10.0))
    placed = time.time()
    call = rig.sim.place_call(CallerScript(digits=["", "", ""], talk_time=3.0, did="5551000",
                                           context="from-carrier", carrier_answers=True))
    assert await call.wait(30) == "answered"
    row = await rig.cdr(call_id(call))
    assert (row["disposition"], row["did"], row["queue"]) == ("answered", "5551000", "support")
    # arrived when the channel was born, not when the IVR ended
    assert row["arrived_at"].timestamp() - placed < 0.5 < (row["ivr_ended_at"] - row["arrived_at"]).total_seconds()


async def test_a_call_ending_while_the_link_is_down_ends_at_the_link_down_time(make_rig):  # noqa: F811
    rig = await make_rig()
    call, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=1.0))
    center = rig.server.center
    agent_id = center.calls[cid].agent_id
    rig.freeze_pbx_link(True)  # half-open: the hang-up happens while ccserver cannot see it
    assert await call.wait(15) == "answered"
    await rig.until(lambda: not rig.adapter.connected, timeout=10, what="ping deadline")
    noticed = time.time()
    rig.freeze_pbx_link(False)
    await rig.until(lambda: center.agents[agent_id].state == "ready", timeout=15,
                    what="agent freed by the resync")
    row = await rig.cdr(cid)
    assert (row["disposition"], row["hangup_cause"], row["end_estimated"]) == ("answered", "lost", True)
    # the link-down time, not the resync's: the outage is not counted as talk
    assert row["ended_at"].timestamp() <= noticed
    assert float(row["talk_seconds"]) <= noticed - row["answered_at"].timestamp()
    (found,) = await RecordingStore(rig.server._pool).search(CallSearch(call_id=cid))
    assert found.end_estimated
