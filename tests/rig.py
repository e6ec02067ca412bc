"""What every end-to-end rig in the tests shares: a free port, SQL on the test database, waiting."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg

from ccserver.sim.asterisk import SimulatedAsterisk
from ccserver.sim.freeswitch import SimulatedFreeSwitch


#: an AMI user that may also start a recording during a call (AMI MixMonitor needs system):
#: the write line of capture c05b-recording-system-granted
SYSTEM_GRANTED = "call,reporting,originate,system"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RigBase:
    """A running server's test handle; subclasses set ``dsn`` (the test database) and ``sim``
    (the simulated node: ``SimulatedAsterisk`` or ``SimulatedFreeSwitch``)."""

    dsn: str
    sim: SimulatedAsterisk | SimulatedFreeSwitch

    async def drop_pbx_link(self) -> None:
        """Cut ccserver's event connection to the node (AMI or ESL inbound)."""
        if isinstance(self.sim, SimulatedFreeSwitch):
            await self.sim.drop_esl_connections()
        else:
            await self.sim.drop_ami_connections()

    def freeze_pbx_link(self, frozen: bool) -> None:
        """Keep the event connection open but let nothing through (half-open)."""
        if isinstance(self.sim, SimulatedFreeSwitch):
            self.sim.set_esl_frozen(frozen)
        else:
            self.sim.set_ami_frozen(frozen)

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
