"""Live view benchmark: what one KPI tick costs the server, against the core's own snapshot work.

Run by hand: ``.venv/bin/python bench/api_live.py``. A site of 20 queues, 400 agents (all paused,
so callers wait), 1,000 waiting callers and 20,000 finished calls in the KPI window. Measured:

* baseline: ``ContactCenter.queue_snapshots`` (every queue; what the core already does);
* tick: the per-tick queue views (``queue_out`` for every queue: snapshot plus KPIs plus the API
  models), computed once per tick and shared by every WebSocket client;
* metrics: one ``/metrics`` scrape (``render_metrics``).

Printed as milliseconds and as ratios to the baseline, all measured in this run.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccserver.api.metrics import Histogram  # noqa: E402
from ccserver.api.pages import render_metrics  # noqa: E402
from ccserver.api.views import queue_out  # noqa: E402
from ccserver.cdr.record import CallRecord  # noqa: E402
from ccserver.config import AgentConfig, Config, QueueConfig  # noqa: E402
from ccserver.core.center import ContactCenter  # noqa: E402
from ccserver.core.events import CallAnswered, CallStarted, IvrFinished  # noqa: E402
from ccserver.stats.live import KpiWindow  # noqa: E402

QUEUES, AGENTS, WAITING, FINISHED = 20, 400, 1000, 20_000


class _Api:
    """The parts of ccserver.api.server.Api that render_metrics reads."""

    def __init__(self, center: ContactCenter, config: Config, kpis: KpiWindow, now: float) -> None:
        from ccserver.api.hub import LiveHub
        from ccserver.api.server import LiveSource

        self.kpis = kpis
        self.hub = LiveHub()
        self.source = LiveSource(config=lambda: config, center=lambda: center, nodes=lambda: {"n": True},
                                 spool_depth=lambda: 0, dispatch=lambda d: None, clock=lambda: now,
                                 decision_latency=Histogram())


def site(rng: random.Random) -> tuple[Config, ContactCenter, KpiWindow, float]:
    queues = [QueueConfig(name=f"q{i}") for i in range(QUEUES)]
    agents = [AgentConfig(id=f"a{i}", name=f"A{i}", node="n", device=f"PJSIP/{i}", queues=[f"q{i % QUEUES}"])
              for i in range(AGENTS)]
    config = Config(queues=queues, agents=agents)
    now = 1_000_000.0
    center = ContactCenter(config, now=now)
    for a in agents:
        center.pause(a.id, "bench", now)
    for i in range(WAITING):
        cid = f"n:{i}"
        center.handle(CallStarted(cid, "n", f"SIP/t-{i}", "+1555", "d", now))
        center.handle(CallAnswered(cid, now))
        center.handle(IvrFinished(cid, "n", f"SIP/t-{i}", "+1555", "d", f"q{i % QUEUES}", ("menu",), at=now + i * 0.01))
    kpis = KpiWindow(3600)
    for i in range(FINISHED):
        end = now - 3000 + i * 0.15
        answered = rng.random() < 0.85
        enq = end - 60
        kpis.observe(CallRecord(
            call_id=f"old{i}", node="n", channel="c", did="d", caller="x", arrived_at=enq - 10, ended_at=end,
            disposition="answered" if answered else "abandoned", hangup_cause="normal_clearing",
            hangup_by="caller", enqueued_at=enq, answered_at=enq + rng.uniform(0, 40) if answered else None,
            queue=f"q{i % QUEUES}"))
    return config, center, kpis, now + 20


def timed(fn, repeat: int = 30) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> None:
    config, center, kpis, now = site(random.Random(7))
    api = _Api(center, config, kpis, now)
    baseline = timed(lambda: center.queue_snapshots(now))
    tick = timed(lambda: [queue_out(snap, config, kpis, now).model_dump(mode="json")
                          for snap in center.queue_snapshots(now).values()])
    scrape = timed(lambda: render_metrics(api))
    print(f"{QUEUES} queues, {AGENTS} agents, {WAITING} waiting, {FINISHED} finished calls in the window")
    print(f"baseline  queue_snapshots ({QUEUES}):  {baseline:8.2f} ms  1.00x")
    print(f"tick      queue views, shared:  {tick:8.2f} ms  {tick / baseline:5.2f}x")
    print(f"metrics   one /metrics scrape:  {scrape:8.2f} ms  {scrape / baseline:5.2f}x")


if __name__ == "__main__":
    main()
