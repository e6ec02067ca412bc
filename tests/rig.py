"""What every end-to-end rig in the tests shares: a free port, SQL on the test database, waiting."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RigBase:
    """A running server's test handle; subclasses set ``dsn`` (the test database)."""

    dsn: str

    async def rows(self, sql: str, *args):
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def until(self, predicate, timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)
