"""The contact center driven by domain events: decisions, CDRs and agent rows."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.config import AgentConfig, Config, QueueConfig
from ccserver.core.call import CallState
from ccserver.core.center import IVR_RESULT_GRACE_SECONDS, ContactCenter
from ccserver.core.commands import (
    CallbackAgent,
    HangupCall,
    KeepCallFacts,
    RingAgent,
    StartRecording,
)
from ccserver.core.events import (
    AgentLegAnswered,
    CallFacts,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    DigitsReceived,
    HoldChanged,
    IvrFinished,
    LiveCall,
    NodeConnectionChanged,
    NodeResynced,
    RecordingFailed,
    RecordingStarted,
)

DEV = {"a1": "PJSIP/1001", "a2": "PJSIP/1002", "a3": "PJSIP/2001"}


def make_config(auto_login: bool = True) -> Config:
    return Config(
        queues=[
            QueueConfig(name="support", wrapup_seconds=5.0, record=True),
            QueueConfig(name="sales", wrapup_seconds=0.0),
        ],
        agents=[
            AgentConfig(id="a1", name="Ann", node="n1", device=DEV["a1"],
                        queues=["support", "sales"], auto_login=auto_login),
            AgentConfig(id="a2", name="Bob", node="n1", device=DEV["a2"],
                        queues=["support"], auto_login=auto_login),
            AgentConfig(id="a3", name="Cy", node="n2", device=DEV["a3"],
                        queues=["support"], auto_login=auto_login),
        ],
    )


def make_center(auto_login: bool = True, now: float = 0.0) -> ContactCenter:
    counter = itertools.count(1)
    cc = ContactCenter(make_config(auto_login), now=now, new_id=lambda: f"id{next(counter)}")
    cc.tick(now)  # drain the auto-login rows
    return cc


def arrive(cc, cid, at, queue="support", priority=0, node="n1"):
    """A call through the IVR into ``queue``; returns the decisions of the IvrFinished."""
    cc.handle(CallStarted(cid, node, f"PJSIP/trunk-{cid}", "+1555", "5000", at))
    cc.handle(CallAnswered(cid, at + 1))
    return cc.handle(IvrFinished(cid, node, f"PJSIP/trunk-{cid}", "+1555", "5000", queue,
                                 ("welcome", "menu"), {"lang": "en"}, priority, at + 2))


def rings(decisions):
    return [(d.call_id, d.device) for d in decisions if isinstance(d, RingAgent)]


def records(decisions):
    return [d for d in decisions if isinstance(d, CallRecord)]


def agent_rows(decisions):
    return [(d.agent_id, d.previous, d.state, d.reason) for d in decisions
            if isinstance(d, AgentStateChange)]


def only_a1(cc, at=0.0):
    """Leave a1 the only ready agent (a2 paused, a3 is on another node anyway)."""
    cc.pause("a2", "lunch", at)


# ---- end to end ------------------------------------------------------------------------


def test_startup_rows_come_with_the_first_flush():
    counter = itertools.count(1)
    cc = ContactCenter(make_config(), now=5.0, new_id=lambda: f"id{next(counter)}")
    rows = cc.tick(5.0)
    assert [(r.change_id, r.agent_id, r.state, r.at) for r in rows] == [
        ("id1", "a1", "ready", 5.0), ("id2", "a2", "ready", 5.0), ("id3", "a3", "ready", 5.0)]
    assert cc.tick(6.0) == []


def test_no_auto_login_starts_logged_out():
    cc = make_center(auto_login=False)
    assert {a.state for a in cc.agents.values()} == {"logged_out"}
    assert agent_rows(cc.login("a1", 1.0, paused_reason="training")) == [
        ("a1", "logged_out", "paused", "training")]


def test_answered_call_end_to_end():
    cc = make_center()
    only_a1(cc)
    out = arrive(cc, "n1:100.1", 100.0)
    # what a restarted ccserver needs is kept on the channel as the caller enters the queue
    assert out[0] == KeepCallFacts("n1", "n1:100.1", "PJSIP/trunk-n1:100.1", CallFacts(
        "5000", 100.0, "support", ivr_ended_at=102.0, enqueued_at=102.0,
        ivr_path=("welcome", "menu")))
    assert out[1] == AgentStateChange("id5", "a1", "offered", "ready", 102.0, None, "n1:100.1")
    # the queue records every call: the file is named with the ring (Asterisk starts it there)
    assert out[2] == RingAgent("n1", "n1:100.1", "PJSIP/trunk-n1:100.1", DEV["a1"], 15,
                               "n1-100.1-id6.wav")
    assert len(out) == 3
    assert cc.calls["n1:100.1"].state is CallState.OFFERED

    cc.handle(AgentLegRinging("n1:100.1", DEV["a1"], 103.0))
    out = cc.handle(AgentLegAnswered("n1:100.1", DEV["a1"], 110.0))
    assert agent_rows(out) == [("a1", "offered", "on_call", None)]
    (rec_cmd,) = [d for d in out if isinstance(d, StartRecording)]
    assert rec_cmd.file == "n1-100.1-id6.wav" and rec_cmd.channel == "PJSIP/trunk-n1:100.1"
    (keep,) = [d for d in out if isinstance(d, KeepCallFacts)]
    assert (keep.facts.agent_id, keep.facts.answered_at, keep.facts.offered_at,
            keep.facts.recording) == ("a1", 110.0, 102.0, "n1-100.1-id6.wav")

    assert cc.handle(HoldChanged("n1:100.1", True, 120.0)) == []
    cc.handle(HoldChanged("n1:100.1", False, 130.0))
    out = cc.handle(CallHungUp("n1:100.1", "normal_clearing", "caller", 200.0))
    assert agent_rows(out) == [("a1", "on_call", "wrap_up", None)]
    assert records(out) == [] and "n1:100.1" not in cc.calls
    assert cc.tick(204.0) == []

    out = cc.tick(206.0)
    assert agent_rows(out) == [("a1", "wrap_up", "ready", None)]
    (rec,) = records(out)
    assert rec.disposition == "answered" and rec.agent_id == "a1" and rec.queue == "support"
    assert (rec.arrived_at, rec.ivr_ended_at, rec.enqueued_at, rec.offered_at,
            rec.answered_at, rec.ended_at) == (100.0, 102.0, 102.0, 102.0, 110.0, 200.0)
    assert (rec.talk_seconds, rec.hold_seconds, rec.wrapup_seconds) == (80.0, 10.0, 5.0)
    assert rec.recording == "n1-100.1-id6.wav" and rec.ring_no_answer == 0
    assert rec.ivr_path == ("welcome", "menu") and rec.variables == {"lang": "en"}
    assert (rec.node, rec.did, rec.caller) == ("n1", "5000", "+1555")
    assert cc.agents["a1"].calls_handled == 1
    assert cc.tick(300.0) == []  # exactly one record


def answered_recorded(cc) -> StartRecording:
    """Call c1 answered by a1 at 5.0 in the recorded queue; the recording the core asks for."""
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    (start,) = [d for d in cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0))
                if isinstance(d, StartRecording)]
    return start


def test_the_cdr_names_the_recording_relative_to_the_root_even_when_the_pbx_reports_its_path():
    cc = make_center()
    start = answered_recorded(cc)
    cc.handle(CallHungUp("c1", "normal_clearing", "agent", 9.0))
    cc.handle(RecordingStarted("c1", f"/var/spool/rec/{start.file}", 9.5))  # late but valid
    (rec,) = records(cc.tick(20.0))
    assert rec.recording == start.file == "c1-id6.wav"


def test_a_refused_recording_start_leaves_no_file_in_the_cdr():
    cc = make_center()
    start = answered_recorded(cc)
    assert cc.calls["c1"].recording == start.file
    cc.handle(RecordingFailed("c1", start.file, "Permission denied", 5.1))
    assert (cc.calls["c1"].recording, cc.calls["c1"].recording_failure) == (None, "Permission denied")
    cc.handle(CallHungUp("c1", "normal_clearing", "agent", 9.0))
    (rec,) = records(cc.tick(20.0))
    assert rec.recording is None


def test_the_facts_kept_on_the_channel_drop_a_recording_whose_start_was_refused():
    cc = make_center()
    start = answered_recorded(cc)
    out = cc.handle(RecordingFailed("c1", start.file, "Permission denied", 5.1))
    (keep,) = [d for d in out if isinstance(d, KeepCallFacts)]
    assert keep.channel == "PJSIP/trunk-c1" and keep.facts.recording is None
    # a restarted center adopting the call from these facts writes no file in its CDR
    after = make_center(now=50.0)
    live = (LiveCall("c1", "PJSIP/trunk-c1", "+1555", "", DEV["a1"], 45.0, keep.facts),)
    after.handle(NodeResynced("n1", live, 50.0))
    after.handle(CallHungUp("c1", "normal_clearing", "agent", 60.0))
    (rec,) = records(after.tick(100.0))
    assert rec.disposition == "answered" and rec.recording is None


def test_a_call_rung_again_keeps_the_file_named_at_its_first_ring():
    cc = make_center()
    only_a1(cc)
    (first,) = [d for d in arrive(cc, "c1", 0.0) if isinstance(d, RingAgent)]
    again = cc.handle(AgentLegFailed("c1", DEV["a1"], "rejected", 3.0)) + cc.ready("a2", 4.0)
    rings = [d for d in again if isinstance(d, RingAgent)]
    assert first.record_file and [r.record_file for r in rings] == [first.record_file]


def test_recording_file_name_only_from_safe_id_characters():
    cc = make_center()
    only_a1(cc)
    cid = "n1:../../etc/passwd x"
    arrive(cc, cid, 0.0)
    out = cc.handle(AgentLegAnswered(cid, DEV["a1"], 5.0))
    (cmd,) = [d for d in out if isinstance(d, StartRecording)]
    assert "/" not in cmd.file and " " not in cmd.file and cmd.file.endswith(".wav")


def test_zero_wrapup_queue_records_at_once_and_no_recording():
    cc = make_center()
    arrive(cc, "c1", 0.0, queue="sales")
    out = cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0))
    assert not [d for d in out if isinstance(d, StartRecording)]
    out = cc.handle(CallHungUp("c1", "normal_clearing", "caller", 20.0))
    assert agent_rows(out) == [("a1", "on_call", "wrap_up", None), ("a1", "wrap_up", "ready", None)]
    (rec,) = records(out)
    assert rec.wrapup_seconds == 0.0 and rec.talk_seconds == 15.0


def test_abandoned_in_queue():
    cc = make_center()
    cc.pause("a1", "lunch", 0.0)
    cc.pause("a2", "lunch", 0.0)
    assert rings(arrive(cc, "c1", 10.0)) == []
    out = cc.handle(CallHungUp("c1", "normal_clearing", "caller", 50.0))
    (rec,) = records(out)
    assert rec.disposition == "abandoned" and rec.enqueued_at == 12.0
    assert rec.offered_at is None and rec.agent_id is None and rec.talk_seconds == 0.0


def test_abandoned_while_ringing_agent_back_to_ready(caplog):
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 10.0)
    out = cc.handle(CallHungUp("c1", "normal_clearing", "caller", 15.0))
    assert agent_rows(out) == [("a1", "offered", "ready", None)]
    (rec,) = records(out)
    assert rec.disposition == "abandoned" and rec.offered_at == 12.0 and rec.agent_id is None
    assert cc.agents["a1"].idle_since == 15.0
    with caplog.at_level(logging.INFO):
        assert cc.handle(AgentLegFailed("c1", DEV["a1"], "cancelled", 15.1)) == []
    assert "late AgentLegFailed" in caplog.text


def test_rona_pauses_agent_and_caller_goes_to_next_agent_at_once():
    cc = make_center()
    cc.pause("a2", "x", 0.0)
    cc.ready("a2", 1.0)  # a2 idle since 1, a1 since 0
    assert rings(arrive(cc, "c1", 10.0)) == [("c1", DEV["a1"])]
    out = cc.handle(AgentLegFailed("c1", DEV["a1"], "no_answer", 27.0))
    assert agent_rows(out) == [("a1", "offered", "paused", "no answer"),
                               ("a2", "ready", "offered", None)]
    assert rings(out) == [("c1", DEV["a2"])]
    call = cc.calls["c1"]
    assert call.enqueued_at == 12.0 and call.ring_no_answer == 1 and call.offered_at == 12.0
    cc.handle(AgentLegAnswered("c1", DEV["a2"], 30.0))
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 40.0))
    (rec,) = records(cc.tick(100.0))
    assert rec.ring_no_answer == 1 and rec.agent_id == "a2" and rec.offered_at == 12.0


def test_failed_legs_keep_the_callers_place():
    cc = make_center()
    arrive(cc, "c1", 10.0)  # -> a1
    arrive(cc, "c2", 20.0)  # -> a2
    out = cc.handle(AgentLegFailed("c1", DEV["a1"], "no_answer", 30.0))
    assert agent_rows(out) == [("a1", "offered", "paused", "no answer")]
    out = cc.handle(AgentLegFailed("c2", DEV["a2"], "busy", 31.0))
    assert agent_rows(out) == [("a2", "offered", "paused", "unavailable")]
    assert [w.call_id for w in cc.queue_snapshot("support", 40.0).waiting] == ["c1", "c2"]
    assert rings(cc.ready("a2", 50.0)) == [("c1", DEV["a2"])]


def test_cancelled_leg_leaves_agent_ready():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 10.0)
    out = cc.handle(AgentLegFailed("c1", DEV["a1"], "cancelled", 11.0))
    # a1 is ready again and, being the only agent, is rung again at once
    assert agent_rows(out) == [("a1", "offered", "ready", None), ("a1", "ready", "offered", None)]
    assert cc.calls["c1"].ring_no_answer == 0


def test_callers_ordered_by_priority_then_enqueue_time():
    cc = make_center()
    cc.pause("a1", "x", 0.0)
    cc.pause("a2", "x", 0.0)
    arrive(cc, "c1", 10.0, priority=0)
    arrive(cc, "c2", 20.0, priority=5)
    arrive(cc, "c3", 15.0, priority=5)
    snap = cc.queue_snapshot("support", 30.0)
    assert [(w.call_id, w.wait_seconds) for w in snap.waiting] == [
        ("c3", 13.0), ("c2", 8.0), ("c1", 18.0)]
    assert (snap.ready, snap.paused) == (1, 2)  # a3 is ready on n2
    assert rings(cc.ready("a1", 31.0)) == [("c3", DEV["a1"])]
    assert rings(cc.ready("a2", 32.0)) == [("c2", DEV["a2"])]
    snap = cc.queue_snapshot("support", 33.0)
    assert [w.ringing_agent for w in snap.waiting] == ["a1", "a2", None]
    assert snap.offered == 2


def test_longest_idle_with_deterministic_ties():
    cc = make_center()  # a1 and a2 both idle since 0: tie -> a1
    assert rings(arrive(cc, "c1", 10.0)) == [("c1", DEV["a1"])]
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 13.0))  # a1 ready, idle since 13
    assert rings(arrive(cc, "c2", 20.0)) == [("c2", DEV["a2"])]


def test_agent_on_another_node_is_never_rung():
    cc = make_center()
    cc.pause("a1", "x", 0.0)
    cc.pause("a2", "x", 0.0)
    assert rings(arrive(cc, "c1", 10.0)) == []  # a3 is ready but on n2
    assert rings(arrive(cc, "c2", 10.0, node="n2")) == [("c2", DEV["a3"])]


def test_wrap_up_then_ready_then_next_waiting_call():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0))
    assert rings(arrive(cc, "c2", 10.0)) == []
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 60.0))
    out = cc.tick(70.0)
    assert agent_rows(out) == [("a1", "wrap_up", "ready", None), ("a1", "ready", "offered", None)]
    assert [r.call_id for r in records(out)] == ["c1"]
    assert rings(out) == [("c2", DEV["a1"])]


def test_ready_ends_wrap_up_early_and_emits_the_record():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0))
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 60.0))
    (rec,) = records(cc.ready("a1", 62.0))
    assert rec.wrapup_seconds == 2.0
    assert records(cc.tick(100.0)) == []


def test_hangup_during_ivr():
    cc = make_center()
    cc.handle(CallStarted("c1", "n1", "ch", "+1555", "5000", 10.0))
    cc.handle(CallAnswered("c1", 11.0))
    cc.handle(DigitsReceived("c1", "1", 12.0))
    # The IVR's own report may still come (FastAGI and AMI race): the CDR waits a little for it.
    assert records(cc.handle(CallHungUp("c1", "normal_clearing", "caller", 13.0))) == []
    assert records(cc.tick(13.0 + IVR_RESULT_GRACE_SECONDS - 0.1)) == []
    (rec,) = records(cc.tick(13.0 + IVR_RESULT_GRACE_SECONDS))
    assert rec.disposition == "ivr_hangup" and rec.ivr_ended_at is None and rec.queue is None


def test_hangup_during_ivr_keeps_the_path_reported_after_the_hangup():
    cc = make_center()
    cc.handle(CallStarted("c1", "n1", "ch", "+1555", "5000", 10.0))
    cc.handle(CallAnswered("c1", 11.0))
    assert records(cc.handle(CallHungUp("c1", "normal_clearing", "caller", 13.0))) == []
    late = IvrFinished("c1", "n1", "ch", "+1555", "5000", None, ("greeting", "main_menu"), at=13.2,
                       caller_hung_up=True)
    (rec,) = records(cc.handle(late))
    assert rec.disposition == "ivr_hangup" and rec.ivr_path == ("greeting", "main_menu")
    assert rec.ivr_ended_at is None and rec.ended_at == 13.0
    assert records(cc.tick(100.0)) == []  # exactly one record


def test_hangup_during_ivr_reported_by_the_ivr_before_the_pbx():
    cc = make_center()
    cc.handle(CallStarted("c1", "n1", "ch", "+1555", "5000", 10.0))
    cc.handle(CallAnswered("c1", 11.0))
    early = IvrFinished("c1", "n1", "ch", "+1555", "5000", None, ("greeting",), at=12.9, caller_hung_up=True)
    assert cc.handle(early) == []
    (rec,) = records(cc.handle(CallHungUp("c1", "normal_clearing", "caller", 13.0)))
    assert rec.disposition == "ivr_hangup" and rec.ivr_path == ("greeting",) and rec.ivr_ended_at is None


def test_ivr_completed_without_queue():
    cc = make_center()
    cc.handle(CallStarted("c1", "n1", "ch", "+1555", "5000", 10.0))
    out = cc.handle(IvrFinished("c1", "n1", "ch", "+1555", "5000", None, ("hours",), at=20.0))
    assert out == []  # the dialplan hangs up
    (rec,) = records(cc.handle(CallHungUp("c1", "normal_clearing", "system", 21.0)))
    assert rec.disposition == "ivr_completed" and rec.ivr_path == ("hours",)


def test_unknown_queue_hangs_up_with_a_clear_log(caplog):
    cc = make_center()
    with caplog.at_level(logging.ERROR):
        out = arrive(cc, "c1", 10.0, queue="nope")
    assert out == [HangupCall("n1", "c1", "PJSIP/trunk-c1")]
    assert "unknown queue 'nope'" in caplog.text
    (rec,) = records(cc.handle(CallHungUp("c1", "normal_clearing", "system", 13.0)))
    assert rec.disposition == "ivr_completed" and rec.queue == "nope" and rec.enqueued_at is None


def test_ivr_finished_adopts_a_call_whose_start_was_missed():
    cc = make_center()
    only_a1(cc)
    out = cc.handle(IvrFinished("c1", "n1", "ch", "+1555", "5000", "support", (), at=20.0))
    assert rings(out) == [("c1", DEV["a1"])]
    assert cc.calls["c1"].arrived_at == 20.0


def test_node_down_holds_routing_until_up():
    cc = make_center()
    only_a1(cc)
    cc.handle(NodeConnectionChanged("n1", False, 5.0))
    assert rings(arrive(cc, "c1", 10.0)) == []
    assert cc.nodes == {"n1": False}
    assert rings(cc.handle(NodeConnectionChanged("n1", True, 20.0))) == [("c1", DEV["a1"])]


def test_offer_without_outcome_counts_as_no_answer(caplog):
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 10.0)  # rung at 12, timeout 15 + grace 10
    assert cc.tick(36.0) == []
    with caplog.at_level(logging.WARNING):
        out = cc.tick(37.0)
    assert agent_rows(out) == [("a1", "offered", "paused", "no answer")]
    assert cc.calls["c1"].state is CallState.QUEUED and "no outcome" in caplog.text


# ---- resynchronization -----------------------------------------------------------------


def test_resync_frees_the_agent_of_a_vanished_connected_call():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0))
    arrive(cc, "c2", 6.0)  # waits: nobody ready
    out = cc.handle(NodeResynced("n1", (), 50.0))
    assert agent_rows(out) == [("a1", "on_call", "wrap_up", None)]
    (lost,) = records(out)
    assert lost.call_id == "c2" and lost.disposition == "lost"
    assert (lost.hangup_cause, lost.hangup_by) == ("lost", "unknown")
    (rec,) = records(cc.tick(60.0))
    assert rec.call_id == "c1" and rec.disposition == "answered"
    assert rec.hangup_cause == "lost" and rec.talk_seconds == 45.0
    assert cc.agents["a1"].state == "ready" and cc.calls == {}


def test_resync_releases_a_ringing_agent_and_keeps_other_nodes():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    arrive(cc, "x1", 0.0, node="n2")
    out = cc.handle(NodeResynced("n1", (), 50.0))
    assert agent_rows(out) == [("a1", "offered", "ready", None)]
    assert [r.disposition for r in records(out)] == ["lost"]
    assert set(cc.calls) == {"x1"}


def test_resync_adopts_unknown_calls():
    cc = make_center()
    live = (
        LiveCall("n1:9.1", "PJSIP/trunk-9", "+1777", "5000", DEV["a2"], 30.0),
        LiveCall("n1:9.2", "PJSIP/trunk-10", "+1888", "5000", None, 4.0),
    )
    out = cc.handle(NodeResynced("n1", live, 100.0))
    assert agent_rows(out) == [("a2", "ready", "on_call", None)]
    bridged, waiting = cc.calls["n1:9.1"], cc.calls["n1:9.2"]
    assert bridged.state is CallState.CONNECTED and bridged.agent_id == "a2"
    assert bridged.arrived_at == 70.0 and bridged.answered_at == 100.0
    assert waiting.state is CallState.IN_IVR and waiting.arrived_at == 96.0
    assert cc.nodes == {"n1": True}

    out = cc.handle(CallHungUp("n1:9.1", "normal_clearing", "agent", 130.0))
    assert agent_rows(out) == [("a2", "on_call", "wrap_up", None), ("a2", "wrap_up", "ready", None)]
    (rec,) = records(out)  # queue unknown: no wrap-up
    assert rec.disposition == "answered" and rec.agent_id == "a2" and rec.talk_seconds == 30.0
    assert records(cc.handle(CallHungUp("n1:9.2", "normal_clearing", "caller", 131.0))) == []
    (rec,) = records(cc.tick(131.0 + IVR_RESULT_GRACE_SECONDS))
    assert rec.disposition == "ivr_hangup"


def test_a_restarted_center_takes_back_what_was_kept_of_a_connected_and_a_waiting_call():
    before = make_center()
    only_a1(before)
    arrive(before, "n1:1.1", 100.0)
    kept = [d for d in before.handle(AgentLegAnswered("n1:1.1", DEV["a1"], 110.0))
            if isinstance(d, KeepCallFacts)][-1].facts
    (waiting_kept,) = [d.facts for d in arrive(before, "n1:2.1", 105.0, queue="sales")
                       if isinstance(d, KeepCallFacts)]

    after = make_center(now=200.0)
    after.pause("a1", "x", 200.0)
    after.pause("a2", "x", 200.0)
    live = (
        # the agent leg named by its channel (FreeSWITCH's sofia/internal/1001@...), not a
        # dial string the core knows: the kept facts say who answered
        LiveCall("n1:1.1", "PJSIP/trunk-n1:1.1", "+1555", "", "sofia/internal/1001@x", 100.0,
                 kept),
        LiveCall("n1:2.1", "PJSIP/trunk-n1:2.1", "+1555", "", None, 95.0, waiting_kept),
    )
    after.ready("a1", 200.0)  # ready as far as this center knows: it is still on the call
    out = after.handle(NodeResynced("n1", live, 201.0))
    talking, waiting = after.calls["n1:1.1"], after.calls["n1:2.1"]
    assert talking.state is CallState.CONNECTED and talking.agent_id == "a1"
    assert after.agents["a1"].state == "on_call" and rings(out) == []
    assert (talking.did, talking.queue, talking.answered_at) == ("5000", "support", 110.0)
    # the waiting caller is in its queue again with its place, routed to the next ready agent
    assert waiting.state is CallState.QUEUED and waiting.enqueued_at == 107.0
    assert after.queue_snapshot("sales", 202.0).waiting[0].call_id == "n1:2.1"
    out = after.handle(CallHungUp("n1:1.1", "normal_clearing", "caller", 230.0))
    out += after.tick(240.0)  # the support queue's wrap-up ends: a1 is free
    (rec,) = records(out)
    assert (rec.did, rec.queue, rec.agent_id, rec.ivr_path) == ("5000", "support", "a1",
                                                                 ("welcome", "menu"))
    assert (rec.arrived_at, rec.enqueued_at, rec.offered_at, rec.answered_at) == (
        100.0, 102.0, 102.0, 110.0)
    assert rec.talk_seconds == 120.0
    assert rings(out) == [("n1:2.1", DEV["a1"])]


def test_resync_completes_a_missed_answer():
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    live = (LiveCall("c1", "PJSIP/trunk-c1", "+1555", "5000", DEV["a1"], 10.0),)
    out = cc.handle(NodeResynced("n1", live, 8.0))
    assert agent_rows(out) == [("a1", "offered", "on_call", None)]
    assert cc.calls["c1"].state is CallState.CONNECTED


def test_resync_bridge_to_a_busy_agent_is_adopted_without_agent(caplog):
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)  # a1 rung
    live = (
        LiveCall("c1", "PJSIP/trunk-c1", "+1555", "5000", None, 10.0),
        LiveCall("n1:7.7", "PJSIP/trunk-7", "+1999", "5000", DEV["a1"], 10.0),
    )
    with caplog.at_level(logging.WARNING):
        out = cc.handle(NodeResynced("n1", live, 8.0))
    assert agent_rows(out) == []
    assert cc.calls["n1:7.7"].state is CallState.CONNECTED
    assert cc.calls["n1:7.7"].agent_id is None
    assert cc.agents["a1"].call_id == "c1" and "busy with c1" in caplog.text


# ---- robustness ------------------------------------------------------------------------


def test_illegal_and_duplicate_events_are_logged_and_ignored(caplog):
    cc = make_center()
    cc.pause("a1", "x", 0.0)
    cc.pause("a2", "x", 0.0)
    arrive(cc, "c1", 0.0)
    with caplog.at_level(logging.INFO):
        assert cc.handle(AgentLegAnswered("c1", DEV["a1"], 5.0)) == []  # c1 not offered
        assert cc.handle(AgentLegAnswered("nope", DEV["a1"], 5.0)) == []
        assert cc.handle(HoldChanged("c1", True, 5.0)) == []
        assert cc.handle(CallStarted("c1", "n1", "ch", "+1", "5000", 5.0)) == []
        assert len(records(cc.handle(CallHungUp("c1", "normal_clearing", "caller", 6.0)))) == 1
        assert cc.handle(CallHungUp("c1", "normal_clearing", "caller", 7.0)) == []
        assert cc.handle(CallStarted("c1", "n1", "ch", "+1", "5000", 8.0)) == []
    text = caplog.text
    assert "call c1: AgentLegAnswered from PJSIP/1001 ignored in state queued" in text
    assert "call nope: AgentLegAnswered for an unknown call ignored" in text
    assert "call c1: HoldChanged(on=True) ignored in state queued" in text
    assert "call c1: late CallHungUp ignored" in text
    assert text.count("duplicate CallStarted") == 2


def test_answer_from_a_device_that_was_not_rung_is_ignored(caplog):
    cc = make_center()
    only_a1(cc)
    arrive(cc, "c1", 0.0)
    with caplog.at_level(logging.WARNING):
        assert cc.handle(AgentLegAnswered("c1", DEV["a2"], 5.0)) == []
    assert cc.calls["c1"].state is CallState.OFFERED and "rung: a1" in caplog.text


def test_agent_commands():
    cc = make_center()
    assert agent_rows(cc.logout("a3", 1.0)) == [("a3", "ready", "logged_out", None)]
    assert agent_rows(cc.logout("a3", 2.0)) == []
    with pytest.raises(KeyError):
        cc.login("ghost", 1.0)
    with pytest.raises(KeyError):
        cc.queue_snapshot("ghost", 1.0)


# ---- random sequences ------------------------------------------------------------------

CIDS = ["c1", "c2", "c3", "x1"]  # x1 lives on n2
AGENTS = ["a1", "a2", "a3"]
REASONS = ["no_answer", "busy", "unavailable", "cancelled", "rejected", "error"]

# Realistic steps are repeated so that sequences often reach ringing / connected / wrap-up.
KINDS = [
    "flow", "flow", "flow", "pickup", "pickup", "pickup", "start", "answer", "ivr", "ringing",
    "leg_ok", "leg_ok", "leg_ok",
    "leg_fail", "hold", "hangup", "hangup", "resync", "node", "tick", "tick", "login", "logout",
    "pause", "ready", "ready",
]
step = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(CIDS),
    st.integers(0, len(AGENTS) + 2),  # >= len(AGENTS): "the agent being rung"
    st.integers(0, 5),
    st.floats(0, 8, allow_nan=False),
)


def _event(cc: ContactCenter, kind, cid, ai, k, now):
    node = "n2" if cid == "x1" else "n1"
    ch = f"ch-{cid}"
    call = cc.calls.get(cid)
    if ai >= len(AGENTS):
        agent_id = call.agent_id if call is not None and call.agent_id else "a1"
    else:
        agent_id = AGENTS[ai]
    dev = DEV[agent_id]
    if kind == "flow":  # a whole IVR into the support queue at once
        cc.handle(CallStarted(cid, node, ch, "+1", "5000", now))
        return cc.handle(IvrFinished(cid, node, ch, "+1", "5000", "support", (), {}, k % 2, now))
    if kind == "pickup":  # some ringing agent answers
        rung = sorted(c.call_id for c in cc.calls.values() if c.state is CallState.OFFERED)
        if not rung:
            return []
        return cc.handle(AgentLegAnswered(rung[0], DEV[cc.calls[rung[0]].agent_id], now))
    if kind == "start":
        return cc.handle(CallStarted(cid, node, ch, "+1", "5000", now))
    if kind == "answer":
        return cc.handle(CallAnswered(cid, now))
    if kind == "ivr":
        queue = ["support", "sales", None, "nope", "support", "support"][k]
        return cc.handle(IvrFinished(cid, node, ch, "+1", "5000", queue, (), {}, k % 3, now))
    if kind == "ringing":
        return cc.handle(AgentLegRinging(cid, dev, now))
    if kind == "leg_ok":
        return cc.handle(AgentLegAnswered(cid, dev, now))
    if kind == "leg_fail":
        return cc.handle(AgentLegFailed(cid, dev, REASONS[k], now))
    if kind == "hold":
        return cc.handle(HoldChanged(cid, k % 2 == 0, now))
    if kind == "hangup":
        return cc.handle(CallHungUp(cid, "normal_clearing", "caller", now))
    if kind == "resync":
        live = tuple(
            LiveCall(c, f"ch-{c}", "+1", "5000", DEV[AGENTS[(k + i) % 3]] if k > 2 else None, 1.0)
            for i, c in enumerate(CIDS)
            if (k >> (i % 3)) & 1 and (c == "x1") == (node == "n2")
        )
        return cc.handle(NodeResynced(node, live, now))
    if kind == "node":
        return cc.handle(NodeConnectionChanged(node, k % 2 == 0, now))
    if kind == "tick":
        return cc.tick(now)
    if kind == "login":
        return cc.login(agent_id, now, paused_reason="training" if k == 0 else None)
    if kind == "logout":
        return cc.logout(agent_id, now)
    if kind == "pause":
        return cc.pause(agent_id, ["lunch", "break"][k % 2], now)
    return cc.ready(agent_id, now)


def _check_invariants(cc: ContactCenter) -> None:
    holders: dict[str, str] = {}
    for agent in cc.agents.values():
        if agent.state in ("offered", "on_call"):
            assert agent.call_id not in holders, "two agents on one call"
            holders[agent.call_id] = agent.agent_id
            call = cc.calls[agent.call_id]
            assert call.agent_id == agent.agent_id
            expected = CallState.OFFERED if agent.state == "offered" else CallState.CONNECTED
            assert call.state is expected
        assert (agent.idle_since is not None) == (agent.state == "ready")
    for call in cc.calls.values():
        assert call.state is not CallState.ENDED
        if call.state is CallState.OFFERED or (
            call.state is CallState.CONNECTED and call.agent_id is not None
        ):
            assert holders.get(call.call_id) == call.agent_id


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=60))
def test_random_sequences_never_raise_and_keep_invariants(steps):
    logging.disable(logging.CRITICAL)  # the sequences are full of (logged) nonsense
    try:
        cc = make_center()
        now = 0.0
        seen: set[str] = set()
        recorded: list[str] = []
        for kind, cid, ai, k, dt in steps:
            now += dt
            out = _event(cc, kind, cid, ai, k, now)
            recorded += [r.call_id for r in records(out)]
            seen |= set(cc.calls)
            _check_invariants(cc)
        for cid in list(cc.calls):
            recorded += [r.call_id for r in records(
                cc.handle(CallHungUp(cid, "normal_clearing", "caller", now)))]
        recorded += [r.call_id for r in records(cc.tick(now + 10_000))]
        assert sorted(recorded) == sorted(seen), "every call exactly one CallRecord"
        assert {a.state for a in cc.agents.values()} <= {"ready", "paused", "logged_out"}
    finally:
        logging.disable(logging.NOTSET)


def test_agent_reachable_from_another_node_through_its_devices():
    config = Config(
        queues=[QueueConfig(name="support", wrapup_seconds=0.0)],
        agents=[AgentConfig(id="a1", name="Ann", node="ast", device="PJSIP/1001",
                            devices={"fs": "sofia/gateway/ast/1001"}, queues=["support"])],
    )
    cc = ContactCenter(config, now=0.0)
    cc.tick(0.0)
    out = arrive(cc, "fs:c1", 10.0, node="fs")
    assert [(d.node, d.device) for d in out if isinstance(d, RingAgent)] == [("fs", "sofia/gateway/ast/1001")]
    cc.handle(AgentLegAnswered("fs:c1", "sofia/gateway/ast/1001", 14.0))
    assert cc.agents["a1"].state == "on_call"
    # a call on a node the agent cannot be reached from waits
    assert rings(arrive(cc, "x:c2", 20.0, node="x")) == []


def test_a_callback_number_that_is_not_a_phone_number_is_refused(caplog):
    from ccserver.core.events import CallbackRequest

    cc = make_center()
    cc.handle(CallStarted("c9", "n1", "ch", "1&PJSIP/009", "5000", 10.0))
    bad = CallbackRequest(number="1&PJSIP/00900123", queue="support")
    with caplog.at_level(logging.ERROR):
        out = cc.handle(IvrFinished("c9", "n1", "ch", "1&PJSIP/009", "5000", None, ("cb",), at=11.0,
                                    callback=bad))
    assert "c9/callback" not in cc.calls and not any(type(d).__name__ == "CallbackAgent" for d in out)
    assert "not a phone number" in caplog.text
    with pytest.raises(ValueError, match="number"):
        CallbackAgent("n1", "c9/callback", "PJSIP/1001", "1,tT", 15)


def test_drain_writes_what_the_core_owes_without_routing():
    cc = make_center()
    arrive(cc, "c1", 10.0)  # rung a1
    cc.handle(AgentLegAnswered("c1", DEV["a1"], 14.0))
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 20.0))  # a1 wraps up (5 s)
    cc.handle(CallStarted("c2", "n1", "ch2", "+1555", "5000", 21.0))
    cc.handle(CallAnswered("c2", 21.5))
    cc.handle(CallHungUp("c2", "normal_clearing", "caller", 22.0))  # waits for its IVR report
    arrive(cc, "c3", 22.0)  # a2 is rung for c3
    out = cc.drain(23.0)
    assert sorted(r.call_id for r in records(out)) == ["c1", "c2"]
    assert rings(out) == []  # nobody is routed while stopping
    assert cc.agents["a1"].state == "paused" and cc.agents["a1"].reason == "shutdown"


def test_a_resync_routes_the_callers_who_waited_while_their_node_was_away():
    cc = make_center()
    cc.handle(NodeConnectionChanged("n1", False, 1.0))
    assert rings(arrive(cc, "c1", 2.0)) == []  # its node is away: nobody can be rung
    out = cc.handle(NodeResynced("n1", (LiveCall("c1", "PJSIP/trunk-c1", "+1555", "5000", None, 3.0),), 5.0))
    assert rings(out) == [("c1", DEV["a1"])]
