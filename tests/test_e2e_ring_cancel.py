"""A caller who hangs up while an agent's phone rings: the ringing stops, on both PBX kinds.

Asterisk's Dial dies with its caller. On FreeSWITCH the agent leg is a separate originate, so
ccserver must cancel it (``uuid_kill <leg> ORIGINATOR_CANCEL``): a leg left ringing makes the
next offer to that agent fail USER_BUSY, and the agent is paused 'unavailable' for nothing.
"""

from __future__ import annotations

import time

import pytest
from test_e2e_asterisk import call_id, make_rig  # noqa: F401  (fixture)

from ccserver.sim.asterisk import CallerScript, SimAgent


def agent_channels(sim, extension: str) -> list:
    """The simulator's live channels of one agent phone (``PJSIP/1001-...``, ``sofia/internal/1001@...``)."""
    return [ch for ch in sim.channels.values() if f"/{extension}" in ch.name]


async def ringing_1001(make_rig, patience: float):
    """A rig whose 1001 lets its first call ring (never answering it) and answers the next one
    at once, 1002 paused, and a caller of ``patience`` being rung on 1001."""
    rig = await make_rig([SimAgent("PJSIP/1001", answer_delay=0.2, next_answers=[False]),
                          SimAgent("PJSIP/1002")])
    center = rig.server.center
    rig.server._dispatch(center.pause("1002", "lunch", time.time()))
    call = rig.sim.place_call(CallerScript(digits=["1"], patience=patience))
    cid = call_id(call)
    await rig.until(lambda: cid in center.calls and center.calls[cid].state == "offered",
                    what="the call offered to 1001")
    return rig, call, cid


@pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)
async def test_caller_abandoning_while_the_agent_rings_stops_the_ringing(make_rig, request):  # noqa: F811
    rig, first, first_id = await ringing_1001(make_rig, patience=1.2)
    center = rig.server.center
    await rig.until(lambda: agent_channels(rig.sim, "1001"), what="1001 ringing")
    ringing = agent_channels(rig.sim, "1001")
    # a second caller comes while 1001 still rings for the first (ring timeout 2 s): once the
    # first gives up, 1001 is offered the second call
    second = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.3, patience=10))
    second_id = call_id(second)
    await rig.until(lambda: second_id in center.calls, what="second call started")
    assert await first.wait(15) == "abandoned"
    assert await second.wait(20) == "answered"
    row = await rig.cdr(second_id)
    assert row["agent_id"] == "1001" and row["ring_no_answer"] == 0
    states = await rig.agent_states("1001")
    assert not [s for s in states if s[1] == "paused"], states
    live = list(rig.sim.channels.values())
    assert not [leg for leg in ringing if any(leg is ch for ch in live)]  # the first call's leg is gone
    if request.node.callspec.params["make_rig"] == "freeswitch":
        (leg,) = ringing
        assert f"api uuid_kill {leg.uuid} ORIGINATOR_CANCEL" in rig.sim.received
    first_row = await rig.cdr(first_id)
    assert first_row["disposition"] == "abandoned" and first_row["hangup_by"] == "caller"


@pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)
async def test_a_caller_hanging_up_while_the_agent_rings_is_never_offered_again(make_rig):  # noqa: F811
    rig, call, cid = await ringing_1001(make_rig, patience=1.0)
    # 1002 is free while 1001 rings: it would be next if the leaving caller were routed again
    # (Asterisk sends the caller's HangupRequest before the leg's DialEnd CANCEL, capture
    # asterisk-ami/03, and so does the simulator)
    rig.server._dispatch(rig.server.center.ready("1002", time.time()))
    assert await call.wait(15) == "abandoned"
    row = await rig.cdr(cid)
    assert (row["disposition"], row["hangup_by"], row["ring_no_answer"]) == ("abandoned", "caller", 0)
    assert ("ready", "offered", None) not in await rig.agent_states("1002")
    assert not [s for s in await rig.agent_states("1001") if s[1] == "paused"]
