"""Escalation overflow to voicemail or to a callback: config checks and the core's decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_acd_center import agent, arrive, dev, make_center, rings
from test_acd_config import BASE, load

from ccserver.cdr.record import CallRecord
from ccserver.config import ConfigError, EscalationStep, QueueConfig
from ccserver.core.call import CallState
from ccserver.core.commands import CallbackAgent, ConfirmCallback, SendToVoicemail
from ccserver.core.events import AgentLegAnswered, CallHungUp


def test_voicemail_and_callback_steps_load(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE.replace('overflow = "backup"', 'overflow = "voicemail"')
               .replace('name = "support"', 'name = "support"\nvoicemail_box = "1234"'))
    assert (cfg.queue("support").escalation[-1].overflow, cfg.queue("support").voicemail_box) \
        == ("voicemail", "1234")
    assert load(tmp_path, BASE.replace('overflow = "backup"', 'overflow = "callback"'))


@pytest.mark.parametrize("old, new, message", [
    ('overflow = "backup"', 'overflow = "voicemail"',
     "queues[0].voicemail_box: needed by queues[0].escalation[2].overflow = 'voicemail'"),
    ('name = "support"', 'name = "support"\nvoicemail_box = "12 34"',
     "queues.0.voicemail_box: String should match pattern"),
    ('name = "backup"', 'name = "callback"',
     "queue names ['callback'] are reserved"),
])
def test_bad_overflow_configuration_is_refused_naming_the_key(tmp_path, old, new, message):
    assert old in BASE
    with pytest.raises(ConfigError) as err:
        load(tmp_path, BASE.replace(old, new))
    assert message in str(err.value)


def _center(target: str):
    support = QueueConfig(name="support", voicemail_box="1234",
                          escalation=[EscalationStep(after_seconds=60, overflow=target)])
    cc = make_center([support], [agent("a1", ["support"])])
    cc.pause("a1", "x", 0.0)
    return cc


def test_voicemail_overflow_sends_the_caller_to_the_box_and_leaves_the_queue() -> None:
    cc = _center("voicemail")
    arrive(cc, "c1", 10.0)
    assert cc.tick(69.0) == []
    assert cc.tick(70.0) == [SendToVoicemail("n1", "c1", "PJSIP/trunk-c1", "1234")]
    assert cc.calls["c1"].state is CallState.DIVERTED
    assert cc.queue_snapshot("support", 71.0).waiting == ()
    assert rings(cc.ready("a1", 72.0)) == [] and cc.tick(200.0) == []  # no place, no repeat
    [cdr] = [d for d in cc.handle(CallHungUp("c1", "normal", "caller", 130.0))
             if isinstance(d, CallRecord)]
    assert (cdr.disposition, cdr.enqueued_at, cdr.queue) == ("voicemail", 10.0, "support")


def test_callback_overflow_keeps_the_place_and_hangs_up_after_the_prompt() -> None:
    cc = _center("callback")
    arrive(cc, "c1", 10.0, caller="+15550100")
    arrive(cc, "c2", 40.0)
    assert cc.tick(70.0) == [ConfirmCallback("n1", "c1", "PJSIP/trunk-c1")]
    [cdr] = [d for d in cc.handle(CallHungUp("c1", "normal", "pbx", 75.0))
             if isinstance(d, CallRecord)]
    assert cdr.disposition == "callback"
    [first, second] = cc.queue_snapshot("support", 76.0).waiting
    assert (first.call_id, first.enqueued_at, second.call_id) == ("c1/callback", 10.0, "c2")
    out = cc.ready("a1", 80.0)
    assert [d for d in out if isinstance(d, CallbackAgent)] == [
        CallbackAgent("n1", "c1/callback", dev("a1"), "+15550100", 15)]
    cc.handle(AgentLegAnswered("c1/callback", dev("a1"), 85.0))
    assert cc.calls["c1/callback"].state is CallState.CONNECTED


def test_callback_overflow_without_a_caller_number_lets_the_caller_wait_on() -> None:
    cc = _center("callback")
    arrive(cc, "c1", 10.0, caller="anonymous")
    assert cc.tick(70.0) == [] and cc.tick(80.0) == []
    assert cc.calls["c1"].state is CallState.QUEUED
    assert rings(cc.ready("a1", 90.0)) == [("c1", dev("a1"))]
