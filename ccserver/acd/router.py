"""The ACD router interface and the simple longest-idle router.

The core hands a router plain, immutable views (:class:`WaitingCall`, :class:`AgentView`) and
gets back ids; the skill-based ACD (:mod:`ccserver.acd.skills`) implements the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from ccserver.cdr.record import AgentState


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A queued caller as the router sees it."""

    call_id: str
    queue: str
    node: str
    priority: int
    enqueued_at: float
    #: the current requirements: (skill name, minimum level 0-100); empty = any agent
    requirements: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as the router sees it. ``idle_since`` is set only when ``state == "ready"``."""

    agent_id: str
    #: the nodes whose calls can ring this agent's phone
    nodes: frozenset[str]
    queues: frozenset[str]
    state: AgentState
    idle_since: float | None
    #: talk-time share over the last hour (0-1), for the least-occupied strategy
    occupancy: float = 0.0
    #: calls answered since start, for the fewest-calls strategy
    calls_handled: int = 0


def can_ring(agent: AgentView, call: WaitingCall) -> bool:
    """Whether ``agent`` may be offered ``call`` at all: ready, serving its queue, reachable.

    The one place of the reachability rule: a device is dialled by the PBX that holds the call,
    so the agent must have a dial string on the call's node (its home node, or another node
    through ``devices`` in the configuration).
    """
    return agent.state == "ready" and call.queue in agent.queues and call.node in agent.nodes


def service_order(call: WaitingCall) -> tuple[int, float, str]:
    """Sort key of callers: priority first (higher first), then who came first, then id."""
    return (-call.priority, call.enqueued_at, call.call_id)


class Router(Protocol):
    """What the core needs from an ACD."""

    def pick_agent(
        self, call: WaitingCall, agents: Sequence[AgentView], now: float
    ) -> str | None:
        """The agent id to offer ``call`` to, or None."""
        ...

    def pick_call(
        self, agent: AgentView, waiting: Sequence[WaitingCall], now: float
    ) -> str | None:
        """The call id to offer ``agent``, or None."""
        ...

    def assign(
        self, waiting: Sequence[WaitingCall], agents: Sequence[AgentView], now: float
    ) -> list[tuple[str, str]]:
        """A full pass: ``(call_id, agent_id)`` pairs, each call and agent at most once."""
        ...


@runtime_checkable
class TrackingRouter(Router, Protocol):
    """A router that keeps its own copy of agents and waiting calls, told of each change.

    The core then tells it only what changed (O(1) each) instead of building views of every
    ready agent and waiting caller for each routing pass.
    """

    def agent_update(self, agent: AgentView) -> None:
        """An agent changed (any state; only ``ready`` ones are routed to)."""
        ...

    def call_update(self, call: WaitingCall) -> None:
        """A call waits (new, back from a failed offer, or with new requirements)."""
        ...

    def call_remove(self, call_id: str) -> None:
        """A call no longer waits (offered, ended, its node is down); unknown ids are ignored."""
        ...

    def route(self, now: float) -> list[tuple[str, str]]:
        """A full pass on the tracked state; the pairs are taken as offered."""
        ...


class LongestIdleRouter:
    """Callers in :func:`service_order`; each goes to the eligible agent idle longest (ties: id)."""

    def pick_agent(
        self, call: WaitingCall, agents: Sequence[AgentView], now: float
    ) -> str | None:
        """The eligible agent with the oldest ``idle_since`` (ties: smallest agent id)."""
        best = min(
            (a for a in agents if can_ring(a, call)),
            key=lambda a: (a.idle_since if a.idle_since is not None else now, a.agent_id),
            default=None,
        )
        return best.agent_id if best else None

    def pick_call(
        self, agent: AgentView, waiting: Sequence[WaitingCall], now: float
    ) -> str | None:
        """The first caller in service order that ``agent`` may take."""
        best = min((c for c in waiting if can_ring(agent, c)), key=service_order, default=None)
        return best.call_id if best else None

    def assign(
        self, waiting: Sequence[WaitingCall], agents: Sequence[AgentView], now: float
    ) -> list[tuple[str, str]]:
        """Greedy: callers in service order, each taking the longest-idle free agent."""
        free = {a.agent_id: a for a in agents if a.state == "ready"}
        pairs: list[tuple[str, str]] = []
        for call in sorted(waiting, key=service_order):
            if not free:
                break
            agent_id = self.pick_agent(call, list(free.values()), now)
            if agent_id is not None:
                pairs.append((call.call_id, agent_id))
                del free[agent_id]
        return pairs
