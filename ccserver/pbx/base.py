"""What every PBX adapter offers the rest of ccserver."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Callable, Protocol

from ccserver.core.commands import Command
from ccserver.core.events import CallHungUp, DomainEvent

log = logging.getLogger(__name__)

#: Adapters push normalized events into this; it never blocks.
EventSink = Callable[[DomainEvent], None]


class CommandFailed(Exception):
    """The PBX refused or could not carry out a command."""


class PbxAdapter(Protocol):
    """A connection to one PBX node."""

    node: str

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background; return at once."""

    async def stop(self) -> None: ...

    async def execute(self, command: Command) -> None:
        """Carry out a command; raise :class:`CommandFailed` if the PBX refuses it."""


def callback_legs_gone(legs: dict[str, str], listed: Collection[str], node: str, at: float) -> list[CallHungUp]:
    """The hang-ups missed while a node's link was down, for answered callbacks.

    ``legs`` maps the agent leg of each answered callback (channel id) to its call id; a leg
    missing from the node's channel listing at resync is taken out of ``legs`` and its callback
    ended as lost (a callback has no caller channel, so the core's resync cannot see it go).
    """
    gone = [leg for leg in legs if leg not in listed]
    for leg in gone:
        log.warning("callback %s: its agent leg %s is gone from node %s at resync; lost", legs[leg], leg, node)
    return [CallHungUp(legs.pop(leg), "lost", "unknown", at) for leg in gone]
