"""Recording policy: the queue's, overridden per DID; on-demand recording through the core."""

from __future__ import annotations

import asyncio

import pytest

from ccserver.config import Config
from ccserver.core.center import ContactCenter
from ccserver.core.commands import KeepCallFacts, RingAgent, StartRecording
from ccserver.core.events import AgentLegAnswered, CallStarted, IvrFinished, RecordingStarted
from ccserver.ivr.flow import parse_flow, queues_of
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.runner import serve_ivr
from ccserver.ivr.simulate import ScriptedSession
from ccserver.recording.policy import may_be_recorded, recording_policy


def config(**recording) -> Config:
    return Config.model_validate({
        "queues": [{"name": "plain"}, {"name": "legacy", "record": True},
                   {"name": "asked", "recording": "on_demand"}, {"name": "never", "record": True,
                                                                 "recording": "none"}],
        "agents": [{"id": "a1", "name": "A", "node": "n", "device": "PJSIP/1", "queues": ["plain", "asked"]},
                   {"id": "a2", "name": "B", "node": "n", "device": "PJSIP/2", "queues": ["legacy", "never"]}],
        "recording": recording,
    })


@pytest.mark.parametrize(("queue", "did", "expected"), [
    ("plain", "100", "none"), ("legacy", "100", "all"), ("asked", "100", "on_demand"),
    ("never", "100", "none"), ("plain", "200", "all"), ("never", "200", "all"), (None, "300", "on_demand"),
])
def test_policy_of_queue_and_did(queue, did, expected):
    cfg = config(did_policies={"200": "all", "300": "on_demand"})
    assert recording_policy(cfg, cfg.queue(queue) if queue else None, did) == expected


def test_bad_policy_is_refused_naming_the_field():
    with pytest.raises(Exception) as e:
        config(did_policies={"200": "sometimes"})
    assert "did_policies" in str(e.value)


def connected(center: ContactCenter, queue: str, did: str = "100") -> list:
    center.handle(CallStarted("n:1", "n", "SIP/x-1", "+1555", did, 1.0))
    out = center.handle(IvrFinished("n:1", "n", "SIP/x-1", "+1555", did, queue, (), at=2.0))
    assert any(isinstance(d, RingAgent) for d in out)
    return center.handle(AgentLegAnswered("n:1", "PJSIP/1", 3.0))


def test_on_demand_records_only_when_asked():
    center = ContactCenter(config(), now=0.0)
    center.login("a1", 0.5)
    assert not [d for d in connected(center, "asked") if isinstance(d, StartRecording)]
    cmd = center.record_on_demand("n:1")
    assert cmd.call_id == "n:1" and cmd.file.startswith("n-1-") and cmd.file.endswith(".wav")
    with pytest.raises(ValueError, match="already recorded"):
        center.record_on_demand("n:1")


def test_a_recording_started_on_demand_is_kept_on_the_channel_for_a_restarted_ccserver():
    center = ContactCenter(config(), now=0.0)
    center.login("a1", 0.5)
    connected(center, "asked")
    cmd = center.record_on_demand("n:1")
    out = center.handle(RecordingStarted("n:1", f"/var/spool/asterisk/recordings/{cmd.file}", 4.0))
    (keep,) = [d for d in out if isinstance(d, KeepCallFacts)]
    assert (keep.channel, keep.facts.recording) == ("SIP/x-1", cmd.file)


def test_record_on_demand_refused_when_policy_is_not_on_demand():
    center = ContactCenter(config(), now=0.0)
    center.login("a1", 0.5)
    connected(center, "plain")
    with pytest.raises(ValueError, match="'none', not on_demand"):
        center.record_on_demand("n:1")
    with pytest.raises(ValueError, match="not connected"):
        center.record_on_demand("n:nope")


def test_recording_notice_plays_only_when_the_call_can_be_recorded(tmp_path):
    flow = parse_flow({"name": "main", "version": 1, "start": "q", "nodes": {"q": {"type": "queue", "queue": "plain"}}})
    assert queues_of(flow) == {"plain"}
    cfg = config(did_policies={"200": "all"})
    (tmp_path / "main.yaml").write_text(
        "name: main\nversion: 1\nstart: q\nrecording_notice: this-call-may-be-recorded\n"
        "nodes:\n  q: {type: queue, queue: plain}\n")
    lib = FlowLibrary(tmp_path, {"*": "main"})

    def played(did: str) -> list[str]:
        session = ScriptedSession(digits="", caller="+1555", did=did, language="en")
        asyncio.run(serve_ivr(session, lib, lambda e: None, lambda: 0.0,
                              may_record=lambda d, f: may_be_recorded(cfg, d, queues_of(f))))
        return [p.value for p in session.prompts]

    assert "this-call-may-be-recorded" not in played("100")  # queue 'plain' records nothing
    assert "this-call-may-be-recorded" in played("200")  # the DID records every call
    assert may_be_recorded(cfg, "100", {"legacy"}) and not may_be_recorded(cfg, "100", set())


def test_a_flow_policy_overrides_the_queue_and_a_did_override_wins():
    cfg = config(did_policies={"200": "all"})
    assert recording_policy(cfg, cfg.queue("legacy"), "100", "none") == "none"  # flow beats queue
    assert recording_policy(cfg, cfg.queue("plain"), "100", "all") == "all"
    assert recording_policy(cfg, cfg.queue("plain"), "200", "none") == "all"  # the DID wins
    center = ContactCenter(cfg, now=0.0)
    center.handle(CallStarted("c1", "n", "PJSIP/t-1", "+1555", "100", 1.0))
    center.handle(IvrFinished("c1", "n", "PJSIP/t-1", "+1555", "100", "plain", ("q",), at=2.0,
                              recording="all"))
    out = center.handle(AgentLegAnswered("c1", "PJSIP/1", 3.0))
    assert [type(d) for d in out if isinstance(d, StartRecording)] == [StartRecording]
