"""Migrations against a real Postgres, and the embedded server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from pathlib import Path

import asyncpg
import pytest

from ccserver.db.migrate import (
    DEFAULT_DIRECTORY, MigrationError, load_migrations, migrate, migrations_dir, status,
)
from ccserver.db.pool import open_pool


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    """The real initial migration plus two small ones, so edits don't touch the repository."""
    d = tmp_path / "migrations"
    d.mkdir()
    shutil.copy(migrations_dir() / "0001_initial.sql", d)
    (d / "0002_extra.sql").write_text("CREATE TABLE extra (id int PRIMARY KEY);\n")
    (d / "0003_more.sql").write_text("ALTER TABLE extra ADD COLUMN note text;\n")
    return d


def test_migrations_dir_is_the_repository_one() -> None:
    assert DEFAULT_DIRECTORY == Path(__file__).resolve().parents[1] / "migrations"
    assert (DEFAULT_DIRECTORY / "0001_initial.sql").is_file()


async def test_applies_all_in_order_then_nothing(db_dsn: str, mig_dir: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        names = [m.name for m in load_migrations(mig_dir)]
        assert await migrate(conn, mig_dir) == names
        rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations "
                                "ORDER BY version")
        assert [r["name"] for r in rows] == names
        assert [r["version"] for r in rows] == list(range(1, len(names) + 1))
        for r in rows:
            assert r["checksum"] == hashlib.sha256((mig_dir / r["name"]).read_bytes()).hexdigest()
            assert r["applied_at"] is not None
        assert await conn.fetchval("SELECT count(*) FROM information_schema.columns "
                                   "WHERE table_name = 'extra'") == 2
        # Second run: idempotent.
        assert await migrate(conn, mig_dir) == []
        assert {s.state for s in await status(conn, mig_dir)} == {"applied"}
    finally:
        await conn.close()


async def test_initial_schema(db_dsn: str) -> None:
    pool = await open_pool(db_dsn, 1, 2)
    try:
        assert await migrate(pool) == [m.name for m in load_migrations(DEFAULT_DIRECTORY)]
        tables = {r["tablename"] for r in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"calls", "agent_state_changes", "queues", "agents", "queue_agents", "schema_migrations"} <= tables
        assert not {"skills", "agent_skills"} & tables  # 0007: skills come from the configuration only
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO calls (call_id, node, channel, did, caller, arrived_at, ended_at, "
                "disposition, hangup_cause, hangup_by) "
                "VALUES ('x', 'n', 'c', 'd', 'c', now(), now(), 'bogus', '16', 'caller')")
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute("INSERT INTO agents VALUES ('a 1', 'Ann', 'n1', 'PJSIP/1001')")
    finally:
        await pool.close()


async def test_status_pending_then_applied(db_dsn: str, mig_dir: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await status(conn, mig_dir)
        assert {s.state for s in before} == {"pending"}
        await migrate(conn, mig_dir)
        (mig_dir / "0002_extra.sql").write_text("-- edited\n")
        states = {s.name: s.state for s in await status(conn, mig_dir)}
        assert states["0002_extra.sql"] == "changed"
        assert states["0001_initial.sql"] == "applied"
    finally:
        await conn.close()


async def test_edited_applied_migration_is_refused(db_dsn: str, mig_dir: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await migrate(conn, mig_dir)
        path = mig_dir / "0002_extra.sql"
        old = hashlib.sha256(path.read_bytes()).hexdigest()
        path.write_text("CREATE TABLE extra (id bigint PRIMARY KEY);\n")
        new = hashlib.sha256(path.read_bytes()).hexdigest()
        (mig_dir / "0004_after.sql").write_text("CREATE TABLE after_edit (id int);\n")
        with pytest.raises(MigrationError) as e:
            await migrate(conn, mig_dir)
        assert "0002_extra.sql" in str(e.value) and old in str(e.value) and new in str(e.value)
        # Nothing was applied, and the lock was released.
        assert await conn.fetchval("SELECT to_regclass('after_edit')") is None
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND pid = pg_backend_pid()") == 0
    finally:
        await conn.close()


async def test_gap_and_duplicate_and_bad_name_are_refused(db_dsn: str, mig_dir: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        (mig_dir / "0005_gap.sql").write_text("SELECT 1;\n")
        with pytest.raises(MigrationError, match="gap"):
            await migrate(conn, mig_dir)
        (mig_dir / "0005_gap.sql").unlink()
        (mig_dir / "0003_again.sql").write_text("SELECT 1;\n")
        with pytest.raises(MigrationError, match="duplicate migration number 0003"):
            await migrate(conn, mig_dir)
        (mig_dir / "0003_again.sql").unlink()
        (mig_dir / "fix.sql").write_text("SELECT 1;\n")
        with pytest.raises(MigrationError, match="NNNN_name.sql"):
            await migrate(conn, mig_dir)
        # Nothing was applied by the refused runs.
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


async def test_applied_migration_whose_file_is_missing_is_refused(db_dsn: str, mig_dir: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await migrate(conn, mig_dir)
        (mig_dir / "0003_more.sql").unlink()
        with pytest.raises(MigrationError, match="0003_more.sql.*missing"):
            await migrate(conn, mig_dir)
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing(db_dsn: str, mig_dir: Path) -> None:
    (mig_dir / "0004_broken.sql").write_text("CREATE TABLE half (id int);\nSELECT nope;\n")
    conn = await asyncpg.connect(db_dsn)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(conn, mig_dir)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 3
        assert await conn.fetchval("SELECT to_regclass('half')") is None
    finally:
        await conn.close()


async def test_concurrent_migrations_serialize_on_the_lock(
    db_dsn: str, mig_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A slow migration makes sure the two runs overlap.
    (mig_dir / "0004_slow.sql").write_text(
        "SELECT pg_sleep(0.5);\nCREATE TABLE slow_once (id int PRIMARY KEY);\n"
        "INSERT INTO slow_once VALUES (1);\n")
    a, b = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    caplog.set_level(logging.INFO, logger="ccserver.db.migrate")
    try:
        first = asyncio.create_task(migrate(a, mig_dir))
        async with asyncio.timeout(10):  # until `first` holds the lock and sleeps in 0004
            while not await b.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
                    " AND query LIKE '%pg_sleep(0.5)%'", a.get_server_pid()):
                await asyncio.sleep(0.01)
        second = await migrate(b, mig_dir)
        done = await first
        assert len(done) == 4 and second == []
        assert "waiting for its lock" in caplog.text
        assert await a.fetchval("SELECT count(*) FROM schema_migrations") == 4
        assert await a.fetchval("SELECT count(*) FROM slow_once") == 1
        # Truly simultaneous starts as well.
        await a.execute("DROP TABLE schema_migrations, extra, slow_once")
        await a.execute("DROP TABLE calls, agent_state_changes, queue_agents, agent_skills, "
                        "skills, agents, queues")
        results = await asyncio.gather(migrate(a, mig_dir), migrate(b, mig_dir))
        assert sorted(len(r) for r in results) == [0, 4]
    finally:
        await a.close()
        await b.close()


@pytest.mark.skipif(os.name != "posix", reason="pgserver's Unix-socket mode")
async def test_embedded_server_starts_and_migrates(tmp_path: Path) -> None:
    pytest.importorskip("pgserver")
    from ccserver.db.embedded import start_embedded

    state = tmp_path / "state"
    server = await start_embedded(state)
    try:
        assert server.data_dir == (state / "pg").resolve()
        assert (server.data_dir / "PG_VERSION").is_file()
        pool = await open_pool(server.dsn, 1, 2)
        try:
            assert await pool.fetchval("SELECT current_database()") == "ccserver"
            assert (await migrate(pool))[0] == "0001_initial.sql"
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(server.stop)
