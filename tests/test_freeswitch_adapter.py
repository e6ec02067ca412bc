"""The FreeSWITCH adapter over real TCP: commands, job results, bad input and reconnection.

The peer is the simulator (``ccserver.sim.freeswitch``), or a raw socket server for byte-level
misbehaviour the simulator would never produce.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest

import ccserver.pbx.freeswitch.adapter as adapter_mod
from ccserver.core.commands import HangupCall, RingAgent, StartRecording, StopRecording
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    CallStarted,
    NodeConnectionChanged,
    NodeResynced,
    RecordingStarted,
    RecordingStopped,
)
from ccserver.hardware import FreeSwitchNodeConfig
from ccserver.pbx.base import CommandFailed
from ccserver.pbx.freeswitch.adapter import FreeSwitchAdapter
from ccserver.pbx.freeswitch.outbound import FsOutboundServer
from ccserver.sim.freeswitch import CallerScript, SimAgent, SimulatedFreeSwitch

PASSWORD = "not-ClueCon-4f1a"


def node(port: int, **kw) -> FreeSwitchNodeConfig:
    return FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="127.0.0.1", esl_port=port,
                                esl_password_env="UNUSED_IN_TESTS", inbound_contexts=["ccserver-inbound"],
                                recording_root="/rec", **{"ping_interval": 0.5, "ping_timeout": 0.5,
                                                          "command_timeout": 1.0, **kw})


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def rig():
    """A simulator whose calls our outbound-socket server sends straight to queue ``support``
    (they wait on hold music), plus a started adapter and the events it emitted."""
    sims, adapters = [], []
    outbound = FsOutboundServer("127.0.0.1", 0, lambda s: s.set_variable("CC_QUEUE", "support"))
    outbound_port = await outbound.start()

    async def make(agents=None, password=PASSWORD):
        sim = SimulatedFreeSwitch(node="fs1", esl_password=PASSWORD, outbound_host="127.0.0.1",
                                  outbound_port=outbound_port, agents=agents or [])
        port = await sim.start()
        events: list = []
        adapter = FreeSwitchAdapter(node(port), events.append, password)
        await adapter.start()
        sims.append(sim)
        adapters.append(adapter)
        return sim, adapter, events

    yield make
    for a in adapters:
        await a.stop()
    for s in sims:
        await s.stop()
    await outbound.stop()


async def caller_in_queue(sim: SimulatedFreeSwitch, events: list) -> str:
    """A caller channel the adapter knows, as if it waited on hold music."""
    call = sim.place_call(CallerScript(patience=30))
    await until(lambda: any(isinstance(e, CallStarted) for e in events), what="CallStarted")
    await until(lambda: sim.channels[call.uniqueid].application == "endless_playback", what="hold")
    return call.uniqueid


async def test_wrong_password_is_refused_with_a_clear_log_and_no_secret(rig, caplog):
    caplog.set_level(logging.INFO)
    sim, adapter, events = await rig(password="WrongPassword")
    await until(lambda: "password refused" in caplog.text, what="refusal logged")
    assert not adapter.connected and not any(isinstance(e, NodeResynced) for e in events)
    assert "WrongPassword" not in caplog.text


async def test_ring_agent_originates_bridges_and_reports_answer(rig):
    sim, adapter, events = await rig([SimAgent("user/1001", answer_delay=0.1)])
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, "user/1001", 5))
    await until(lambda: any(isinstance(e, AgentLegAnswered) for e in events), what="answered")
    assert sim.channels[caller].bridged_to.device == "user/1001"
    # greenswitch ran on its own gevent hub; the process itself was not monkey-patched
    assert socket.socket.__module__ == "socket" and threading.Lock.__module__ == "_thread"


@pytest.mark.parametrize("agents, device, reason", [
    ([SimAgent("user/1001", answers=False)], "user/1001", "no_answer"),
    ([], "user/9999", "unavailable"),
])
async def test_failed_originate_is_an_agent_leg_failure(rig, agents, device, reason):
    sim, adapter, events = await rig(agents)
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, device, 1))
    await until(lambda: any(isinstance(e, AgentLegFailed) for e in events), what="leg failed")
    (failed,) = [e for e in events if isinstance(e, AgentLegFailed)]
    assert (failed.call_id, failed.device, failed.reason) == (f"fs1:{caller}", device, reason)


async def test_busy_agent_is_reported_busy(rig):
    sim, adapter, events = await rig([SimAgent("user/1001", answer_delay=0.05)])
    await until(lambda: adapter.connected, what="login")
    sim.busy["user/1001"] = "another-call"
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, "user/1001", 2))
    await until(lambda: any(isinstance(e, AgentLegFailed) for e in events), what="leg failed")
    assert [e.reason for e in events if isinstance(e, AgentLegFailed)] == ["busy"]


async def test_a_job_that_never_returns_gives_up_the_leg(rig, monkeypatch, caplog):
    monkeypatch.setattr(adapter_mod, "JOB_GRACE", 0.3)
    sim, adapter, events = await rig([SimAgent("user/1001")])
    await until(lambda: adapter.connected, what="login")
    monkeypatch.setattr(sim.server, "background", lambda rest, job: None)  # the job is lost
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, "user/1001", 1))
    await until(lambda: any(isinstance(e, AgentLegFailed) for e in events), what="given up")
    assert [e.reason for e in events if isinstance(e, AgentLegFailed)] == ["error"]
    assert "never returned" in caplog.text


async def test_bad_dial_string_fails_the_leg_without_touching_the_switch(rig):
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    with pytest.raises(CommandFailed, match="dial string"):
        await adapter.execute(RingAgent("fs1", "fs1:x", "x", "user/1 &bridge(evil)", 5))
    assert [e.reason for e in events if isinstance(e, AgentLegFailed)] == ["error"]


async def test_recording_and_hangup(rig):
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    cid = f"fs1:{caller}"
    await adapter.execute(StartRecording("fs1", cid, caller, "2026/call.wav"))
    await adapter.execute(StopRecording("fs1", cid, caller))
    with pytest.raises(CommandFailed, match="Cannot stop"):
        await adapter.execute(StopRecording("fs1", cid, caller))
    with pytest.raises(CommandFailed, match="under the node's root"):
        await adapter.execute(StartRecording("fs1", cid, caller, "../etc/passwd"))
    await until(lambda: any(isinstance(e, RecordingStopped) for e in events), what="stopped")
    rec = [(type(e), e.file) for e in events if isinstance(e, (RecordingStarted, RecordingStopped))]
    assert rec == [(RecordingStarted, "/rec/2026/call.wav"), (RecordingStopped, "/rec/2026/call.wav")]
    await adapter.execute(HangupCall("fs1", cid, caller))
    assert caller not in sim.channels
    with pytest.raises(CommandFailed, match="No such channel"):
        await adapter.execute(HangupCall("fs1", cid, caller))


@pytest.mark.parametrize("garbage, then_close", [
    (b"Content-Type: api/response\nContent-Length: lots\n\n", False),  # not a number
    (b"Content-Type: api/response\nContent-Length: 5\n\nab", True),  # truncated body, then EOF
    (b"Content-Length: 3\nContent-Type: text/event-json\n\n{]}", False),  # body is not JSON
    # a lying Content-Length swallows the start of the next frame
    (b"Content-Type: api/response\nContent-Length: 40\n\nshort"
     b"Content-Length: 26\nContent-Type: text/event-json\n\n{\"Event-Name\":\"HEARTBEAT\"}", False),
])
async def test_bad_frame_drops_the_link_and_the_resync_keeps_the_call(rig, garbage, then_close, caplog):
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    for s in list(sim.server.sessions):
        s.writer.write(garbage)
        if then_close:
            s.writer.close()
    await until(lambda: adapter.connection.logins >= 2, what="re-login")
    snapshots = [e for e in events if isinstance(e, NodeResynced)]
    assert len(snapshots) == 2 and [c.channel for c in snapshots[-1].calls] == [caller]
    assert any(isinstance(e, NodeConnectionChanged) and not e.up for e in events)
    assert "connection lost" in caplog.text


async def test_unknown_content_type_is_skipped_and_the_link_stays(rig, caplog):
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    for s in list(sim.server.sessions):
        s.writer.write(b"Content-Type: text/surprise\nContent-Length: 4\n\nboo!")
    await until(lambda: "unknown Content-Type 'text/surprise'" in caplog.text, what="warning")
    assert await adapter.connection.api("status")  # same link, still in step
    assert adapter.connection.logins == 1


async def test_reply_deadline_drops_a_frozen_link_then_reconnects(rig, caplog):
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    sim.set_esl_frozen(True)
    await until(lambda: not adapter.connected, what="frozen link dropped")
    assert "no reply to 'api status'" in caplog.text
    sim.set_esl_frozen(False)
    await until(lambda: adapter.connected and adapter.connection.logins >= 2, what="re-login")


async def test_stop_landing_with_a_ping_reply_still_stops(rig, monkeypatch):
    """Python 3.11's ``asyncio.wait_for`` swallows a cancel that arrives in the same loop turn
    as its awaited result; the link would keep pinging forever and ``stop()`` never return.
    Here the cancel lands exactly there: right after a reply crosses over from the gevent hub."""
    from ccserver.pbx.freeswitch import gevent_thread

    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    task = adapter.connection._task
    settle = gevent_thread._settle

    def settle_then_cancel(fut, result, error):
        settle(fut, result, error)
        task.cancel()  # before the awaiting coroutine wakes up

    monkeypatch.setattr(gevent_thread, "_settle", settle_then_cancel)
    async with asyncio.timeout(3):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def agent_ringing(rig):
    """A caller waiting and agent 1001 (who never answers) ringing for it: sim, adapter, events,
    the caller's uuid and the agent leg."""
    sim, adapter, events = await rig([SimAgent("user/1001", answers=False)])
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, "user/1001", 60))
    await until(lambda: [ch for ch in sim.channels.values() if ch.device == "user/1001"], what="agent ringing")
    (leg,) = [ch for ch in sim.channels.values() if ch.device == "user/1001"]
    return sim, adapter, events, caller, leg


async def test_a_caller_gone_while_the_link_was_down_takes_its_ringing_agent_leg_at_resync(rig):
    sim, adapter, events, caller, leg = await agent_ringing(rig)
    sim.set_esl_frozen(True)
    sim.hangup(sim.channels[caller], "NORMAL_CLEARING", "recv_bye")  # the caller leaves unseen
    await until(lambda: not adapter.connected, what="frozen link dropped")
    assert leg.uuid in sim.channels and not leg.gone  # still ringing: nobody told it
    sim.set_esl_frozen(False)
    await until(lambda: adapter.connected and adapter.connection.logins >= 2, what="re-login")
    await until(lambda: leg.gone, what="agent leg cancelled")
    assert f"api uuid_kill {leg.uuid} ORIGINATOR_CANCEL" in sim.received
    assert leg.variables["hangup_cause"] == "ORIGINATOR_CANCEL"


async def test_the_resync_leaves_the_leg_ringing_for_a_caller_still_there(rig):
    sim, adapter, events, caller, leg = await agent_ringing(rig)
    await sim.drop_esl_connections()
    await until(lambda: adapter.connected and adapter.connection.logins >= 2, what="re-login")
    await until(lambda: sum(isinstance(e, NodeResynced) for e in events) >= 2, what="resync")
    assert not leg.gone and not [c for c in sim.received if c.startswith("api uuid_kill")]


async def test_an_agent_who_answers_while_the_link_is_down_is_bridged_at_resync(rig, monkeypatch):
    # the job's "+OK" goes only to listeners connected when it fires: here nobody. Waiting for it
    # gave the answered leg up after the ring timeout plus this grace, and paused the agent.
    monkeypatch.setattr(adapter_mod, "JOB_GRACE", 0.5)
    sim, adapter, events = await rig([SimAgent("user/1001", answer_delay=0.4)])
    await until(lambda: adapter.connected, what="login")
    caller = await caller_in_queue(sim, events)
    await adapter.execute(RingAgent("fs1", f"fs1:{caller}", caller, "user/1001", 2))
    await sim.cut_esl(True)
    await until(lambda: not adapter.connected, what="link down")
    await until(lambda: any(ch.device == "user/1001" and ch.answered for ch in sim.channels.values()),
                what="the agent answered (and the job's result reached no listener)")
    await sim.cut_esl(False)
    await until(lambda: any(isinstance(e, AgentLegAnswered) for e in events), timeout=10,
                what="the answered leg bridged")
    assert sim.channels[caller].bridged_to.device == "user/1001"
    assert not adapter._ring_jobs  # settled: no deadline can give the leg up later
    assert not [e for e in events if isinstance(e, AgentLegFailed)]


async def test_a_leg_that_ended_while_the_link_was_down_frees_the_agent_without_blame(rig):
    sim, adapter, events, caller, leg = await agent_ringing(rig)
    await sim.cut_esl(True)
    await until(lambda: not adapter.connected, what="link down")
    sim.hangup(leg, "CALL_REJECTED", "recv_refuse")  # its job's -ERR reaches no listener
    await sim.cut_esl(False)
    await until(lambda: any(isinstance(e, AgentLegFailed) for e in events), timeout=10, what="leg settled")
    assert [e.reason for e in events if isinstance(e, AgentLegFailed)] == ["cancelled"]


async def test_a_flow_ending_in_a_queue_does_not_log_the_caller_as_gone(rig, caplog):
    caplog.set_level(logging.INFO, logger="ccserver.pbx.freeswitch.outbound")
    sim, adapter, events = await rig()
    await until(lambda: adapter.connected, what="login")
    await caller_in_queue(sim, events)  # our flow ended, we closed the socket: the caller waits
    assert "caller gone" not in caplog.text
    call = sim.place_call(CallerScript(hangup_during_ivr_after=0))
    await call.wait(5)
    await until(lambda: "caller gone (" in caplog.text, what="a real hang-up still logged")


async def test_an_acl_refusal_is_logged_as_the_switchs_rejection(caplog):
    async def refuse(reader, writer):
        # mod_event_socket.c: an address outside apply-inbound-acl gets this instead of an
        # auth/request, and the socket closes
        writer.write(b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    adapter = FreeSwitchAdapter(node(server.sockets[0].getsockname()[1]), [].append, PASSWORD)
    await adapter.start()
    try:
        await until(lambda: "Access Denied, go away." in caplog.text, what="the rejection logged")
        assert "refused by FreeSWITCH's ACL" in caplog.text
        assert "no auth/request" not in caplog.text
    finally:
        await adapter.stop()
        server.close()
        await server.wait_closed()
