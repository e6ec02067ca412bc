"""The ``recordings`` table (migration 0004) and the call search behind it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg


@dataclass(frozen=True, slots=True)
class Recording:
    """One registered recording."""

    id: int
    call_id: str
    node: str
    #: name under the node's recording root
    file: str
    agent_id: str | None
    queue: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str | None
    #: seconds from the start of the file, (from, to)
    paused_spans: tuple[tuple[float, float], ...]
    paused: bool


@dataclass(frozen=True, slots=True)
class CallSearch:
    """Filters of a call search; None = any. ``agents`` / ``queues`` limit a supervisor's view.

    ``caller`` matches on digits (see :func:`caller_suffix`); the others exactly.
    """

    caller: str | None = None
    did: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    call_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    #: the caller may see only calls of these agents or queues (None: everything, admins)
    agents: frozenset[str] | None = None
    queues: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class FoundCall:
    """A finished call (its CDR row) with its recordings."""

    call_id: str
    node: str
    caller: str
    did: str
    queue: str | None
    agent_id: str | None
    arrived_at: datetime
    ivr_ended_at: datetime | None
    enqueued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime
    disposition: str
    hangup_cause: str
    hangup_by: str
    talk_seconds: float
    hold_seconds: float
    wrapup_seconds: float
    ring_no_answer: int
    ivr_path: tuple[str, ...]
    variables: dict[str, str]
    recordings: tuple[Recording, ...]
    #: ``ended_at`` is the link-down bound of a call that ended unseen (migration 0008)
    end_estimated: bool = False


#: significant digits a caller query needs to match as a suffix; with fewer it matches exactly
MIN_SUFFIX_DIGITS = 6
#: the expression of index calls_caller_digits_reversed (migration 0006), written the same way
_CALLER_DIGITS_REVERSED = """(reverse(regexp_replace(c.caller, '[^0-9]', '', 'g')) COLLATE "C")"""


def caller_suffix(query: str) -> str | None:
    """The digits of a caller query to find as the end of callers' digits, or None: match exactly.

    Separators go, and so do leading zeros (a trunk "0" or an international "00"), so
    "06 12 34 56 78", "0612345678" and "+33612345678" all find "+33612345678". Fewer than
    :data:`MIN_SUFFIX_DIGITS` digits left (an extension, "anonymous") would match too much.
    """
    digits = re.sub(r"[^0-9]", "", query).lstrip("0")
    return digits if len(digits) >= MIN_SUFFIX_DIGITS else None


def search_sql(q: CallSearch) -> tuple[str, list]:
    """The SQL and arguments of ``q``: only the filters given, so each can use its index."""
    where: list[str] = []
    args: list = []

    def arg(value) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.caller is not None:
        suffix = caller_suffix(q.caller)
        if suffix is None:
            where.append(f"c.caller = {arg(q.caller.strip())}")
        else:
            # digits-only strings starting with `rev`: from `rev` up to `rev` + the byte after '9'
            rev = suffix[::-1]
            where.append(f"{_CALLER_DIGITS_REVERSED} >= {arg(rev)}")
            where.append(f"{_CALLER_DIGITS_REVERSED} < {arg(rev + ':')}")
    for column, value in (("did", q.did), ("queue", q.queue), ("agent_id", q.agent_id), ("call_id", q.call_id)):
        if value is not None:
            where.append(f"c.{column} = {arg(value)}")
    if q.since is not None:
        where.append(f"c.arrived_at >= {arg(q.since)}")
    if q.until is not None:
        where.append(f"c.arrived_at < {arg(q.until)}")
    if q.agents is not None:
        agents, queues = arg(sorted(q.agents)), arg(sorted(q.queues or ()))
        where.append(f"(c.agent_id = ANY({agents}) OR c.queue = ANY({queues}))")
    sql = ("SELECT c.* FROM calls c" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY c.arrived_at DESC LIMIT {arg(q.limit)}")
    return sql, args


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a closed file (blocking: run it in a thread)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            size += len(chunk)
            h.update(chunk)
    return size, h.hexdigest()


class RecordingStore:
    """All SQL about recordings, over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def started(self, call_id: str, node: str, file: str, agent_id: str | None,
                      queue: str | None, at: datetime) -> None:
        """Register a recording that just started (a repeated report changes nothing)."""
        await self.pool.execute(
            "INSERT INTO recordings (call_id, node, file, agent_id, queue, started_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, file) DO NOTHING",
            call_id, node, file, agent_id, queue, at)

    async def pause(self, node: str, file: str, at: datetime) -> bool:
        """Mark the recording paused at ``at``; False if unknown, closed or already paused."""
        done = await self.pool.execute(
            "UPDATE recordings SET paused_since = $3 WHERE node = $1 AND file = $2 "
            "AND paused_since IS NULL AND ended_at IS NULL", node, file, at)
        return done != "UPDATE 0"

    async def resume(self, node: str, file: str, at: datetime) -> bool:
        """Close the open paused span at ``at``; False if it was not paused."""
        return await self._close_span(self.pool, node, file, at)

    @staticmethod
    async def _close_span(conn, node: str, file: str, at: datetime) -> bool:
        done = await conn.execute(
            "UPDATE recordings SET paused_since = NULL, paused_spans = paused_spans || "
            "jsonb_build_array(jsonb_build_array("
            "round(extract(epoch FROM paused_since - started_at)::numeric, 3), "
            "round(extract(epoch FROM $3 - started_at)::numeric, 3))) "
            "WHERE node = $1 AND file = $2 AND paused_since IS NOT NULL", node, file, at)
        return done != "UPDATE 0"

    async def closed(self, node: str, file: str, at: datetime, size: int | None,
                     sha256: str | None) -> bool:
        """The file is closed: end time, duration, size and checksum (None: file unreadable)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._close_span(conn, node, file, at)  # a hang-up while paused ends the span
            done = await conn.execute(
                "UPDATE recordings SET ended_at = $3, duration_seconds = "
                "greatest(0, extract(epoch FROM $3 - started_at)), size_bytes = $4, sha256 = $5 "
                "WHERE node = $1 AND file = $2 AND ended_at IS NULL", node, file, at, size, sha256)
        return done != "UPDATE 0"

    async def get(self, recording_id: int) -> Recording | None:
        row = await self.pool.fetchrow("SELECT * FROM recordings WHERE id = $1", recording_id)
        return _recording(row) if row else None

    async def of_call(self, call_id: str) -> list[Recording]:
        rows = await self.pool.fetch("SELECT * FROM recordings WHERE call_id = $1 ORDER BY id", call_id)
        return [_recording(r) for r in rows]

    async def search(self, q: CallSearch) -> list[FoundCall]:
        """Finished calls matching ``q``, newest first, with their recordings."""
        sql, args = search_sql(q)
        rows = await self.pool.fetch(sql, *args)
        recs: dict[str, list[Recording]] = {}
        if rows:
            for r in await self.pool.fetch("SELECT * FROM recordings WHERE call_id = ANY($1) ORDER BY id",
                                           [r["call_id"] for r in rows]):
                recs.setdefault(r["call_id"], []).append(_recording(r))
        return [_found_call(r, tuple(recs.get(r["call_id"], ()))) for r in rows]

    async def open_of_call(self, call_id: str) -> list[Recording]:
        """The recordings of ``call_id`` not closed yet."""
        rows = await self.pool.fetch("SELECT * FROM recordings WHERE call_id = $1 AND ended_at IS NULL "
                                     "ORDER BY id", call_id)
        return [_recording(r) for r in rows]

    async def played_within(self, user_id: int, recording_id: int, window: timedelta) -> bool:
        """Whether the audit log has ``user_id`` playing ``recording_id`` within the last ``window``."""
        return await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit_log WHERE user_id = $1 AND at >= clock_timestamp() - $3::interval "
            "AND action = 'recording.play' AND target = $2)", user_id, str(recording_id), window)

    async def older_than(self, cutoff: datetime) -> list[Recording]:
        """Recordings started before ``cutoff`` (retention candidates), oldest first."""
        rows = await self.pool.fetch("SELECT * FROM recordings WHERE started_at < $1 ORDER BY started_at",
                                     cutoff)
        return [_recording(r) for r in rows]

    async def delete(self, recording_id: int) -> None:
        await self.pool.execute("DELETE FROM recordings WHERE id = $1", recording_id)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _found_call(row: asyncpg.Record, recordings: tuple[Recording, ...]) -> FoundCall:
    return FoundCall(
        row["call_id"], row["node"], row["caller"], row["did"], row["queue"], row["agent_id"], row["arrived_at"],
        row["ivr_ended_at"], row["enqueued_at"], row["answered_at"], row["ended_at"], row["disposition"],
        row["hangup_cause"], row["hangup_by"], float(row["talk_seconds"]), float(row["hold_seconds"]),
        float(row["wrapup_seconds"]), row["ring_no_answer"], tuple(row["ivr_path"]), _json(row["variables"]),
        recordings, row["end_estimated"],
    )


def _recording(row: asyncpg.Record) -> Recording:
    spans = _json(row["paused_spans"])
    return Recording(
        row["id"], row["call_id"], row["node"], row["file"], row["agent_id"], row["queue"], row["started_at"],
        row["ended_at"], None if row["duration_seconds"] is None else float(row["duration_seconds"]),
        row["size_bytes"], row["sha256"], tuple((float(a), float(b)) for a, b in spans),
        row["paused_since"] is not None,
    )
