"""PBX-neutral commands the core decides and an adapter carries out on its node."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ccserver.core.facts import CallFacts


@dataclass(frozen=True, slots=True)
class RingAgent:
    """Ring ``device`` and connect it to the waiting caller on ``channel``.

    If the agent does not answer within ``timeout`` seconds the caller goes back to the wait
    music and the adapter reports ``AgentLegFailed(reason="no_answer")``.

    ``record_file`` (a name under the node's recording root, as in :class:`StartRecording`) is
    the file the call is recorded into if this agent answers; the core still sends
    ``StartRecording`` with it at the answer. It lets a PBX start the recording with the ring
    (Asterisk's [ccserver-connect] runs MixMonitor before Dial, which needs no AMI right).
    """

    node: str
    call_id: str
    channel: str
    device: str
    timeout: int
    record_file: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackAgent:
    """Call back a caller who asked for it: ring ``device`` for ``timeout`` seconds and, once the
    agent answers, dial ``number`` from that channel.

    The adapter reports the agent's answer / failure as ``AgentLegAnswered`` /
    ``AgentLegFailed`` and the end of the agent's channel as ``CallHungUp``, all with
    ``call_id`` (the callback's own id; there is no caller channel until the agent answers).
    """

    node: str
    call_id: str
    device: str
    number: str
    timeout: int

    def __post_init__(self) -> None:
        # the number ends up in a dialplan (Exten / Dial): digits only, never caller text
        if not TRANSFER_DESTINATION.fullmatch(self.number):
            raise ValueError(f"number: {self.number[:40]!r} is not a phone number")


@dataclass(frozen=True, slots=True)
class HangupCall:
    node: str
    call_id: str
    channel: str
    cause: int = 16


@dataclass(frozen=True, slots=True)
class SendToVoicemail:
    """Take the waiting caller on ``channel`` out of the wait music into mailbox ``box``
    (our dialplan's ``ccserver-voicemail``); the call ends when the caller hangs up there."""

    node: str
    call_id: str
    channel: str
    box: str


@dataclass(frozen=True, slots=True)
class ConfirmCallback:
    """Play the waiting caller on ``channel`` a "we will call you back" prompt and hang up
    (our dialplan's ``ccserver-callback-confirm``)."""

    node: str
    call_id: str
    channel: str


#: an external number a live call may be transferred to (never caller-supplied dialplan text)
TRANSFER_DESTINATION = re.compile(r"\+?[0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class TransferCall:
    """Send the caller on ``channel`` (queued or talking to an agent) out of ccserver's hands to
    ``destination``, an external number, through our dialplan's ``ccserver-transfer``.

    ValueError naming ``destination`` unless it is digits with an optional leading ``+``.
    """

    node: str
    call_id: str
    channel: str
    destination: str

    def __post_init__(self) -> None:
        if not TRANSFER_DESTINATION.fullmatch(self.destination):
            raise ValueError(f"destination: {self.destination!r} is not a number (digits, "
                             "optionally after '+', at most 32)")


@dataclass(frozen=True, slots=True)
class KeepCallFacts:
    """Store ``facts`` on the caller's channel, replacing what was stored before; the adapter
    reads them back when it resyncs (see :class:`~ccserver.core.events.CallFacts`)."""

    node: str
    call_id: str
    channel: str
    facts: CallFacts


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


@dataclass(frozen=True, slots=True)
class MuteRecording:
    """Pause (``muted=True``) or resume the recording of ``file`` on the caller's channel.

    The file keeps running with silence while muted, so its time line still matches the call
    (Asterisk ``MixMonitorMute``, FreeSWITCH ``uuid_record mask`` / ``unmask``).
    """

    node: str
    call_id: str
    channel: str
    file: str
    muted: bool


#: listen: nobody hears the supervisor; whisper: only the agent does; barge: both do
SpyMode = Literal["listen", "whisper", "barge"]


@dataclass(frozen=True, slots=True)
class StartSpy:
    """Ring the supervisor's ``supervisor_device`` and let it monitor the agent leg of ``call_id``.

    ``session`` is an id ccserver generated (letters and digits only); the adapter reaches only
    the agent channel currently bridged to the call's caller on ``channel``.
    """

    node: str
    call_id: str
    channel: str
    session: str
    supervisor_device: str
    mode: SpyMode


@dataclass(frozen=True, slots=True)
class ChangeSpyMode:
    """Switch a running spy session to ``mode``."""

    node: str
    session: str
    mode: SpyMode


@dataclass(frozen=True, slots=True)
class StopSpy:
    """End a spy session (hang up the supervisor's leg)."""

    node: str
    session: str


Command = (
    RingAgent | CallbackAgent | HangupCall | SendToVoicemail | ConfirmCallback | TransferCall
    | StartRecording | StopRecording | MuteRecording | StartSpy | ChangeSpyMode | StopSpy
    | KeepCallFacts
)
