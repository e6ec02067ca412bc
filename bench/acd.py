"""ACD benchmark: (a) the Numba kernel, (b) its pure-Python twin, (c) mod_callcenter-style SQL.

Run by hand: ``.venv/bin/python bench/acd.py [--quick]``. All three decide on the same random
population (seeded). (c) does what FreeSWITCH's mod_callcenter does: one SQL query per waiting
caller over agents JOIN tiers, ordered by tier level, last bridge end (longest idle) and
position, here on an in-memory SQLite with the skills as an extra table. Queues use the
longest-idle strategy and tier level 1 so that all three must pick exactly the same agents; the
script checks that they do. Ratios are against (c) measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccserver.acd import twin  # noqa: E402
from ccserver.acd.skills import SkillsRouter  # noqa: E402
from ccserver.acd.state import AcdState, AgentSpec, warm  # noqa: E402
from ccserver.config import AcdConfig, AgentConfig, Config, QueueConfig  # noqa: E402
from ccserver.core.center import ContactCenter  # noqa: E402
from ccserver.core.events import CallAnswered, CallStarted, IvrFinished  # noqa: E402

N_QUEUES = 50
SKILLS_PER_AGENT = 8
READY_SHARE = 0.5


def population(n_agents: int, n_skills: int, n_calls: int, seed: int = 7):
    """Agents with skills from their queues' skill families; callers needing 1-3 of them."""
    rng = random.Random(seed)
    family = {q: rng.sample(range(n_skills), 12) for q in range(N_QUEUES)}
    agents = []
    for i in range(n_agents):
        queues = rng.sample(range(N_QUEUES), rng.randint(1, 3))
        pool = sorted({s for q in queues for s in family[q]})
        skills = {s: rng.randint(1, 100) for s in rng.sample(pool, min(SKILLS_PER_AGENT, len(pool)))}
        ready = rng.random() < READY_SHARE
        agents.append((f"a{i}", queues, skills, ready, float(rng.randint(0, 3600))))
    calls = []
    for i in range(n_calls):
        q = rng.randrange(N_QUEUES)
        reqs = {s: rng.randint(5, 60) for s in rng.sample(family[q], rng.randint(1, 3))}
        calls.append((f"c{i}", q, rng.choice([0, 0, 0, 1, 2]), float(rng.randint(0, 600)), reqs))
    return agents, calls


def build_state(n_skills, agents, calls) -> AcdState:
    specs = [AgentSpec(aid, {f"s{s}": lvl for s, lvl in skills.items()},
                       {f"q{q}": 1 for q in queues}, frozenset({"n1"}))
             for aid, queues, skills, _, _ in agents]
    st = AcdState([f"s{s}" for s in range(n_skills)],
                  {f"q{q}": "longest_idle" for q in range(N_QUEUES)}, specs,
                  call_capacity=max(64, len(calls)))
    for i, (_, _, _, ready, idle) in enumerate(agents):
        st.set_agent(i, ready, idle, 0.0, 0)
    for cid, q, prio, enq, reqs in calls:
        st.put_call(cid, f"q{q}", "n1", prio, enq, list(reqs.items()))
    return st


SQL_ARRIVE = """
SELECT a.id FROM agents a JOIN tiers t ON t.agent = a.id
WHERE t.queue = ? AND a.status = 'Available' AND a.state = 'Waiting'
  AND NOT EXISTS (SELECT 1 FROM member_reqs r WHERE r.member = ? AND NOT EXISTS (
      SELECT 1 FROM agent_skills s WHERE s.agent = a.id AND s.skill = r.skill
      AND s.level >= r.min_level))
ORDER BY t.level, a.last_bridge_end, t.position, a.id LIMIT 1
"""
SQL_FREE = """
SELECT m.id FROM members m JOIN tiers t ON t.queue = m.queue AND t.agent = ?
WHERE m.state = 'Waiting'
  AND NOT EXISTS (SELECT 1 FROM member_reqs r WHERE r.member = m.id AND NOT EXISTS (
      SELECT 1 FROM agent_skills s WHERE s.agent = ? AND s.skill = r.skill
      AND s.level >= r.min_level))
ORDER BY t.level, m.priority DESC, m.joined_epoch, m.seq LIMIT 1
"""


def build_sql(agents, calls) -> tuple[sqlite3.Connection, float, float]:
    """The same population as tables; returns the connection and bytes per agent / per call."""
    db = sqlite3.connect(":memory:")
    db.executescript("""
        CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT, status TEXT, state TEXT,
                             last_bridge_end REAL);
        CREATE TABLE tiers (queue INTEGER, agent INTEGER, level INTEGER, position INTEGER,
                            PRIMARY KEY (queue, agent));
        CREATE INDEX tiers_agent ON tiers (agent);
        CREATE TABLE agent_skills (agent INTEGER, skill INTEGER, level INTEGER,
                                   PRIMARY KEY (agent, skill));
        CREATE TABLE members (id INTEGER PRIMARY KEY, queue INTEGER, priority INTEGER,
                              joined_epoch REAL, seq INTEGER, state TEXT);
        CREATE INDEX members_queue ON members (queue, state);
        CREATE TABLE member_reqs (member INTEGER, skill INTEGER, min_level INTEGER);
        CREATE INDEX member_reqs_member ON member_reqs (member);
    """)
    size = lambda: db.execute("PRAGMA page_count").fetchone()[0] * db.execute(  # noqa: E731
        "PRAGMA page_size").fetchone()[0]
    empty = size()
    for i, (aid, queues, skills, ready, idle) in enumerate(agents):
        db.execute("INSERT INTO agents VALUES (?, ?, 'Available', ?, ?)",
                   (i, aid, "Waiting" if ready else "In a queue call", idle))
        db.executemany("INSERT INTO tiers VALUES (?, ?, 1, 0)", [(q, i) for q in queues])
        db.executemany("INSERT INTO agent_skills VALUES (?, ?, ?)",
                       [(i, s, lvl) for s, lvl in skills.items()])
    with_agents = size()
    for i, (_, q, prio, enq, reqs) in enumerate(calls):
        db.execute("INSERT INTO members VALUES (?, ?, ?, ?, ?, 'Waiting')", (i, q, prio, enq,
                                                                             i + 1))
        db.executemany("INSERT INTO member_reqs VALUES (?, ?, ?)",
                       [(i, s, m) for s, m in reqs.items()])
    db.commit()
    per_agent = (with_agents - empty) / max(1, len(agents))
    per_call = (size() - with_agents) / max(1, len(calls))
    return db, per_agent, per_call


def sql_full_pass(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """Each waiting caller in order: one query for its agent; the agent is then taken."""
    pairs = []
    order = db.execute("SELECT id, queue FROM members WHERE state = 'Waiting' "
                       "ORDER BY priority DESC, joined_epoch, seq").fetchall()
    for member, queue in order:
        row = db.execute(SQL_ARRIVE, (queue, member)).fetchone()
        if row is not None:
            db.execute("UPDATE agents SET state = 'Receiving' WHERE id = ?", (row[0],))
            pairs.append((member, row[0]))
    db.rollback()
    return pairs


def paused_center(n_skills, agents, queue=QueueConfig) -> ContactCenter:
    """A core over the population, every agent logged in and paused; ``queue(name=...)`` makes
    each queue's configuration."""
    config = Config(
        acd=AcdConfig(skills=[f"s{s}" for s in range(n_skills)]),
        queues=[queue(name=f"q{q}") for q in range(N_QUEUES)],
        agents=[AgentConfig(id=aid, name=aid, node="n1", device=f"PJSIP/{aid}",
                            queues=[f"q{q}" for q in queues],
                            skills={f"s{s}": lvl for s, lvl in skills.items()})
                for aid, queues, skills, _, _ in agents],
    )
    cc = ContactCenter(config, now=0.0, router=SkillsRouter.from_config(config))
    for aid, *_ in agents:
        cc.pause(aid, "break", 0.0)
    return cc


def queue_caller(cc: ContactCenter, cid: str, q: int, prio: int, at: float, reqs: dict[int, int]) -> float:
    """A caller through the IVR into queue ``q``; returns the microseconds the hand-over took."""
    cc.handle(CallStarted(cid, "n1", f"PJSIP/t-{cid}", "+1", "5000", at))
    cc.handle(CallAnswered(cid, at))
    t0 = time.perf_counter_ns()
    cc.handle(IvrFinished(cid, "n1", f"PJSIP/t-{cid}", "+1", "5000", f"q{q}", (), {}, prio,
                          at, skills=tuple((f"s{s}", m) for s, m in reqs.items())))
    return (time.perf_counter_ns() - t0) / 1000


def core_path(n_skills, agents, calls, samples: int) -> tuple[list[float], list[float]]:
    """Latency of the whole core on the same population: every agent logged in, all paused but
    the ready share (so the callers wait), then calls arriving and paused agents becoming ready."""
    cc = paused_center(n_skills, agents)

    def arrive(cid, q, prio, at, reqs):
        return queue_caller(cc, cid, q, prio, at, reqs)

    for cid, q, prio, enq, reqs in calls:
        arrive(cid, q, prio, enq, reqs)
    rng = random.Random(3)
    arr = [arrive(f"x{i}", *calls[rng.randrange(len(calls))][1:]) for i in range(samples)]
    free = []
    for aid in rng.sample([a[0] for a in agents], samples):
        t0 = time.perf_counter_ns()
        cc.ready(aid, 1000.0)
        free.append((time.perf_counter_ns() - t0) / 1000)
    return arr, free


def timed(fn, args_list) -> tuple[list[float], list]:
    """Microseconds per call of ``fn(*args)``, and the results."""
    times, results = [], []
    for args in args_list:
        t0 = time.perf_counter_ns()
        results.append(fn(*args))
        times.append((time.perf_counter_ns() - t0) / 1000)
    return times, results


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def run(n_agents: int, n_skills: int, n_calls: int, samples: int, slow_samples: int) -> None:
    agents, calls = population(n_agents, n_skills, n_calls)
    st = build_state(n_skills, agents, calls)
    db, sql_agent_bytes, sql_call_bytes = build_sql(agents, calls)
    rng = random.Random(1)
    call_slots = [st.call_ids[c[0]] for c in calls]
    ready_agents = [i for i, a in enumerate(agents) if a[3]]
    arrive = [(rng.choice(call_slots),) for _ in range(samples)]
    frees = [(rng.choice(ready_agents),) for _ in range(samples)]

    k_arr, k_arr_res = timed(st.pick_agent, arrive)
    k_free, k_free_res = timed(st.pick_call, frees)
    t_arr, t_arr_res = timed(lambda c: twin.pick_agent(st, c), arrive[:slow_samples])
    t_free, t_free_res = timed(lambda a: twin.pick_call(st, a), frees[:slow_samples])
    slot_member = {st.call_ids[c[0]]: i for i, c in enumerate(calls)}
    s_arr, s_arr_res = timed(
        lambda c: (r := db.execute(SQL_ARRIVE, (calls[slot_member[c]][1], slot_member[c]))
                   .fetchone()) and r[0],
        arrive[:slow_samples])
    s_free, s_free_res = timed(lambda a: (r := db.execute(SQL_FREE, (a, a)).fetchone()) and r[0],
                               frees[:slow_samples])
    member_slot = {m: s for s, m in slot_member.items()}
    same = (
        k_arr_res[:slow_samples] == t_arr_res
        and [x if x else -1 for x in s_arr_res] == [x if x >= 0 else -1 for x in t_arr_res]
        and k_free_res[:slow_samples] == t_free_res
        and [member_slot[x] if x is not None else -1 for x in s_free_res] == t_free_res
    )

    k_pass_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        k_pairs = st.full_pass()
        k_pass_times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    t_pairs = twin.full_pass(st)
    t_pass = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    s_pairs = sql_full_pass(db)
    s_pass = (time.perf_counter() - t0) * 1000
    same_pass = k_pairs == t_pairs == [(member_slot[m], a) for m, a in s_pairs]

    # the event path the core needs: an O(1) array update and then the decision
    def call_event(c):
        cid, q, prio, enq, reqs = calls[slot_member[c]]
        st.put_call(cid, f"q{q}", "n1", prio, enq, list(reqs.items()))
        return st.pick_agent(c)

    def agent_event(a):
        st.set_agent(a, True, 100.0, 0.0, 0)
        return st.pick_call(a)

    e_arr, _ = timed(call_event, arrive)
    e_free, _ = timed(agent_event, frees)
    core_arr, core_free = core_path(n_skills, agents, calls, samples=300)

    print(f"\n## {n_agents} agents, {n_skills} skills, {n_calls} waiting calls, {N_QUEUES} queues, "
          f"{len(ready_agents)} ready")
    print(f"same picks (a)=(b)=(c): decisions {same}, full pass {same_pass} "
          f"({len(k_pairs)} assigned)")
    print("| measure | (a) kernel | (b) twin | (c) SQL | (c)/(a) |")
    print("|---|---|---|---|---|")
    rows = [
        ("call arrives p50 (µs)", pct(k_arr, 50), pct(t_arr, 50), pct(s_arr, 50)),
        ("call arrives p99 (µs)", pct(k_arr, 99), pct(t_arr, 99), pct(s_arr, 99)),
        ("agent frees up p50 (µs)", pct(k_free, 50), pct(t_free, 50), pct(s_free, 50)),
        ("agent frees up p99 (µs)", pct(k_free, 99), pct(t_free, 99), pct(s_free, 99)),
        ("full pass (ms)", statistics.median(k_pass_times), t_pass, s_pass),
        ("memory per agent (bytes)", st.nbytes_per_agent(), st.nbytes_per_agent(),
         sql_agent_bytes),
        ("memory per waiting call (bytes)", st.nbytes_per_call_slot(),
         st.nbytes_per_call_slot(), sql_call_bytes),
    ]
    for name, a, b, c in rows:
        print(f"| {name} | {a:,.1f} | {b:,.1f} | {c:,.1f} | {c / a:,.1f}x |")
    print(f"event path, update + decision, p99: call arrives {pct(e_arr, 99):.1f} µs, "
          f"agent frees up {pct(e_free, 99):.1f} µs; max {max(max(e_arr), max(e_free)):.1f} µs")
    print(f"whole core (ContactCenter.handle / .ready with the skills router), p50 / p99 / max: "
          f"call arrives {pct(core_arr, 50):.0f} / {pct(core_arr, 99):.0f} / "
          f"{max(core_arr):.0f} µs, agent frees up {pct(core_free, 50):.0f} / "
          f"{pct(core_free, 99):.0f} / {max(core_free):.0f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the small population")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # random requirements: some callers no agent can serve
    t0 = time.perf_counter()
    warm()
    print(f"kernel warm-up (compile or cache load): {(time.perf_counter() - t0) * 1000:.0f} ms")
    run(1_000, 300, 200, samples=2000, slow_samples=200)
    if not args.quick:
        run(10_000, 300, 2_000, samples=2000, slow_samples=100)


if __name__ == "__main__":
    main()
