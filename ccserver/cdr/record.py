"""The rows ccserver persists: one ``CallRecord`` per call, one ``AgentStateChange`` per transition."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

#: How a call ended, from the contact center's point of view.
Disposition = Literal[
    "answered",  # connected to an agent
    "abandoned",  # caller hung up while waiting in a queue (or while an agent rang)
    "ivr_hangup",  # caller hung up before the IVR handed the call to a queue
    "ivr_completed",  # the IVR ended the call itself (no queue)
    "lost",  # the PBX no longer knew the call when ccserver resynchronized
    "voicemail",  # an escalation step sent the waiting caller to voicemail
    "callback",  # an escalation step turned the waiting caller into a callback entry
    "transferred",  # a supervisor or admin transferred the live call out of ccserver
]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call's CDR. Times are epoch seconds; durations are seconds."""

    call_id: str
    node: str
    channel: str
    did: str
    caller: str
    arrived_at: float
    ended_at: float
    disposition: Disposition
    hangup_cause: str
    hangup_by: str
    ivr_ended_at: float | None = None
    enqueued_at: float | None = None
    offered_at: float | None = None
    answered_at: float | None = None
    queue: str | None = None
    agent_id: str | None = None
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    wrapup_seconds: float = 0.0
    ring_no_answer: int = 0
    ivr_path: tuple[str, ...] = ()
    recording: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    #: ``ended_at`` is a bound (the link to the node was down when the call ended), not a fact
    end_estimated: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d["kind"] = "call"
        d["ivr_path"] = list(self.ivr_path)
        return d


AgentState = Literal["logged_out", "ready", "offered", "on_call", "wrap_up", "paused"]


@dataclass(frozen=True, slots=True)
class AgentStateChange:
    """An agent moved from one state to another. ``change_id`` makes replays idempotent."""

    change_id: str
    agent_id: str
    state: AgentState
    previous: AgentState
    at: float
    reason: str | None = None
    call_id: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["kind"] = "agent_state"
        return d


Row = CallRecord | AgentStateChange


def row_from_json(d: dict) -> Row:
    """Rebuild a row written by ``to_json`` (used when replaying the spool)."""
    d = dict(d)
    kind = d.pop("kind")
    if kind == "call":
        d["ivr_path"] = tuple(d["ivr_path"])
        return CallRecord(**d)
    if kind == "agent_state":
        return AgentStateChange(**d)
    raise ValueError(f"spool row: unknown kind {kind!r}")
