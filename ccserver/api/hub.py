"""Live changes fanned out to WebSocket clients, each through a bounded queue.

The server publishes; a subscriber that does not keep up (its queue is full) is marked
``dropped`` and stops receiving: one slow screen never slows the server or the other clients.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from ccserver.cdr.record import AgentStateChange, CallRecord

if TYPE_CHECKING:
    from ccserver.supervision.service import SpyChange

#: What is published: an agent's transition, a finished call, a periodic tick (the time), or a
#: spy session change (``ccserver.supervision.service.SpyChange``).
LiveChange = Union[AgentStateChange, CallRecord, float, "SpyChange"]


@dataclass(eq=False)
class Subscriber:
    """One client's pending changes."""

    queue: asyncio.Queue[LiveChange]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub:
    """Publish / subscribe for live state changes."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(self.queue_size))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, change: LiveChange) -> None:
        """Queue ``change`` for every subscriber; drop those whose queue is full."""
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                self._subscribers.discard(sub)
                sub.dropped.set()
