"""Callback requests: the caller keeps their place in the queue without a channel, and when an
agent frees up the PBX rings the agent and then dials the caller's number."""

from __future__ import annotations

import json

import pytest
from test_core_center import DEV, arrive, make_center, records
from test_e2e_asterisk import call_id, fs_device, make_rig  # noqa: F401  (fixture)

from ccserver.core.commands import CallbackAgent, RingAgent
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    CallbackRequest,
    CallHungUp,
    CallStarted,
    IvrFinished,
)
from ccserver.ivr.store import Actor, FlowStore
from ccserver.sim.asterisk import CallerScript

NUMBER = "+15550009999"


def _request(cc, cid: str, at: float, hang_up_first: bool = False):
    cc.handle(CallStarted(cid, "n1", f"PJSIP/trunk-{cid}", "+1555", "5000", at))
    if hang_up_first:  # the dialplan hangs up right after the IVR: often before its report
        cc.handle(CallHungUp(cid, "normal_clearing", "system", at + 1))
    return cc.handle(IvrFinished(cid, "n1", f"PJSIP/trunk-{cid}", "+1555", "5000", None, ("menu", "cb"),
                                 {"CC_CALLBACK": NUMBER}, 0, at + 1, callback=CallbackRequest(NUMBER, "support")))


def test_a_callback_keeps_its_place_and_rings_the_agent_then_the_number():
    cc = make_center(auto_login=False)
    _request(cc, "c1", 1.0, hang_up_first=True)
    arrive(cc, "c2", 5.0)  # a caller who stays on the line, after the request
    assert [(w.call_id, w.caller) for w in cc.queue_snapshot("support", 9.0).waiting] == [
        ("c1/callback", NUMBER), ("c2", "+1555")]
    decisions = cc.login("a2", 10.0)
    [offer] = [d for d in decisions if isinstance(d, (CallbackAgent, RingAgent))]
    assert offer == CallbackAgent("n1", "c1/callback", DEV["a2"], NUMBER, 15)

    # no answer: the entry keeps its place (before c2) and is offered again
    decisions = cc.handle(AgentLegFailed("c1/callback", DEV["a2"], "no_answer", 12.0))
    decisions += cc.login("a1", 13.0)
    [again] = [d for d in decisions if isinstance(d, (CallbackAgent, RingAgent)) and d.call_id == "c1/callback"]
    assert isinstance(again, CallbackAgent) and again.number == NUMBER
    agent = next(a for a, d in DEV.items() if d == again.device)
    cc.handle(AgentLegAnswered("c1/callback", again.device, 14.0))
    assert cc.agents[agent].state == "on_call"
    cc.handle(CallHungUp("c1/callback", "normal_clearing", "unknown", 74.0))
    [row] = records(cc.tick(80.0))  # the record follows the agent's wrap-up
    assert (row.call_id, row.caller, row.disposition, row.agent_id, row.queue) == (
        "c1/callback", NUMBER, "answered", agent, "support")
    assert row.variables["CC_CALLBACK_OF"] == "c1"


def test_a_callback_to_an_unknown_queue_is_refused_and_the_call_still_ends(caplog):
    cc = make_center()
    cc.handle(CallStarted("c1", "n1", "PJSIP/t", "+1555", "5000", 1.0))
    cc.handle(IvrFinished("c1", "n1", "PJSIP/t", "+1555", "5000", None, ("cb",), {}, 0, 2.0,
                          callback=CallbackRequest(NUMBER, "ghost")))
    assert [c for c in cc.calls] == ["c1"] and "callback to queue 'ghost' refused" in caplog.text


@pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)
async def test_callback_end_to_end(make_rig, request):  # noqa: F811
    kind = request.node.callspec.params["make_rig"]
    rig = await make_rig()
    store, admin = FlowStore(rig.server.api.api.pool), Actor("admin", "admin")
    await store.create_draft("later", {"name": "later", "start": "offer", "nodes": {
        "offer": {"type": "play", "prompts": ["vm-sorry"], "next": "cb"},
        "cb": {"type": "callback", "queue": "support"},
    }}, admin)
    await store.check("later", 1, admin)
    await store.publish("later", 1, "4100", admin)
    await rig.until(lambda: rig.server.flows.for_did("4100").name == "later", what="flow published")
    center, now = rig.server.center, rig.server.clock()
    for agent in list(center.agents):
        rig.server._dispatch(center.pause(agent, "meeting", now))

    call = rig.sim.place_call(CallerScript(caller=NUMBER, did="4100", digits=[]))
    assert await call.wait(10) == "no_queue"  # the caller hangs up; the place is kept
    entry = f"{call_id(call)}/callback"
    await rig.until(lambda: entry in center.calls, what="callback entry")
    waiting = rig.sim.place_call(CallerScript(caller="+15550001234", digits=["1"], talk_time=0.5))
    await rig.until(lambda: len(center.queue_snapshot("support", rig.server.clock()).waiting) == 2,
                    what="second caller queued")
    assert next(w.call_id for w in center.queue_snapshot("support", rig.server.clock()).waiting) == entry

    rig.server._dispatch(center.ready("1001", rig.server.clock()))  # the callback goes first
    device = fs_device("PJSIP/1001") if kind == "freeswitch" else "PJSIP/1001"
    await rig.until(lambda: rig.sim.callbacks == [(device, NUMBER)], what="callback dialed")
    rig.server._dispatch(center.ready("1002", rig.server.clock()))
    assert await waiting.wait(15) == "answered"
    row = await rig.cdr(entry)
    assert (row["caller"], row["disposition"], row["agent_id"], row["queue"]) == (
        NUMBER, "answered", "1001", "support")
    assert json.loads(row["variables"])["CC_CALLBACK_OF"] == call_id(call)
    assert list(row["ivr_path"]) == ["offer", "cb"]
    original = await rig.cdr(call_id(call))
    assert original["disposition"] == "ivr_completed"


@pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)
async def test_a_callback_ending_while_the_link_is_down_is_ended_by_the_resync(make_rig):  # noqa: F811
    """The agent's callback conversation ends while ccserver cannot see the node: the resync
    that follows the reconnection must end the callback and free the agent."""
    rig = await make_rig()
    rig.sim.callback_talk_time = 2.5
    store, admin = FlowStore(rig.server.api.api.pool), Actor("admin", "admin")
    await store.create_draft("later", {"name": "later", "start": "cb", "nodes": {
        "cb": {"type": "callback", "queue": "support"}}}, admin)
    await store.check("later", 1, admin)
    await store.publish("later", 1, "4100", admin)
    await rig.until(lambda: rig.server.flows.for_did("4100").name == "later", what="flow published")
    center = rig.server.center
    rig.server._dispatch(center.pause("1002", "meeting", rig.server.clock()))
    call = rig.sim.place_call(CallerScript(caller=NUMBER, did="4100", digits=[]))
    entry = f"{call_id(call)}/callback"
    await rig.until(lambda: rig.sim.callbacks, what="callback dialed")
    await rig.until(lambda: entry in center.calls and center.calls[entry].state == "connected",
                    what="callback connected")
    rig.freeze_pbx_link(True)  # the conversation ends (after 2.5 s) while nothing comes through
    await rig.until(lambda: not rig.adapter.connected, timeout=10, what="ping deadline")
    # the conversation is over on the PBX: the agent's channel (the last one) is gone
    await rig.until(lambda: not rig.sim.channels, timeout=10, what="callback over on the PBX")
    assert center.agents["1001"].state == "on_call"  # nothing told it otherwise yet
    rig.freeze_pbx_link(False)
    await rig.until(lambda: rig.adapter.connected, timeout=15, what="reconnect")
    await rig.until(lambda: entry not in center.calls, what="callback ended by the resync")
    await rig.until(lambda: center.agents["1001"].state == "ready", what="agent freed")
    row = await rig.cdr(entry)
    assert (row["disposition"], row["agent_id"], row["hangup_cause"]) == ("answered", "1001", "lost")
