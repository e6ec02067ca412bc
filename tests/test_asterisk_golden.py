"""Real Asterisk 22 captures replayed into AmiNormalizer: the exact domain events they mean."""

from __future__ import annotations

import logging

import pytest

from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    CallerLeaving,
    DigitsReceived,
    DomainEvent,
    HoldChanged,
    LiveCall,
    RecordingStarted,
    RecordingStopped,
)
from ccserver.pbx.asterisk.ami_codec import AmiParser, Message
from ccserver.pbx.causes import hangup_cause, leg_failure
from ccserver.pbx.asterisk.normalize import AmiNormalizer, device_of

from captures import ASTERISK_CAPTURES

FIXTURES = ASTERISK_CAPTURES
T = 100.0


def messages(name: str) -> list[Message]:
    return [m for m in AmiParser().feed((FIXTURES / name).read_bytes()) if isinstance(m, Message)]


def normalizer() -> AmiNormalizer:
    return AmiNormalizer(node="lab", inbound_contexts={"from-carrier"})


def replay(name: str, n: AmiNormalizer | None = None) -> list[DomainEvent]:
    n = n or normalizer()
    return [e for m in messages(name) for e in n.feed(m, T)]


def test_02_inbound_queue_answered_caller_hangs_up() -> None:
    cid = "lab:1795481314.0"
    assert replay("02-inbound-queue-answered.in.raw") == [
        CallStarted(cid, "lab", "PJSIP/carrier-00000000", "+15551230000", "support", T),
        CallAnswered(cid, T),
        AgentLegRinging(cid, "PJSIP/1001", T),
        AgentLegAnswered(cid, "PJSIP/1001", T),
        RecordingStarted(cid, "", T),  # app_queue's own MixMonitor: no file header in the event
        CallerLeaving(cid, T),
        CallHungUp(cid, "normal_clearing", "caller", T),
    ]


def test_02b_ivr_dtmf_then_agent_hangs_up() -> None:
    cid = "lab:1795481695.45"
    assert replay("02b-ivr-fastagi-queue-agent-hangup.ami.in.raw") == [
        CallStarted(cid, "lab", "PJSIP/carrier-00000015", "+15551230000", "ivr", T),
        CallAnswered(cid, T),
        DigitsReceived(cid, "1", T),
        AgentLegRinging(cid, "PJSIP/1002", T),
        AgentLegAnswered(cid, "PJSIP/1002", T),
        RecordingStarted(cid, "", T),
        CallHungUp(cid, "normal_clearing", "agent", T),
    ]


def test_03_ring_no_answer_then_caller_abandons() -> None:
    cid = "lab:1795481352.6"
    # app_queue ends 1003's leg with NOANSWER then CANCEL and 1001's with CANCEL twice:
    # each leg fails exactly once, with the first status.
    assert replay("03-queue-caller-abandon.in.raw") == [
        CallStarted(cid, "lab", "PJSIP/carrier-00000004", "+15551230000", "support", T),
        CallAnswered(cid, T),
        AgentLegRinging(cid, "PJSIP/1003", T),
        AgentLegFailed(cid, "PJSIP/1003", "no_answer", T),
        AgentLegRinging(cid, "PJSIP/1001", T),
        CallerLeaving(cid, T),  # the caller's HangupRequest comes before its leg's DialEnd CANCEL
        AgentLegFailed(cid, "PJSIP/1001", "cancelled", T),
        CallHungUp(cid, "normal_clearing", "caller", T),  # Cause: 0 on the wire; a BYE is a normal clearing
    ]


def test_05_mixmonitor_start_stop_with_the_file_we_asked_for() -> None:
    cid = "lab:1795481445.32"
    ours = "/var/lib/asterisk/var/spool/asterisk/monitor/ami-mixmon-1795481445.32.wav"
    n = normalizer()
    events: list[DomainEvent] = []
    for m in messages("05-mixmonitor-start-stop.in.raw"):
        if m.get("ActionID") == "05-mixmonitor-start-stop-2":  # our MixMonitor's reply
            n.expect_recording("PJSIP/carrier-0000000d", ours)  # (the adapter does it before)
        events += n.feed(m, T)
    assert events == [
        CallStarted(cid, "lab", "PJSIP/carrier-0000000d", "+15551230000", "support", T),
        CallAnswered(cid, T),
        AgentLegRinging(cid, "PJSIP/1002", T),
        AgentLegAnswered(cid, "PJSIP/1002", T),
        RecordingStarted(cid, "", T),  # the queue's
        RecordingStarted(cid, ours, T),
        RecordingStopped(cid, ours, T),  # StopMixMonitor without an id stopped the latest
        CallerLeaving(cid, T),
        CallHungUp(cid, "normal_clearing", "caller", T),
    ]


def test_07b_caller_hangs_up_during_the_ivr() -> None:
    cid = "lab:1795481557.37"
    assert replay("07b-fastagi-caller-hangup.ami.in.raw") == [
        CallStarted(cid, "lab", "PJSIP/carrier-00000010", "+15551230000", "agi", T),
        CallAnswered(cid, T),
        CallerLeaving(cid, T),
        CallHungUp(cid, "normal_clearing", "caller", T),
    ]


def test_calls_outside_the_inbound_contexts_are_not_ours() -> None:
    n = AmiNormalizer(node="lab", inbound_contexts={"ccserver-inbound"})
    assert replay("02-inbound-queue-answered.in.raw", n) == []


def test_04a_originated_spy_legs_make_no_calls_and_no_noise(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    events = replay("04a-chanspy-listen.in.raw")
    assert [type(e) for e in events] == [
        CallStarted, CallAnswered, AgentLegRinging, AgentLegAnswered, RecordingStarted,
        CallerLeaving, CallHungUp,
    ]
    assert caplog.records == []  # DialBegin of an Originate has no caller channel: not malformed


def _split_at_list_end(name: str) -> tuple[list[Message], list[Message]]:
    msgs = messages(name)
    end = next(i for i, m in enumerate(msgs) if m.get("Event") == "CoreShowChannelsComplete")
    return msgs[: end + 1], msgs[end + 1:]


def test_10a_resync_caller_waiting_then_events_continue() -> None:
    listing, after = _split_at_list_end("10a-status-caller-waiting.in.raw")
    n = normalizer()
    snap = n.resync_from(listing, T)
    cid = "lab:1795481744.48"
    assert snap.node == "lab" and snap.at == T
    # the agent leg still ringing is reported, so a restarted core keeps the offer
    assert snap.calls == (
        LiveCall(cid, "PJSIP/carrier-00000017", "+15551230000", "support", None, 1.0,
                 ringing_device="PJSIP/1003"),
    )
    # the ringing agent leg was adopted: its DialEnd and the caller's hang-up still count
    assert [e for m in after for e in n.feed(m, T)] == [
        CallerLeaving(cid, T),
        AgentLegFailed(cid, "PJSIP/1003", "cancelled", T),
        CallHungUp(cid, "normal_clearing", "caller", T),
    ]
    assert n.live_call_ids == []


def test_10b_resync_bridged_call_has_its_agent() -> None:
    listing, after = _split_at_list_end("10b-status-call-bridged.in.raw")
    n = normalizer()
    snap = n.resync_from(listing, T)
    cid = "lab:1795481753.51"
    assert snap.calls == (
        LiveCall(cid, "PJSIP/carrier-00000019", "+15551230000", "support", "PJSIP/1001", 2.0),
    )
    assert [e for m in after for e in n.feed(m, T)] == [
        CallerLeaving(cid, T), CallHungUp(cid, "normal_clearing", "caller", T),
    ]


def test_resync_replaces_the_table_and_keeps_what_a_listing_cannot_tell() -> None:
    n = normalizer()
    msgs = messages("10b-status-call-bridged.in.raw")
    listing, _ = _split_at_list_end("10b-status-call-bridged.in.raw")
    for m in msgs[: len(listing)]:
        n.feed(m, T)
    gone = n.resync_from([], T)  # the PBX restarted: nothing is live any more
    assert gone.calls == () and n.live_call_ids == []
    # a caller now in ccserver's wait context, DID unknown to the listing
    row = Message([("Event", "CoreShowChannel"), ("Channel", "PJSIP/x-00000001"),
                   ("ChannelState", "6"), ("CallerIDNum", "<unknown>"), ("Context", "ccserver-wait"),
                   ("Exten", "s"), ("Uniqueid", "9.1"), ("Linkedid", "9.1"),
                   ("Duration", "100:00:01"), ("BridgeId", "")])
    spy = Message([("Event", "CoreShowChannel"), ("Channel", "Local/1001@spy-listen-0;1"),
                   ("Context", "spy-listen"), ("Uniqueid", "9.5"), ("Linkedid", "9.5"),
                   ("Duration", "00:00:01")])
    bad = Message([("Event", "CoreShowChannel"), ("Channel", "PJSIP/y-1"), ("Uniqueid", "9.7"),
                   ("Linkedid", "9.7"), ("Context", "from-carrier"), ("Duration", "soon")])
    snap = n.resync_from([row, spy, bad], T)
    assert [(c.call_id, c.caller, c.did, c.duration) for c in snap.calls] == [
        ("lab:9.1", "", "", 360001.0), ("lab:9.7", "", "", 0.0),
    ]


def test_hold_unhold_and_system_hangup() -> None:
    n = normalizer()
    base = [("Channel", "PJSIP/carrier-1"), ("Uniqueid", "5.1"), ("Linkedid", "5.1")]

    def ev(name: str, *extra: tuple[str, str]) -> list[DomainEvent]:
        return n.feed(Message([("Event", name), *base, *extra]), T)

    assert ev("Newchannel", ("Context", "from-carrier"), ("Exten", "100"),
              ("CallerIDNum", "42"), ("ChannelState", "4"))[0].call_id == "lab:5.1"
    assert ev("Hold", ("MusicClass", "default")) == [HoldChanged("lab:5.1", True, T)]
    assert ev("Unhold") == [HoldChanged("lab:5.1", False, T)]
    assert ev("DTMFEnd", ("Digit", "5"), ("Direction", "Sent")) == []
    # ccserver hung up (AMI Hangup gives only SoftHangupRequest): by = system
    assert ev("SoftHangupRequest", ("Cause", "16")) == []
    assert ev("Hangup", ("Cause", "17")) == [CallHungUp("lab:5.1", "user_busy", "system", T)]


def test_malformed_and_unknown_events_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    n = normalizer()
    for m in messages("02-inbound-queue-answered.in.raw")[:8]:
        n.feed(m, T)  # the call exists now
    key = [("Uniqueid", "1795481314.0"), ("Linkedid", "1795481314.0")]
    weird = [
        Message([("Event", "NoSuchEvent"), *key]),
        Message([("Response", "Success")]),
        Message([("Event", "Newchannel"), ("Context", "from-carrier")]),  # no Uniqueid
        Message([("Event", "Newstate"), *key]),  # no ChannelState
        Message([("Event", "DialEnd"), *key, ("DestChannel", "PJSIP/9-1")]),  # never dialed
        Message([("Event", "DTMFEnd"), *key, ("Direction", "Received")]),  # no Digit
        Message([("Event", "Hangup"), ("Uniqueid", "nobody")]),
        Message([("Event", "VarSet"), *key]),
    ]
    with caplog.at_level(logging.WARNING):
        assert [e for m in weird for e in n.feed(m, T)] == []
    assert "malformed" in caplog.text
    # a bad Cause still ends the call
    (hung,) = n.feed(Message([("Event", "Hangup"), *key, ("Cause", "x")]), T)
    assert hung == CallHungUp("lab:1795481314.0", "unknown", "system", T)


def test_device_of() -> None:
    assert device_of("PJSIP/1001-00000016") == "PJSIP/1001"
    assert device_of("PJSIP/my-trunk") == "PJSIP/my-trunk"
    assert device_of("Local/1001@spy-listen-00000000;1") == "Local/1001@spy-listen"


def test_cause_and_dial_status_maps() -> None:
    assert [hangup_cause(c) for c in (16, 17, 18, 19, 21, 1, 0, 34, 38, 999)] == [
        "normal_clearing", "user_busy", "no_user_response", "no_answer", "call_rejected",
        "unallocated_number", "unknown", "network_failure", "network_failure", "unknown",
    ]
    assert [leg_failure(s) for s in ("NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION", "CANCEL",
                                     "DONTCALL", "WHATEVER")] == [
        "no_answer", "busy", "unavailable", "unavailable", "cancelled", "rejected", "error",
    ]
