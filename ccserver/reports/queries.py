"""The report queries: one SQL statement per report, bucketing with ``date_trunc`` on local time.

A call counts in the period in which it ended (its hang-up, ``ended_at``), so a period's figures
are final once its last calls' records are written (after their wrap-up, or replayed from the
spool). Abandon and service-level rules are the live KPIs'
(:mod:`ccserver.stats.live`). Agent state time is cut at period boundaries: an agent logged in across midnight counts
in both days; the state an agent was in when the range began comes from their last change before
it. Periods are computed on local time and converted back with the zone's rules, so a day that
loses or gains an hour at a DST change is 23 or 25 hours long.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import asyncpg

from ccserver.config import QueueConfig
from ccserver.reports.models import AgentReportRow, QueueReportRow
from ccserver.reports.period import ReportRange

# $1 time zone, $2 period, $3 / $4 first day / day after the range (local), $5 / $6 / $7 queue names,
# their service-level thresholds and abandon graces, $8 / $9 those of queues not listed, $10 only
# these queues (NULL: all)
QUEUE_SQL = """
WITH c AS (
    SELECT date_trunc($2, c.ended_at AT TIME ZONE $1)::date AS period_start, c.queue,
           coalesce(t.sl, $8) AS sl, coalesce(t.grace, $9) AS grace,
           c.answered_at IS NOT NULL AS answered,
           c.disposition = 'abandoned' AND c.answered_at IS NULL AS abandoned,
           extract(epoch FROM c.answered_at - c.enqueued_at)::numeric AS answer_wait,
           extract(epoch FROM c.ended_at - c.enqueued_at)::numeric AS wait_to_end,
           c.talk_seconds + c.hold_seconds + c.wrapup_seconds AS handle
      FROM calls c
      LEFT JOIN unnest($5::text[], $6::int[], $7::float8[]) AS t (queue, sl, grace) ON t.queue = c.queue
     WHERE c.ended_at >= $3::date::timestamp AT TIME ZONE $1
       AND c.ended_at < $4::date::timestamp AT TIME ZONE $1
       AND c.queue IS NOT NULL AND c.enqueued_at IS NOT NULL
       AND ($10::text[] IS NULL OR c.queue = ANY ($10::text[]))
), g AS (
    SELECT period_start, queue, sl, grace, count(*) AS offered,
           count(*) FILTER (WHERE answered) AS answered,
           count(*) FILTER (WHERE answered AND answer_wait <= sl) AS answered_within,
           count(*) FILTER (WHERE abandoned AND wait_to_end >= grace) AS abandoned,
           count(*) FILTER (WHERE abandoned AND wait_to_end < grace) AS short_abandoned,
           avg(answer_wait) FILTER (WHERE answered) AS asa,
           avg(handle) FILTER (WHERE answered) AS aht
      FROM c
     GROUP BY period_start, queue, sl, grace
)
SELECT period_start, queue, sl AS service_level_seconds, grace AS abandon_grace_seconds, offered, answered,
       answered_within AS answered_within_threshold, abandoned, short_abandoned,
       offered - answered - abandoned - short_abandoned AS other,
       round(answered_within::numeric / nullif(answered + abandoned, 0), 4) AS service_level,
       round(abandoned::numeric / nullif(answered + abandoned, 0), 4) AS abandon_rate,
       round(asa, 3) AS asa_seconds, round(aht, 3) AS aht_seconds
  FROM g
 ORDER BY period_start, queue
"""

# $1 time zone, $2 period, $3 / $4 first day / day after the range (local), $5 agents whose state
# at the start of the range is looked up, $6 only these agents (NULL: all), $7 now (state time
# stops there)
AGENT_SQL = """
WITH r AS (
    SELECT $3::date::timestamp AT TIME ZONE $1 AS lo, $4::date::timestamp AT TIME ZONE $1 AS hi
), b AS (
    SELECT s::date AS period_start, s AT TIME ZONE $1 AS lo, (s + p.step) AT TIME ZONE $1 AS hi
      FROM (SELECT ('1 ' || $2)::interval AS step) AS p,
           generate_series($3::date::timestamp, $4::date::timestamp - p.step, p.step) AS s
), changed AS (
    SELECT s.agent_id, s.state, s.at, 1 AS ord, s.change_id
      FROM agent_state_changes s, r
     WHERE s.at >= r.lo AND s.at < r.hi AND ($6::text[] IS NULL OR s.agent_id = ANY ($6::text[]))
), who AS (
    SELECT unnest($5::text[]) AS agent_id
    UNION
    SELECT agent_id FROM changed
), ch AS (
    SELECT agent_id, state, at, ord, change_id FROM changed
    UNION ALL
    -- the state each agent was in when the range began
    SELECT who.agent_id, last.state, r.lo, 0, ''
      FROM who, r, LATERAL (SELECT s.state FROM agent_state_changes s
                             WHERE s.agent_id = who.agent_id AND s.at < r.lo
                             ORDER BY s.at DESC LIMIT 1) AS last
), iv AS (
    SELECT ch.agent_id, ch.state, ch.at AS since,
           coalesce(lead(ch.at) OVER (PARTITION BY ch.agent_id ORDER BY ch.at, ch.ord, ch.change_id),
                    least(r.hi, $7::timestamptz)) AS until
      FROM ch, r
), cut AS (
    SELECT b.period_start, iv.agent_id, iv.state,
           extract(epoch FROM least(iv.until, b.hi) - greatest(iv.since, b.lo))::numeric AS secs
      FROM iv JOIN b ON iv.since < b.hi AND iv.until > b.lo
     WHERE iv.state <> 'logged_out' AND iv.until > iv.since
), st AS (
    SELECT period_start, agent_id, sum(secs) AS logged_in,
           coalesce(sum(secs) FILTER (WHERE state = 'paused'), 0) AS paused,
           coalesce(sum(secs) FILTER (WHERE state IN ('ready', 'offered')), 0) AS available,
           coalesce(sum(secs) FILTER (WHERE state IN ('on_call', 'wrap_up')), 0) AS busy
      FROM cut
     GROUP BY period_start, agent_id
), ca AS (
    SELECT date_trunc($2, c.ended_at AT TIME ZONE $1)::date AS period_start, c.agent_id,
           count(*) AS answered, sum(c.talk_seconds) AS talk, sum(c.hold_seconds) AS hold,
           sum(c.wrapup_seconds) AS wrapup
      FROM calls c, r
     WHERE c.ended_at >= r.lo AND c.ended_at < r.hi AND c.agent_id IS NOT NULL AND c.answered_at IS NOT NULL
       AND ($6::text[] IS NULL OR c.agent_id = ANY ($6::text[]))
     GROUP BY 1, 2
)
SELECT period_start, agent_id, coalesce(ca.answered, 0) AS answered,
       coalesce(ca.talk, 0) AS talk_seconds, coalesce(ca.hold, 0) AS hold_seconds,
       coalesce(ca.wrapup, 0) AS wrapup_seconds,
       round((ca.talk + ca.hold + ca.wrapup) / ca.answered, 3) AS aht_seconds,
       round(coalesce(st.logged_in, 0), 3) AS logged_in_seconds, round(coalesce(st.paused, 0), 3) AS paused_seconds,
       round(coalesce(st.available, 0), 3) AS available_seconds, round(coalesce(st.busy, 0), 3) AS busy_seconds,
       round(st.busy / nullif(st.available + st.busy, 0), 4) AS occupancy
  FROM st FULL JOIN ca USING (period_start, agent_id)
 WHERE st.logged_in > 0 OR ca.answered > 0
 ORDER BY period_start, agent_id
"""


async def queue_report(pool: asyncpg.Pool, tz: str, rng: ReportRange, configured: Sequence[QueueConfig],
                       queues: Collection[str] | None) -> list[QueueReportRow]:
    """One row per period and queue with calls; ``queues`` limits them (None: every queue).
    Each queue is measured with its ``configured`` threshold and abandon grace (a queue no
    longer configured: the defaults)."""
    defaults = QueueConfig.model_fields
    rows = await pool.fetch(QUEUE_SQL, tz, rng.period, rng.start, rng.end, [q.name for q in configured],
                            [q.service_level_seconds for q in configured],
                            [q.abandon_grace_seconds for q in configured],
                            defaults["service_level_seconds"].default, defaults["abandon_grace_seconds"].default,
                            None if queues is None else sorted(queues))
    return [QueueReportRow(**dict(r)) for r in rows]


async def agent_report(pool: asyncpg.Pool, tz: str, rng: ReportRange, now: datetime,
                       agents: Collection[str] | None, known: Collection[str]) -> list[AgentReportRow]:
    """One row per period and agent logged in or with answered calls; ``agents`` limits them
    (None: every agent). An agent logged in all along, with no state change within the range,
    is found among ``agents``, else among ``known`` (the configured / live agents)."""
    candidates = sorted(agents if agents is not None else known)
    rows = await pool.fetch(AGENT_SQL, tz, rng.period, rng.start, rng.end, candidates,
                            None if agents is None else sorted(agents), now)
    return [AgentReportRow(**dict(r)) for r in rows]
