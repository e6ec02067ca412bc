"""The call state machine and the CDR facts collected along the way.

States: ``arriving -> in_ivr -> queued -> offered -> connected -> ended`` (``ended`` from any
state; ``offered -> queued`` when the agent leg fails; ``queued -> diverted`` when an escalation
step sends the caller to voicemail or a callback prompt). Transition methods return ``True`` when
applied; an illegal one is logged and ignored, never raised, because events from a PBX can
arrive late, twice or out of order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from ccserver.cdr.record import CallRecord, Disposition
from ccserver.core.facts import CallFacts

log = logging.getLogger(__name__)


class CallState(StrEnum):
    ARRIVING = "arriving"
    IN_IVR = "in_ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    #: an escalation step sent the caller to voicemail or a callback prompt: out of the queue
    DIVERTED = "diverted"
    ENDED = "ended"


@dataclass(slots=True)
class Call:
    """One inbound call: its state plus every fact its :class:`CallRecord` needs."""

    call_id: str
    node: str
    channel: str
    caller: str
    did: str
    arrived_at: float
    state: CallState = CallState.ARRIVING
    ivr_ended_at: float | None = None
    enqueued_at: float | None = None
    #: first time an agent was rung (the CDR keeps the first offer, not the last)
    offered_at: float | None = None
    #: when the current offer started (drives the missing-outcome guard)
    ringing_since: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    queue: str | None = None
    priority: int = 0
    #: routing requirements from the IVR (skill, minimum level) and the caller's language
    skills: tuple[tuple[str, int], ...] = ()
    language: str = ""
    #: escalation steps of the current queue already applied (0 = the initial requirements)
    step: int = 0
    #: when the call entered its current queue (escalation clock; overflow restarts it)
    queue_entered_at: float | None = None
    #: a routing problem the wallboard shows (e.g. an unknown skill from the IVR)
    routing_note: str | None = None
    #: the agent currently rung or connected (and, once ended, the one who answered)
    agent_id: str | None = None
    hold_seconds: float = 0.0
    hold_started: float | None = None
    ring_no_answer: int = 0
    ivr_path: tuple[str, ...] = ()
    #: the IVR reported its path (completed, or the caller left it)
    ivr_reported: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    #: the recording's file, relative to the node's recording root (the CDR's form); set when
    #: the core asks for it, cleared if the start is refused
    recording: str | None = None
    #: the file a recorded call gets once an agent answers, named at its first ring (and kept
    #: for the next rings: Asterisk's dialplan starts MixMonitor before Dial)
    recording_planned: str | None = None
    #: why the last start of a recording was refused (the live API says ``failed``)
    recording_failure: str | None = None
    #: the recording policy of the IVR flow the call ran, if it set one (overrides the queue's)
    flow_recording: str | None = None
    hangup_cause: str | None = None
    hangup_by: str | None = None
    #: where an escalation step sent the waiting caller (their CDR disposition)
    diverted_to: Literal["voicemail", "callback"] | None = None
    #: the number a supervisor or admin transferred the live call to (disposition transferred)
    transferred_to: str | None = None
    #: the caller asked to hang up; the PBX's hang-up is on its way (never routed again)
    leaving: bool = False
    #: the end is a bound, not a fact: the call ended unseen while its node's link was down
    end_estimated: bool = False

    def _illegal(self, action: str) -> bool:
        log.warning("call %s: %s ignored in state %s", self.call_id, action, self.state.value)
        return False

    def answer(self, at: float) -> bool:
        """The PBX answered the caller: the IVR starts."""
        if self.state is not CallState.ARRIVING:
            return self._illegal("CallAnswered")
        self.state = CallState.IN_IVR
        return True

    def finish_ivr(
        self,
        queue: str | None,
        path: tuple[str, ...],
        variables: dict[str, str],
        priority: int,
        at: float,
    ) -> bool:
        """The IVR ended; with a queue the call is queued, else it waits for its hang-up."""
        # ARRIVING is accepted too: a missed CallAnswered must not strand the caller.
        early = self.state in (CallState.ARRIVING, CallState.IN_IVR)
        if not early or self.ivr_ended_at is not None:
            return self._illegal("IvrFinished")
        self.ivr_ended_at = at
        self.ivr_reported = True
        self.ivr_path = tuple(path)
        self.variables = dict(variables)
        self.priority = priority
        self.queue = queue
        if queue is None:
            self.state = CallState.IN_IVR
        else:
            self.state = CallState.QUEUED
            self.enqueued_at = at
            self.queue_entered_at = at
        return True

    def caller_left_ivr(self, path: tuple[str, ...], variables: dict[str, str]) -> bool:
        """The IVR's report for a caller who hung up during it (before or after the PBX said so).

        Keeps the path for the CDR; ``ivr_ended_at`` stays empty: the caller left the IVR.
        """
        if self.state not in (CallState.ARRIVING, CallState.IN_IVR, CallState.ENDED) or (
            self.ivr_ended_at is not None or self.enqueued_at is not None or self.ivr_reported
        ):
            return self._illegal("IvrFinished(caller hung up)")
        self.ivr_path = tuple(path)
        self.variables = dict(variables)
        self.ivr_reported = True
        return True

    def offer(self, agent_id: str, at: float) -> bool:
        """An agent's phone is being rung for this call."""
        if self.state is not CallState.QUEUED:
            return self._illegal(f"offer to {agent_id}")
        self.state = CallState.OFFERED
        self.agent_id = agent_id
        self.ringing_since = at
        if self.offered_at is None:
            self.offered_at = at
        return True

    def leg_answered(self, at: float) -> bool:
        """The rung agent picked up."""
        if self.state is not CallState.OFFERED:
            return self._illegal("AgentLegAnswered")
        self.state = CallState.CONNECTED
        self.answered_at = at
        self.ringing_since = None
        return True

    def leg_failed(self, no_answer: bool, at: float) -> bool:
        """The rung agent did not connect: back to the queue, keeping the original enqueue time."""
        if self.state is not CallState.OFFERED:
            return self._illegal("AgentLegFailed")
        self.state = CallState.QUEUED
        self.agent_id = None
        self.ringing_since = None
        if no_answer:
            self.ring_no_answer += 1
        return True

    def hold(self, on: bool, at: float) -> bool:
        """Hold on/off; only a connected call can be held. Repeats are ignored."""
        if self.state is not CallState.CONNECTED:
            return self._illegal(f"HoldChanged(on={on})")
        if on and self.hold_started is None:
            self.hold_started = at
        elif not on and self.hold_started is not None:
            self.hold_seconds += max(0.0, at - self.hold_started)
            self.hold_started = None
        return True

    def facts(self) -> CallFacts:
        """What a ccserver adopting this call at a resync needs to carry on with it."""
        return CallFacts(
            did=self.did, arrived_at=self.arrived_at, queue=self.queue, priority=self.priority,
            skills=self.skills, language=self.language, ivr_ended_at=self.ivr_ended_at,
            enqueued_at=self.enqueued_at, offered_at=self.offered_at,
            answered_at=self.answered_at,
            agent_id=self.agent_id if self.answered_at is not None else None,
            ivr_path=self.ivr_path, recording=self.recording,
        )

    def resume(self, facts: CallFacts, queued: bool) -> None:
        """Take back what a ccserver kept of this call (adopted at a resync); ``queued``: it
        waits in ``facts.queue`` again, keeping its place (the agent, if any, is the caller's
        to restore with :meth:`adopt_connected`)."""
        self.did, self.arrived_at = facts.did or self.did, facts.arrived_at
        self.queue, self.priority = facts.queue, facts.priority
        self.skills, self.language = facts.skills, facts.language
        self.ivr_ended_at, self.enqueued_at = facts.ivr_ended_at, facts.enqueued_at
        # the escalation clock restarts with an overflow, which the facts do not say: the
        # enqueue time is the earliest it can have started
        self.queue_entered_at = facts.enqueued_at
        self.offered_at, self.recording = facts.offered_at, facts.recording
        self.ivr_path = facts.ivr_path
        self.ivr_reported = facts.ivr_ended_at is not None
        if queued:
            self.state = CallState.QUEUED

    def adopt_connected(self, agent_id: str | None, at: float) -> None:
        """Mark a call found bridged during a resync as connected since ``at`` (its kept answer
        time, else the resync's: unknown)."""
        self.state = CallState.CONNECTED
        self.agent_id = agent_id
        self.answered_at = at
        self.ringing_since = None

    def divert(self, to: Literal["voicemail", "callback"]) -> bool:
        """An escalation step takes the waiting caller out of the queue."""
        if self.state is not CallState.QUEUED:
            return self._illegal(f"divert to {to}")
        self.state = CallState.DIVERTED
        self.diverted_to = to
        return True

    def hang_up(self, cause: str, by: str, at: float) -> bool:
        """The call is over, whatever state it was in."""
        if self.state is CallState.ENDED:
            return self._illegal("CallHungUp")
        if self.hold_started is not None:  # hung up while on hold: that hold time counts
            self.hold_seconds += max(0.0, at - self.hold_started)
            self.hold_started = None
        self.state = CallState.ENDED
        self.ended_at = at
        self.ringing_since = None
        self.hangup_cause = cause
        self.hangup_by = by
        return True

    def last_fact_at(self) -> float:
        """The latest time the call is known to have been alive at (an estimated end's floor)."""
        return max(t for t in (self.arrived_at, self.ivr_ended_at, self.enqueued_at,
                               self.ringing_since, self.answered_at, self.hold_started)
                   if t is not None)

    @property
    def disposition(self) -> Disposition:
        """How the call ended, derived from the facts (meaningful once ended)."""
        if self.transferred_to is not None:
            return "transferred"  # even after talking to an agent: ccserver did not finish it
        if self.answered_at is not None:
            return "answered"  # even when the hang-up was lost: the caller was served
        if self.hangup_cause == "lost":
            return "lost"
        if self.diverted_to is not None:
            return self.diverted_to
        if self.enqueued_at is not None:
            return "abandoned"
        if self.ivr_ended_at is not None:
            return "ivr_completed"
        return "ivr_hangup"

    def record(self, wrapup_seconds: float = 0.0) -> CallRecord:
        """The call's CDR row. Only valid once the call has ended."""
        assert self.ended_at is not None, "record() before hang_up()"
        talk = 0.0
        if self.answered_at is not None:
            talk = max(0.0, self.ended_at - self.answered_at - self.hold_seconds)
        return CallRecord(
            call_id=self.call_id,
            node=self.node,
            channel=self.channel,
            did=self.did,
            caller=self.caller,
            arrived_at=self.arrived_at,
            ended_at=self.ended_at,
            disposition=self.disposition,
            hangup_cause=self.hangup_cause or "unknown",
            hangup_by=self.hangup_by or "unknown",
            ivr_ended_at=self.ivr_ended_at,
            enqueued_at=self.enqueued_at,
            offered_at=self.offered_at,
            answered_at=self.answered_at,
            queue=self.queue,
            agent_id=self.agent_id if self.answered_at is not None else None,
            talk_seconds=talk,
            hold_seconds=self.hold_seconds,
            wrapup_seconds=wrapup_seconds,
            ring_no_answer=self.ring_no_answer,
            ivr_path=self.ivr_path,
            recording=self.recording,
            variables=dict(self.variables),
            end_estimated=self.end_estimated,
        )
