"""Connection pool and DSN resolution."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ccserver.config import Config
from ccserver.db.embedded import start_embedded

log = logging.getLogger(__name__)

#: seconds before the first retry of an unreachable Postgres at start, doubled up to the maximum
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
#: failures that mean "not reachable now, maybe later": refused, timed out, starting up, full
_UNREACHABLE = (OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
                asyncpg.ConnectionDoesNotExistError)


class DatabaseUnavailable(Exception):
    """Postgres cannot be used; the message names host:port and why, never the password."""


class DatabaseUnreachable(DatabaseUnavailable, ConnectionError):
    """Postgres could not be reached (refused, timed out, starting up, full): maybe later."""


class DatabaseRefused(DatabaseUnavailable):
    """Postgres answered and refused the connection (no such role or database, password refused)."""


def server_of(dsn: str) -> str:
    """``host:port`` of a DSN (URL form, ``host``/``port`` query parameters included)."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # several hosts or a malformed port: show what was written
        return parts.netloc.rpartition("@")[2]
    return f"{host or query.get('host', ['localhost'])[0]}:{port or query.get('port', ['5432'])[0]}"


def _reason(error: BaseException, dsn: str) -> str:
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    return reason.replace(password, "***") if password else reason


async def open_pool(dsn: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """Open an asyncpg pool; raises :class:`DatabaseUnreachable` (an ``OSError``) if Postgres is
    away, :class:`DatabaseRefused` if it refuses (bad password, no such database)."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            # Fail fast so callers (the CDR writer) can spool instead of hanging on a dead host.
            timeout=10,
            server_settings={"application_name": "ccserver"},
        )
    except _UNREACHABLE as e:
        raise DatabaseUnreachable(f"Postgres at {server_of(dsn)} is unreachable ({_reason(e, dsn)})") from e
    except asyncpg.PostgresError as e:
        # the server's own words (no such role / database, password refused) never hold the secret
        raise DatabaseRefused(f"Postgres at {server_of(dsn)} refused the connection: {e}") from e


async def wait_for_pool(dsn: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """:func:`open_pool`, retried with exponential backoff while Postgres is unreachable (one log
    line per attempt, no traceback). Runs until it connects or the task is cancelled."""
    delay = RETRY_FIRST_SECONDS
    waited = False
    while True:
        try:
            pool = await open_pool(dsn, min_size, max_size)
        except DatabaseUnreachable as e:
            log.warning("%s; retrying in %.0f s", e, delay)
            await asyncio.sleep(delay)
            delay, waited = min(delay * 2, RETRY_MAX_SECONDS), True
            continue
        if waited:
            log.info("Postgres at %s is reachable", server_of(dsn))
        return pool


async def resolve_dsn(config: Config) -> str:
    """The configured ``database.dsn``, else the DSN of an embedded Postgres under ``state_dir``."""
    if config.database.dsn:
        return config.database.dsn
    return (await start_embedded(config.server.state_dir)).dsn
