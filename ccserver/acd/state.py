"""Agents and waiting calls as arrays (struct of arrays), updated in O(1) per event.

Agents, queues, skills and nodes are fixed at construction (from the configuration); waiting
calls come and go in slots reused through a free list (the arrays double when full, so adding a
call is amortized O(1)). The kernel (:mod:`ccserver.acd.kernel`) and its twin
(:mod:`ccserver.acd.twin`) read these arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ccserver.acd import kernel

#: requirement pairs per call row (as many as a configured requirement set may hold)
MAX_REQ = 8


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent's static routing facts."""

    agent_id: str
    #: skill -> proficiency 0-100
    skills: Mapping[str, int]
    #: queue -> level (lower is served first; every agent queue appears here)
    queues: Mapping[str, int]
    nodes: frozenset[str]


class AcdState:
    """The arrays one router decides on. Rows of agents are in the order given (= tie order)."""

    def __init__(
        self,
        skills: Sequence[str],
        queues: Mapping[str, str],
        agents: Sequence[AgentSpec],
        call_capacity: int = 64,
    ) -> None:
        """``queues`` maps each queue name to its strategy name (see :data:`kernel.STRATEGIES`)."""
        self.skill_ids = {s: i for i, s in enumerate(skills)}
        self.queue_ids = {q: i for i, q in enumerate(queues)}
        nodes = sorted({n for a in agents for n in a.nodes})
        self.node_ids = {n: i for i, n in enumerate(nodes)}
        self.agent_ids = {a.agent_id: i for i, a in enumerate(agents)}
        n_a, n_q = len(agents), len(queues)
        # skill-, queue- and node-major: a decision reads one row across many agents, which then
        # stays in cache (agent-major rows cost a cache miss per agent at 10,000 agents)
        #: proficiency [skill, agent], 0-100
        self.prof = np.zeros((max(1, len(skills)), n_a), np.uint8)
        #: queue level [queue, agent]: 0 = not a member, 1 = served first, ...
        self.level = np.zeros((max(1, n_q), n_a), np.int16)
        #: reachable [node, agent]
        self.agent_node = np.zeros((max(1, len(nodes)), n_a), np.bool_)
        for i, a in enumerate(agents):
            for s, lvl in a.skills.items():
                self.prof[self.skill_ids[s], i] = lvl
            for q, lvl in a.queues.items():
                self.level[self.queue_ids[q], i] = max(1, lvl)
            for n in a.nodes:
                self.agent_node[self.node_ids[n], i] = True
        #: the highest queue level any agent has (the full pass goes level by level)
        self.max_level = int(self.level.max()) if n_a else 0
        self.ready = np.zeros(n_a, np.bool_)
        self.idle_since = np.zeros(n_a, np.float64)
        self.occupancy = np.zeros(n_a, np.float64)
        self.calls = np.zeros(n_a, np.int64)
        # queue membership as CSR, members in ascending agent index (the tie order)
        counts = np.count_nonzero(self.level[:n_q], axis=1)
        self.q_ptr = np.zeros(n_q + 1, np.int64)
        self.q_ptr[1:] = np.cumsum(counts)
        self.q_members = np.zeros(int(self.q_ptr[-1]), np.int64)
        for q in range(n_q):
            self.q_members[self.q_ptr[q]:self.q_ptr[q + 1]] = np.flatnonzero(self.level[q])
        self.strategy = np.array([kernel.STRATEGIES.index(s) for s in queues.values()], np.int8)
        self.rr = np.full(n_q, -1, np.int64)
        self.call_ids: dict[str, int] = {}
        self.slot_call: list[str | None] = []
        self._free: list[int] = []
        self._seq = 0
        self._alloc_calls(call_capacity)

    # ---- calls -----------------------------------------------------------------------------

    def _alloc_calls(self, capacity: int) -> None:
        old = len(self.slot_call)

        def grow(arr: np.ndarray | None, shape: tuple[int, ...], dtype, fill) -> np.ndarray:
            new = np.full(shape, fill, dtype)
            if arr is not None:
                new[:old] = arr
            return new

        k = (capacity, MAX_REQ)
        self.c_active = grow(getattr(self, "c_active", None), (capacity,), np.bool_, False)
        self.c_queue = grow(getattr(self, "c_queue", None), (capacity,), np.int64, -1)
        self.c_node = grow(getattr(self, "c_node", None), (capacity,), np.int64, -1)
        self.c_prio = grow(getattr(self, "c_prio", None), (capacity,), np.int64, 0)
        self.c_enq = grow(getattr(self, "c_enq", None), (capacity,), np.float64, 0.0)
        self.c_seq = grow(getattr(self, "c_seq", None), (capacity,), np.int64, 0)
        self.c_req_skill = grow(getattr(self, "c_req_skill", None), k, np.int16, -1)
        self.c_req_min = grow(getattr(self, "c_req_min", None), k, np.uint8, 0)
        self.slot_call.extend([None] * (capacity - old))
        self._free.extend(range(capacity - 1, old - 1, -1))

    def put_call(
        self,
        call_id: str,
        queue: str,
        node: str,
        priority: int,
        enqueued_at: float,
        requirements: Sequence[tuple[int, int]],
    ) -> int:
        """Add or update a waiting call; returns its slot. ``requirements``: (skill id, min).

        An unknown queue or node leaves the call unroutable (nobody is eligible).
        """
        if len(requirements) > MAX_REQ:
            raise ValueError(f"requirements: at most {MAX_REQ} pairs, got {len(requirements)}")
        slot = self.call_ids.get(call_id)
        if slot is None:
            if not self._free:
                self._alloc_calls(2 * len(self.slot_call))
            slot = self._free.pop()
            self.call_ids[call_id] = slot
            self.slot_call[slot] = call_id
            self._seq += 1
            self.c_seq[slot] = self._seq
            self.c_active[slot] = True
        self.c_queue[slot] = self.queue_ids.get(queue, -1)
        self.c_node[slot] = self.node_ids.get(node, -1)
        self.c_prio[slot] = priority
        self.c_enq[slot] = enqueued_at
        row_s, row_m = self.c_req_skill[slot], self.c_req_min[slot]
        row_s[:] = -1
        row_m[:] = 0
        for k, (s, m) in enumerate(requirements):
            row_s[k] = s
            row_m[k] = m
        return slot

    def remove_call(self, call_id: str) -> None:
        """Forget a call (assigned, abandoned, ...); unknown ids are ignored."""
        slot = self.call_ids.pop(call_id, None)
        if slot is None:
            return
        self.c_active[slot] = False
        self.slot_call[slot] = None
        self._free.append(slot)

    # ---- agents ----------------------------------------------------------------------------

    def set_agent(
        self, index: int, ready: bool, idle_since: float, occupancy: float, calls: int
    ) -> None:
        """An agent's dynamic facts (O(1))."""
        self.ready[index] = ready
        self.idle_since[index] = idle_since
        self.occupancy[index] = occupancy
        self.calls[index] = calls

    def commit(self, call_slot: int, agent: int) -> None:
        """Apply an assignment: the agent is taken, the call leaves, round robin advances."""
        self.rr[self.c_queue[call_slot]] = agent
        self.ready[agent] = False
        self.remove_call(self.slot_call[call_slot] or "")

    # ---- kernel entry points ---------------------------------------------------------------

    def pick_agent(self, call_slot: int) -> int:
        """Kernel: best agent index for a call slot, or -1."""
        return int(kernel.pick_agent(
            call_slot, self.ready, self.rr, self.prof, self.idle_since, self.occupancy,
            self.calls, self.level, self.agent_node, self.q_ptr, self.q_members, self.strategy,
            self.c_queue, self.c_node, self.c_req_skill, self.c_req_min))

    def pick_call(self, agent: int) -> int:
        """Kernel: best call slot for an agent, or -1."""
        return int(kernel.pick_call(
            agent, self.ready, self.prof, self.level, self.agent_node, self.c_active,
            self.c_queue, self.c_node, self.c_prio, self.c_enq, self.c_seq, self.c_req_skill,
            self.c_req_min))

    def full_pass(self) -> list[tuple[int, int]]:
        """Kernel: (call slot, agent index) pairs of a full pass (state unchanged)."""
        cs, ags = kernel.full_pass(
            self.max_level, self.ready, self.rr, self.prof, self.idle_since, self.occupancy, self.calls,
            self.level, self.agent_node, self.q_ptr, self.q_members, self.strategy,
            self.c_active, self.c_queue, self.c_node, self.c_prio, self.c_enq, self.c_seq,
            self.c_req_skill, self.c_req_min)
        return list(zip(cs.tolist(), ags.tolist()))

    def nbytes_per_agent(self) -> float:
        """Array bytes per agent (agent rows and queue membership)."""
        arrays = (self.prof, self.level, self.agent_node, self.ready, self.idle_since,
                  self.occupancy, self.calls, self.q_members)
        return sum(a.nbytes for a in arrays) / max(1, len(self.agent_ids))

    def nbytes_per_call_slot(self) -> float:
        """Array bytes per call slot."""
        arrays = (self.c_active, self.c_queue, self.c_node, self.c_prio, self.c_enq, self.c_seq,
                  self.c_req_skill, self.c_req_min)
        return sum(a.nbytes for a in arrays) / max(1, len(self.slot_call))


def warm() -> None:
    """Compile (or load from the cache) every kernel entry point on tiny arrays.

    Called at start-up so that no live call pays for compilation.
    """
    st = AcdState(["s"], {"q": "longest_idle"},
                  [AgentSpec("a", {"s": 50}, {"q": 1}, frozenset({"n"}))], call_capacity=2)
    st.set_agent(0, True, 0.0, 0.0, 0)
    slot = st.put_call("c", "q", "n", 0, 0.0, [(0, 10)])
    st.pick_agent(slot)
    st.pick_call(0)
    st.full_pass()
