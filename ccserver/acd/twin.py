"""The pure-Python twin of :mod:`ccserver.acd.kernel`: the same rules, written as sort keys.

It exists to prove the kernel right (property tests compare both on random populations) and as
the baseline of ``bench/acd.py``; the server decides with the kernel.
"""

from __future__ import annotations

from ccserver.acd.kernel import STRATEGIES
from ccserver.acd.state import AcdState


def _requirements(st: AcdState, c: int) -> list[tuple[int, int]]:
    pairs = []
    for s, m in zip(st.c_req_skill[c].tolist(), st.c_req_min[c].tolist()):
        if s < 0:
            break
        pairs.append((s, m))
    return pairs


def _eligible(st: AcdState, a: int, c: int, free, max_level: int = 1 << 15) -> bool:
    q, n = int(st.c_queue[c]), int(st.c_node[c])
    return (
        q >= 0 and n >= 0 and bool(free[a]) and 0 < st.level[q, a] <= max_level
        and bool(st.agent_node[n, a])
        and all(int(st.prof[s, a]) >= m for s, m in _requirements(st, c))
    )


def _agent_key(st: AcdState, a: int, c: int, cursor: int) -> tuple:
    q = int(st.c_queue[c])
    strategy = STRATEGIES[int(st.strategy[q])]
    tie = 0.0
    if strategy == "longest_idle":
        key: float = float(st.idle_since[a])
    elif strategy == "best_skill":
        key = -float(sum(int(st.prof[s, a]) for s, _ in _requirements(st, c)))
        tie = float(st.idle_since[a])
    elif strategy == "least_occupied":
        key = float(st.occupancy[a])
    elif strategy == "fewest_calls":
        key = float(st.calls[a])
    else:
        key = float((a - cursor - 1) % len(st.ready))
    return (int(st.level[q, a]), key, tie, a)


def _best_agent(st: AcdState, c: int, free, cursors, max_level: int = 1 << 15) -> int:
    q = int(st.c_queue[c])
    if q < 0:
        return -1
    members = st.q_members[st.q_ptr[q]:st.q_ptr[q + 1]].tolist()
    candidates = [a for a in members if _eligible(st, a, c, free, max_level)]
    if not candidates:
        return -1
    return min(candidates, key=lambda a: _agent_key(st, a, c, int(cursors[q])))


def pick_agent(st: AcdState, c: int) -> int:
    """Best agent index for call slot ``c``, or -1."""
    return _best_agent(st, c, st.ready, st.rr)


def service_key(st: AcdState, c: int) -> tuple:
    """Callers: higher priority, earlier enqueue, lower sequence number."""
    return (-int(st.c_prio[c]), float(st.c_enq[c]), int(st.c_seq[c]))


def pick_call(st: AcdState, a: int) -> int:
    """Best call slot for agent ``a``, or -1."""
    calls = [c for c in range(len(st.c_active)) if st.c_active[c] and _eligible(st, a, c, st.ready)]
    if not calls:
        return -1
    return min(calls, key=lambda c: (int(st.level[int(st.c_queue[c]), a]), *service_key(st, c)))


def full_pass(st: AcdState) -> list[tuple[int, int]]:
    """(call slot, agent index) pairs: level by level, callers in service order take their best
    free agent among those serving the call's queue at that level or a lower one."""
    free = st.ready.tolist()
    cursors = st.rr.tolist()
    pairs: list[tuple[int, int]] = []
    waiting = sorted((c for c in range(len(st.c_active)) if st.c_active[c]),
                     key=lambda c: service_key(st, c))
    for limit in range(1, st.max_level + 1):
        for c in list(waiting):
            if not any(free):
                return pairs
            a = _best_agent(st, c, free, cursors, limit)
            if a >= 0:
                free[a] = False
                cursors[int(st.c_queue[c])] = a
                pairs.append((c, a))
                waiting.remove(c)
    return pairs
