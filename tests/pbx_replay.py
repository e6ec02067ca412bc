"""What the adapter-level golden replays of ccserver's own captures share (both PBX kinds).

A replaying peer stands in for the PBX on real TCP and plays a recorded session; the test acts
as the core, answering each recorded command of ccserver's with the core's command that sends
it. This module holds the peer's common part and the expected-event shapes of the captures'
calls; the per-protocol framing lives in tests/test_asterisk_ccserver_golden.py and
tests/test_freeswitch_ccserver_golden.py.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ccserver.core.commands import Command
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallStarted,
    DigitsReceived,
    NodeConnectionChanged,
    NodeResynced,
)
from ccserver.pbx.base import CommandFailed

#: what the test, acting as the core, does at a recorded command: the core's command, and the
#: kind of event the core acts after (None: at once)
Core = tuple[Command, type | None] | None


@dataclass
class ReplayingPbx(ABC):
    """The common part of a replaying peer: the n-th connection gets the n-th of ``sessions``
    (a reconnect gets the next recorded session); subclasses play one in ``serve``."""

    sessions: list[str]
    command_for: Callable[[Any], Core]
    adapter: Any = None
    #: the adapter's domain events, as its sink got them
    events: list[object] = field(default_factory=list)
    #: ccserver's commands that differ from the recorded ones
    mismatches: list[str] = field(default_factory=list)
    #: the core's commands the adapter refused (CommandFailed)
    failures: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: recorded seconds -> replayed seconds
    scale: float = 0.02

    def act(self, recorded: Any) -> None:
        """Start the core's command for this recorded command of ccserver's, if any."""
        core = self.command_for(recorded)
        if core is not None:
            self.tasks.append(asyncio.create_task(self._execute(*core)))

    async def _execute(self, command: Command, after: type | None) -> None:
        """Execute ``command`` once the core would: after it heard of an ``after`` event (the
        adapter may read the frames later than they were sent)."""
        async with asyncio.timeout(10):
            while after is not None and not any(isinstance(e, after) for e in self.events):
                await asyncio.sleep(0.01)
        try:
            await self.adapter.execute(command)
        except CommandFailed as e:
            self.failures.append(str(e))

    @abstractmethod
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Play the recorded PBX side to the adapter connected on ``reader`` / ``writer``."""


async def run_adapter(peer: ReplayingPbx, make_adapter: Callable[[int], Any]) -> list[object]:
    """Serve ``peer`` on a free port, run ``make_adapter(port)`` against it until every recorded
    session's link went down and the core's commands are done; the events, times left out."""
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    sessions = len(peer.sessions)
    peer.adapter = make_adapter(server.sockets[0].getsockname()[1])
    await peer.adapter.start()
    try:
        async with asyncio.timeout(30):
            while len([e for e in peer.events
                       if isinstance(e, NodeConnectionChanged) and not e.up]) < sessions:
                await asyncio.sleep(0.01)
        await asyncio.gather(*peer.tasks)
    finally:
        await peer.adapter.stop()
        server.close()
    return [replace(e, at=0.0) if hasattr(e, "at") else e for e in peer.events]


def up_down(node: str, *middle: object) -> list[object]:
    """``middle`` between the start-up login with its empty resync and the capture's end."""
    return [NodeConnectionChanged(node, True, 0.0), NodeResynced(node, (), 0.0), *middle,
            NodeConnectionChanged(node, False, 0.0)]


def answered(node: str, cid: str, channel: str, caller: str, did: str, *devices: str) -> list[object]:
    """A call through the IVR (digit 1) rung to ``devices`` in turn, the last one answering."""
    rung: list[object] = []
    for device in devices[:-1]:
        rung += [AgentLegRinging(cid, device, 0.0), AgentLegFailed(cid, device, "no_answer", 0.0)]
    return [CallStarted(cid, node, channel, caller, did, 0.0), CallAnswered(cid, 0.0),
            DigitsReceived(cid, "1", 0.0), *rung, AgentLegRinging(cid, devices[-1], 0.0),
            AgentLegAnswered(cid, devices[-1], 0.0)]
