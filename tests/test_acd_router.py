"""The longest-idle router."""

from ccserver.acd.router import AgentView, LongestIdleRouter, Router, WaitingCall, can_ring


def agent(agent_id, idle_since, state="ready", node="n1", queues=("support",)):
    return AgentView(agent_id, frozenset({node}), frozenset(queues), state, idle_since)


def call(call_id, enqueued_at, priority=0, queue="support", node="n1"):
    return WaitingCall(call_id, queue, node, priority, enqueued_at)


router = LongestIdleRouter()


def test_is_a_router():
    r: Router = LongestIdleRouter()  # the type checker verifies the structural match
    assert r.assign([], [], 0.0) == []


def test_pick_agent_longest_idle():
    agents = [agent("a1", 30.0), agent("a2", 10.0), agent("a3", 20.0)]
    assert router.pick_agent(call("c1", 0.0), agents, 100.0) == "a2"


def test_pick_agent_ties_by_id():
    agents = [agent("b", 10.0), agent("a", 10.0), agent("c", 10.0)]
    assert router.pick_agent(call("c1", 0.0), agents, 100.0) == "a"


def test_pick_agent_filters_state_queue_and_node():
    agents = [
        agent("paused", 1.0, state="paused"),
        agent("other_q", 2.0, queues=("sales",)),
        agent("other_node", 3.0, node="n2"),
        agent("ok", 50.0),
    ]
    assert router.pick_agent(call("c1", 0.0), agents, 100.0) == "ok"
    assert router.pick_agent(call("c1", 0.0), agents[:3], 100.0) is None


def test_can_ring_is_the_same_node_rule():
    assert can_ring(agent("a", 0.0), call("c", 0.0))
    assert not can_ring(agent("a", 0.0, node="n2"), call("c", 0.0))


def test_pick_call_priority_then_time_then_id():
    waiting = [call("c3", 5.0), call("c2", 9.0, priority=1), call("c1", 9.0, priority=1)]
    assert router.pick_call(agent("a", 0.0), waiting, 100.0) == "c1"
    assert router.pick_call(agent("a", 0.0), waiting[:1], 100.0) == "c3"
    assert router.pick_call(agent("a", 0.0, queues=("sales",)), waiting, 100.0) is None


def test_assign_full_pass():
    waiting = [call("late", 20.0), call("vip", 30.0, priority=5), call("early", 10.0)]
    agents = [agent("a1", 3.0), agent("a2", 1.0), agent("busy", None, state="on_call")]
    assert router.assign(waiting, agents, 100.0) == [("vip", "a2"), ("early", "a1")]


def test_assign_skips_calls_nobody_can_take():
    waiting = [call("sales1", 1.0, queue="sales"), call("sup1", 2.0)]
    agents = [agent("a1", 0.0)]
    assert router.assign(waiting, agents, 100.0) == [("sup1", "a1")]
    assert router.assign([], agents, 100.0) == []
    assert router.assign(waiting, [], 100.0) == []
