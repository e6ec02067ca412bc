"""Who sees which live call: a supervisor's teams' queues, and calls rung or connected to
their teams' agents; never another team's waiting callers through an agent both teams share."""

from __future__ import annotations

from ccserver.api.store import User
from ccserver.api.views import Scope
from ccserver.config import AgentConfig, Config, QueueConfig
from ccserver.core.center import ContactCenter
from ccserver.core.events import CallAnswered, CallStarted, IvrFinished, LiveCall, NodeResynced


def test_a_shared_agent_opens_only_the_calls_it_is_rung_for():
    config = Config(queues=[QueueConfig(name="support"), QueueConfig(name="sales")], agents=[
        AgentConfig(id="1001", name="A", node="n1", device="PJSIP/1001", queues=["support", "sales"],
                    auto_login=False),
        AgentConfig(id="1002", name="B", node="n1", device="PJSIP/1002", queues=["sales"],
                    auto_login=False),
    ])
    cc = ContactCenter(config, now=0.0)
    for cid in ("c1", "c2"):
        cc.handle(CallStarted(cid, "n1", f"PJSIP/t-{cid}", "+1555", "5000", 1.0))
        cc.handle(CallAnswered(cid, 1.0))
        cc.handle(IvrFinished(cid, "n1", f"PJSIP/t-{cid}", "+1555", "5000", "sales", (), at=1.0))
    sup_a = Scope(User(1, "sup_a", "", "supervisor", None, False, frozenset({"1001"}),
                       frozenset({"support"})), config, cc)
    assert sup_a.queues == {"support"} and sup_a.agents == {"1001"}
    assert not sup_a.sees_call(cc.calls["c1"]) and not sup_a.sees_call(cc.calls["c2"])
    cc.login("1001", 2.0)  # the longest waiting sales caller is rung on 1001
    assert cc.calls["c1"].agent_id == "1001"
    assert Scope(sup_a.user, config, cc).sees_call(cc.calls["c1"])
    assert not Scope(sup_a.user, config, cc).sees_call(cc.calls["c2"])
    sup_b = Scope(User(2, "sup_b", "", "supervisor", None, False, frozenset({"1002"}),
                       frozenset({"sales"})), config, cc)
    assert sup_b.sees_call(cc.calls["c1"]) and sup_b.sees_call(cc.calls["c2"])


def test_an_admin_sees_a_call_adopted_at_a_resync_with_no_queue_or_agent():
    from ccserver.core.events import LiveCall, NodeResynced

    config = Config(queues=[QueueConfig(name="support")])
    cc = ContactCenter(config, now=0.0)
    cc.handle(NodeResynced("fs1", (LiveCall("fs1:u1", "u1", "+1555", "5000", None, 3.0),), 10.0))
    admin = Scope(User(1, "root", "", "admin", None, False), config, cc)
    assert admin.sees_call(cc.calls["fs1:u1"])
