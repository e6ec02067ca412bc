"""The call state machine on its own."""

import logging

import pytest

from ccserver.core.call import Call, CallState


def new_call() -> Call:
    return Call("n1:100.1", "n1", "PJSIP/trunk-01", "+15550001", "5000", arrived_at=100.0)


def queued_call() -> Call:
    call = new_call()
    call.answer(101.0)
    call.finish_ivr("support", ("menu", "1"), {"lang": "en"}, 2, 110.0)
    return call


def test_happy_path_and_record():
    call = queued_call()
    assert call.state is CallState.QUEUED
    assert call.offer("a1", 115.0)
    assert call.leg_answered(120.0)
    assert call.hold(True, 130.0) and call.hold(False, 140.0)
    assert call.hang_up("normal_clearing", "caller", 200.0)
    rec = call.record(wrapup_seconds=5.0)
    assert rec.disposition == "answered"
    assert (rec.arrived_at, rec.ivr_ended_at, rec.enqueued_at) == (100.0, 110.0, 110.0)
    assert (rec.offered_at, rec.answered_at, rec.ended_at) == (115.0, 120.0, 200.0)
    assert rec.hold_seconds == 10.0
    assert rec.talk_seconds == 70.0  # 200 - 120 - 10
    assert rec.wrapup_seconds == 5.0
    assert rec.agent_id == "a1" and rec.queue == "support"
    assert rec.ivr_path == ("menu", "1") and rec.variables == {"lang": "en"}
    assert (rec.hangup_cause, rec.hangup_by) == ("normal_clearing", "caller")


def test_hold_open_at_hangup_counts():
    call = queued_call()
    call.offer("a1", 115.0)
    call.leg_answered(120.0)
    call.hold(True, 150.0)
    call.hold(True, 160.0)  # repeat: ignored, hold still from 150
    call.hang_up("normal_clearing", "agent", 170.0)
    assert call.record().hold_seconds == 20.0
    assert call.record().talk_seconds == 30.0


def test_failed_offer_keeps_place_and_counts_rona():
    call = queued_call()
    call.offer("a1", 115.0)
    assert call.leg_failed(True, 130.0)
    assert call.state is CallState.QUEUED and call.enqueued_at == 110.0
    assert call.agent_id is None and call.ring_no_answer == 1
    call.offer("a2", 131.0)
    call.leg_failed(False, 132.0)  # busy: not a RONA
    assert call.ring_no_answer == 1
    assert call.offered_at == 115.0  # the first offer is kept


@pytest.mark.parametrize(
    ("steps", "disposition"),
    [
        ([], "ivr_hangup"),
        (["answer"], "ivr_hangup"),
        (["answer", "ivr_no_queue"], "ivr_completed"),
        (["answer", "ivr_queue"], "abandoned"),
        (["answer", "ivr_queue", "offer"], "abandoned"),
    ],
)
def test_dispositions(steps, disposition):
    call = new_call()
    for step in steps:
        if step == "answer":
            call.answer(101.0)
        elif step == "ivr_no_queue":
            call.finish_ivr(None, ("bye",), {}, 0, 105.0)
        elif step == "ivr_queue":
            call.finish_ivr("support", (), {}, 0, 105.0)
        elif step == "offer":
            call.offer("a1", 106.0)
    call.hang_up("normal_clearing", "caller", 120.0)
    rec = call.record()
    assert rec.disposition == disposition
    assert rec.agent_id is None and rec.talk_seconds == 0.0


def test_lost_disposition_unless_answered():
    waiting = queued_call()
    waiting.hang_up("lost", "unknown", 150.0)
    assert waiting.record().disposition == "lost"
    talking = queued_call()
    talking.offer("a1", 111.0)
    talking.leg_answered(112.0)
    talking.hang_up("lost", "unknown", 150.0)
    assert talking.record().disposition == "answered"
    assert talking.record().hangup_cause == "lost"


def test_ivr_finished_without_call_answered_is_accepted():
    call = new_call()
    assert call.finish_ivr("support", (), {}, 0, 105.0)
    assert call.state is CallState.QUEUED


def test_illegal_transitions_are_logged_and_ignored(caplog):
    call = new_call()
    with caplog.at_level(logging.WARNING, logger="ccserver.core.call"):
        assert not call.leg_answered(101.0)
        assert not call.leg_failed(True, 101.0)
        assert not call.offer("a1", 101.0)
        assert not call.hold(True, 101.0)
        call.answer(101.0)
        assert not call.answer(102.0)
        call.hang_up("normal_clearing", "caller", 103.0)
        assert not call.hang_up("normal_clearing", "caller", 104.0)
    assert call.state is CallState.ENDED and call.ended_at == 103.0
    messages = [r.getMessage() for r in caplog.records]
    assert any("n1:100.1" in m and "AgentLegAnswered" in m and "arriving" in m for m in messages)
    assert any("CallHungUp" in m and "ended" in m for m in messages)
    assert len(messages) == 6
