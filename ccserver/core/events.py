"""Normalized domain events: the only vocabulary PBX adapters speak to the core.

Every adapter (Asterisk, FreeSWITCH, ...) turns its wire events into these. They carry no
protocol objects. ``at`` is the wall-clock time (epoch seconds) the adapter observed the fact;
the core never reads a clock of its own.

``call_id`` is ``"<node>:<pbx call key>"`` (Asterisk: the caller channel's Linkedid), so the same
call gets the same id after a reconnect or a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ccserver.core.commands import SpyMode
from ccserver.core.facts import CallFacts

#: Who ended a call: the caller, the agent, ccserver / the PBX itself, or not known (e.g. lost).
HangupSide = Literal["caller", "agent", "system", "unknown"]

#: One vocabulary of hang-up causes for every PBX kind (Q.850 names, lower case).
HangupCause = Literal[
    "normal_clearing",
    "user_busy",
    "no_answer",
    "no_user_response",
    "call_rejected",
    "unallocated_number",
    "unavailable",
    "network_failure",
    "lost",
    "unknown",
]

#: Why an agent leg did not connect.
LegFailure = Literal["no_answer", "busy", "unavailable", "cancelled", "rejected", "error"]


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A new inbound call reached ccserver's dialplan on ``node``."""

    call_id: str
    node: str
    channel: str
    caller: str
    did: str
    at: float


@dataclass(frozen=True, slots=True)
class DigitsReceived:
    """The caller pressed a DTMF digit (or several)."""

    call_id: str
    digits: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The PBX answered the caller's channel (IVR starts)."""

    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """The caller asked to be called back on ``number`` by an agent of ``queue``, keeping the
    place the call had when the IVR ended."""

    number: str
    queue: str


@dataclass(frozen=True, slots=True)
class IvrFinished:
    """The IVR ended for this call. ``queue`` is set when the flow handed the call to a queue."""

    call_id: str
    node: str
    channel: str
    caller: str
    did: str
    queue: str | None
    path: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)
    #: the priority the flow chose (0 included); None: the queue's default
    priority: int | None = None
    at: float = 0.0
    #: skill requirements the IVR set for routing: (skill name, minimum level 0-100)
    skills: tuple[tuple[str, int], ...] = ()
    #: caller's language as chosen in the IVR ("" = the queue's default)
    language: str = ""
    #: the caller hung up during the IVR: only ``path`` / ``variables`` are news; the hang-up
    #: itself comes from the PBX events
    caller_hung_up: bool = False
    #: the flow ended in a callback request (the call itself ends: the dialplan hangs up)
    callback: CallbackRequest | None = None
    #: the flow's recording policy ("all", "none", "on_demand"), overriding the queue's
    recording: str | None = None
    #: when the PBX created the caller's channel, if the session says: the arrival of a call
    #: whose CallStarted was missed (adopted here)
    arrived_at: float | None = None


@dataclass(frozen=True, slots=True)
class AgentLegRinging:
    """The agent's device is ringing for this call."""

    call_id: str
    device: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentLegAnswered:
    """The agent picked up; caller and agent are connected."""

    call_id: str
    device: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentLegFailed:
    """The agent leg ended without connecting (RONA, busy, unreachable, ...)."""

    call_id: str
    device: str
    reason: LegFailure
    at: float


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The agent put the caller on hold (``on=True``) or took them off it."""

    call_id: str
    on: bool
    at: float


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    call_id: str
    file: str
    at: float


@dataclass(frozen=True, slots=True)
class RecordingFailed:
    """A ``StartRecording`` of ``file`` (the name the core gave) was refused or could not run."""

    call_id: str
    file: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    call_id: str
    file: str
    at: float


@dataclass(frozen=True, slots=True)
class SpyStarted:
    """The supervisor's leg of spy ``session`` is monitoring the agent of ``call_id``."""

    call_id: str
    session: str
    at: float


@dataclass(frozen=True, slots=True)
class SpyEnded:
    """Spy ``session`` is over (supervisor hung up, call ended, or ccserver stopped it)."""

    call_id: str
    session: str
    at: float


@dataclass(frozen=True, slots=True)
class SpyModeChanged:
    """A mode key reached the supervisor's leg of spy ``session``, which now runs in ``mode``.

    Reported for every such key: the ones ccserver sends to switch modes and the ones the
    supervisor presses on their phone alike (no PBX reports the mode itself, captures 04).
    """

    call_id: str
    session: str
    mode: SpyMode
    at: float


@dataclass(frozen=True, slots=True)
class CallerLeaving:
    """The caller asked to hang up (a BYE); the PBX's own end of the call, with its cause,
    follows. Until then the call is never routed: a ringing leg ended by the caller's going
    (Asterisk's ``DialEnd CANCEL`` comes between the two) is not a reason to ring the next agent."""

    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """The caller's channel is gone: the call is over."""

    call_id: str
    cause: HangupCause
    by: HangupSide
    at: float


@dataclass(frozen=True, slots=True)
class LiveCall:
    """One call the PBX reports as in progress during a resynchronization."""

    call_id: str
    channel: str
    caller: str
    did: str
    #: device of the agent the caller is bridged with, if any
    agent_device: str | None
    #: seconds the channel has existed, as the PBX reports it
    duration: float
    #: what a ccserver kept on the channel (read back at the resync), if anything
    facts: CallFacts | None = None
    #: device of an agent leg still ringing for the caller (its outcome is yet to come)
    ringing_device: str | None = None


@dataclass(frozen=True, slots=True)
class NodeResynced:
    """Full list of live calls on ``node`` after a (re)connection.

    The core forgets calls of this node that are not listed (their hang-up was missed) and
    adopts listed calls it does not know.
    """

    node: str
    calls: tuple[LiveCall, ...]
    at: float


@dataclass(frozen=True, slots=True)
class NodeConnectionChanged:
    node: str
    up: bool
    at: float


DomainEvent = (
    CallStarted
    | DigitsReceived
    | CallAnswered
    | IvrFinished
    | AgentLegRinging
    | AgentLegAnswered
    | AgentLegFailed
    | HoldChanged
    | RecordingStarted
    | RecordingFailed
    | RecordingStopped
    | SpyStarted
    | SpyEnded
    | SpyModeChanged
    | CallerLeaving
    | CallHungUp
    | NodeResynced
    | NodeConnectionChanged
)
