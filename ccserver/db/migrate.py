"""Plain-SQL schema migrations, applied in order under a Postgres advisory lock.

Migrations are files named ``NNNN_name.sql`` (``0001_initial.sql``, ``0002_...``) numbered from 1
without gaps. Each one runs in its own transaction together with its row in
``schema_migrations`` (version, name, sha256 checksum, applied_at), so a failed migration leaves
nothing behind. A migration that was applied and whose file changed since is refused: the fix is
a new migration, never an edit.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import asyncpg

log = logging.getLogger(__name__)

#: ``migrations/`` at the repository root, for a source checkout or an editable install
#: (``ccserver/db/migrate.py`` -> ``../../migrations``). Callers can always pass a directory.
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "migrations"

#: Session advisory lock key held while migrating ("ccmigrat" as a big-endian int64), so two
#: ccserver processes starting together apply each migration once. Not used for anything else.
LOCK_KEY = int.from_bytes(b"ccmigrat", "big", signed=True)

_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migrations directory or the database's migration history is inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str  #: the file name, e.g. ``0001_initial.sql``
    path: Path
    checksum: str  #: sha256 of the file's bytes, hex

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A migration as seen by :func:`status`."""

    version: int
    name: str
    state: Literal["applied", "pending", "changed", "file missing"]
    applied_at: datetime | None

    def __str__(self) -> str:
        when = f"  {self.applied_at:%Y-%m-%d %H:%M:%S%z}" if self.applied_at else ""
        return f"{self.name:<40} {self.state}{when}"


def migrations_dir() -> Path:
    """The migrations directory of this checkout; raises :class:`MigrationError` if absent."""
    if not DEFAULT_DIRECTORY.is_dir():
        raise MigrationError(
            f"no migrations directory at {DEFAULT_DIRECTORY} (ccserver is not installed from a "
            "source checkout); pass the directory explicitly"
        )
    return DEFAULT_DIRECTORY


def load_migrations(directory: Path) -> list[Migration]:
    """Read and check the migration files of ``directory``, ordered by version.

    Raises :class:`MigrationError` on a badly named ``.sql`` file, a duplicate number or a gap.
    """
    by_version: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"{path}: migration files must be named NNNN_name.sql")
        version = int(m.group(1))
        if version in by_version:
            raise MigrationError(
                f"duplicate migration number {version:04d}: {by_version[version].name} and {path.name}"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        by_version[version] = Migration(version, path.name, path, checksum)
    migrations = [by_version[v] for v in sorted(by_version)]
    for expected, mig in enumerate(migrations, start=1):
        if mig.version != expected:
            raise MigrationError(
                f"gap in migration numbers: {mig.name} follows version {expected - 1:04d}, "
                f"expected {expected:04d}"
            )
    return migrations


async def migrate(
    conn_or_pool: asyncpg.Connection | asyncpg.Pool, directory: Path | None = None
) -> list[str]:
    """Apply the pending migrations of ``directory`` (default: :func:`migrations_dir`).

    Returns the names of the migrations applied by this call (empty when up to date). Raises
    :class:`MigrationError` when an applied migration's file changed or is missing, or when the
    directory has a gap or a duplicate number; nothing is applied then.
    """
    migrations = load_migrations(directory or migrations_dir())
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate(conn, migrations)
    return await _migrate(conn_or_pool, migrations)


async def status(
    conn_or_pool: asyncpg.Connection | asyncpg.Pool, directory: Path | None = None
) -> list[MigrationStatus]:
    """Each migration's state, by version: applied, pending, changed (file edited after being
    applied) or file missing (applied, but no longer in ``directory``). Changes nothing."""
    migrations = load_migrations(directory or migrations_dir())
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            applied = await _applied(conn)
    else:
        applied = await _applied(conn_or_pool)
    files = {m.version: m for m in migrations}
    out: list[MigrationStatus] = []
    for version in sorted(files.keys() | applied.keys()):
        mig, row = files.get(version), applied.get(version)
        if row is None:
            assert mig is not None
            out.append(MigrationStatus(version, mig.name, "pending", None))
        elif mig is None:
            out.append(MigrationStatus(version, row["name"], "file missing", row["applied_at"]))
        else:
            state = "applied" if row["checksum"] == mig.checksum else "changed"
            out.append(MigrationStatus(version, mig.name, state, row["applied_at"]))
    return out


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {r["version"]: r for r in rows}


async def _migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        log.info("another process is migrating this database; waiting for its lock")
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        # Read the history only once the lock is held: whoever held it before may have applied some.
        applied = await _applied(conn)
        _check_history(migrations, applied)
        done: list[str] = []
        for mig in migrations:
            if mig.version in applied:
                continue
            log.info("applying migration %s", mig.name)
            async with conn.transaction():
                await conn.execute(mig.sql())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version, mig.name, mig.checksum,
                )
            done.append(mig.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


def _check_history(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    files = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        mig = files.get(version)
        if mig is None:
            raise MigrationError(
                f"migration {row['name']} is applied in the database but its file is missing "
                "(is this ccserver older than the database?)"
            )
        if mig.checksum != row["checksum"]:
            raise MigrationError(
                f"{mig.path} was changed after being applied: checksum when applied "
                f"{row['checksum']}, file now {mig.checksum}; add a new migration instead of "
                "editing an applied one"
            )
