"""The live KPI window rebuilt from Postgres at start, so a restart does not blank the figures.

The ``calls`` rows of the last window hold every fact the window counts (answer, abandon, end
of wrap-up, see :mod:`ccserver.stats.live`), so replaying them gives the figures the previous
run showed for its finished calls.
"""

from __future__ import annotations

import json

import asyncpg

from ccserver.cdr.record import CallRecord
from ccserver.stats.live import KpiWindow

#: the longest wrap-up a queue may configure (QueueConfig.wrapup_seconds): a call that ended
#: this long before the window can still have finished its wrap-up inside it
MAX_WRAPUP_SECONDS = 3600.0

# A call counts in the window when its wrap-up ends in it (its answer and abandon come no later).
# The lower bound on ended_at alone lets calls_ended_at serve the scan.
_WINDOW_CALLS = """
SELECT call_id, node, channel, did, caller, arrived_at, ivr_ended_at, enqueued_at, offered_at,
       answered_at, ended_at, queue, agent_id, talk_seconds, hold_seconds, wrapup_seconds,
       ring_no_answer, disposition, hangup_cause, hangup_by, ivr_path, recording, variables
FROM calls
WHERE queue IS NOT NULL AND enqueued_at IS NOT NULL
  AND ended_at >= to_timestamp($1)
  AND ended_at + make_interval(secs => wrapup_seconds::double precision) >= to_timestamp($2)
ORDER BY ended_at + make_interval(secs => wrapup_seconds::double precision), call_id
"""


async def rebuild_window(pool: asyncpg.Pool, window_seconds: float, now: float) -> KpiWindow:
    """A :class:`KpiWindow` holding the queued calls of the ``window_seconds`` before ``now``."""
    window = KpiWindow(window_seconds)
    start = now - window_seconds
    for row in await pool.fetch(_WINDOW_CALLS, start - MAX_WRAPUP_SECONDS, start):
        window.observe(_record(row))
    return window


def _record(row: asyncpg.Record) -> CallRecord:
    """A ``calls`` row as the record the core wrote."""
    def epoch(column: str) -> float | None:
        return None if row[column] is None else row[column].timestamp()

    return CallRecord(
        call_id=row["call_id"], node=row["node"], channel=row["channel"], did=row["did"],
        caller=row["caller"], arrived_at=row["arrived_at"].timestamp(),
        ended_at=row["ended_at"].timestamp(), disposition=row["disposition"],
        hangup_cause=row["hangup_cause"], hangup_by=row["hangup_by"],
        ivr_ended_at=epoch("ivr_ended_at"), enqueued_at=epoch("enqueued_at"),
        offered_at=epoch("offered_at"), answered_at=epoch("answered_at"), queue=row["queue"],
        agent_id=row["agent_id"], talk_seconds=float(row["talk_seconds"]),
        hold_seconds=float(row["hold_seconds"]), wrapup_seconds=float(row["wrapup_seconds"]),
        ring_no_answer=row["ring_no_answer"], ivr_path=tuple(row["ivr_path"]),
        recording=row["recording"], variables=json.loads(row["variables"]),
    )
