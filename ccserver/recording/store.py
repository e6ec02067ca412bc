"""The ``recordings`` table (migration 0004) and the call search behind it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
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
    """Filters of a call search; None = any. ``agents`` / ``queues`` limit a supervisor's view."""

    caller: str | None = None
    did: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    #: the caller may see only calls of these agents or queues (None: everything, admins)
    agents: frozenset[str] | None = None
    queues: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class FoundCall:
    """A finished call from the search, with its recordings."""

    call_id: str
    caller: str
    did: str
    queue: str | None
    agent_id: str | None
    arrived_at: datetime
    ended_at: datetime
    disposition: str
    talk_seconds: float
    recordings: tuple[Recording, ...]


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
        rows = await self.pool.fetch(
            "SELECT c.call_id, c.caller, c.did, c.queue, c.agent_id, c.arrived_at, c.ended_at, "
            "c.disposition, c.talk_seconds FROM calls c "
            "WHERE ($1::text IS NULL OR c.caller = $1) AND ($2::text IS NULL OR c.did = $2) "
            "AND ($3::text IS NULL OR c.queue = $3) AND ($4::text IS NULL OR c.agent_id = $4) "
            "AND ($5::timestamptz IS NULL OR c.arrived_at >= $5) "
            "AND ($6::timestamptz IS NULL OR c.arrived_at < $6) "
            "AND ($7::text[] IS NULL OR c.agent_id = ANY($7) OR c.queue = ANY($8)) "
            "ORDER BY c.arrived_at DESC LIMIT $9",
            q.caller, q.did, q.queue, q.agent_id, q.since, q.until,
            None if q.agents is None else sorted(q.agents),
            None if q.queues is None else sorted(q.queues), q.limit)
        recs: dict[str, list[Recording]] = {}
        if rows:
            for r in await self.pool.fetch("SELECT * FROM recordings WHERE call_id = ANY($1) ORDER BY id",
                                           [r["call_id"] for r in rows]):
                recs.setdefault(r["call_id"], []).append(_recording(r))
        return [FoundCall(r["call_id"], r["caller"], r["did"], r["queue"], r["agent_id"], r["arrived_at"],
                          r["ended_at"], r["disposition"], float(r["talk_seconds"]),
                          tuple(recs.get(r["call_id"], ()))) for r in rows]

    async def older_than(self, cutoff: datetime) -> list[Recording]:
        """Recordings started before ``cutoff`` (retention candidates), oldest first."""
        rows = await self.pool.fetch("SELECT * FROM recordings WHERE started_at < $1 ORDER BY started_at",
                                     cutoff)
        return [_recording(r) for r in rows]

    async def delete(self, recording_id: int) -> None:
        await self.pool.execute("DELETE FROM recordings WHERE id = $1", recording_id)


def _recording(row: asyncpg.Record) -> Recording:
    spans = json.loads(row["paused_spans"]) if isinstance(row["paused_spans"], str) else row["paused_spans"]
    return Recording(
        row["id"], row["call_id"], row["node"], row["file"], row["agent_id"], row["queue"], row["started_at"],
        row["ended_at"], None if row["duration_seconds"] is None else float(row["duration_seconds"]),
        row["size_bytes"], row["sha256"], tuple((float(a), float(b)) for a, b in spans),
        row["paused_since"] is not None,
    )
