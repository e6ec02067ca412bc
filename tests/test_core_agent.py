"""The agent state machine on its own."""

import itertools
import logging

from ccserver.core.agent import Agent


def new_agent() -> Agent:
    counter = itertools.count(1)
    return Agent("a1", "n1", "PJSIP/1001", frozenset({"support"}), lambda: f"id-{next(counter)}")


def test_full_cycle_rows():
    agent = new_agent()
    rows = [
        agent.login(0.0),
        agent.offer("c1", 10.0),
        agent.answer("c1", 12.0),
        agent.end_call("c1", 5.0, 60.0),
        agent.tick(64.0),  # not yet
        agent.tick(70.0),
    ]
    assert rows[4] is None
    got = [(r.change_id, r.previous, r.state, r.at, r.call_id) for r in rows if r]
    assert got == [
        ("id-1", "logged_out", "ready", 0.0, None),
        ("id-2", "ready", "offered", 10.0, "c1"),
        ("id-3", "offered", "on_call", 12.0, "c1"),
        ("id-4", "on_call", "wrap_up", 60.0, "c1"),
        ("id-5", "wrap_up", "ready", 65.0, None),  # at the due time, not the tick time
    ]
    assert agent.calls_handled == 1
    assert agent.idle_since == 65.0 and agent.call_id is None


def test_idle_since_only_while_ready():
    agent = new_agent()
    agent.login(5.0)
    assert agent.idle_since == 5.0
    agent.pause("lunch", 6.0)
    assert agent.idle_since is None and agent.reason == "lunch"
    agent.ready(9.0)
    assert agent.idle_since == 9.0 and agent.reason is None


def test_login_paused_and_reason_changes():
    agent = new_agent()
    row = agent.login(0.0, paused_reason="training")
    assert (row.state, row.reason) == ("paused", "training")
    assert agent.pause("training", 1.0) is None  # same reason: no row
    assert agent.pause("lunch", 2.0).reason == "lunch"


def test_missed_call_paused_or_ready():
    agent = new_agent()
    agent.login(0.0)
    agent.offer("c1", 1.0)
    row = agent.miss("c1", "no answer", 16.0)
    assert (row.state, row.reason, agent.state) == ("paused", "no answer", "paused")
    agent.ready(20.0)
    agent.offer("c2", 21.0)
    assert agent.miss("c2", None, 22.0).state == "ready"


def test_wrap_up_ends_early_by_ready_or_pause():
    agent = new_agent()
    agent.login(0.0)
    agent.offer("c1", 1.0)
    agent.answer("c1", 2.0)
    agent.end_call("c1", 30.0, 10.0)
    assert agent.pause("break", 12.0).previous == "wrap_up"
    assert agent.tick(100.0) is None


def test_adopt_from_any_free_state():
    agent = new_agent()
    row = agent.adopt("c9", 5.0)
    assert (row.previous, row.state, row.call_id) == ("logged_out", "on_call", "c9")
    assert agent.adopt("c9", 6.0) is None  # already on it


def test_illegal_transitions_logged_and_ignored(caplog):
    agent = new_agent()
    with caplog.at_level(logging.WARNING, logger="ccserver.core.agent"):
        assert agent.offer("c1", 0.0) is None  # logged out
        assert agent.ready(0.0) is None
        assert agent.logout(0.0) is None
        agent.login(1.0)
        assert agent.login(2.0) is None
        assert agent.answer("c1", 2.0) is None  # not offered
        agent.offer("c1", 3.0)
        assert agent.answer("other", 4.0) is None  # wrong call
        assert agent.pause("x", 4.0) is None
        assert agent.logout(4.0) is None
        assert agent.adopt("c2", 4.0) is None  # busy with c1
        assert agent.end_call("c1", 5.0, 4.0) is None  # not on call yet
    assert agent.state == "offered" and agent.call_id == "c1"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 10
    assert all(m.startswith("agent a1:") for m in messages)
    assert "answer of other ignored in state offered" in messages[5]
