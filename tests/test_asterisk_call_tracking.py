"""Which Asterisk channels are ccserver's calls, and what their events mean to the core.

Replays of ccserver's own sessions with a real Asterisk 22.10.1 (``asterisk-ccserver/``: the
shipped dialplan, the trunk's context ``from-carrier`` sending calls on with
``Goto(ccserver-inbound,${EXTEN},1)``) into the normalizer, alone and in front of the core.
"""

from __future__ import annotations

import itertools

from captures import FIXTURES
from test_sim_asterisk import QUEUE_FLOW, AmiClient, ScriptedAgi

from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.config import AgentConfig, Config, QueueConfig
from ccserver.core.center import ContactCenter
from ccserver.core.commands import RingAgent
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    CallerLeaving,
    DigitsReceived,
    IvrFinished,
    NodeConnectionChanged,
    NodeResynced,
)
from ccserver.pbx.asterisk.ami_codec import AmiParser, Message
from ccserver.pbx.asterisk.normalize import AmiNormalizer
from ccserver.sim.asterisk import CallerScript, SimulatedAsterisk

OWN = FIXTURES / "asterisk-ccserver"
NODE = "pbx1"
T = 100.0


def messages(name: str) -> list[Message]:
    return [m for m in AmiParser().feed((OWN / name).read_bytes()) if isinstance(m, Message)]


def shipped_node() -> AmiNormalizer:
    """A node configured as hardware/examples/asterisk.toml.example ships: the carrier's
    context is not listed."""
    return AmiNormalizer(NODE, {"ccserver-inbound"})


def test_a_call_sent_into_ccserver_inbound_with_goto_is_tracked_to_its_hang_up() -> None:
    n = shipped_node()
    cid = f"{NODE}:1796356300.110"
    events = [e for m in messages("c01-ivr-queue-answered.ami.in.raw") for e in n.feed(m, T)]
    assert events == [
        # Newchannel says from-carrier; the Newstate of Answer() in ccserver-inbound claims it
        CallStarted(cid, NODE, "PJSIP/carrier-0000006a", "+15551231", "5551000", T),
        CallAnswered(cid, T),
        DigitsReceived(cid, "1", T),
        AgentLegRinging(cid, "PJSIP/1001", T),
        AgentLegAnswered(cid, "PJSIP/1001", T),
        CallerLeaving(cid, T),
        CallHungUp(cid, "normal_clearing", "caller", T),
    ]
    assert n.live_call_ids == []


def test_a_channel_born_in_the_carrier_context_keeps_its_arrival_time() -> None:
    n = shipped_node()
    base = [("Channel", "PJSIP/carrier-1"), ("Uniqueid", "7.1"), ("Linkedid", "7.1"),
            ("CallerIDNum", "+1555"), ("Exten", "5551000")]
    newchannel = Message([("Event", "Newchannel"), *base, ("Context", "from-carrier"),
                          ("ChannelState", "4")])
    answered = Message([("Event", "Newstate"), *base, ("Context", "from-carrier"),
                        ("ChannelState", "6")])
    sent_on = Message([("Event", "DTMFEnd"), *base, ("Context", "ccserver-inbound"),
                       ("ChannelState", "6"), ("Digit", "1"), ("Direction", "Received")])
    assert n.feed(newchannel, 1.0) == [] and n.feed(answered, 2.0) == []
    # answered by the carrier's context before the Goto: started at its birth, answered now
    assert n.feed(sent_on, 5.0) == [
        CallStarted("pbx1:7.1", NODE, "PJSIP/carrier-1", "+1555", "5551000", 1.0),
        CallAnswered("pbx1:7.1", 5.0),
        DigitsReceived("pbx1:7.1", "1", 5.0),
    ]


def test_the_fastagi_session_claims_a_channel_no_ami_event_showed_in_our_dialplan() -> None:
    n = shipped_node()
    base = [("Channel", "PJSIP/carrier-2"), ("Uniqueid", "7.2"), ("Linkedid", "7.2"),
            ("CallerIDNum", "+1555"), ("Exten", "5551000"), ("Context", "from-carrier")]
    n.feed(Message([("Event", "Newchannel"), *base, ("ChannelState", "4")]), 1.0)
    n.feed(Message([("Event", "Newstate"), *base, ("ChannelState", "6")]), 1.5)  # carrier's Answer()
    assert n.claim("7.2", 3.0) == [
        CallStarted("pbx1:7.2", NODE, "PJSIP/carrier-2", "+1555", "5551000", 1.0),
        CallAnswered("pbx1:7.2", 3.0),
    ]
    assert n.claim("7.2", 4.0) == [] and n.claim("7.9", 4.0) == []  # once; unknown: nothing
    assert n.live_call_ids == ["pbx1:7.2"]


def test_a_channel_that_never_enters_our_dialplan_is_forgotten_at_its_hang_up() -> None:
    n = shipped_node()
    base = [("Channel", "PJSIP/1001-1"), ("Uniqueid", "8.1"), ("Linkedid", "8.1"),
            ("Context", "from-agents"), ("Exten", "1002"), ("ChannelState", "6")]
    assert n.feed(Message([("Event", "Newchannel"), *base]), T) == []
    assert n.feed(Message([("Event", "Hangup"), *base, ("Cause", "16")]), T) == []
    assert n._unclaimed == {}


def test_the_transfers_trunk_dial_is_not_an_agent_leg() -> None:
    n = AmiNormalizer(NODE, {"from-carrier", "ccserver-inbound"})  # the captured lab's list
    events = [e for m in messages("c07-hold-then-transfer.ami.in.raw") for e in n.feed(m, T)]
    legs = [(type(e).__name__, e.device) for e in events
            if isinstance(e, (AgentLegRinging, AgentLegAnswered, AgentLegFailed))]
    # the second call's Dial of PJSIP/carrier-0000007c runs in ccserver-transfer: not an agent
    assert legs == [("AgentLegRinging", "PJSIP/1001"), ("AgentLegAnswered", "PJSIP/1001"),
                    ("AgentLegRinging", "PJSIP/1002"), ("AgentLegAnswered", "PJSIP/1002")]


def center() -> ContactCenter:
    ids = itertools.count(1)
    config = Config(
        queues=[QueueConfig(name="support", wrapup_seconds=0.0)],
        agents=[AgentConfig(id=a, name=a, node=NODE, device=f"PJSIP/{a}", queues=["support"])
                for a in ("1001", "1002")],
    )
    cc = ContactCenter(config, now=0.0, new_id=lambda: f"id{next(ids)}")
    cc.tick(0.0)
    return cc


def ami(name: str, channel: str, uid: str, context: str, *extra: tuple[str, str]) -> Message:
    return Message([("Event", name), ("Channel", channel), ("ChannelState", "6"),
                    ("CallerIDNum", "+1555"), ("Context", context), ("Exten", "s"),
                    ("Uniqueid", uid), ("Linkedid", "9.1"), *extra])


def test_a_caller_hanging_up_while_an_agent_rings_is_not_offered_to_the_next_agent() -> None:
    cc, n = center(), shipped_node()
    caller, leg = "PJSIP/carrier-00000001", "PJSIP/1001-00000002"
    cc.pause("1002", "lunch", 0.5)
    out: list = []

    def feed(msg: Message, at: float) -> None:
        for event in n.feed(msg, at):
            out.extend(cc.handle(event))

    feed(Message([("Event", "Newchannel"), ("Channel", caller), ("ChannelState", "4"),
                  ("CallerIDNum", "+1555"), ("Context", "ccserver-inbound"), ("Exten", "5551000"),
                  ("Uniqueid", "9.1"), ("Linkedid", "9.1")]), 1.0)
    ring = cc.handle(IvrFinished("pbx1:9.1", NODE, caller, "+1555", "5551000", "support", (), {},
                                 None, 2.0))
    assert [d.device for d in ring if isinstance(d, RingAgent)] == ["PJSIP/1001"]
    cc.ready("1002", 2.5)  # free while 1001 rings: the next in line if the caller came back
    feed(ami("DialBegin", caller, "9.1", "ccserver-connect", ("DestChannel", leg),
             ("DestUniqueid", "9.2")), 3.0)
    # The order of capture asterisk-ami/03: the caller's HangupRequest, then its leg's DialEnd
    # CANCEL, then the leg's Hangup, then the caller's.
    feed(ami("HangupRequest", caller, "9.1", "ccserver-connect"), 4.0)
    feed(ami("DialEnd", caller, "9.1", "ccserver-connect", ("DestChannel", leg),
             ("DialStatus", "CANCEL")), 4.001)
    feed(ami("Hangup", leg, "9.2", "from-agents", ("Cause", "0")), 4.002)
    feed(ami("Hangup", caller, "9.1", "ccserver-connect", ("Cause", "0")), 4.003)
    assert not [d for d in out if isinstance(d, RingAgent)]  # never rung again, on anyone
    assert [(d.agent_id, d.previous, d.state) for d in out if isinstance(d, AgentStateChange)] == [
        ("1001", "offered", "ready"),  # not paused: the caller's doing
    ]
    (row,) = [d for d in out if isinstance(d, CallRecord)]
    assert (row.disposition, row.hangup_by, row.ring_no_answer) == ("abandoned", "caller", 0)


def test_the_ring_no_answer_state_change_names_the_call() -> None:
    cc = center()
    cc.pause("1002", "lunch", 0.5)
    cc.handle(CallStarted("pbx1:1.1", NODE, "PJSIP/c-1", "+1555", "5551000", 1.0))
    ring = cc.handle(IvrFinished("pbx1:1.1", NODE, "PJSIP/c-1", "+1555", "5551000", "support",
                                 (), {}, None, 2.0))
    assert [d.device for d in ring if isinstance(d, RingAgent)] == ["PJSIP/1001"]
    out = cc.handle(AgentLegFailed("pbx1:1.1", "PJSIP/1001", "no_answer", 10.0))
    (change,) = [d for d in out if isinstance(d, AgentStateChange)]
    assert (change.previous, change.state, change.call_id) == ("offered", "paused", "pbx1:1.1")
    assert cc.agents["1001"].call_id is None  # the agent holds no call


def test_a_call_that_ended_while_the_link_was_down_ends_at_the_link_down_time() -> None:
    cc = center()
    cc.pause("1002", "lunch", 0.5)
    cid = "pbx1:2.1"
    cc.handle(CallStarted(cid, NODE, "PJSIP/c-2", "+1555", "5551000", 1.0))
    cc.handle(IvrFinished(cid, NODE, "PJSIP/c-2", "+1555", "5551000", "support", (), {}, None, 2.0))
    cc.handle(AgentLegAnswered(cid, "PJSIP/1001", 3.0))
    cc.handle(NodeConnectionChanged(NODE, False, 14.0))
    cc.handle(NodeConnectionChanged(NODE, True, 27.0))
    out = cc.handle(NodeResynced(NODE, (), 28.0))
    (row,) = [d for d in out if isinstance(d, CallRecord)]
    assert (row.ended_at, row.talk_seconds, row.end_estimated) == (14.0, 11.0, True)
    assert (row.disposition, row.hangup_cause) == ("answered", "lost")
    ended = [d for d in out if isinstance(d, AgentStateChange) and d.previous == "on_call"]
    assert [(d.state, d.at) for d in ended] == [("wrap_up", 14.0)]  # not on a call all outage


def plain_events(data: bytes) -> list[dict[str, str]]:
    """AMI events by plain splitting (not the parser under test)."""
    blocks = data.decode("latin-1").split("\r\n\r\n")
    return [d for d in (dict(line.split(": ", 1) for line in b.split("\r\n") if ": " in line)
                        for b in blocks) if "Event" in d]


async def test_the_simulators_goto_from_the_carriers_context_looks_like_capture_c01() -> None:
    real = [e for e in plain_events((OWN / "c01-ivr-queue-answered.ami.in.raw").read_bytes())
            if e.get("Channel", "").startswith("PJSIP/carrier")][:2]
    agi = ScriptedAgi(QUEUE_FLOW)
    sim = SimulatedAsterisk(agi_host="127.0.0.1", agi_port=await agi.start(), agents=[],
                            time_scale=50.0)
    await sim.start()
    try:
        c = AmiClient()
        await c.connect(sim.ami_port)
        await c.login(events="call")  # the shipped user's read classes: call, dtmf
        sim.place_call(CallerScript(did="5551000", context="from-carrier"))
        got = [await c.read() for _ in range(2)]
    finally:
        await sim.stop()
        await agi.stop()
    assert [(e["Event"], e["Context"], e["Exten"], e["ChannelState"]) for e in real] == [
        ("Newchannel", "from-carrier", "5551000", "4"), ("Newstate", "ccserver-inbound", "5551000", "6")]
    assert [(m.event, m["Context"], m["Exten"], m["ChannelState"]) for m in got] == [
        (e["Event"], e["Context"], e["Exten"], e["ChannelState"]) for e in real]


def test_a_waiting_caller_who_is_leaving_is_not_rung_when_an_agent_frees_up() -> None:
    cc = center()
    for agent in ("1001", "1002"):
        cc.pause(agent, "lunch", 0.5)
    cc.handle(CallStarted("pbx1:3.1", NODE, "PJSIP/c-3", "+1555", "5551000", 1.0))
    cc.handle(IvrFinished("pbx1:3.1", NODE, "PJSIP/c-3", "+1555", "5551000", "support", (), {}, None, 2.0))
    cc.handle(CallerLeaving("pbx1:3.1", 5.0))  # its HangupRequest; the Hangup is on its way
    assert not [d for d in cc.ready("1001", 5.001) if isinstance(d, RingAgent)]
    (row,) = [d for d in cc.handle(CallHungUp("pbx1:3.1", "normal_clearing", "caller", 5.002))
              if isinstance(d, CallRecord)]
    assert (row.disposition, row.offered_at) == ("abandoned", None)
