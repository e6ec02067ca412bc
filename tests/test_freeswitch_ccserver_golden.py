"""ccserver's own ESL sessions with a real FreeSWITCH 1.11 replayed into EslNormalizer.

The captures in ``tests/fixtures/freeswitch-ccserver/`` are ccserver (commit d4e882f) driving
calls through its shipped ``dialplans/freeswitch/`` (README there). Each session's ``.jsonl``
timeline is replayed read by read, at the time it was read, through the ESL parser and the
normalizer; what ccserver sent (its ``out`` reads) is acted on as the adapter does: each
``bgapi originate {origination_uuid=…,cc_call_id=…}<device> &park()`` announces its agent leg and
job first (``FreeSwitchAdapter._ring``). The expected domain events are what the timeline shows
happened, written by hand from the capture (the capture README's table says the same in words).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    DigitsReceived,
    DomainEvent,
    HoldChanged,
    LiveCall,
    NodeResynced,
    RecordingStarted,
    RecordingStopped,
)
from ccserver.pbx.freeswitch.esl_codec import EslParser, Frame, parse_event
from ccserver.pbx.freeswitch.normalize import EslNormalizer

from captures import FREESWITCH_CCSERVER_CAPTURES

NODE = "fs1"
INBOUND = {"ccserver-inbound"}  # hardware/examples/freeswitch.toml.example
_ORIGINATE = re.compile(r"^bgapi originate \{(?P<vars>[^}]*)\}(?P<device>\S+) &park\(\)\nJob-UUID: (?P<job>\S+)$")


@dataclass
class Session:
    """One recorded ESL connection, replayed into a normalizer."""

    normalizer: EslNormalizer
    events: list[DomainEvent] = field(default_factory=list)
    #: every frame the parser read that is not an event, with the time of its read
    replies: list[tuple[float, Frame]] = field(default_factory=list)


def replay(name: str, n: EslNormalizer | None = None, base: float = 0.0) -> Session:
    """Feed ``<name>.jsonl``'s ``in`` reads to a normalizer at ``base`` + their time (in ms)."""
    s = Session(n or EslNormalizer(NODE, INBOUND))
    parser = EslParser()
    out = ""
    for line in (FREESWITCH_CCSERVER_CAPTURES / f"{name}.jsonl").read_text().splitlines():
        read = json.loads(line)
        t = base + round(read["t"], 3)
        if read["dir"] == "out":
            out += read["data"]
            *whole, out = out.split("\n\n")
            for command in whole:
                if m := _ORIGINATE.match(command):
                    variables = dict(v.split("=", 1) for v in m["vars"].split(","))
                    s.normalizer.expect_leg(variables["origination_uuid"], variables["cc_call_id"],
                                            m["device"], m["job"])
            continue
        for frame in parser.feed(read["data"].encode("latin-1")):
            if frame.content_type.startswith("text/event-"):
                s.events += s.normalizer.feed(parse_event(frame), t)
            else:
                s.replies.append((t, frame))
    return s


def test_c01_ivr_digit_then_the_first_agent_answers_and_the_caller_hangs_up() -> None:
    uuid = "510dcc2b-62a7-4c45-af73-5de5c5215972"
    cid = f"{NODE}:{uuid}"
    assert replay("c01-ivr-queue-answered.esl").events == [
        CallStarted(cid, NODE, uuid, "15550352411", "support", 2.558),
        CallAnswered(cid, 2.582),
        DigitsReceived(cid, "1", 4.352),
        AgentLegRinging(cid, "user/1001", 4.387),
        # the agent answers at 6.411 into park; the caller hears it from the bridge on
        AgentLegAnswered(cid, "user/1001", 6.475),
        CallHungUp(cid, "normal_clearing", "caller", 12.136),  # recv_bye on the caller
    ]


def test_c02_ring_no_answer_then_the_next_agent_answers() -> None:
    uuid = "b9517bdf-e656-4a3a-bcbb-920c7fd47d9a"
    cid = f"{NODE}:{uuid}"
    assert replay("c02-rona-next-agent.esl").events == [
        CallStarted(cid, NODE, uuid, "15550353073", "support", 2.875),
        CallAnswered(cid, 2.895),
        DigitsReceived(cid, "1", 4.159),
        AgentLegRinging(cid, "user/1001", 4.202),
        # originate_timeout=8: BACKGROUND_JOB "-ERR NO_ANSWER", then the leg's HANGUP_COMPLETE
        AgentLegFailed(cid, "user/1001", "no_answer", 12.118),
        AgentLegRinging(cid, "user/1002", 12.122),
        AgentLegAnswered(cid, "user/1002", 14.230),
        CallHungUp(cid, "normal_clearing", "caller", 20.416),
    ]


def test_c03_caller_abandons_while_waiting_on_hold_music() -> None:
    uuid = "7aba626d-be02-40be-b5f8-77a863f86915"
    cid = f"{NODE}:{uuid}"
    assert replay("c03-caller-abandons-waiting.esl").events == [
        CallStarted(cid, NODE, uuid, "15550353412", "support", 2.874),
        CallAnswered(cid, 2.895),
        DigitsReceived(cid, "1", 4.159),
        CallHungUp(cid, "normal_clearing", "caller", 10.932),
    ]


def test_c04_caller_hangs_up_in_the_ivr() -> None:
    uuid = "5e05df9d-d09b-459f-af78-1dd1539e609d"
    cid = f"{NODE}:{uuid}"
    assert replay("c04-caller-hangup-in-ivr.esl").events == [
        CallStarted(cid, NODE, uuid, "15550354004", "support", 2.470),
        CallAnswered(cid, 2.511),
        CallHungUp(cid, "normal_clearing", "caller", 5.026),
    ]


def test_c05_uuid_record_starts_and_the_hang_up_stops_the_recording() -> None:
    uuid = "2e0c04b7-6c8c-41e5-b7f6-51435d71640e"
    cid = f"{NODE}:{uuid}"
    file = f"/var/lib/freeswitch/recordings/fs1-{uuid}-c63894ec-fd0.wav"
    assert replay("c05-recording-uuid-record.esl").events == [
        CallStarted(cid, NODE, uuid, "155503541510", "8005550100", 2.893),
        CallAnswered(cid, 2.934),
        DigitsReceived(cid, "1", 4.178),
        AgentLegRinging(cid, "user/1001", 4.228),
        AgentLegAnswered(cid, "user/1001", 6.333),
        RecordingStarted(cid, file, 6.348),  # after "api uuid_record ... start" -> +OK Success
        # the agent leg ends first, then RECORD_STOP (success-silence), then the caller
        RecordingStopped(cid, file, 11.954),
        CallHungUp(cid, "normal_clearing", "caller", 11.954),
    ]


def test_c06_the_supervisor_leg_and_its_mode_digits_are_not_the_callers() -> None:
    uuid = "edd6ada6-5c06-4844-aaef-fd05470ff0c3"
    cid = f"{NODE}:{uuid}"
    s = replay("c06-supervisor-listen-whisper-barge.esl")
    assert s.events == [
        CallStarted(cid, NODE, uuid, "155503544011", "support", 2.599),
        CallAnswered(cid, 2.648),
        DigitsReceived(cid, "1", 3.886),
        AgentLegRinging(cid, "user/1001", 3.925),
        AgentLegAnswered(cid, "user/1001", 6.019),
        # user/9000's eavesdrop leg and the uuid_recv_dtmf 2, 3, 0 on it belong to no call
        CallHungUp(cid, "normal_clearing", "caller", 23.679),
    ]


def test_c07_the_agents_phone_holds_then_the_call_is_transferred_to_the_gateway() -> None:
    uuid = "e0bdf5ef-2943-439d-b15d-d2f8d98df99d"
    cid = f"{NODE}:{uuid}"
    assert replay("c07-hold-then-transfer.esl").events == [
        CallStarted(cid, NODE, uuid, "1555031999", "support", 2.571),
        CallAnswered(cid, 2.612),
        DigitsReceived(cid, "1", 3.858),
        AgentLegRinging(cid, "user/1001", 3.894),
        AgentLegAnswered(cid, "user/1001", 5.991),
        # re-INVITE sendonly / sendrecv: CHANNEL_HOLD / UNHOLD on the agent leg
        HoldChanged(cid, True, 7.936),
        HoldChanged(cid, False, 12.474),
        # uuid_transfer at 15.599: the agent leg ends, the gateway leg is not an agent's; the
        # caller's BYE ends the call
        CallHungUp(cid, "normal_clearing", "caller", 23.664),
    ]


#: the wall clock at the start of c08's second ESL session: its first event's
#: Event-Date-Timestamp (µs) less the time of its read
C08_RECONNECT_EPOCH = 1796356580.969710 - 6.011


def _c08_first_session() -> Session:
    return replay("c08-link-cut-resync.esl")


def _c08_listing() -> tuple[float, str]:
    second = replay("c08-link-cut-resync.esl-2", EslNormalizer(NODE, INBOUND), C08_RECONNECT_EPOCH)
    (at, body), = [(t, f.text()) for t, f in second.replies
                   if f.content_type == "api/response" and f.body.startswith(b"{")]
    return at, body


def test_c08_a_link_cut_mid_call_and_the_resync_keep_the_call_and_its_agent() -> None:
    uuid = "3e5d3c61-a916-447c-8a6a-37724f7cb358"
    cid = f"{NODE}:{uuid}"
    first = _c08_first_session()
    assert first.events == [
        CallStarted(cid, NODE, uuid, "15550356095", "support", 2.653),
        CallAnswered(cid, 2.674),
        DigitsReceived(cid, "1", 3.941),
        AgentLegRinging(cid, "user/1001", 3.974),
        AgentLegAnswered(cid, "user/1001", 6.054),
    ]
    # the same normalizer, as the adapter keeps it across the reconnect
    n = first.normalizer
    at, body = _c08_listing()
    created = int(json.loads(body)["rows"][0]["created_epoch"])  # the caller's row
    assert n.resync_from(body, at) == NodeResynced(NODE, (
        LiveCall(cid, uuid, "15550356095", "support", "user/1001", at - created),), at)
    events = replay("c08-link-cut-resync.esl-2", n, C08_RECONNECT_EPOCH).events
    assert events == [CallHungUp(cid, "normal_clearing", "caller", C08_RECONNECT_EPOCH + 6.011)]
    assert n.calls == {}


@pytest.mark.xfail(strict=True, reason="issue 10 item 4: a restarted ccserver's resync names the "
                   "agent leg by its channel name (sofia/internal/1001@...), not its dial string")
def test_c08_a_restarted_ccserver_finds_the_agent_of_the_bridged_call_by_its_dial_string() -> None:
    at, body = _c08_listing()
    (call,) = EslNormalizer(NODE, INBOUND).resync_from(body, at).calls
    assert (call.call_id, call.agent_device) == (f"{NODE}:3e5d3c61-a916-447c-8a6a-37724f7cb358",
                                                 "user/1001")
