"""The simulators' spy legs and their keys against the real captures, through raw TCP clients.

Neither PBX reports a spy session's mode: a mode key shows only as the DTMF events of the leg
that reads it (Asterisk: ChanSpy on the ``;2`` half, DTMFEnd shaped as in capture 02b;
FreeSWITCH: eavesdrop on the supervisor's leg, the DTMF event of capture 04).
"""

from __future__ import annotations

import asyncio

from test_sim_asterisk import QUEUE_FLOW, Lab, capture, keys
from test_sim_freeswitch import Client, capture_frames

from ccserver.pbx.asterisk.ami_codec import encode
from ccserver.pbx.freeswitch.esl_codec import parse_event
from ccserver.sim.asterisk import SimAgent
from ccserver.sim.freeswitch import SimulatedFreeSwitch
from ccserver.sim.freeswitch import SimAgent as FsAgent

SESSION = "0123456789abcdef"


async def test_asterisk_spy_keys_are_dtmf_events_as_captured():
    cap = capture("02b-ivr-fastagi-queue-agent-hangup.ami.in.raw")
    real_begin = next(m for m in cap if m.event == "DTMFBegin")
    real_end = next(m for m in cap if m.event == "DTMFEnd")
    phones = [SimAgent("PJSIP/1001", answer_delay=0.1), SimAgent("PJSIP/9000", answer_delay=0.1)]
    async with Lab(phones, QUEUE_FLOW) as lab:
        await lab.ami.send(Action="Originate", ActionID="agent", Channel="PJSIP/1001", Application="Wait",
                           Data="30", Async="true")
        agent = (await lab.ami.until(lambda m: m.event == "OriginateResponse"))[-1]["Channel"]
        await lab.ami.send(Action="Setvar", Channel=agent, Variable="SPYGROUP", Value=f"cc{SESSION}")
        await lab.ami.raw(encode([
            ("Action", "Originate"), ("ActionID", "spy"), ("Channel", f"Local/{SESSION}@ccserver-spy/n"),
            ("Application", "Dial"), ("Data", "PJSIP/9000,30"), ("Async", "true"),
            ("Variable", f"CC_SPY_TARGET={agent}"), ("Variable", f"CC_SPY_OPTIONS=qdEg(cc{SESSION})")]))
        spied = await lab.ami.until(lambda m: m.event == "OriginateResponse" and m.get("ActionID") == "spy")
        local1 = spied[-1]["Channel"]
        local2 = local1[:-1] + "2"
        # ccserver's switch: PlayDTMF Receive queues an end frame on ;2, which ChanSpy reads
        await lab.ami.send(Action="PlayDTMF", ActionID="k", Channel=local2, Digit="5", Receive="true")
        got = await lab.ami.until(lambda m: m.event == "DTMFEnd")
        assert got[-2]["Message"] == "DTMF successfully queued"
        assert keys(got[-1]) == keys(real_end)
        assert (got[-1]["Channel"], got[-1]["Digit"], got[-1]["Direction"], got[-1]["Privilege"]) == (
            local2, "5", "Received", "dtmf,all")
        assert lab.sim.spies[local1].mode == "whisper"
        # the supervisor's key: written to ;1 (Sent), read on ;2 (Received)
        lab.sim.press_spy_key(local1, "6")
        got = [m for m in await lab.ami.until(lambda m: m.event == "DTMFEnd" and m["Channel"] == local2)
               if m.event.startswith("DTMF")]
        assert [(m.event, m["Channel"], m["Direction"]) for m in got] == [
            ("DTMFBegin", local1, "Sent"), ("DTMFBegin", local2, "Received"),
            ("DTMFEnd", local1, "Sent"), ("DTMFEnd", local2, "Received")]
        assert [keys(m) for m in got] == [keys(real_begin), keys(real_begin), keys(real_end), keys(real_end)]
        assert lab.sim.spies[local1].mode == "barge"


async def test_freeswitch_spy_keys_are_dtmf_events_as_captured():
    frames = capture_frames("04-eavesdrop-whisper-barge-plain")
    real_reply = next(f for f in frames if f.content_type == "api/response" and "received DTMF" in f.text())
    real_dtmf = next(e for e in (parse_event(f) for f in frames if f.content_type == "text/event-plain")
                     if e.name == "DTMF")
    phones = [FsAgent("user/1001", answer_delay=0.05), FsAgent("user/9000", answer_delay=0.05)]
    sim = SimulatedFreeSwitch(node="fs", esl_password="ClueCon", outbound_host="127.0.0.1", outbound_port=1,
                              agents=phones)
    c = Client(*await asyncio.open_connection("127.0.0.1", await sim.start()))
    try:
        await c.frame()
        await c.send("auth ClueCon")
        await c.send("event plain DTMF BACKGROUND_JOB")
        agent, spy, quiet = "a" * 8 + "-agent", "b" * 8 + "-spy", "c" * 8 + "-3way"
        await c.send(f"bgapi originate {{origination_uuid={agent}}}user/1001 &park()", **{"Job-UUID": "j1"})
        assert parse_event(await c.frame()).body == f"+OK {agent}\n"
        assert (await c.send(f"api uuid_setvar {agent} eavesdrop_group cc{SESSION}")).text() == "+OK\n"
        await c.send(f"bgapi originate {{origination_uuid={spy},eavesdrop_enable_dtmf=true,"
                     f"eavesdrop_require_group=cc{SESSION}}}user/9000 &eavesdrop({agent})",
                     **{"Job-UUID": "j2"})
        assert parse_event(await c.frame()).body == f"+OK {spy}\n"
        reply = await c.send(f"api uuid_recv_dtmf {spy} 2")  # the reply first, then the digit's event
        assert list(reply.headers) == list(real_reply.headers)
        assert reply.text() == real_reply.text().replace(real_dtmf.get("Unique-ID"), spy)
        dtmf = parse_event(await c.frame())
        used = ("Event-Name", "Unique-ID", "Channel-Name", "DTMF-Digit", "DTMF-Duration", "DTMF-Source")
        assert set(used) <= set(real_dtmf.headers) and set(used) <= set(dtmf.headers)
        assert [dtmf.get(h) for h in used[3:]] == [real_dtmf.get(h) for h in used[3:]] == ["2", "2000", "APP"]
        assert dtmf.get("Unique-ID") == spy and sim.spies[spy].mode == "whisper"
        sim.press_spy_key(spy, "3")
        dtmf = parse_event(await c.frame())
        assert (dtmf.get("Unique-ID"), dtmf.get("DTMF-Digit"), dtmf.get("DTMF-Source")) == (spy, "3", "RTP")
        assert sim.spies[spy].mode == "barge"
        # three_way reads no keys: no event, no mode change
        await c.send("api uuid_kill " + spy)
        await c.send(f"bgapi originate {{origination_uuid={quiet}}}user/9000 &three_way({agent})",
                     **{"Job-UUID": "j3"})
        assert parse_event(await c.frame()).body == f"+OK {quiet}\n"
        await c.send(f"api uuid_recv_dtmf {quiet} 0")
        assert (await c.send("api status")).content_type == "api/response"  # nothing came between
        assert sim.spies[quiet].mode == "barge" and not sim.spies[quiet].digits
    finally:
        await sim.stop()
