"""The ACD decision kernel: Numba functions over the arrays of :class:`ccserver.acd.state.AcdState`.

Three entry points: :func:`pick_agent` (a call arrives: its best agent), :func:`pick_call` (an
agent frees up: its best call) and :func:`full_pass` (assign as many waiting calls as possible,
callers in service order). They only read the arrays; the caller applies the outcome.

Rules (the pure-Python twin in :mod:`ccserver.acd.twin` implements the same ones):

* an agent may take a call when it is free, a member of the call's queue, reachable from the
  call's node and at or above every (skill, minimum level) of the call's current requirements;
* among eligible agents: lowest queue level (the agent's per-queue priority) first, then the
  queue's strategy key (``best_skill``: the sum of the required skills' levels, then longest
  idle, so equal scores, as with no requirements, do not always favour the first agent), then
  the lowest agent index;
* the full pass goes level by level: first only level-1 memberships, then up to level 2, ...,
  so an agent takes a caller of a queue it serves first before one where it is a backup;
* among calls an agent may take: lowest queue level for that agent first, then higher call
  priority, earlier enqueue time, lower sequence number.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: strategy codes, in the order of :data:`ccserver.config.Strategy`
LONGEST_IDLE, BEST_SKILL, LEAST_OCCUPIED, FEWEST_CALLS, ROUND_ROBIN = range(5)
STRATEGIES = ("longest_idle", "best_skill", "least_occupied", "fewest_calls", "round_robin")
#: above any queue level (levels are 1-9)
NO_LEVEL_LIMIT = 32767


# The eligibility test is written out in both loops below on purpose: calling a helper that takes
# arrays costs about 30 ns per call in Numba (it is not inlined), which made pick_call 15x slower.


@njit(cache=True)
def _best_agent(c, max_level, free, rr, prof, idle_since, occupancy, calls, level, agent_node,
                q_ptr, q_members, strategy, c_queue, c_node, c_req_skill, c_req_min):
    q = c_queue[c]
    nd = c_node[c]
    if q < 0 or nd < 0:
        return -1
    strat = strategy[q]
    cursor = rr[q]
    n_agents = free.shape[0]
    n_req = 0
    while n_req < c_req_skill.shape[1] and c_req_skill[c, n_req] >= 0:
        n_req += 1
    best = -1
    best_level = 0
    best_key = 0.0
    best_tie = 0.0
    for i in range(q_ptr[q], q_ptr[q + 1]):
        a = q_members[i]
        lv = level[q, a]
        if not free[a] or lv > max_level or not agent_node[nd, a]:
            continue
        ok = True
        score = 0
        for k in range(n_req):
            p = prof[c_req_skill[c, k], a]
            if p < c_req_min[c, k]:
                ok = False
                break
            score += p
        if not ok:
            continue
        tie = 0.0
        if strat == LONGEST_IDLE:
            key = idle_since[a]
        elif strat == BEST_SKILL:
            key = -float(score)
            tie = idle_since[a]
        elif strat == LEAST_OCCUPIED:
            key = occupancy[a]
        elif strat == FEWEST_CALLS:
            key = float(calls[a])
        else:  # round robin: the first member after the last one chosen in this queue
            key = float((a - cursor - 1) % n_agents)
        # members are in ascending index order, so strict comparisons keep the lowest index
        if best < 0 or lv < best_level or (lv == best_level and (
                key < best_key or (key == best_key and tie < best_tie))):
            best, best_level, best_key, best_tie = a, lv, key, tie
    return best


@njit(cache=True)
def pick_agent(c, ready, rr, prof, idle_since, occupancy, calls, level, agent_node, q_ptr,
               q_members, strategy, c_queue, c_node, c_req_skill, c_req_min):
    """The best agent index for call slot ``c``, or -1."""
    return _best_agent(c, NO_LEVEL_LIMIT, ready, rr, prof, idle_since, occupancy, calls, level, agent_node,
                       q_ptr, q_members, strategy, c_queue, c_node, c_req_skill, c_req_min)


@njit(cache=True)
def pick_call(a, ready, prof, level, agent_node, c_active, c_queue, c_node, c_prio, c_enq,
              c_seq, c_req_skill, c_req_min):
    """The best call slot for agent ``a``, or -1."""
    best = -1
    if not ready[a]:
        return best
    for c in range(c_active.shape[0]):
        if not c_active[c]:
            continue
        q = c_queue[c]
        nd = c_node[c]
        if q < 0 or nd < 0 or level[q, a] == 0 or not agent_node[nd, a]:
            continue
        ok = True
        for k in range(c_req_skill.shape[1]):
            sk = c_req_skill[c, k]
            if sk < 0:
                break
            if prof[sk, a] < c_req_min[c, k]:
                ok = False
                break
        if not ok:
            continue
        if best < 0:
            best = c
            continue
        lv, blv = level[c_queue[c], a], level[c_queue[best], a]
        if lv != blv:
            better = lv < blv
        elif c_prio[c] != c_prio[best]:
            better = c_prio[c] > c_prio[best]
        elif c_enq[c] != c_enq[best]:
            better = c_enq[c] < c_enq[best]
        else:
            better = c_seq[c] < c_seq[best]
        if better:
            best = c
    return best


@njit(cache=True, inline="always")
def _before(x, y, c_prio, c_enq, c_seq):
    """Service order: higher priority, then earlier enqueue, then lower sequence number."""
    if c_prio[x] != c_prio[y]:
        return c_prio[x] > c_prio[y]
    if c_enq[x] != c_enq[y]:
        return c_enq[x] < c_enq[y]
    return c_seq[x] < c_seq[y]


@njit(cache=True)
def service_order(c_active, c_prio, c_enq, c_seq):
    """Active call slots in service order (a merge sort: the comparator is three keys)."""
    idx = np.flatnonzero(c_active).astype(np.int64)
    n = idx.shape[0]
    tmp = np.empty_like(idx)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _before(idx[j], idx[i], c_prio, c_enq, c_seq):
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@njit(cache=True)
def full_pass(max_level, ready, rr, prof, idle_since, occupancy, calls, level, agent_node, q_ptr,
              q_members, strategy, c_active, c_queue, c_node, c_prio, c_enq, c_seq, c_req_skill,
              c_req_min):
    """Level by level (1..``max_level``), callers in service order take their best free agent.

    Returns ``(call slots, agent indexes)`` of the pairs. Works on copies of ``ready`` and
    ``rr`` so the state is unchanged; the round-robin cursor advances within the pass.
    """
    free = ready.copy()
    cursor = rr.copy()
    order = service_order(c_active, c_prio, c_enq, c_seq)
    out_c = np.empty(order.shape[0], np.int64)
    out_a = np.empty(order.shape[0], np.int64)
    n = 0
    remaining = 0
    for a in range(free.shape[0]):
        remaining += free[a]
    assigned = np.zeros(order.shape[0], np.bool_)
    # Callers scan only the members that are free at the start of the pass (same ascending
    # order, so the same picks): agents busy now cannot be taken later in the pass either.
    # Once a queue has no free member left, its later callers are skipped without a scan.
    n_queues = q_ptr.shape[0] - 1
    q_free = np.zeros(n_queues, np.int64)
    f_ptr = np.zeros(n_queues + 1, np.int64)
    f_members = np.empty(q_members.shape[0], np.int64)
    n_free_members = 0
    for q in range(n_queues):
        for i in range(q_ptr[q], q_ptr[q + 1]):
            if free[q_members[i]]:
                f_members[n_free_members] = q_members[i]
                n_free_members += 1
        f_ptr[q + 1] = n_free_members
        q_free[q] = f_ptr[q + 1] - f_ptr[q]
    for limit in range(1, max_level + 1):
        for i in range(order.shape[0]):
            if remaining == 0:
                break
            if assigned[i]:
                continue
            c = order[i]
            if c_queue[c] >= 0 and q_free[c_queue[c]] == 0:
                continue
            a = _best_agent(c, limit, free, cursor, prof, idle_since, occupancy, calls, level,
                            agent_node, f_ptr, f_members, strategy, c_queue, c_node, c_req_skill,
                            c_req_min)
            if a >= 0:
                free[a] = False
                for q in range(n_queues):
                    if level[q, a] > 0:
                        q_free[q] -= 1
                remaining -= 1
                assigned[i] = True
                cursor[c_queue[c]] = a
                out_c[n] = c
                out_a[n] = a
                n += 1
    return out_c[:n], out_a[:n]
