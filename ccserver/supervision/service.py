"""Runs spy sessions against the PBX nodes, audits them, and tells the live view."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ccserver.api.store import Store
from ccserver.core.center import ContactCenter
from ccserver.core.commands import Command, SpyMode
from ccserver.core.events import DomainEvent, SpyEnded, SpyModeChanged, SpyStarted
from ccserver.pbx.base import CommandFailed
from ccserver.supervision.sessions import (
    SpyRefused,
    SpySession,
    Supervision,
    Supervisor,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpyChange:
    """For the live view: a session ``started``, ``changed`` mode or ``ended``."""

    session: SpySession
    what: str


class SupervisionDesk:
    """Start / change / stop spy sessions; the PBX's reports end them (call over, hang-up)."""

    def __init__(self, store: Store, center: Callable[[], ContactCenter | None],
                 execute: Callable[[Command], Awaitable[None]], clock: Callable[[], float]) -> None:
        self.store = store
        self.sessions = Supervision()
        self._center, self._execute, self._clock = center, execute, clock
        #: told of every session change (the live view)
        self.listeners: list[Callable[[SpyChange], None]] = []

    def _tell(self, session: SpySession, what: str) -> None:
        for listener in self.listeners:
            listener(SpyChange(session, what))

    async def start(self, who: Supervisor, agent_id: str, mode: SpyMode) -> SpySession:
        center = self._center()
        if center is None:
            raise SpyRefused(503, "agent_id", "the contact center is starting")
        session, cmd = self.sessions.start(who, agent_id, mode, center.agents, center.calls, self._clock())
        try:
            await self._execute(cmd)
        except (CommandFailed, LookupError) as e:
            self.sessions.ended(session.id)  # the adapter left nothing running on the PBX
            raise SpyRefused(502, "agent_id", f"the PBX could not start the session: {e}") from None
        self._tell(session, "started")
        return session

    async def change(self, who: Supervisor, session_id: str, mode: SpyMode) -> SpySession:
        _, cmd = self.sessions.change(session_id, who, mode)
        try:
            await self._execute(cmd)
        except (CommandFailed, LookupError) as e:
            self.sessions.switch_failed(session_id)
            raise SpyRefused(502, "mode", f"the PBX could not switch the mode: {e}") from None
        session = self.sessions.changed(session_id, mode)
        if session is None:
            raise SpyRefused(409, "session", "the session ended meanwhile")
        self._tell(session, "changed")
        return session

    async def stop(self, who: Supervisor, session_id: str) -> SpySession:
        session, cmd = self.sessions.stop(session_id, who)
        try:
            await self._execute(cmd)
        except (CommandFailed, LookupError) as e:
            raise SpyRefused(502, "session", f"the PBX could not stop the session: {e}") from None
        return session

    async def on_event(self, event: DomainEvent) -> None:
        """SpyStarted / SpyModeChanged / SpyEnded from the adapters. An end, and a mode switch
        ccserver did not ask for (the supervisor's keypad), are written to the audit log; the
        switches ccserver asks for are audited by the API request that asked."""
        if isinstance(event, SpyStarted):
            session = self.sessions.started(event.session)
            if session is not None:
                self._tell(session, "active")
        elif isinstance(event, SpyModeChanged):
            news = self.sessions.reported(event.session, event.mode)
            if news is None:
                return
            before, session = news
            self._tell(session, "changed")
            await self.store.audit(None, "spy.mode", session.agent_id,
                                   {"session": session.id, "agent_id": session.agent_id,
                                    "from": before, "to": session.mode, "via": "keypad"},
                                   "", "ok", username=session.username)
        elif isinstance(event, SpyEnded):
            session = self.sessions.ended(event.session)
            if session is None:
                return
            self._tell(session, "ended")
            await self.store.audit(None, "spy.ended", session.agent_id,
                                   {"session": session.id, "call_id": session.call_id,
                                    "supervisor": session.username, "mode": session.mode},
                                   "", "ok", username=session.username)
