"""Batched CDR writer with a durable spool for when Postgres is away.

``submit`` appends to an in-memory list and to the journal (a file, written before ``submit``
returns). A background task writes pending rows every ``flush_interval`` seconds (sooner once
``batch_size`` rows wait), one transaction per batch.
Inserts use ``ON CONFLICT (<id>) DO NOTHING``, so writing a row twice is harmless; that is what
makes the failure handling simple:

* the database cannot be reached (or a write times out): the batch is appended to the spool
  (fsync'd) and the writer keeps going; on each later flush it first replays the spool, oldest
  first, and clears it only after the replayed rows are committed. A crash between a commit and
  the clear replays those rows again, and the conflict clause skips them.
* Postgres refuses a row's data (a CHECK, a bad value): the batch is retried row by row and the
  rows it refuses are moved to ``<spool_dir>/rejected`` (a spool never replayed automatically),
  with an error in the log, so one bad row neither blocks the others nor is lost.

* the ccserver process dies (a crash, an OOM kill, SIGKILL) with rows not yet flushed: they are
  in the journal, and the next start moves them into the spool before anything else, so they
  are replayed like any spooled row. A flush drops the journal's segments once their rows are
  committed or spooled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from ccserver.cdr.record import AgentStateChange, CallRecord, Row
from ccserver.cdr.spool import Spool, SpoolError

log = logging.getLogger(__name__)

PoolSource = asyncpg.Pool | Callable[[], Awaitable[asyncpg.Pool]]

_INSERT_CALL = """
INSERT INTO calls (call_id, node, channel, did, caller, arrived_at, ivr_ended_at, enqueued_at,
    offered_at, answered_at, ended_at, queue, agent_id, talk_seconds, hold_seconds,
    wrapup_seconds, ring_no_answer, disposition, hangup_cause, hangup_by, ivr_path, recording,
    variables, end_estimated)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
    $20, $21, $22, $23, $24)
ON CONFLICT (call_id) DO NOTHING
"""

_INSERT_CHANGE = """
INSERT INTO agent_state_changes (change_id, agent_id, state, previous, reason, call_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (change_id) DO NOTHING
"""

#: Errors that say "this data is wrong" rather than "the database is not there": retrying the same
#: rows later cannot help. (asyncpg's client-side DataError is a ValueError.)
_BAD_DATA = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError)


class CdrWriter:
    """Writes :data:`Row` objects to Postgres in batches, spooling them while it is away.

    ``pool_factory`` is a pool, or an async callable that opens one (called again after a
    failure, so the writer can start while Postgres is down; a pool it opened is closed by
    :meth:`stop`). ``write_timeout`` bounds one batch's write: past it the batch is spooled.
    """

    def __init__(
        self,
        pool_factory: PoolSource,
        spool_dir: Path,
        flush_interval: float = 1.0,
        batch_size: int = 500,
        *,
        write_timeout: float = 10.0,
    ) -> None:
        if isinstance(pool_factory, asyncpg.Pool):
            self._pool: asyncpg.Pool | None = pool_factory
            self._factory: Callable[[], Awaitable[asyncpg.Pool]] | None = None
        else:
            self._pool, self._factory = None, pool_factory
        self._spool = Spool(spool_dir)
        self._journal = Spool(spool_dir, prefix="journal-", sync=False)
        self._rejected_dir = Path(spool_dir) / "rejected"
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._write_timeout = write_timeout
        self._pending: list[Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._down = False  # to log outages once, not on every flush
        #: rows Postgres has committed (including replays of rows it already had)
        self.written = 0
        #: rows Postgres refused; kept under ``<spool_dir>/rejected``
        self.rejected = 0

    @property
    def spool_depth(self) -> int:
        """Rows waiting in the durable spool."""
        return self._spool.depth

    @property
    def pending(self) -> int:
        """Rows submitted and not yet written or spooled."""
        return len(self._pending)

    def submit(self, row: Row) -> None:
        """Queue ``row`` for writing. Never blocks on the database and never raises."""
        if not isinstance(row, Row):
            log.error("CDR writer: ignoring %r, not a CallRecord or AgentStateChange", row)
            return
        if self._stopping and self._task is None:
            # Stopped: nobody will flush any more, so keep the row durably right away.
            log.warning("CDR writer stopped; spooling %s directly", _key(row))
            try:
                self._spool.append([row])
            except Exception:
                log.exception("could not spool %r", row)
            return
        self._pending.append(row)
        try:
            self._journal.append([row])
        except OSError:
            log.exception("cannot journal %s; it is kept in memory until the next flush", _key(row))
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Start the background flush task (replaying any spool left by an earlier run, and
        the journal of a run that died before flushing)."""
        if self._journal.depth:
            log.warning("CDR journal holds %d row(s) from a run that stopped without flushing; "
                        "spooling them for replay", self._journal.depth)
            left = self._journal.seal()
            rows = await asyncio.to_thread(self._journal.read_all)
            await asyncio.to_thread(self._spool.append, rows)
            self._journal.drop(left)
        if self._spool.depth:
            log.info("CDR spool holds %d row(s) from an earlier run; replaying", self._spool.depth)
        self._task = asyncio.create_task(self._run(), name="cdr-writer")

    async def stop(self) -> None:
        """Flush what is pending; whatever cannot be written ends up in the spool."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        # Rows submitted while the final flush ran.
        left = self._journal.seal()
        if await self._spool_rows(self._take_all()):
            self._journal.drop(left)
        self._journal.close()
        if self._factory is not None and self._pool is not None:
            try:
                async with asyncio.timeout(self._write_timeout):
                    await self._pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._pool.terminate()
            self._pool = None
        self._spool.close()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()
        await self._flush()

    async def _flush(self) -> None:
        # The journal's rows up to now are all in pending: once pending has been committed or
        # spooled, their segments can go.
        sealed = self._journal.seal()
        try:
            if self._spool.depth and not await self._replay_or_skip():
                if await self._spool_rows(self._take_all()):
                    self._journal.drop(sealed)
                return
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                if not await self._write(batch):
                    if await self._spool_rows(batch + self._take_all()):
                        self._journal.drop(sealed)
                    return
            self._journal.drop(sealed)
            if self._down:
                self._down = False
                log.warning("CDR database reachable again; spool replayed")
        except Exception:
            # Never let the task die: the rows are in the spool or back in pending.
            log.exception("CDR flush failed; will retry")

    def _take_all(self) -> list[Row]:
        rows, self._pending = self._pending, []
        return rows

    async def _spool_rows(self, rows: list[Row]) -> bool:
        """Spool ``rows`` durably; False (and the rows back in pending) if the disk refuses."""
        if not rows:
            return True
        try:
            await asyncio.to_thread(self._spool.append, rows)
        except OSError:
            log.exception("cannot spool %d CDR row(s); keeping them in memory", len(rows))
            self._pending[0:0] = rows
            return False
        log.debug("spooled %d CDR row(s), spool depth %d", len(rows), self._spool.depth)
        return True

    async def _replay_or_skip(self) -> bool:
        try:
            return await self._replay()
        except SpoolError:
            # Keep writing new rows; the spool stays on disk for an operator to repair.
            log.exception("CDR spool is corrupt and cannot be replayed")
            return True

    async def _replay(self) -> bool:
        """Write the spool, oldest first. False if the database went away meanwhile."""
        rows = await asyncio.to_thread(self._spool.read_all)
        done = 0
        try:
            for i in range(0, len(rows), self._batch_size):
                if not await self._write(rows[i : i + self._batch_size]):
                    return False
                done = min(i + self._batch_size, len(rows))
        finally:
            if done:
                await asyncio.to_thread(self._spool.clear, done)
        if rows:
            log.info("replayed %d CDR row(s) from the spool", len(rows))
        return True

    async def _write(self, rows: Sequence[Row]) -> bool:
        """Commit ``rows``; False if the database is unavailable (nothing is known committed)."""
        try:
            async with asyncio.timeout(self._write_timeout):
                pool = await self._get_pool()
        except Exception as e:
            self._note_down(e)
            return False
        try:
            await self._insert(pool, rows)
        except _BAD_DATA:
            return await self._write_one_by_one(pool, rows)
        except Exception as e:  # unreachable, timed out, restarting, schema missing...
            self._note_down(e)
            return False
        self.written += len(rows)
        return True

    def _note_down(self, e: Exception) -> None:
        if not self._down:
            self._down = True
            log.warning("CDR database unavailable (%r); spooling records to %s until it is back",
                        e, self._spool.directory)

    async def _write_one_by_one(self, pool: asyncpg.Pool, rows: Sequence[Row]) -> bool:
        bad: list[Row] = []
        for row in rows:
            try:
                await self._insert(pool, [row])
            except _BAD_DATA as e:
                log.error("database refused CDR row %s: %s; moved to %s",
                          _key(row), e, self._rejected_dir)
                bad.append(row)
            except Exception as e:
                self._note_down(e)
                return False  # the caller spools the whole batch; replays skip what got in
            else:
                self.written += 1
        if bad:
            await asyncio.to_thread(_set_aside, self._rejected_dir, bad)
            self.rejected += len(bad)
        return True

    async def _insert(self, pool: asyncpg.Pool, rows: Sequence[Row]) -> None:
        calls = [_call_args(r) for r in rows if isinstance(r, CallRecord)]
        changes = [_change_args(r) for r in rows if isinstance(r, AgentStateChange)]
        async with asyncio.timeout(self._write_timeout):
            async with pool.acquire() as conn, conn.transaction():
                if calls:
                    await conn.executemany(_INSERT_CALL, calls)
                if changes:
                    await conn.executemany(_INSERT_CHANGE, changes)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            assert self._factory is not None
            self._pool = await self._factory()
        return self._pool


def _ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _call_args(r: CallRecord) -> tuple:
    return (
        r.call_id, r.node, r.channel, r.did, r.caller, _ts(r.arrived_at), _ts(r.ivr_ended_at),
        _ts(r.enqueued_at), _ts(r.offered_at), _ts(r.answered_at), _ts(r.ended_at), r.queue,
        r.agent_id, r.talk_seconds, r.hold_seconds, r.wrapup_seconds, r.ring_no_answer,
        r.disposition, r.hangup_cause, r.hangup_by, list(r.ivr_path), r.recording,
        json.dumps(r.variables), r.end_estimated,
    )


def _change_args(r: AgentStateChange) -> tuple:
    return (r.change_id, r.agent_id, r.state, r.previous, r.reason, r.call_id, _ts(r.at))


def _key(row: Row) -> str:
    return row.call_id if isinstance(row, CallRecord) else f"agent change {row.change_id}"


def _set_aside(directory: Path, rows: list[Row]) -> None:
    """Append refused rows to the rejected spool and close its file (no descriptor kept open)."""
    spool = Spool(directory)
    try:
        spool.append(rows)
    finally:
        spool.close()
