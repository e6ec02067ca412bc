"""Connection pool and DSN resolution."""

from __future__ import annotations

import asyncpg

from ccserver.config import Config
from ccserver.db.embedded import start_embedded


async def open_pool(dsn: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """Open an asyncpg pool; raises ``OSError``/``asyncpg.PostgresError`` if Postgres is away."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # Fail fast so callers (the CDR writer) can spool instead of hanging on a dead host.
        timeout=10,
        server_settings={"application_name": "ccserver"},
    )


async def resolve_dsn(config: Config) -> str:
    """The configured ``database.dsn``, else the DSN of an embedded Postgres under ``state_dir``."""
    if config.database.dsn:
        return config.database.dsn
    return (await start_embedded(config.server.state_dir)).dsn
