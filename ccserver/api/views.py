"""What a user may see of the live state, and its API shape (agents, queues, calls, KPIs)."""

from __future__ import annotations

from ccserver.api.models import AgentOut, CallOut, DeviceOut, KpisOut, QueueOut, WaitingOut
from ccserver.api.store import User
from ccserver.config import Config
from ccserver.core.agent import Agent
from ccserver.core.call import Call
from ccserver.core.center import ContactCenter, QueueSnapshot
from ccserver.stats.live import KpiWindow


class Scope:
    """The agents and queues ``user`` may see and act on (admin: all).

    A supervisor's are their teams' agents and queues, and nothing more: an agent of the team
    who also serves another team's queue does not open that queue (its waiting callers) to
    them; a call of that queue is theirs once it is offered or connected to one of their agents.
    Recordings (:mod:`ccserver.api.recordings`) apply the same rule to finished calls.
    """

    def __init__(self, user: User, config: Config, center: ContactCenter | None) -> None:
        self.user = user
        agents = center.agents if center else {}
        if user.role == "admin":
            self.agents = frozenset(agents)
            self.queues = frozenset(q.name for q in config.queues)
        elif user.role == "supervisor":
            self.agents = frozenset(a for a in user.team_agents if a in agents)
            self.queues = frozenset(user.team_queues)
        else:
            own = agents.get(user.agent_id or "")
            self.agents = frozenset({own.agent_id}) if own else frozenset()
            self.queues = own.queues if own else frozenset()

    def sees_call(self, call: Call) -> bool:
        """A call in one of the queues, or rung or connected to one of the agents (an agent:
        only the latter, their own); an admin every call, also one adopted at a resync whose
        queue and agent are not known."""
        if self.user.role == "admin":
            return True
        if self.user.role == "agent":
            return call.agent_id is not None and call.agent_id in self.agents
        return (call.queue in self.queues) or (call.agent_id in self.agents)


def agent_out(agent: Agent, config: Config, since: float | None, center: ContactCenter) -> AgentOut:
    """An agent's API shape; ``center`` tells which of its phones the live call uses."""
    ac = next((a for a in config.agents if a.id == agent.agent_id), None)
    in_use = center.device_in_use(agent.agent_id)
    return AgentOut(
        id=agent.agent_id, name=ac.name if ac else agent.agent_id, node=agent.node, device=agent.device,
        devices=[DeviceOut(node=n, device=d) for n, d in agent.devices.items()],
        device_in_use=DeviceOut(node=in_use[0], device=in_use[1]) if in_use else None,
        queues=sorted(agent.queues), skills=dict(ac.skills) if ac else {}, state=agent.state,
        reason=agent.reason, call_id=agent.call_id,
        since=since, calls_handled=agent.calls_handled,
    )


def call_out(call: Call) -> CallOut:
    return CallOut(
        call_id=call.call_id, node=call.node, caller=call.caller, did=call.did, state=call.state.value,
        queue=call.queue, agent_id=call.agent_id, arrived_at=call.arrived_at, enqueued_at=call.enqueued_at,
        answered_at=call.answered_at, ivr_path=list(call.ivr_path), variables=dict(call.variables),
    )


def queue_out(snap: QueueSnapshot, config: Config, kpis: KpiWindow, now: float) -> QueueOut:
    """A queue's API shape: its snapshot (``ContactCenter.queue_snapshot(s)``) and KPIs."""
    qc = config.queue(snap.name)
    assert qc is not None, snap.name
    k = kpis.kpis(snap, qc, now)
    return QueueOut(
        name=snap.name, wrapup_seconds=qc.wrapup_seconds, record=qc.record,
        service_level_seconds=qc.service_level_seconds,
        waiting=[WaitingOut(call_id=w.call_id, caller=w.caller, priority=w.priority,
                            wait_seconds=round(w.wait_seconds, 1), ringing_agent=w.ringing_agent,
                            position=w.position, step=w.step,
                            expected_wait_seconds=None if w.expected_wait is None
                            else round(w.expected_wait, 1),
                            requirements=dict(w.requirements), routing_note=w.routing_note)
                 for w in snap.waiting],
        kpis=KpisOut(
            service_level_seconds=k.service_level_seconds, service_level=k.service_level,
            asa_seconds=k.asa_seconds, abandon_rate=k.abandon_rate, aht_seconds=k.aht_seconds,
            answered=k.answered, abandoned=k.abandoned, short_abandoned=k.short_abandoned,
            waiting=k.waiting, longest_wait_seconds=round(k.longest_wait_seconds, 1),
            agents_ready=k.agents_ready, agents_on_call=k.agents_on_call, agents_paused=k.agents_paused,
            agents_wrap_up=k.agents_wrap_up, agents_offered=k.agents_offered, breached=k.breached,
        ),
    )
