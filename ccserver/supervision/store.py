"""Supervisors' phones per node (``user_devices``, migration 0004)."""

from __future__ import annotations

import re

import asyncpg

#: a dial string a dialplan takes; nothing that could add arguments or variables
DEVICE_PATTERN = re.compile(r"^[A-Za-z0-9/@._:+-]{1,80}$")


class DeviceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def devices(self, user_id: int) -> dict[str, str]:
        """node -> the user's phone on that node."""
        rows = await self.pool.fetch("SELECT node, device FROM user_devices WHERE user_id = $1", user_id)
        return {r["node"]: r["device"] for r in rows}

    async def set_devices(self, user_id: int, devices: dict[str, str]) -> None:
        """Replace the user's phones (validated by the caller against DEVICE_PATTERN)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM user_devices WHERE user_id = $1", user_id)
            await conn.executemany("INSERT INTO user_devices VALUES ($1, $2, $3)",
                                   [(user_id, n, d) for n, d in sorted(devices.items())])
