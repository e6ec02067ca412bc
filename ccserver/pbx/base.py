"""What every PBX adapter offers the rest of ccserver."""

from __future__ import annotations

from typing import Callable, Protocol

from ccserver.core.commands import Command
from ccserver.core.events import DomainEvent

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
