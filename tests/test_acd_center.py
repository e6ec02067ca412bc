"""Skill-based routing through the contact center: requirements, escalation, RONA, estimates."""

from __future__ import annotations

import itertools
import logging

import pytest
import test_core_center as core_tests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccserver.acd.skills import SkillsRouter
from ccserver.config import AcdConfig, AgentConfig, Config, EscalationStep, QueueConfig
from ccserver.core.call import CallState
from ccserver.core.center import ContactCenter
from ccserver.core.commands import RingAgent
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    CallAnswered,
    CallHungUp,
    CallStarted,
    IvrFinished,
)


def dev(agent_id: str) -> str:
    return f"PJSIP/{agent_id}"


def agent(agent_id, queues, skills=None, priorities=None):
    return AgentConfig(id=agent_id, name=agent_id, node="n1", device=dev(agent_id),
                       queues=queues, skills=skills or {}, priorities=priorities or {})


def make_center(queues, agents, max_misses=1, now=0.0):
    config = Config(
        acd=AcdConfig(skills=["en", "fr", "billing"], max_misses=max_misses),
        queues=queues,
        agents=agents,
    )
    counter = itertools.count(1)
    cc = ContactCenter(config, now=now, router=SkillsRouter.from_config(config),
                       new_id=lambda: f"id{next(counter)}")
    cc.tick(now)
    return cc


def arrive(cc, cid, at, queue="support", priority=0, skills=(), language="", caller="+1555"):
    cc.handle(CallStarted(cid, "n1", f"PJSIP/trunk-{cid}", caller, "5000", at))
    cc.handle(CallAnswered(cid, at))
    return cc.handle(IvrFinished(cid, "n1", f"PJSIP/trunk-{cid}", caller, "5000", queue, (), {},
                                 priority, at, skills=skills, language=language))


def rings(decisions):
    return [(d.call_id, d.device) for d in decisions if isinstance(d, RingAgent)]


def test_requirements_from_ivr_and_queue_pick_the_qualified_agent():
    cc = make_center(
        [QueueConfig(name="support", skills={"billing": 30})],
        [agent("a1", ["support"], {"billing": 40}),
         agent("a2", ["support"], {"billing": 90, "fr": 80})],
    )
    assert rings(arrive(cc, "c1", 10.0, skills=(("billing", 50),))) == [("c1", dev("a2"))]
    assert rings(arrive(cc, "c2", 11.0, language="fr")) == []  # a2 busy, a1 has no French
    assert rings(arrive(cc, "c3", 12.0)) == [("c3", dev("a1"))]  # queue default: billing 30


def test_escalation_widens_requirements_and_the_caller_keeps_its_place():
    queue = QueueConfig(name="support", skills={"en": 70, "billing": 50}, escalation=[
        EscalationStep(after_seconds=30, skills={"billing": 20}),
        EscalationStep(after_seconds=90, any=True),
    ])
    cc = make_center([queue], [agent("a1", ["support"], {"en": 90, "billing": 60}),
                               agent("a2", ["support"], {"billing": 25}),
                               agent("a3", ["support"])])
    cc.pause("a1", "lunch", 0.0)
    cc.pause("a2", "lunch", 0.0)
    assert rings(arrive(cc, "c1", 10.0)) == []  # only a3 is ready, with no skills
    assert rings(arrive(cc, "c2", 20.0)) == []
    assert rings(cc.ready("a2", 25.0)) == []  # billing 25 < 50: not yet
    assert rings(cc.tick(39.0)) == []
    snap = cc.queue_snapshot("support", 39.0)
    assert [(w.call_id, w.step) for w in snap.waiting] == [("c1", 0), ("c2", 0)]
    assert rings(cc.tick(40.0)) == [("c1", dev("a2"))]  # c1 widened at 30 s; c2 not yet
    snap = cc.queue_snapshot("support", 50.0)
    assert [(w.call_id, w.step, w.requirements) for w in snap.waiting] == [
        ("c1", 1, (("billing", 20),)), ("c2", 0, (("billing", 50), ("en", 70)))]
    cc.handle(AgentLegAnswered("c1", dev("a2"), 51.0))
    assert rings(cc.tick(110.0)) == [("c2", dev("a3"))]  # any agent after 90 s


def test_overflow_to_another_queue_at_the_last_step():
    support = QueueConfig(name="support", escalation=[
        EscalationStep(after_seconds=60, overflow="sales")])
    cc = make_center([support, QueueConfig(name="sales")],
                     [agent("a1", ["support"]), agent("s1", ["sales"])])
    cc.pause("a1", "x", 0.0)
    cc.pause("s1", "x", 0.0)
    arrive(cc, "c1", 10.0)
    assert cc.tick(69.0) == [] and cc.calls["c1"].queue == "support"
    cc.tick(70.0)
    assert cc.calls["c1"].queue == "sales" and cc.calls["c1"].enqueued_at == 10.0
    assert rings(cc.ready("s1", 71.0)) == [("c1", dev("s1"))]


def test_agent_serves_its_first_priority_queue_first():
    cc = make_center(
        [QueueConfig(name="support"), QueueConfig(name="sales")],
        [agent("a1", ["support", "sales"], priorities={"sales": 1, "support": 2})],
    )
    cc.pause("a1", "x", 0.0)
    arrive(cc, "old", 10.0, queue="support")
    arrive(cc, "new", 20.0, queue="sales")
    assert rings(cc.ready("a1", 30.0)) == [("new", dev("a1"))]


def test_rona_pauses_only_after_max_misses_in_a_row():
    cc = make_center([QueueConfig(name="support")],
                     [agent("a1", ["support"]), agent("a2", ["support"])], max_misses=2)
    assert rings(arrive(cc, "c1", 10.0)) == [("c1", dev("a1"))]
    out = cc.handle(AgentLegFailed("c1", dev("a1"), "no_answer", 25.0))
    assert cc.agents["a1"].state == "ready" and rings(out) == [("c1", dev("a2"))]
    cc.handle(AgentLegFailed("c1", dev("a2"), "no_answer", 40.0))  # a2: first miss
    assert cc.agents["a1"].state == "offered"  # a1 idle longest: rung again
    cc.handle(AgentLegFailed("c1", dev("a1"), "no_answer", 55.0))
    assert (cc.agents["a1"].state, cc.agents["a1"].reason) == ("paused", "no answer")
    cc.handle(AgentLegAnswered("c1", dev("a2"), 56.0))
    assert cc.agents["a2"].missed_in_row == 0  # an answer resets the count


def test_abandoned_caller_calling_back_within_the_window_resumes_the_old_place():
    cc = make_center([QueueConfig(name="support", resume_window=60)], [agent("a1", ["support"])])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "first", 10.0, caller="+1777")
    arrive(cc, "other", 20.0, caller="+1888")
    cc.handle(CallHungUp("first", "normal_clearing", "caller", 30.0))
    arrive(cc, "again", 50.0, caller="+1777")
    snap = cc.queue_snapshot("support", 60.0)
    assert [(w.call_id, w.enqueued_at) for w in snap.waiting] == [("again", 10.0),
                                                                  ("other", 20.0)]
    cc.handle(CallHungUp("again", "normal_clearing", "caller", 61.0))
    cc.tick(200.0)  # the window is over
    arrive(cc, "late", 201.0, caller="+1777")
    assert cc.calls["late"].enqueued_at == 201.0


def test_positions_and_expected_wait():
    cc = make_center([QueueConfig(name="support", default_handle_seconds=120)],
                     [agent("a1", ["support"]), agent("a2", ["support"])])
    cc.pause("a2", "x", 0.0)
    arrive(cc, "c1", 10.0)  # rung to a1
    arrive(cc, "c2", 11.0)
    arrive(cc, "c3", 12.0)
    snap = cc.queue_snapshot("support", 20.0)
    # a1 is the only agent serving (a2 is paused): one handle time per caller ahead
    assert [(w.call_id, w.position, w.expected_wait) for w in snap.waiting] == [
        ("c1", 1, 0.0), ("c2", 2, 240.0), ("c3", 3, 360.0)]
    assert cc.queue_snapshots(20.0) == {"support": snap}  # all queues in one pass: the same
    assert rings(cc.handle(CallHungUp("c1", "normal_clearing", "caller", 22.0))) == [
        ("c2", dev("a1"))]
    assert [(w.call_id, w.expected_wait) for w in cc.queue_snapshot("support", 23.0).waiting] == [
        ("c2", 0.0), ("c3", 240.0)]
    cc.handle(AgentLegFailed("c2", dev("a1"), "busy", 24.0))  # a1 paused: nobody serves
    assert [w.expected_wait for w in cc.queue_snapshot("support", 25.0).waiting] == [None, None]


def test_unknown_skill_from_the_ivr_is_reported_and_the_caller_still_routed(caplog):
    cc = make_center([QueueConfig(name="support")], [agent("a1", ["support"], {"en": 50})])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "c1", 10.0, skills=(("klingon", 50), ("en", 150)), language="xx")
    (entry,) = cc.queue_snapshot("support", 11.0).waiting
    assert entry.routing_note == ("unknown skill 'klingon' ignored; level 150 of 'en' out of "
                                  "0-100, clamped; unknown language 'xx' ignored; no agent of "
                                  "queue 'support' has en >= 100; no escalation step left")
    assert entry.requirements == (("en", 100),)
    assert "unknown skill 'klingon'" in caplog.text


def test_least_occupied_strategy_uses_the_last_hour_of_talk():
    cc = make_center([QueueConfig(name="support", strategy="least_occupied", wrapup_seconds=0)],
                     [agent("a1", ["support"]), agent("a2", ["support"])])
    arrive(cc, "c1", 10.0)  # a1 (tie -> index)
    cc.handle(AgentLegAnswered("c1", dev("a1"), 11.0))
    cc.handle(CallHungUp("c1", "normal_clearing", "caller", 611.0))  # a1 talked 600 s
    assert cc.agents["a1"].occupancy(611.0) == pytest.approx(600 / 3600)
    cc.pause("a2", "x", 612.0)
    cc.ready("a2", 613.0)  # a2 idle since later: longest idle would pick a1
    assert rings(arrive(cc, "c2", 620.0)) == [("c2", dev("a2"))]
    assert cc.agents["a1"].occupancy(11.0 + 3600 + 600) == 0.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(core_tests.step, max_size=60))
def test_random_sequences_with_the_skills_router_keep_the_invariants(steps):
    """The core's random event sequences, routed by the tracking skills router."""
    logging.disable(logging.CRITICAL)
    try:
        config = core_tests.make_config()
        cc = ContactCenter(config, now=0.0, router=SkillsRouter.from_config(config))
        cc.tick(0.0)
        now = 0.0
        for kind, cid, ai, k, dt in steps:
            now += dt
            core_tests._event(cc, kind, cid, ai, k, now)
            core_tests._check_invariants(cc)
            # no ready agent is left with a routable caller it could take; once told of the
            # pending changes, the router's copy agrees with the core
            cc._sync_router(cc._router, now)
            routable = {c.call_id for c in cc.calls.values()
                        if c.state is CallState.QUEUED and cc.nodes.get(c.node, True)}
            assert set(cc._router.state.call_ids) == routable
            ready = {a for a, ag in cc.agents.items() if ag.state == "ready"}
            assert {a for a, i in cc._router.state.agent_ids.items()
                    if cc._router.state.ready[i]} == ready
            for cid2 in routable:
                call = cc.calls[cid2]
                assert not any(call.queue in cc.agents[a].queues
                               and call.node in cc.agents[a].nodes for a in ready)
    finally:
        logging.disable(logging.NOTSET)


def test_a_caller_no_member_could_ever_take_is_noted_and_shows_no_wait():
    cc = make_center([QueueConfig(name="support")], [agent("a1", ["support"], {"billing": 60})])
    assert rings(arrive(cc, "c1", 10.0, skills=(("billing", 95),))) == []
    cc.tick(5000.0)
    (entry,) = cc.queue_snapshot("support", 5000.0).waiting
    assert cc.calls["c1"].state is CallState.QUEUED
    assert entry.routing_note == ("no agent of queue 'support' has billing >= 95; no escalation "
                                  "step left")
    # a1 is ready but cannot take the caller: no estimate, not "at once"
    assert cc.agents["a1"].state == "ready" and entry.expected_wait is None
    # nobody speaks French either: the language alone is enough
    arrive(cc, "c2", 20.0, language="fr")
    assert "no agent of queue 'support' has fr >= 1" in cc.calls["c2"].routing_note


def test_unservable_requirements_apply_the_next_escalation_steps_at_once():
    queue = QueueConfig(name="support", escalation=[
        EscalationStep(after_seconds=30, skills={"billing": 50}),
        EscalationStep(after_seconds=90, any=True),
    ])
    cc = make_center([queue], [agent("a1", ["support"], {"billing": 60})])
    assert rings(arrive(cc, "c1", 10.0, skills=(("billing", 95),))) == [("c1", dev("a1"))]
    assert cc.calls["c1"].step == 1  # billing 50: a1 can, without waiting 30 s
    assert cc.calls["c1"].routing_note == ("no agent of queue 'support' has billing >= 95; "
                                           "escalation step 1 applied at once")
    # a skill only a member on another node has: that member can never be rung for this call
    far = AgentConfig(id="b1", name="b1", node="n2", device="PJSIP/b1", queues=["support"],
                      skills={"fr": 90, "billing": 80})
    cc = make_center([queue], [agent("a1", ["support"], {"billing": 40}), far])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "c2", 10.0, language="fr")
    assert cc.calls["c2"].step == 2  # any agent: a1, once ready
    assert cc.calls["c2"].routing_note == (
        "no agent of queue 'support' with fr >= 1 can be rung from node 'n1'; escalation step 1 "
        "applied at once; no agent of queue 'support' with billing >= 50 can be rung from node "
        "'n1'; escalation step 2 applied at once")
    assert rings(cc.ready("a1", 11.0)) == [("c2", dev("a1"))]


def test_a_step_reached_in_time_that_nobody_meets_moves_on_at_once():
    queue = QueueConfig(name="support", escalation=[
        EscalationStep(after_seconds=30, skills={"billing": 50}),
        EscalationStep(after_seconds=90, any=True),
    ])
    # only b1 has billing 50, and b1 cannot be rung from n1: step 1 is no use to c1
    far = AgentConfig(id="b1", name="b1", node="n2", device="PJSIP/b1", queues=["support"],
                      skills={"billing": 80})
    cc = make_center([queue], [agent("a1", ["support"], {"en": 90}), far])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "c1", 10.0, language="en")
    assert cc.calls["c1"].step == 0 and cc.calls["c1"].routing_note is None
    cc.tick(40.0)
    assert cc.calls["c1"].step == 2
    assert cc.calls["c1"].routing_note == ("no agent of queue 'support' with billing >= 50 can "
                                           "be rung from node 'n1'; escalation step 2 applied "
                                           "at once")
    assert rings(cc.ready("a1", 41.0)) == [("c1", dev("a1"))]


def test_an_unservable_caller_overflows_at_once_and_overflow_loops_end():
    support = QueueConfig(name="support", escalation=[
        EscalationStep(after_seconds=60, overflow="sales")])
    sales = QueueConfig(name="sales", escalation=[EscalationStep(after_seconds=60,
                                                                 overflow="support")])
    cc = make_center([support, sales], [agent("a1", ["support"], {"en": 90}),
                                        agent("s1", ["sales"], {"fr": 90})])
    assert rings(arrive(cc, "c1", 10.0, language="fr")) == [("c1", dev("s1"))]
    assert cc.calls["c1"].queue == "sales"
    # nobody in either queue has billing: support -> sales -> support, then it stops
    arrive(cc, "c2", 20.0, skills=(("billing", 10),))
    assert cc.calls["c2"].queue == "support" and cc.calls["c2"].state is CallState.QUEUED
    assert cc.calls["c2"].routing_note.endswith(
        "no agent of queue 'support' has billing >= 10; the overflows lead back to this queue")


def test_wait_estimates_count_only_agents_who_meet_the_requirements():
    cc = make_center([QueueConfig(name="support", default_handle_seconds=100)],
                     [agent("a1", ["support"], {"billing": 90}), agent("a2", ["support"])])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "c1", 10.0, skills=(("billing", 50),))
    # a2 is ready but has no billing; a1 (who has) is paused: nobody serves c1 now
    (entry,) = cc.queue_snapshot("support", 11.0).waiting
    assert entry.expected_wait is None and entry.routing_note is None
    assert cc.estimate_wait("support", 0, (("billing", 50),), 11.0) == (2, None)
    assert rings(cc.ready("a1", 12.0)) == [("c1", dev("a1"))]
    cc.handle(AgentLegAnswered("c1", dev("a1"), 13.0))
    arrive(cc, "c2", 14.0, skills=(("billing", 50),))
    (entry,) = cc.queue_snapshot("support", 15.0).waiting
    assert entry.expected_wait == 100.0  # one round of a1


def test_an_ivr_priority_of_0_is_kept_below_a_higher_queue_default():
    cc = make_center([QueueConfig(name="support", priority=5)], [agent("a1", ["support"])])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "chosen", 10.0, priority=0)
    cc.handle(CallStarted("default", "n1", "PJSIP/trunk-d", "+1666", "5000", 11.0))
    cc.handle(IvrFinished("default", "n1", "PJSIP/trunk-d", "+1666", "5000", "support", (),
                          at=11.0))
    assert (cc.calls["chosen"].priority, cc.calls["default"].priority) == (0, 5)
    assert rings(cc.ready("a1", 12.0)) == [("default", dev("a1"))]
    # the announcement of a flow that chose no priority counts the queue's default
    assert cc.estimate_wait("support", None, (), 13.0)[0] == 1
    assert cc.estimate_wait("support", 0, (), 13.0)[0] == 2


@pytest.mark.parametrize("caller", ["anonymous", "", "Withheld", "unknown"])
def test_withheld_callers_never_resume_each_others_place(caller):
    cc = make_center([QueueConfig(name="support", resume_window=600)], [agent("a1", ["support"])])
    cc.pause("a1", "x", 0.0)
    arrive(cc, "first", 10.0, caller=caller)
    cc.handle(CallHungUp("first", "normal_clearing", "caller", 30.0))
    arrive(cc, "someone_else", 50.0, caller=caller)
    assert cc.calls["someone_else"].enqueued_at == 50.0


def test_best_skill_with_no_requirements_goes_to_the_longest_idle_agent():
    cc = make_center([QueueConfig(name="support", strategy="best_skill")],
                     [agent("a1", ["support"]), agent("a2", ["support"])])
    cc.pause("a1", "x", 1.0)
    cc.ready("a1", 2.0)  # a2 has been idle since 0
    assert rings(arrive(cc, "c1", 10.0)) == [("c1", dev("a2"))]
    assert rings(arrive(cc, "c2", 11.0)) == [("c2", dev("a1"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(core_tests.step, max_size=60))
def test_ticks_visit_every_due_wrap_up_and_escalation_step(steps):
    """Ticks look only at what falls due (a heap by time); random sequences check that nothing
    due is ever missed: no agent past its wrap-up, no waiting caller behind on its steps."""
    logging.disable(logging.CRITICAL)
    try:
        base = core_tests.make_config()
        config = Config(agents=base.agents, queues=[
            base.queues[0].model_copy(update={"voicemail_box": "1234", "escalation": [
                EscalationStep(after_seconds=4, any=True),
                EscalationStep(after_seconds=9, overflow="sales")]}),
            base.queues[1].model_copy(update={"voicemail_box": "1234", "escalation": [
                EscalationStep(after_seconds=6, overflow=["voicemail", "callback"][len(steps) % 2])]}),
        ])
        cc = ContactCenter(config, now=0.0, router=SkillsRouter.from_config(config))
        now = 0.0
        for kind, cid, ai, k, dt in steps:
            now += dt
            core_tests._event(cc, kind, cid, ai, k, now)
            core_tests._check_invariants(cc)
            if kind != "tick":
                continue
            for a in cc.agents.values():
                assert not (a.state == "wrap_up" and a.wrapup_until <= now), a
            for call in cc.calls.values():
                queue = config.queue(call.queue or "")
                if call.state is CallState.QUEUED and queue is not None:
                    due = sum(call.queue_entered_at + s.after_seconds <= now for s in queue.escalation)
                    assert due <= call.step, call
    finally:
        logging.disable(logging.NOTSET)
