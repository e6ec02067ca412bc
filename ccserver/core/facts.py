"""What ccserver keeps of a live call where another ccserver can read it: the vocabulary of
``KeepCallFacts`` (a command) and of ``LiveCall.facts`` (a resync's report)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What ccserver knew of a live call, kept on the caller's channel (``KeepCallFacts``) so
    that a restarted or standby ccserver adopting the call at a resync knows it too: the CDR
    keeps its DID, queue, times, IVR path and agent, and a waiting caller keeps its place."""

    did: str
    arrived_at: float
    queue: str | None = None
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()
    language: str = ""
    ivr_ended_at: float | None = None
    enqueued_at: float | None = None
    offered_at: float | None = None
    answered_at: float | None = None
    agent_id: str | None = None
    ivr_path: tuple[str, ...] = ()
    recording: str | None = None
