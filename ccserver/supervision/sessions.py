"""Spy sessions and who may start them. Pure: the live state and the time are handed in.

A supervisor monitors one agent's current call from their own phone on the node hosting it.
Only agents of the teams they supervise (admins: any agent); agents never. One session per
supervisor and per agent at a time, so a second attempt is refused instead of ringing twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ccserver.core.agent import Agent
from ccserver.core.call import Call, CallState
from ccserver.core.commands import ChangeSpyMode, SpyMode, StartSpy, StopSpy


class SpyRefused(Exception):
    """A spy request that is not allowed or cannot be carried out; nothing was started."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


@dataclass(frozen=True, slots=True)
class Supervisor:
    """Who asks: user id and name, role, the agents of the teams they supervise."""

    user_id: int
    username: str
    role: str
    team_agents: frozenset[str]
    #: node -> the supervisor's phone (dial string) on that node
    devices: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SpySession:
    """One supervisor monitoring one agent's call."""

    id: str
    user_id: int
    username: str
    agent_id: str
    call_id: str
    node: str
    mode: SpyMode
    started_at: float
    #: the PBX confirmed the supervisor is on (SpyStarted)
    active: bool = False


def _new_session_id() -> str:
    return secrets.token_hex(8)


class Supervision:
    """The running spy sessions."""

    def __init__(self, new_id: Callable[[], str] = _new_session_id) -> None:
        self._new_id = new_id
        self._sessions: dict[str, SpySession] = {}
        #: session -> the mode ccserver is switching it to (its own key is then no news)
        self._switching: dict[str, SpyMode] = {}

    @property
    def sessions(self) -> Mapping[str, SpySession]:
        return dict(self._sessions)

    def start(
        self,
        who: Supervisor,
        agent_id: str,
        mode: SpyMode,
        agents: Mapping[str, Agent],
        calls: Mapping[str, Call],
        now: float,
    ) -> tuple[SpySession, StartSpy]:
        """Authorize and register a session; the command rings the supervisor. Raises SpyRefused."""
        if who.role == "agent":
            raise SpyRefused(403, "role", "agents may not monitor calls")
        agent = agents.get(agent_id)
        if agent is None:
            raise SpyRefused(404, "agent_id", f"no agent {agent_id!r}")
        if who.role != "admin" and agent_id not in who.team_agents:
            raise SpyRefused(403, "agent_id", f"agent {agent_id!r} is not in a team you supervise")
        if agent.state != "on_call" or agent.call_id is None:
            raise SpyRefused(409, "agent_id", f"agent {agent_id!r} is not on a call ({agent.state})")
        call = calls.get(agent.call_id)
        if call is None or call.state is not CallState.CONNECTED:
            raise SpyRefused(409, "agent_id", f"the call of agent {agent_id!r} has just ended")
        for s in self._sessions.values():
            if s.user_id == who.user_id:
                raise SpyRefused(409, "agent_id", f"you are already monitoring agent {s.agent_id!r} "
                                                  f"(session {s.id})")
            if s.agent_id == agent_id:
                raise SpyRefused(409, "agent_id", f"agent {agent_id!r} is already monitored by "
                                                  f"{s.username}")
        device = who.devices.get(call.node)
        if not device:
            raise SpyRefused(422, "device", f"you have no phone on node {call.node!r} (set it in "
                                            f"your profile)")
        session = SpySession(self._new_id(), who.user_id, who.username, agent_id, call.call_id,
                             call.node, mode, now)
        self._sessions[session.id] = session
        return session, StartSpy(call.node, call.call_id, call.channel, session.id, device, mode)

    def get(self, session_id: str, who: Supervisor) -> SpySession:
        """The caller's own session (admins: any); SpyRefused(404) otherwise."""
        s = self._sessions.get(session_id)
        if s is None or (s.user_id != who.user_id and who.role != "admin"):
            raise SpyRefused(404, "session", f"no spy session {session_id!r} of yours")
        return s

    def change(self, session_id: str, who: Supervisor, mode: SpyMode) -> tuple[SpySession, ChangeSpyMode]:
        """Ask for a mode switch; the command sends the mode's key. End it with :meth:`changed`
        or :meth:`switch_failed`."""
        s = self.get(session_id, who)
        if s.mode == mode:
            raise SpyRefused(409, "mode", f"the session is already in {mode} mode")
        if session_id in self._switching:
            raise SpyRefused(409, "mode", f"the session is already switching to "
                                          f"{self._switching[session_id]} mode")
        self._switching[session_id] = mode
        return s, ChangeSpyMode(s.node, s.id, mode)

    def changed(self, session_id: str, mode: SpyMode) -> SpySession | None:
        """The PBX carried out the mode switch ccserver asked for."""
        self._switching.pop(session_id, None)
        s = self._sessions.get(session_id)
        if s is not None:
            s = self._sessions[session_id] = replace(s, mode=mode)
        return s

    def switch_failed(self, session_id: str) -> None:
        """The PBX refused the mode switch ccserver asked for: the mode stays."""
        self._switching.pop(session_id, None)

    def reported(self, session_id: str, mode: SpyMode) -> tuple[SpyMode, SpySession] | None:
        """The PBX reports the session now runs in ``mode`` (a mode key reached the spy leg).

        Returns the mode before and the updated session when that is news: a switch ccserver
        did not ask for, i.e. the supervisor pressed a key on their phone. None for an unknown
        session, an unchanged mode, or the key of the switch ccserver is carrying out.
        """
        s = self._sessions.get(session_id)
        if s is None or s.mode == mode or self._switching.get(session_id) == mode:
            return None
        before = s.mode
        s = self._sessions[session_id] = replace(s, mode=mode)
        return before, s

    def stop(self, session_id: str, who: Supervisor) -> tuple[SpySession, StopSpy]:
        s = self.get(session_id, who)
        return s, StopSpy(s.node, s.id)

    def started(self, session_id: str) -> SpySession | None:
        s = self._sessions.get(session_id)
        if s is not None:
            s = self._sessions[session_id] = replace(s, active=True)
        return s

    def ended(self, session_id: str) -> SpySession | None:
        """Forget a session (the PBX reported its end, or starting it failed)."""
        self._switching.pop(session_id, None)
        return self._sessions.pop(session_id, None)

    def of_call(self, call_id: str) -> list[SpySession]:
        """Sessions on ``call_id`` (to stop when it ends)."""
        return [s for s in self._sessions.values() if s.call_id == call_id]
