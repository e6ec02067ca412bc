"""The CDR writer and its spool, against a real Postgres (through a cuttable TCP proxy)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from ccserver.cdr.record import AgentStateChange, CallRecord, Row
from ccserver.cdr.spool import Spool, SpoolError
from ccserver.cdr.writer import CdrWriter
from ccserver.db.migrate import migrate
from ccserver.db.pool import open_pool
from pgproxy import PgProxy  # tests/ is on sys.path (no tests/__init__.py)

T0 = 1_700_000_000.0


def call(i: int, **kw) -> CallRecord:
    base = dict(
        call_id=f"n1:{T0 + i:.1f}", node="n1", channel=f"PJSIP/trunk-{i:08x}", did="5000",
        caller=f"+3312345{i:04d}", arrived_at=T0 + i, ended_at=T0 + i + 60.5,
        disposition="answered", hangup_cause="16", hangup_by="caller", enqueued_at=T0 + i + 5,
        answered_at=T0 + i + 12.25, queue="support", agent_id="a1", talk_seconds=48.25,
        ivr_path=("menu", "1"), variables={"lang": "fr"},
    )
    base.update(kw)
    return CallRecord(**base)


def change(i: int) -> AgentStateChange:
    return AgentStateChange(change_id=f"chg-{i}", agent_id="a1", state="on_call",
                            previous="offered", at=T0 + i, call_id=f"n1:{T0 + i:.1f}")


def rows(n: int) -> list[Row]:
    """``n`` rows, one agent change for every four calls."""
    return [change(i) if i % 5 == 4 else call(i) for i in range(n)]


@pytest.fixture
async def cdr_dsn(db_dsn: str) -> str:
    conn = await asyncpg.connect(db_dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return db_dsn


@pytest.fixture
async def db(cdr_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(cdr_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def proxy(cdr_dsn: str) -> AsyncIterator[PgProxy]:
    p = PgProxy(cdr_dsn)
    await p.start()
    yield p
    await p.close()


def factory(dsn: str) -> Callable[[], Awaitable[asyncpg.Pool]]:
    return lambda: open_pool(dsn, 1, 4)


async def ids_in_db(db: asyncpg.Connection) -> list[str]:
    return [r[0] for r in await db.fetch(
        "SELECT call_id FROM calls UNION ALL SELECT change_id FROM agent_state_changes")]


def ids_of(rs: list[Row]) -> list[str]:
    return [r.call_id if isinstance(r, CallRecord) else r.change_id for r in rs]


async def until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Wait for ``pred``; returns the seconds it took."""
    start = time.monotonic()
    while not await pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def count(db: asyncpg.Connection) -> int:
    return await db.fetchval(
        "SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM agent_state_changes)")


async def test_rows_appear_within_a_second(cdr_dsn: str, db: asyncpg.Connection,
                                           tmp_path: Path) -> None:
    w = CdrWriter(factory(cdr_dsn), tmp_path / "spool")
    await w.start()
    try:
        w.submit(call(1))
        w.submit(change(1))
        took = await until(lambda: _eq(count(db), 2), 2.0, "2 rows")
        assert took < 1.3
        r = await db.fetchrow("SELECT * FROM calls")
        assert r["call_id"] == call(1).call_id
        assert r["arrived_at"] == datetime.fromtimestamp(T0 + 1, UTC)
        assert r["answered_at"] == datetime.fromtimestamp(T0 + 13.25, UTC)
        assert r["offered_at"] is None
        assert r["talk_seconds"] == Decimal("48.250")
        assert r["ivr_path"] == ["menu", "1"]
        assert json.loads(r["variables"]) == {"lang": "fr"}
        c = await db.fetchrow("SELECT * FROM agent_state_changes")
        assert (c["state"], c["previous"], c["reason"]) == ("on_call", "offered", None)
        assert w.written == 2 and w.spool_depth == 0
    finally:
        await w.stop()


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_batch_size_flushes_before_the_interval(cdr_dsn: str, db: asyncpg.Connection,
                                                      tmp_path: Path) -> None:
    w = CdrWriter(factory(cdr_dsn), tmp_path / "spool", flush_interval=2.0, batch_size=100)
    await w.start()
    try:
        for r in rows(99):
            w.submit(r)
        # 99 rows are no batch: they wait for the interval's flush
        took = await until(lambda: _eq(count(db), 99), 10.0, "the interval's flush")
        assert took >= 1.5
        for r in rows(199)[99:]:  # a full batch wakes the writer long before the next interval
            w.submit(r)
        await until(lambda: _eq(count(db), 199), 1.0, "a full batch")
        for r in rows(449)[199:]:
            w.submit(r)
        await until(lambda: _eq(count(db), 449), 1.0, "two more batches")
    finally:
        await w.stop()
    # One transaction per batch of at most batch_size rows: 99, 100, then 100 + 100 + 50.
    sizes = await db.fetch(
        "SELECT count(*) AS n FROM (SELECT xmin::text AS x FROM calls UNION ALL "
        "SELECT xmin::text FROM agent_state_changes) t GROUP BY x ORDER BY n DESC")
    assert [r["n"] for r in sizes] == [100, 100, 100, 99, 50]
    assert w.written == 449


async def test_load_with_database_cut_in_the_middle(
    proxy: PgProxy, db: asyncpg.Connection, tmp_path: Path
) -> None:
    load = rows(2000)
    w = CdrWriter(factory(proxy.dsn), tmp_path / "spool", flush_interval=0.2, batch_size=200)
    await w.start()
    try:
        for i in range(0, 2000, 50):
            if i == 600:
                await proxy.cut()
                during_cut = await count(db)
            if i == 1500:
                # Everything submitted during the cut went to the durable spool.
                await until(lambda: _true(w.spool_depth >= 800), 3.0, "spooling")
                assert await count(db) == during_cut
                await proxy.restore()
            for r in load[i : i + 50]:
                w.submit(r)
            await asyncio.sleep(0.01)
        await until(lambda: _eq(count(db), 2000), 10.0, "all 2000 rows")
        await until(lambda: _true(w.spool_depth == 0 and w.pending == 0), 2.0, "empty spool")
    finally:
        await w.stop()
    got = await ids_in_db(db)
    assert sorted(got) == sorted(ids_of(load)) and len(set(got)) == 2000
    assert w.written >= 2000 and w.spool_depth == 0
    assert Spool(tmp_path / "spool").depth == 0


async def _true(v: bool) -> bool:
    return v


async def test_starts_while_database_is_down(proxy: PgProxy, db: asyncpg.Connection,
                                             tmp_path: Path) -> None:
    await proxy.cut()
    w = CdrWriter(factory(proxy.dsn), tmp_path / "spool", flush_interval=0.1)
    await w.start()
    try:
        for r in rows(20):
            w.submit(r)
        await until(lambda: _true(w.spool_depth == 20), 3.0, "spooled rows")
        await proxy.restore()
        await until(lambda: _eq(count(db), 20), 3.0, "replayed rows")
        assert w.spool_depth == 0
    finally:
        await w.stop()


async def test_stop_while_database_is_down_spools_everything(
    proxy: PgProxy, db: asyncpg.Connection, tmp_path: Path
) -> None:
    w = CdrWriter(factory(proxy.dsn), tmp_path / "spool", flush_interval=30)
    await w.start()
    for r in rows(30):
        w.submit(r)
    await proxy.cut()
    await w.stop()
    assert w.spool_depth == 30 and await count(db) == 0
    w.submit(call(99))  # after stop: straight to the spool
    assert Spool(tmp_path / "spool").depth == 31


async def test_crash_before_replay_then_new_writer(
    proxy: PgProxy, db: asyncpg.Connection, tmp_path: Path
) -> None:
    load = rows(300)
    w1 = CdrWriter(factory(proxy.dsn), tmp_path / "spool", flush_interval=0.1)
    await w1.start()
    for r in load[:100]:
        w1.submit(r)
    await until(lambda: _eq(count(db), 100), 3.0, "first rows")
    await proxy.cut()
    for r in load[100:]:
        w1.submit(r)
    await until(lambda: _true(w1.spool_depth == 200), 3.0, "spooled rows")
    # Crash: the process dies with the rows only in the spool.
    assert w1._task is not None and w1._pool is not None
    w1._task.cancel()
    w1._pool.terminate()
    await proxy.restore()

    w2 = CdrWriter(factory(proxy.dsn), tmp_path / "spool", flush_interval=0.1)
    assert w2.spool_depth == 200
    await w2.start()
    try:
        await until(lambda: _eq(count(db), 300), 3.0, "replayed rows")
        await until(lambda: _true(w2.spool_depth == 0), 2.0, "empty spool")
    finally:
        await w2.stop()
    assert sorted(await ids_in_db(db)) == sorted(ids_of(load))


async def test_crash_after_commit_before_spool_clear(cdr_dsn: str, db: asyncpg.Connection,
                                                     tmp_path: Path) -> None:
    load = rows(300)
    w1 = CdrWriter(factory(cdr_dsn), tmp_path / "spool")
    await w1.start()
    for r in load[:100]:
        w1.submit(r)
    await w1.stop()
    # As if a replay had committed load[:100] and the process died before clearing the spool.
    Spool(tmp_path / "spool").append(load)

    w2 = CdrWriter(factory(cdr_dsn), tmp_path / "spool", flush_interval=0.1)
    assert w2.spool_depth == 300
    await w2.start()
    try:
        await until(lambda: _true(w2.spool_depth == 0), 3.0, "empty spool")
    finally:
        await w2.stop()
    got = await ids_in_db(db)
    assert sorted(got) == sorted(ids_of(load)) and len(got) == 300


async def test_torn_last_spool_line_is_skipped(
    cdr_dsn: str, db: asyncpg.Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "spool"
    s = Spool(spool_dir)
    s.append(rows(10))
    s.close()
    (segment,) = spool_dir.glob("spool-*.jsonl")
    with open(segment, "ab") as f:
        f.write(b'{"kind":"call","call_id":"n1:torn","node":"n')  # crash mid-append
    w = CdrWriter(factory(cdr_dsn), spool_dir, flush_interval=0.1)
    assert w.spool_depth == 10
    assert "torn last line" in caplog.text and segment.name in caplog.text
    await w.start()
    try:
        await until(lambda: _eq(count(db), 10), 3.0, "replayed rows")
        await until(lambda: _true(w.spool_depth == 0), 2.0, "empty spool")
    finally:
        await w.stop()
    assert not list(spool_dir.glob("spool-*.jsonl"))


async def test_refused_row_is_set_aside_and_the_rest_written(
    cdr_dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    w = CdrWriter(factory(cdr_dsn), tmp_path / "spool", flush_interval=0.1)
    await w.start()
    bad = call(5, disposition="bogus")
    try:
        for r in [*rows(5), bad, *[call(i) for i in range(6, 10)]]:
            w.submit(r)
        await until(lambda: _true(w.rejected == 1), 3.0, "the rejected row")
    finally:
        await w.stop()
    assert await count(db) == 9 and w.written == 9 and w.spool_depth == 0
    assert Spool(tmp_path / "spool" / "rejected").read_all() == [bad]


def test_spool_clear_across_segments(tmp_path: Path) -> None:
    load = rows(50)
    s = Spool(tmp_path, segment_bytes=2000)
    for i in range(0, 50, 5):
        s.append(load[i : i + 5])
    assert len(list(tmp_path.glob("spool-*.jsonl"))) > 2
    assert s.read_all() == load and s.depth == 50
    s.clear(17)  # ends inside a segment: that segment is rewritten
    assert s.read_all() == load[17:] and s.depth == 33
    s.append([call(99)])
    assert Spool(tmp_path).read_all() == [*load[17:], call(99)]
    s.clear(34)
    assert s.depth == 0 and not list(tmp_path.glob("spool-*"))


def test_spool_refuses_a_corrupt_middle_line(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.append(rows(3))
    (segment,) = tmp_path.glob("spool-*.jsonl")
    lines = segment.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(SpoolError, match="line 2"):
        Spool(tmp_path)


def test_each_spool_object_appends_to_its_own_segment(tmp_path: Path) -> None:
    # So a torn line left by a crashed process is never glued to a later row.
    Spool(tmp_path).append(rows(2))
    Spool(tmp_path).append(rows(2))
    assert len(list(tmp_path.glob("spool-*.jsonl"))) == 2


def test_submit_never_raises_on_junk(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    w = CdrWriter(factory("postgresql://nobody@127.0.0.1:1/x"), tmp_path / "spool")
    w.submit("not a row")  # type: ignore[arg-type]
    assert w.pending == 0 and "ignoring" in caplog.text


async def test_load_while_the_database_server_is_stopped_and_restarted(tmp_path: Path) -> None:
    """Not a network cut: the Postgres server process itself stops mid-load and starts again."""
    from ccserver.db.embedded import start_embedded

    pg = await start_embedded(tmp_path / "state")
    pool = await open_pool(pg.dsn, 1, 2)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    load = rows(1000)
    w = CdrWriter(factory(pg.dsn), tmp_path / "spool", flush_interval=0.2, batch_size=100)
    await w.start()
    try:
        for i in range(0, 1000, 50):
            if i == 300:
                await asyncio.to_thread(pg.stop)
                with pytest.raises(OSError):  # really down, not just unreachable
                    await asyncpg.connect(pg.dsn, timeout=2)
            if i == 700:
                await until(lambda: _true(w.spool_depth > 0), 5.0, "spooling while stopped")
                pg = await start_embedded(tmp_path / "state")
            for r in load[i : i + 50]:
                w.submit(r)
            await asyncio.sleep(0.02)
        conn = await asyncpg.connect(pg.dsn)
        try:
            await until(lambda: _eq(count(conn), 1000), 20.0, "all 1000 rows")
            await until(lambda: _true(w.spool_depth == 0 and w.pending == 0), 5.0, "empty spool")
            got = await ids_in_db(conn)
        finally:
            await conn.close()
    finally:
        await w.stop()
        await asyncio.to_thread(pg.stop)
    assert sorted(got) == sorted(ids_of(load)) and len(set(got)) == 1000


_CHILD = """
import asyncio, sys
from ccserver.cdr.record import CallRecord
from ccserver.cdr.writer import CdrWriter
from ccserver.db.pool import open_pool

async def main(dsn, spool, n):
    w = CdrWriter(lambda: open_pool(dsn, 1, 2), spool, flush_interval=3600)
    await w.start()
    for i in range(n):
        w.submit(CallRecord(call_id=f"killed:{i}", node="n1", channel="PJSIP/t", did="5000", caller="+331",
                            arrived_at=1.7e9 + i, ended_at=1.7e9 + i + 30, disposition="abandoned",
                            hangup_cause="normal_clearing", hangup_by="caller"))
    print("submitted", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_rows_of_a_process_killed_before_its_flush_reach_postgres_at_the_next_start(
    cdr_dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """SIGKILL (an OOM kill, a crash) while rows wait for the next flush: the journal has them."""
    import signal
    import sys

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, cdr_dsn, str(tmp_path / "spool"), "40", stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        async with asyncio.timeout(30):
            assert await child.stdout.readline() == b"submitted\n"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert await count(db) == 0  # it never flushed

    w = CdrWriter(factory(cdr_dsn), tmp_path / "spool", flush_interval=0.1)
    await w.start()
    try:
        await until(lambda: _eq(count(db), 40), 5.0, "the killed process's rows")
        await until(lambda: _true(w.spool_depth == 0), 2.0, "empty spool")
    finally:
        await w.stop()
    assert sorted(await ids_in_db(db)) == sorted(f"killed:{i}" for i in range(40))
    assert not list((tmp_path / "spool").glob("journal-*"))  # nothing left to replay twice


async def test_the_journal_is_emptied_as_rows_are_written(cdr_dsn: str, db: asyncpg.Connection,
                                                         tmp_path: Path) -> None:
    w = CdrWriter(factory(cdr_dsn), tmp_path / "spool", flush_interval=0.05)
    await w.start()
    try:
        for r in rows(25):
            w.submit(r)
        assert Spool(tmp_path / "spool", prefix="journal-").depth == 25  # on disk before any flush
        await until(lambda: _eq(count(db), 25), 3.0, "rows written")
        await until(lambda: _true(Spool(tmp_path / "spool", prefix="journal-").depth == 0), 2.0,
                    "journal emptied")
    finally:
        await w.stop()
