"""Real FreeSWITCH captures replayed through the ESL normalizer: the domain events that come out."""

from __future__ import annotations

import pytest

from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    RecordingStarted,
    RecordingStopped,
)
from ccserver.pbx.causes import fs_hangup_cause, fs_leg_failure, hangup_cause
from ccserver.pbx.freeswitch.esl_codec import EslEvent, EslParser, parse_event
from ccserver.pbx.freeswitch.normalize import EslNormalizer, channel_rows
from captures import FREESWITCH_CAPTURES


def events_of(name: str) -> list[EslEvent]:
    frames = EslParser().feed((FREESWITCH_CAPTURES / name).read_bytes())
    return [parse_event(f) for f in frames if f.content_type.startswith("text/event-")]


def replay(norm: EslNormalizer, events: list[EslEvent]) -> list:
    out = []
    for i, ev in enumerate(events):
        out.extend(norm.feed(ev, float(i)))
    return out


@pytest.mark.parametrize("name", ["02a-callcenter-call-plain.rx.raw",
                                  "02b-callcenter-call-json.rx.raw"])
def test_answered_queue_call_plain_and_json_give_the_same_story(name):
    events = events_of(name)
    caller = next(e for e in events if e.name == "CHANNEL_CREATE").get("Unique-ID")
    agent_create = [e for e in events if e.name == "CHANNEL_CREATE"][1]
    agent = agent_create.get("Unique-ID")
    norm = EslNormalizer("fs1", {"default"})
    # mod_callcenter originated this agent leg in the capture; ccserver announces its own
    norm.expect_leg(agent, f"fs1:{caller}", "user/1002", None)
    out = replay(norm, events)
    call_id = f"fs1:{caller}"
    assert [type(e) for e in out] == [CallStarted, CallAnswered, AgentLegRinging,
                                      AgentLegAnswered, CallHungUp]
    start = out[0]
    assert (start.call_id, start.node, start.channel, start.caller, start.did) == (
        call_id, "fs1", caller, "15551230000", "support")
    assert out[3] == AgentLegAnswered(call_id, "user/1002", out[3].at)
    # the caller sent BYE (recv_bye) although the agent leg's hang-up event came first
    assert out[4] == CallHungUp(call_id, "normal_clearing", "caller", out[4].at)
    assert norm.calls == {} and norm.legs == {}


def test_abandoned_call_in_queue():
    out = replay(EslNormalizer("fs1", {"default"}), events_of("03-callcenter-abandon-plain.rx.raw"))
    assert [type(e) for e in out] == [CallStarted, CallAnswered, CallHungUp]
    assert (out[2].cause, out[2].by) == ("normal_clearing", "caller")


def test_unlisted_context_is_not_a_call():
    assert replay(EslNormalizer("fs1", {"ccserver-inbound"}),
                  events_of("02a-callcenter-call-plain.rx.raw")) == []


def test_recording_of_the_caller_leg():
    events = events_of("05-uuid-record-plain.rx.raw")
    norm = EslNormalizer("fs1", {"default"})
    # this capture subscribed after the call had started: adopt it as a resync would
    uuid = "d1ada0c0-40d5-43a3-9ff2-964cdb40628f"
    norm.resync_from(channel_rows('{"row_count":1,"rows":[{"uuid":"%s","direction":"inbound",'
                                  '"context":"default","cid_num":"1555","dest":"support",'
                                  '"created_epoch":"0"}]}' % uuid), 0.0)
    out = replay(norm, events)
    path = f"/var/lib/fs-rec/uuid_record-{uuid}.wav"
    rec = [e for e in out if isinstance(e, (RecordingStarted, RecordingStopped))]
    assert [(type(e), e.call_id, e.file) for e in rec] == [
        (RecordingStarted, f"fs1:{uuid}", path), (RecordingStopped, f"fs1:{uuid}", path)]


def test_failed_originate_job_is_an_agent_leg_failure():
    events = events_of("07-errors-and-unknown.rx.raw")
    jobs = [e for e in events if e.name == "BACKGROUND_JOB"]
    norm = EslNormalizer("fs1", {"default"})
    norm.expect_leg("leg-1", "fs1:c1", "user/1001", jobs[1].get("Job-UUID"))
    out = replay(norm, events)
    assert out == [AgentLegFailed("fs1:c1", "user/1001", "busy", out[0].at)]
    assert norm.leg_failed("leg-1", "error", 9.0) == []  # reported once only


def test_resync_from_show_channels_lists_the_bridged_call():
    frames = EslParser().feed((FREESWITCH_CAPTURES / "02b-callcenter-call-json.rx.raw").read_bytes())
    body = next(f.text() for f in frames if f.content_type == "api/response"
                and f.body.startswith(b"{"))
    norm = EslNormalizer("fs1", {"default"})
    snap = norm.resync_from(channel_rows(body), 1795481890.0)
    (call,) = snap.calls
    assert call.call_id == "fs1:bc614808-5c33-4d04-8378-4be1aba6de6f"
    assert (call.caller, call.did, call.duration) == ("15551230000", "support", 10.0)
    # a leg this process did not originate (mod_callcenter's here) is named by its user/ dial
    # string, as agents are configured, not by its channel name
    assert call.agent_device == "user/1002"
    with pytest.raises(ValueError):
        channel_rows("[1]")


def test_a_restarted_normalizer_finds_the_agent_leg_of_ccservers_own_call_in_the_real_listing():
    """Capture c08 (ccserver's own dialplan): the listing after a link cut, read by a normalizer
    that knows nothing (as after a restart)."""
    own = FREESWITCH_CAPTURES.parent / "freeswitch-ccserver"
    data = (own / "c08-link-cut-resync.esl-2.in.raw").read_bytes()
    body = next(f.text() for f in EslParser().feed(data)
                if f.content_type == "api/response" and f.body.startswith(b"{"))
    rows = channel_rows(body)
    caller, leg = "3e5d3c61-a916-447c-8a6a-37724f7cb358", "f03e55b2-af80-447a-8367-1af779546c30"
    norm = EslNormalizer("fs1", {"ccserver-inbound"})
    assert norm.unknown_agent_legs(rows) == [leg]
    ours = {leg: {"cc_call_id": f"fs1:{caller}", "cc_device": "user/1001"}}
    (call,) = norm.resync_from(rows, 1796356580.0, ours).calls
    assert (call.call_id, call.did, call.agent_device) == (f"fs1:{caller}", "support", "user/1001")
    assert call.duration == 11.0  # created_epoch 1796356569
    assert norm.agent_leg(call.call_id) == leg  # tracked from now on: spy, hold, the agent's BYE
    # a leg without our variables: its user/ dial string from dest, never the channel name, and
    # not tracked as an agent leg of ours
    other = EslNormalizer("fs1", {"ccserver-inbound"})
    (call,) = other.resync_from(rows, 1796356580.0).calls
    assert call.agent_device == "user/1001" and other.agent_leg(call.call_id) is None


def test_one_cause_vocabulary_for_both_pbx_kinds():
    for name, code in [("NORMAL_CLEARING", 16), ("USER_BUSY", 17), ("NO_ANSWER", 19),
                       ("CALL_REJECTED", 21), ("NO_ROUTE_DESTINATION", 3)]:
        assert fs_hangup_cause(name) == hangup_cause(code) != "unknown"
    assert fs_hangup_cause("SOMETHING_NEW") == "unknown"
    assert fs_leg_failure("USER_BUSY") == "busy"
    assert fs_leg_failure("NO_ANSWER") == "no_answer"
    assert fs_leg_failure("WEIRD") == "error"
