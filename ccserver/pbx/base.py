"""What every PBX adapter offers the rest of ccserver."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Callable, Protocol, TypeVar

from ccserver.core.commands import Command
from ccserver.core.events import CallHungUp, DomainEvent, SpyEnded

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Adapters push normalized events into this; it never blocks.
EventSink = Callable[[DomainEvent], None]


class CommandFailed(Exception):
    """The PBX refused or could not carry out a command."""


def why(e: BaseException) -> str:
    """An exception as the reason in a log line: its message, else its type (an exception is
    always true, so ``e or type(e).__name__`` would print a bare ``TimeoutError()`` as nothing)."""
    return str(e) or type(e).__name__


class PbxAdapter(Protocol):
    """A connection to one PBX node."""

    node: str

    @property
    def connected(self) -> bool: ...

    @property
    def recording_problems(self) -> tuple[str, ...]:
        """Why a recording started during a call would be refused on this node (e.g. an AMI
        user without the right to start one), known at login; empty when nothing stands in the way."""

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background; return at once."""

    async def stop(self) -> None: ...

    async def execute(self, command: Command) -> None:
        """Carry out a command; raise :class:`CommandFailed` if the PBX refuses it."""



def gone_at_resync(legs: dict[str, T], listed: Collection[str]) -> list[T]:
    """Take out of ``legs`` (channel id -> what it carries) each channel the node no longer lists."""
    return [legs.pop(leg) for leg in [leg for leg in legs if leg not in listed]]


def ended_unseen(node: str, at: float, callbacks: list[str], spies: list[tuple[str, str]]) -> list[DomainEvent]:
    """The events a resync owes for what ended while the node's link was down.

    ``callbacks`` are the call ids of answered callbacks whose agent leg is gone (a callback has
    no caller channel, so the core's own resync cannot see it end); ``spies`` are the
    ``(call id, session)`` of spy sessions whose legs are gone.
    """
    for call_id in callbacks:
        log.warning("callback %s: its agent leg is gone from node %s at resync; lost", call_id, node)
    for call_id, session in spies:
        log.warning("spy session %s on %s: gone from node %s at resync; ended", session, call_id, node)
    return [*(CallHungUp(c, "lost", "unknown", at) for c in callbacks),
            *(SpyEnded(call_id, session, at) for call_id, session in spies)]
