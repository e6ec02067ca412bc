"""The queue node's announcement: the core's estimate (place and expected wait) and what the
caller hears over real FastAGI before the hand-over."""

from __future__ import annotations

import pytest
import yaml
from test_core_center import arrive, make_center
from test_ivr_agi import agi_call, responder

from ccserver.config import AcdConfig, AgentConfig, Config, QueueConfig
from ccserver.core.center import ContactCenter
from ccserver.core.events import IvrFinished
from ccserver.ivr.library import FlowLibrary

FLOW = {
    "name": "waiting",
    "start": "needs",
    "nodes": {
        "needs": {"type": "set", "queue": "support", "priority": 5, "skills": {"french": 50}, "next": "enqueue"},
        "enqueue": {"type": "queue", "announce_position": True, "announce_wait": True},
    },
}


def test_estimate_counts_callers_ahead_and_agents_with_the_skills():
    cc = make_center(auto_login=False)
    assert cc.estimate_wait("support", 0, (), 10.0) == (1, None)  # nobody logged in: no honest wait
    for agent in ("a1", "a2"):
        cc.login(agent, 1.0)
    for agent in ("a1", "a2"):
        cc.pause(agent, "lunch", 2.0)
    arrive(cc, "c1", 3.0, priority=0)
    arrive(cc, "c2", 4.0, priority=5)
    # priority 5 goes behind c2 (same priority, earlier) but before c1
    position, wait = cc.estimate_wait("support", 5, (), 10.0)
    assert position == 2 and wait is None  # both agents paused
    assert cc.estimate_wait("support", 0, (), 10.0)[0] == 3
    cc.ready("a1", 11.0)  # a1 takes c2 at once; c1 and the newcomer wait for a1 to free up
    position, wait = cc.estimate_wait("support", 0, (), 12.0)
    assert position == 2 and wait == pytest.approx(2 * cc._handle_time["support"].seconds)
    # nobody has the skill: no estimate of the wait
    assert cc.estimate_wait("support", 0, (("french", 50),), 12.0)[1] is None
    with pytest.raises(KeyError):
        cc.estimate_wait("ghost", 0, (), 12.0)


def test_estimate_with_skills_counts_only_qualified_agents():
    config = Config(acd=AcdConfig(skills=["french"]), queues=[QueueConfig(name="support")], agents=[
        AgentConfig(id="fr", name="Fr", node="n1", device="PJSIP/1", queues=["support"], skills={"french": 80}),
        AgentConfig(id="en", name="En", node="n1", device="PJSIP/2", queues=["support"]),
    ])
    cc = ContactCenter(config, now=0.0)
    cc.tick(0.0)
    assert cc.estimate_wait("support", 0, (("french", 50),), 1.0) == (1, 0.0)  # "fr" is ready
    cc.pause("fr", "lunch", 2.0)
    assert cc.estimate_wait("support", 0, (("french", 50),), 3.0) == (1, None)
    assert cc.estimate_wait("support", 0, (), 3.0) == (1, 0.0)  # "en" is ready


async def _call(tmp_path, estimate) -> tuple[list[str], IvrFinished]:
    (tmp_path / "waiting.yaml").write_text(yaml.safe_dump(FLOW))
    library = FlowLibrary(tmp_path, {"*": "waiting"})
    usual = responder("")

    def respond(command: str) -> bytes:
        return b"200 result=0\n" if command.startswith("SAY NUMBER") else usual(command)

    commands, [event] = await agi_call(library, respond, 0.0, estimate)
    return commands, event


async def test_position_and_wait_are_announced_before_the_hand_over(tmp_path):
    asked = []

    def estimate(queue, priority, skills):
        asked.append((queue, priority, skills))
        return 3, 170.0

    commands, event = await _call(tmp_path, estimate)
    assert asked == [("support", 5, (("french", 50),))]
    said = [c for c in commands if c.startswith(("STREAM FILE", "SAY NUMBER", "SET VARIABLE CC_QUEUE"))]
    assert said == [
        'STREAM FILE queue-thereare ""', 'SAY NUMBER 3 ""', 'STREAM FILE queue-callswaiting ""',
        'STREAM FILE queue-holdtime ""', 'SAY NUMBER 3 ""', 'STREAM FILE queue-minutes ""',
        'SET VARIABLE CC_QUEUE "support"',
    ]
    assert event.queue == "support"
    assert (event.variables["CC_POSITION"], event.variables["CC_EXPECTED_WAIT"]) == ("3", "170")


async def test_unknown_wait_is_not_announced_and_no_estimator_says_nothing(tmp_path):
    commands, event = await _call(tmp_path, lambda q, p, s: (1, None))
    said = [c for c in commands if c.startswith(("STREAM FILE", "SAY NUMBER"))]
    assert said == ['STREAM FILE queue-thereare ""', 'SAY NUMBER 1 ""', 'STREAM FILE queue-callswaiting ""']
    assert "CC_EXPECTED_WAIT" not in event.variables
    commands, event = await _call(tmp_path, None)
    assert not [c for c in commands if c.startswith(("STREAM FILE", "SAY NUMBER"))]
    assert event.queue == "support" and event.variables["CC_ANNOUNCE"] == "position,wait"
