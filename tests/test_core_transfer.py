"""ContactCenter.transfer: a live call leaves ccserver for an external number."""

from __future__ import annotations

import pytest
from test_core_center import DEV, agent_rows, arrive, make_center, only_a1, records

from ccserver.core.commands import TransferCall
from ccserver.core.events import AgentLegAnswered, CallAnswered, CallHungUp, CallStarted

CID = "n1:100.1"
CHANNEL = f"PJSIP/trunk-{CID}"


def test_waiting_caller_is_transferred_and_its_cdr_written_at_once():
    cc = make_center()
    for a in ("a1", "a2"):
        cc.pause(a, "lunch", 0.0)
    arrive(cc, CID, 100.0)
    out = cc.transfer(CID, "+4930123456", 130.0)
    assert out[0] == TransferCall("n1", CID, CHANNEL, "+4930123456")
    (rec,) = records(out)
    assert (rec.disposition, rec.queue, rec.agent_id, rec.ended_at) == (
        "transferred", "support", None, 130.0)
    assert rec.variables["CC_TRANSFER_TO"] == "+4930123456"
    assert CID not in cc.calls
    # the PBX's hang-up of the transferred channel comes later and changes nothing
    assert cc.handle(CallHungUp(CID, "normal_clearing", "caller", 200.0)) == []


def test_connected_call_sends_the_agent_to_wrap_up_and_the_cdr_follows_it():
    cc = make_center()
    only_a1(cc)
    arrive(cc, CID, 100.0)
    cc.handle(AgentLegAnswered(CID, DEV["a1"], 110.0))
    out = cc.transfer(CID, "0800123", 140.0)
    assert out[0] == TransferCall("n1", CID, CHANNEL, "0800123")
    assert agent_rows(out) == [("a1", "on_call", "wrap_up", None)]
    assert records(out) == []
    out = cc.tick(145.0)  # support's wrap-up is 5 s
    (rec,) = records(out)
    assert (rec.disposition, rec.agent_id, rec.talk_seconds, rec.wrapup_seconds) == (
        "transferred", "a1", 30.0, 5.0)


def test_rung_agent_is_freed_without_a_miss():
    cc = make_center()
    only_a1(cc)
    arrive(cc, CID, 100.0)
    out = cc.transfer(CID, "5551234", 105.0)
    assert agent_rows(out) == [("a1", "offered", "ready", None)]
    assert records(out)[0].disposition == "transferred"
    assert cc.agents["a1"].missed_in_row == 0


@pytest.mark.parametrize("destination", ["", "did:5000", "100,1", "1 2", "+", "12a", "1" * 33,
                                         "555;hangup"])
def test_bad_destination_is_refused_and_changes_nothing(destination):
    cc = make_center()
    for a in ("a1", "a2"):
        cc.pause(a, "lunch", 0.0)
    arrive(cc, CID, 100.0)
    with pytest.raises(ValueError, match="^destination: "):
        cc.transfer(CID, destination, 130.0)
    assert cc.calls[CID].transferred_to is None
    assert cc.tick(131.0) == []
    assert cc.calls[CID].state.value == "queued"


def test_only_calls_in_a_queue_or_with_an_agent_can_be_transferred():
    cc = make_center()
    with pytest.raises(ValueError, match="^call_id: 'nope' is not waiting"):
        cc.transfer("nope", "123", 1.0)
    arrive(cc, CID, 100.0)
    cc.handle(CallHungUp(CID, "normal_clearing", "caller", 101.0))
    with pytest.raises(ValueError, match="^call_id: "):
        cc.transfer(CID, "123", 102.0)
    # a call still in the IVR is the IVR's to transfer
    cc.handle(CallStarted("n1:7", "n1", "PJSIP/trunk-7", "+1555", "5000", 110.0))
    cc.handle(CallAnswered("n1:7", 111.0))
    with pytest.raises(ValueError, match="^call_id: 'n1:7' is not waiting"):
        cc.transfer("n1:7", "123", 112.0)
    assert cc.tick(113.0) == []

