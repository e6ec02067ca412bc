"""What the simulated people do: agent phones and callers, plus the handle of a placed call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from ccserver.pbx.contexts import INBOUND_CONTEXT


@dataclass
class SimAgent:
    """A simulated agent phone (a PJSIP endpoint with a static contact)."""

    device: str                      #: dial string, e.g. ``PJSIP/1001``
    answer_delay: float = 1.0        #: seconds ringing before answering
    answers: bool = True             #: False: never answers (ring-no-answer)
    next_answers: list[bool] = field(default_factory=list)  #: per-call overrides, consumed first
    name: str = ""                   #: caller-id name of the endpoint; default ``Agent <ext>``

    @property
    def extension(self) -> str:
        return self.device.rsplit("/", 1)[-1]

    @property
    def display_name(self) -> str:
        return self.name or f"Agent {self.extension}"

    def take_answers(self) -> bool:
        """Whether the phone answers the call now ringing."""
        return self.next_answers.pop(0) if self.next_answers else self.answers


@dataclass
class CallerScript:
    """What a simulated caller does."""

    caller: str = "+15551230000"
    caller_name: str = "Sim Caller"
    did: str = "support"
    #: the context the trunk puts the call in; any other than ccserver-inbound sends it on with
    #: ``Goto(ccserver-inbound,${EXTEN},1)`` first, as a carrier context of README step 1 does
    #: (so ``Newchannel`` names the trunk's context: capture asterisk-ccserver/c01)
    context: str = INBOUND_CONTEXT
    #: that carrier context runs ``Answer()`` before its ``Goto`` (the ``Newstate`` Up is then in
    #: the carrier's context, and ccserver-inbound's ``Answer()`` changes nothing)
    carrier_answers: bool = False
    #: one entry per digit prompt (GET DATA, GET OPTION, WAIT FOR DIGIT); "" = press nothing
    digits: list[str] = field(default_factory=lambda: ["1"])
    #: seconds waiting in queue (from the end of the IVR) before hanging up
    patience: float = 60.0
    #: hang up this many seconds after the AGI starts
    hangup_during_ivr_after: float | None = None
    talk_time: float = 5.0           #: seconds bridged before someone hangs up
    hangup_side: Literal["caller", "agent"] = "caller"
    #: also consume a ``digits`` entry to interrupt STREAM FILE prompts with escape digits
    barge_in: bool = False
    dtmf_delay: float = 0.3          #: seconds into a prompt before the caller presses keys


#: how a call ended, seen from the caller
Outcome = Literal["answered", "abandoned", "ivr_hangup", "no_queue", "hungup", "agi_failed", "transferred"]


@dataclass(eq=False)
class SimCall:
    """Handle of a placed call. ``done`` is set when the caller channel is gone."""

    script: CallerScript
    uniqueid: str
    channel: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None
    agent: str | None = None         #: device that answered, if any
    agents_rung: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  #: the caller channel's, at the end
    #: (application, data) the IVR ran on the caller beyond prompts and digits (TTS, record, goto)
    applications: list[tuple[str, str]] = field(default_factory=list)
    #: the external number the dialplan's transfer context dialed
    transferred_to: str | None = None

    async def wait(self, timeout: float | None = None) -> Outcome | None:
        """Wait for the end of the call and return its outcome."""
        async with asyncio.timeout(timeout):
            await self.done.wait()
        return self.outcome
