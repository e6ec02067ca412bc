"""The agent state machine.

States (``record.AgentState``): ``logged_out``, ``ready``, ``offered``, ``on_call``, ``wrap_up``,
``paused`` (with a reason). Every transition returns the :class:`AgentStateChange` row to persist;
an illegal or no-op request returns ``None`` (illegal ones are logged, never raised).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from ccserver.cdr.record import AgentState, AgentStateChange

log = logging.getLogger(__name__)

#: the window of the talk-time share (least-occupied routing)
OCCUPANCY_WINDOW = 3600.0

#: Makes ``change_id`` values; injected so tests are reproducible (default: uuid4 strings).
IdFactory = Callable[[], str]


@dataclass(slots=True)
class Agent:
    """One agent: where their phone is, what they serve, and what they are doing."""

    agent_id: str
    node: str
    device: str
    queues: frozenset[str]
    new_id: IdFactory
    #: dial strings of the agent's phone on other nodes (node -> dial string)
    other_devices: Mapping[str, str] = field(default_factory=dict)
    state: AgentState = "logged_out"
    reason: str | None = None
    #: the call being rung, talked or wrapped up
    call_id: str | None = None
    #: when the agent last became ready (longest-idle routing); None unless ready
    idle_since: float | None = None
    #: when the current wrap-up ends
    wrapup_until: float | None = None
    calls_handled: int = 0
    #: ring-no-answers since the last answered call or RONA pause
    missed_in_row: int = 0
    #: finished on-call periods (start, end) that may overlap the occupancy window
    talk_periods: deque[tuple[float, float]] = field(default_factory=deque)
    #: when the current on-call period began
    talk_since: float | None = None

    def device_on(self, node: str) -> str | None:
        """The dial string that rings this agent from ``node``; None if unreachable from there."""
        return self.device if node == self.node else self.other_devices.get(node)

    @property
    def devices(self) -> dict[str, str]:
        """Every node this agent can be rung from -> the dial string there (home node first)."""
        return {self.node: self.device, **self.other_devices}

    @property
    def nodes(self) -> frozenset[str]:
        """Every node whose calls can ring this agent."""
        return frozenset({self.node, *self.other_devices})

    def _illegal(self, action: str) -> None:
        log.warning("agent %s: %s ignored in state %s", self.agent_id, action, self.state)

    def _move(
        self, state: AgentState, at: float, reason: str | None = None, call_id: str | None = None,
        *, about: str | None = None,
    ) -> AgentStateChange:
        """Move to ``state``; the agent then holds ``call_id``. The change names ``call_id``, or
        ``about`` when the move concerns a call the agent lets go (a missed offer)."""
        change = AgentStateChange(
            change_id=self.new_id(),
            agent_id=self.agent_id,
            state=state,
            previous=self.state,
            at=at,
            reason=reason,
            call_id=call_id or about,
        )
        if self.state == "on_call" and state != "on_call" and self.talk_since is not None:
            self.talk_periods.append((self.talk_since, at))
            self.talk_since = None
        elif state == "on_call" and self.state != "on_call":
            self.talk_since = at
        self.state = state
        self.reason = reason
        self.call_id = call_id
        self.idle_since = at if state == "ready" else None
        if state != "wrap_up":
            self.wrapup_until = None
        return change

    def login(self, at: float, paused_reason: str | None = None) -> AgentStateChange | None:
        """Log in, ready or (with a reason) paused."""
        if self.state != "logged_out":
            self._illegal("login")
            return None
        if paused_reason is not None:
            return self._move("paused", at, reason=paused_reason)
        return self._move("ready", at)

    def logout(self, at: float) -> AgentStateChange | None:
        """Log out; refused while a call is ringing or connected (the caller comes first)."""
        if self.state in ("offered", "on_call", "logged_out"):
            self._illegal("logout")
            return None
        return self._move("logged_out", at)

    def pause(self, reason: str, at: float) -> AgentStateChange | None:
        """Pause (also ends wrap-up early). Re-pausing with a new reason is a transition."""
        if self.state in ("offered", "on_call", "logged_out"):
            self._illegal(f"pause({reason!r})")
            return None
        if self.state == "paused" and self.reason == reason:
            return None
        return self._move("paused", at, reason=reason)

    def ready(self, at: float) -> AgentStateChange | None:
        """Become ready from paused or wrap-up (ending wrap-up early)."""
        if self.state not in ("paused", "wrap_up"):
            if self.state != "ready":
                self._illegal("ready")
            return None
        return self._move("ready", at)

    def offer(self, call_id: str, at: float) -> AgentStateChange | None:
        """The agent's phone rings for ``call_id``."""
        if self.state != "ready":
            self._illegal(f"offer of {call_id}")
            return None
        return self._move("offered", at, call_id=call_id)

    def answer(self, call_id: str, at: float) -> AgentStateChange | None:
        """The agent picked up the offered call."""
        if self.state != "offered" or self.call_id != call_id:
            self._illegal(f"answer of {call_id}")
            return None
        self.calls_handled += 1
        return self._move("on_call", at, call_id=call_id)

    def adopt(self, call_id: str, at: float) -> AgentStateChange | None:
        """A resync found the agent's phone bridged with ``call_id``: on call, whatever before."""
        if self.state in ("offered", "on_call") and self.call_id != call_id:
            self._illegal(f"adopt of {call_id} (busy with {self.call_id})")
            return None
        if self.state == "on_call":
            return None
        self.calls_handled += 1
        return self._move("on_call", at, call_id=call_id)

    def adopt_offer(self, call_id: str, at: float) -> AgentStateChange | None:
        """A resync found the agent's phone ringing for ``call_id`` (a ccserver before a restart
        rang it): offered, whatever before (a restart's agents start logged out or ready),
        unless busy with another call."""
        if self.state in ("offered", "on_call"):
            if self.call_id != call_id:
                self._illegal(f"adopt of the ring of {call_id} (busy with {self.call_id})")
            return None
        return self._move("offered", at, call_id=call_id)

    def miss(self, call_id: str, pause_reason: str | None, at: float) -> AgentStateChange | None:
        """The offered call did not connect: paused with ``pause_reason``, or ready if None."""
        if self.state != "offered" or self.call_id != call_id:
            self._illegal(f"missed {call_id}")
            return None
        # the change names the call (a ring-no-answer report needs it), the agent holds none
        if pause_reason is None:
            return self._move("ready", at, about=call_id)
        return self._move("paused", at, reason=pause_reason, about=call_id)

    def end_call(self, call_id: str, wrapup_seconds: float, at: float) -> AgentStateChange | None:
        """The connected call ended: wrap-up for ``wrapup_seconds`` (``tick`` ends it)."""
        if self.state != "on_call" or self.call_id != call_id:
            self._illegal(f"end of {call_id}")
            return None
        change = self._move("wrap_up", at, call_id=call_id)
        self.wrapup_until = at + wrapup_seconds
        return change

    def occupancy(self, now: float) -> float:
        """Share of the last hour spent on calls (0-1)."""
        start = now - OCCUPANCY_WINDOW
        while self.talk_periods and self.talk_periods[0][1] <= start:
            self.talk_periods.popleft()
        talk = sum(max(0.0, min(e, now) - max(s, start)) for s, e in self.talk_periods)
        if self.talk_since is not None:
            talk += max(0.0, now - max(self.talk_since, start))
        return talk / OCCUPANCY_WINDOW

    def tick(self, now: float) -> AgentStateChange | None:
        """Ends wrap-up once its time is up (at its due time, not ``now``, for exact reports)."""
        if self.state == "wrap_up" and self.wrapup_until is not None and now >= self.wrapup_until:
            return self._move("ready", self.wrapup_until)
        return None
