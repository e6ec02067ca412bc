"""Timer tick and queue views at scale: what holds the event loop between PBX events.

Run by hand: ``.venv/bin/python bench/tick.py``. The population of ``bench/acd.py`` (10,000
agents with skills, 2,000 callers waiting with skill requirements, 50 queues, each with an
escalation step at 10 minutes); every agent paused so the callers keep waiting. Measured, as
medians in milliseconds, each against its "before" in the same run:

* tick: ``ContactCenter.tick`` (it visits only the wrap-ups and escalation steps that fall due)
  against visiting every agent and every waiting caller, as tick did before;
* views: ``ContactCenter.queue_snapshots`` (one pass over the calls, wait estimates per caller
  counting only the agents who meet its requirements) against ``queue_snapshot`` queue by
  queue (each one scanning every call).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from acd import N_QUEUES, paused_center, population, queue_caller  # noqa: E402
from api_live import timed  # noqa: E402

from ccserver.acd.state import warm  # noqa: E402
from ccserver.config import EscalationStep, QueueConfig  # noqa: E402
from ccserver.core.call import CallState  # noqa: E402
from ccserver.core.center import ContactCenter  # noqa: E402

AGENTS, SKILLS, WAITING = 10_000, 300, 2_000


def site() -> ContactCenter:
    agents, calls = population(AGENTS, SKILLS, WAITING)
    step = [EscalationStep(after_seconds=600, any=True)]
    cc = paused_center(SKILLS, agents, lambda name: QueueConfig(name=name, escalation=step))
    for cid, q, prio, _, reqs in calls:
        queue_caller(cc, cid, q, prio, 1.0, reqs)
    return cc


def visit_everything(cc: ContactCenter, now: float) -> None:
    """What tick did before: every agent's wrap-up and every waiting caller's steps checked."""
    for agent in cc.agents.values():
        agent.tick(now)
    for call in list(cc.calls.values()):
        if call.state is CallState.QUEUED:
            cc._escalate(call, now)


def main() -> None:
    logging.disable(logging.WARNING)  # callers no agent can serve are noted, loudly
    warm()
    cc = site()
    now = iter(range(2, 10_000))
    tick = timed(lambda: cc.tick(float(next(now))))
    before = timed(lambda: visit_everything(cc, float(next(now))))
    views = timed(lambda: cc.queue_snapshots(30.0))
    per_queue = timed(lambda: [cc.queue_snapshot(f"q{q}", 30.0) for q in range(N_QUEUES)])
    print(f"{AGENTS:,} agents, {WAITING:,} waiting, {N_QUEUES} queues, {SKILLS} skills")
    print("| measure | before (ms) | now (ms) | before/now |")
    print("|---|---|---|---|")
    print(f"| tick with nothing due (before: every agent and caller visited) | {before:.2f} | "
          f"{tick:.3f} | {before / tick:,.0f}x |")
    print(f"| queue views, all queues (before: queue by queue) | {per_queue:.1f} | {views:.1f} | "
          f"{per_queue / views:.1f}x |")


if __name__ == "__main__":
    main()
