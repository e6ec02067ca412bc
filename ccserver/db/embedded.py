"""An embedded PostgreSQL (the ``pgserver`` wheel) for when no database DSN is configured.

Meant for demos and single-box installs; production sets ``database.dsn``. The data directory is
``<state_dir>/pg``; the server listens on a Unix socket only and stops when the last process
using it exits.

Running as root, pgserver 0.1.4 runs Postgres as a system user ``pgserver`` (created with
``useradd`` if missing), chowns the data directory to it and adds read+execute for group and
others on every parent directory of the data directory, up to ``/``. We narrow that back to
execute-only (traverse, no listing) on the parents whose mode it changed, and say so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """A running embedded server."""

    data_dir: Path
    dsn: str  #: socket-based DSN of the ccserver database
    _server: Any = field(repr=False, compare=False)

    def stop(self) -> None:
        """Stop the server if this process holds its last handle (blocking, a second or so).

        Without a call to ``stop`` the server stops when the process exits.
        """
        self._server.cleanup()


async def start_embedded(state_dir: Path, database: str = "ccserver") -> EmbeddedPostgres:
    """Start (or join) the embedded Postgres under ``state_dir/pg`` and ensure ``database`` exists.

    Blocking work (initdb, pg_ctl) runs in a thread so the event loop keeps going.
    """
    data_dir = (Path(state_dir) / "pg").resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = os.geteuid() == 0
    log.warning(
        "no database DSN configured: using an embedded PostgreSQL with its data in %s "
        "(set database.dsn to use a real server)", data_dir,
    )
    if root:
        log.warning(
            "running as root: the embedded PostgreSQL runs as system user 'pgserver' (created if "
            "missing), owns %s, and the directories above it are made traversable by others",
            data_dir,
        )
    server = await asyncio.to_thread(_get_server, data_dir, root)
    admin_dsn = server.get_uri("postgres")
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it between our check and now
    finally:
        await conn.close()
    dsn = server.get_uri(database)
    log.info("embedded PostgreSQL ready: %s", dsn)
    return EmbeddedPostgres(data_dir=data_dir, dsn=dsn, _server=server)


def _get_server(data_dir: Path, root: bool):
    import pgserver  # heavy import (psutil, fasteners); only needed without a DSN

    parents = list(data_dir.parents)
    before = {p: p.stat().st_mode for p in parents} if root else {}
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    for p, mode in before.items():
        # pgserver added g+rx,o+rx; the 'pgserver' user only needs to traverse, not list.
        if p.stat().st_mode != mode:
            p.chmod(stat.S_IMODE(mode) | _TRAVERSE)
            log.warning("made %s traversable for the 'pgserver' user (mode %o)",
                        p, stat.S_IMODE(mode) | _TRAVERSE)
    return server
