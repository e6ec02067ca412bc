"""Shared fixtures.

Database fixtures: ``pg_dsn`` (session) is an admin DSN for a real Postgres: ``CCSERVER_TEST_DSN``,
else the local server on 127.0.0.1:5432 if it answers, else an embedded pgserver started for the
session. ``db_dsn`` gives each test its own freshly created, empty database and drops it after.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _run(coro):
    """Run a coroutine to completion from sync code, outside pytest-asyncio's loops."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server."""
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + database, p.query, p.fragment))


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin DSN of the Postgres the tests use (see the module docstring)."""
    if os.environ.get("CCSERVER_TEST_DSN"):
        yield os.environ["CCSERVER_TEST_DSN"]
        return
    if _run(_reachable(LOCAL_DSN)):
        yield LOCAL_DSN
        return
    from ccserver.db.embedded import start_embedded

    server = _run(start_embedded(tmp_path_factory.mktemp("embedded-pg"), database="test"))
    yield server.dsn
    server.stop()


@pytest.fixture
async def db_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a new empty database, dropped (its connections terminated) after the test."""
    name = f"ccs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(pg_dsn, name)
    admin = await asyncpg.connect(pg_dsn)
    try:
        # WITH (FORCE) terminates the database's remaining backends first (Postgres 13+).
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

