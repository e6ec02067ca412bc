"""The Numba kernel and its pure-Python twin pick exactly the same assignments."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccserver.acd import twin
from ccserver.acd.kernel import STRATEGIES
from ccserver.acd.router import AgentView, WaitingCall
from ccserver.acd.skills import SkillsRouter
from ccserver.acd.state import AcdState, AgentSpec, warm

SKILLS = ["en", "fr", "billing", "tech"]
NODES = ["n1", "n2"]


@st.composite
def populations(draw):
    n_queues = draw(st.integers(1, 3))
    queues = {f"q{i}": draw(st.sampled_from(STRATEGIES)) for i in range(n_queues)}
    agents = []
    for i in range(draw(st.integers(0, 12))):
        skills = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 100), max_size=4))
        member = draw(st.lists(st.sampled_from(list(queues)), min_size=1, unique=True))
        levels = {q: draw(st.integers(1, 3)) for q in member}
        nodes = frozenset(draw(st.lists(st.sampled_from(NODES), min_size=1, unique=True)))
        agents.append(AgentSpec(f"a{i}", skills, levels, nodes))
    state = AcdState(SKILLS, queues, agents, call_capacity=2)  # small: exercises growth
    # coarse times and levels so that ties (broken by index / sequence) happen often
    for i in range(len(agents)):
        state.set_agent(i, draw(st.booleans()), float(draw(st.integers(0, 5))),
                        draw(st.sampled_from([0.0, 0.25, 0.5])), draw(st.integers(0, 3)))
    for q in range(n_queues):
        state.rr[q] = draw(st.integers(-1, max(-1, len(agents) - 1)))
    ids = draw(st.lists(st.integers(0, 30), max_size=15, unique=True))
    for cid in ids:
        reqs = draw(st.lists(st.tuples(st.integers(0, len(SKILLS) - 1), st.integers(0, 100)),
                             max_size=3, unique_by=lambda r: r[0]))
        state.put_call(f"c{cid}", draw(st.sampled_from([*queues, "nope"])),
                       draw(st.sampled_from([*NODES, "elsewhere"])), draw(st.integers(0, 2)),
                       float(draw(st.integers(0, 5))), reqs)
    # some leave again, so slots are reused out of order
    for cid in draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []:
        state.remove_call(f"c{cid}")
    return state


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations())
def test_kernel_and_twin_pick_the_same(state):
    for c in range(len(state.c_active)):
        if state.c_active[c]:
            assert state.pick_agent(c) == twin.pick_agent(state, c)
    for a in range(len(state.ready)):
        assert state.pick_call(a) == twin.pick_call(state, a)
    assert state.full_pass() == twin.full_pass(state)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations())
def test_full_pass_pairs_are_valid_and_maximal_per_caller(state):
    pairs = state.full_pass()
    calls = [c for c, _ in pairs]
    agents = [a for _, a in pairs]
    assert len(set(calls)) == len(calls) and len(set(agents)) == len(agents)
    for c, a in pairs:
        assert state.ready[a] and state.c_active[c]
        q = state.c_queue[c]
        assert state.level[q, a] > 0 and state.agent_node[state.c_node[c], a]
        for s, m in zip(state.c_req_skill[c], state.c_req_min[c]):
            assert s < 0 or state.prof[s, a] >= m
    # a caller left unassigned had no eligible agent among those still free
    free = state.ready.copy()
    free[agents] = False
    saved = state.ready.copy()
    state.ready[:] = free
    try:
        for c in range(len(state.c_active)):
            if state.c_active[c] and c not in calls:
                assert state.pick_agent(c) == -1
    finally:
        state.ready[:] = saved


def make_state(strategy: str) -> AcdState:
    agents = [
        AgentSpec("a0", {"en": 90, "billing": 40}, {"q": 1}, frozenset({"n"})),
        AgentSpec("a1", {"en": 70, "billing": 80}, {"q": 1}, frozenset({"n"})),
        AgentSpec("a2", {"en": 100, "billing": 100}, {"q": 2}, frozenset({"n"})),
    ]
    state = AcdState(["en", "billing"], {"q": strategy}, agents)
    state.set_agent(0, True, 10.0, 0.5, 7)
    state.set_agent(1, True, 20.0, 0.1, 3)
    state.set_agent(2, True, 0.0, 0.0, 0)
    return state


@pytest.mark.parametrize("strategy, expected", [
    ("longest_idle", 0), ("best_skill", 1), ("least_occupied", 1), ("fewest_calls", 1),
    ("round_robin", 0),
])
def test_strategies_within_the_agents_first_level(strategy, expected):
    state = make_state(strategy)
    slot = state.put_call("c", "q", "n", 0, 0.0, [(0, 50), (1, 30)])
    # a2 is the best at everything but serves q at level 2: only when level 1 is busy
    assert state.pick_agent(slot) == expected
    state.ready[[0, 1]] = False
    assert state.pick_agent(slot) == 2


def test_requirements_filter_and_round_robin_advances():
    state = make_state("round_robin")
    state.level[0, 2] = 1
    c1 = state.put_call("c1", "q", "n", 0, 1.0, [])
    assert state.pick_agent(c1) == 0
    state.commit(c1, 0)
    state.ready[0] = True
    c2 = state.put_call("c2", "q", "n", 0, 2.0, [])
    assert state.pick_agent(c2) == 1
    c3 = state.put_call("c3", "q", "n", 0, 3.0, [(1, 90)])  # only a2 has billing >= 90
    assert state.full_pass() == [(c2, 1), (c3, 2)]


def test_pick_call_prefers_the_agents_first_queue_then_priority_then_time():
    agents = [AgentSpec("a", {}, {"sales": 1, "support": 2}, frozenset({"n"}))]
    state = AcdState([], {"support": "longest_idle", "sales": "longest_idle"}, agents)
    state.set_agent(0, True, 0.0, 0.0, 0)
    old = state.put_call("old", "support", "n", 5, 1.0, [])
    assert state.pick_call(0) == old
    late = state.put_call("late", "sales", "n", 0, 9.0, [])
    early = state.put_call("early", "sales", "n", 0, 3.0, [])
    assert state.pick_call(0) == early
    state.remove_call("early")
    assert state.pick_call(0) == late
    vip = state.put_call("vip", "sales", "n", 1, 9.5, [])
    assert state.pick_call(0) == vip


def test_too_many_requirements_are_refused():
    state = make_state("longest_idle")
    with pytest.raises(ValueError, match="requirements: at most 8"):
        state.put_call("c", "q", "n", 0, 0.0, [(0, 1)] * 9)
    assert "c" not in state.call_ids


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations(), st.data())
def test_one_change_decided_alone_is_what_a_full_pass_decides(state, data):
    router = SkillsRouter(state)
    router.route(0.0)  # a full pass: after it no ready agent can take a waiting call
    if state.agent_ids and data.draw(st.booleans()):
        agent_id = data.draw(st.sampled_from(list(state.agent_ids)))
        router.agent_update(AgentView(agent_id, frozenset(), frozenset(), "ready",
                                      float(data.draw(st.integers(0, 5)))))
    else:
        reqs = data.draw(st.lists(st.tuples(st.sampled_from(SKILLS), st.integers(0, 100)),
                                  max_size=2, unique_by=lambda r: r[0]))
        router.call_update(WaitingCall("new", data.draw(st.sampled_from(list(state.queue_ids))),
                                       data.draw(st.sampled_from(NODES)),
                                       data.draw(st.integers(0, 2)),
                                       float(data.draw(st.integers(0, 5))), tuple(reqs)))
    expected = [(state.slot_call[c], list(state.agent_ids)[a])
                for c, a in copy.deepcopy(state).full_pass()]
    assert router.route(0.0) == expected


def test_best_skill_breaks_equal_scores_by_longest_idle():
    state = make_state("best_skill")
    state.set_agent(0, True, 30.0, 0.5, 7)  # a0 became ready after a1 (idle since 20)
    slot = state.put_call("c", "q", "n", 0, 0.0, [])
    # no requirements: every agent scores 0; the first agent no longer always wins
    assert state.pick_agent(slot) == 1 == twin.pick_agent(state, slot)
    state.set_agent(0, True, 5.0, 0.5, 7)
    assert state.pick_agent(slot) == 0 == twin.pick_agent(state, slot)
