"""The skill-based router: the :class:`~ccserver.acd.router.Router` shape over the Numba kernel.

Agents, skills, queue levels and strategies come from the configuration. The core tells it of
each change (:class:`~ccserver.acd.router.TrackingRouter`: one O(1) slot write per agent or
call); the plain :class:`~ccserver.acd.router.Router` methods first bring the arrays up to date
with the views they are given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ccserver.acd.router import AgentView, WaitingCall
from ccserver.acd.state import AcdState, AgentSpec
from ccserver.config import Config

log = logging.getLogger(__name__)


class SkillsRouter:
    """Skills, per-queue agent levels and per-queue strategies, decided by the kernel."""

    def __init__(self, state: AcdState) -> None:
        self.state = state
        self._agent_names = list(state.agent_ids)
        #: the requirements each waiting call's row was last written with
        self._written: dict[str, WaitingCall] = {}
        # what changed since the last pass; after a pass no ready agent can take a waiting call,
        # so only these can make new pairs (None: unknown, e.g. after a sync from views)
        self._new_calls: set[str] | None = None
        self._new_ready: set[int] | None = None

    @classmethod
    def from_config(cls, config: Config) -> "SkillsRouter":
        """A router for the configured skills, queues and agents."""
        agents = [
            AgentSpec(
                a.id,
                dict(a.skills),
                {q: a.priorities.get(q, 1) for q in a.queues},
                frozenset({a.node, *a.devices}),
            )
            for a in config.agents
        ]
        queues = {q.name: q.strategy for q in config.queues}
        return cls(AcdState(config.acd.skills, queues, agents))

    # ---- keeping the arrays in step ---------------------------------------------------------

    def agent_update(self, agent: AgentView) -> None:
        """Write one agent's row (O(1))."""
        index = self.state.agent_ids.get(agent.agent_id)
        if index is None:
            log.warning("agent %s is not in the configuration; not routed to", agent.agent_id)
            return
        self.state.set_agent(index, agent.state == "ready", agent.idle_since or 0.0,
                             agent.occupancy, agent.calls_handled)
        if agent.state == "ready" and self._new_ready is not None:
            self._new_ready.add(index)

    def call_update(self, call: WaitingCall) -> None:
        """Write one waiting call's row (O(number of requirements))."""
        self._put(call)
        if self._new_calls is not None:
            self._new_calls.add(call.call_id)

    def call_remove(self, call_id: str) -> None:
        """Free a call's slot."""
        self.state.remove_call(call_id)
        self._written.pop(call_id, None)

    def route(self, now: float) -> list[tuple[str, str]]:
        """The pairs a full pass would make; applied (agents taken, round robin moved).

        When only one call or one agent changed since the last pass, the one-sided entry point
        gives the same answer for less: that call's best agent, or that agent's best call.
        """
        st = self.state
        new_calls, new_ready = self._new_calls, self._new_ready
        self._new_calls, self._new_ready = set(), set()
        if new_calls is not None and new_ready is not None and len(new_calls) + len(new_ready) <= 1:
            pair = (-1, -1)
            if new_calls and (slot := st.call_ids.get(next(iter(new_calls)), -1)) >= 0:
                pair = (slot, st.pick_agent(slot))
            elif new_ready:
                agent = next(iter(new_ready))
                pair = (st.pick_call(agent), agent)
            found = [pair] if pair[0] >= 0 and pair[1] >= 0 else []
        else:
            found = st.full_pass()
        pairs = []
        for slot, agent in found:
            call_id = self.state.slot_call[slot] or ""
            self.state.commit(slot, agent)
            self._written.pop(call_id, None)
            pairs.append((call_id, self._agent_names[agent]))
        return pairs

    def _sync_agents(self, agents: Sequence[AgentView]) -> None:
        self.state.ready[:] = False  # only the agents given are candidates
        for view in agents:
            self.agent_update(view)

    def _put(self, call: WaitingCall) -> int:
        st = self.state
        slot = st.call_ids.get(call.call_id)
        if slot is not None and self._written.get(call.call_id) == call:
            return slot
        reqs = []
        for name, level in call.requirements:
            skill = st.skill_ids.get(name)
            if skill is None:
                # the core drops and reports unknown skills; this only guards other callers
                log.warning("call %s: unknown skill %r ignored", call.call_id, name)
                continue
            reqs.append((skill, min(100, max(0, level))))
        slot = st.put_call(call.call_id, call.queue, call.node, call.priority, call.enqueued_at,
                           reqs)
        self._written[call.call_id] = call
        return slot

    def _sync_calls(self, waiting: Sequence[WaitingCall]) -> None:
        present = {c.call_id for c in waiting}
        for call_id in [c for c in self.state.call_ids if c not in present]:
            self.call_remove(call_id)
        for call in waiting:
            self._put(call)

    # ---- the Router protocol ---------------------------------------------------------------

    def pick_agent(
        self, call: WaitingCall, agents: Sequence[AgentView], now: float
    ) -> str | None:
        """The agent the kernel picks for ``call`` among ``agents``, or None."""
        self._sync_agents(agents)
        slot = self._put(call)
        agent = self.state.pick_agent(slot)
        return self._agent_names[agent] if agent >= 0 else None

    def pick_call(
        self, agent: AgentView, waiting: Sequence[WaitingCall], now: float
    ) -> str | None:
        """The call the kernel picks for ``agent`` among ``waiting``, or None."""
        self._sync_calls(waiting)
        index = self.state.agent_ids.get(agent.agent_id)
        if index is None:
            return None
        self._sync_agents([agent])
        slot = self.state.pick_call(index)
        return self.state.slot_call[slot] if slot >= 0 else None

    def assign(
        self, waiting: Sequence[WaitingCall], agents: Sequence[AgentView], now: float
    ) -> list[tuple[str, str]]:
        """A full pass over exactly ``waiting`` and ``agents``."""
        self._sync_calls(waiting)
        self._sync_agents(agents)
        self._new_calls = self._new_ready = None
        return self.route(now)
