"""PBX-neutral commands the core decides and an adapter carries out on its node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RingAgent:
    """Ring ``device`` and connect it to the waiting caller on ``channel``.

    If the agent does not answer within ``timeout`` seconds the caller goes back to the wait
    music and the adapter reports ``AgentLegFailed(reason="no_answer")``.
    """

    node: str
    call_id: str
    channel: str
    device: str
    timeout: int


@dataclass(frozen=True, slots=True)
class HangupCall:
    node: str
    call_id: str
    channel: str
    cause: int = 16


@dataclass(frozen=True, slots=True)
class StartRecording:
    """Record the caller's channel (both directions mixed) into ``file``.

    ``file`` is a name built only from ids ccserver generated; the adapter places it under the
    node's recording root.
    """

    node: str
    call_id: str
    channel: str
    file: str


@dataclass(frozen=True, slots=True)
class StopRecording:
    node: str
    call_id: str
    channel: str


Command = RingAgent | HangupCall | StartRecording | StopRecording
