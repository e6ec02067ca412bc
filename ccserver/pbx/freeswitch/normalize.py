"""FreeSWITCH events to domain events: sans-I/O, pure, stateful (the twin of AmiNormalizer).

:class:`EslNormalizer` keeps a small table of the channels that belong to ccserver's calls and
turns the few ESL events that matter into :mod:`ccserver.core.events`, with the same meaning as
the Asterisk adapter: the same ids shape (``"<node>:<caller uuid>"``), the same hang-up cause
vocabulary (:mod:`ccserver.pbx.causes`) and the same rule for the side that hung up. It never
does I/O and never reads a clock (``now`` is handed in), so captures replay into it.

A call starts with the caller's CHANNEL_CREATE in one of the node's inbound contexts, or when our
dialplan hands an inbound channel to ccserver's outbound socket (CHANNEL_EXECUTE ``socket``).
Agent legs are the ones ccserver originated: the adapter announces each with
:meth:`EslNormalizer.expect_leg` before sending the ``bgapi originate``, and the originate's
BACKGROUND_JOB (matched by Job-UUID) reports a leg that never connected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    DigitsReceived,
    DomainEvent,
    HangupSide,
    HoldChanged,
    LiveCall,
    NodeResynced,
    RecordingStarted,
    RecordingStopped,
)
from ccserver.core.facts import CallFacts
from ccserver.pbx.causes import fs_hangup_cause, fs_leg_failure
from ccserver.pbx.freeswitch.esl_codec import EslEvent

log = logging.getLogger(__name__)

#: Every event name :meth:`EslNormalizer.feed` reads; the client subscribes to these only.
SUBSCRIBED = (
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_EXECUTE",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "DTMF", "RECORD_START",
    "RECORD_STOP", "BACKGROUND_JOB",
)

#: ``sip_hangup_disposition`` values meaning "the far end of this leg hung up"
_REMOTE_END = frozenset({"recv_bye", "recv_cancel", "recv_refuse"})


@dataclass(slots=True)
class _Leg:
    """An agent leg ccserver originated for a call."""

    call_id: str
    device: str
    job_uuid: str | None
    bridged: bool = False
    #: the agent's side hung this leg up (their phone sent BYE)
    remote_end: bool = False
    done: bool = False


@dataclass(slots=True)
class _Call:
    call_id: str
    uuid: str
    caller: str
    did: str
    answered: bool = False
    legs: list[str] = field(default_factory=list)


class EslNormalizer:
    """Turns one node's ESL events into domain events."""

    def __init__(self, node: str, inbound_contexts: set[str]):
        self.node = node
        self.inbound_contexts = inbound_contexts
        self.calls: dict[str, _Call] = {}  # caller uuid -> call
        self.legs: dict[str, _Leg] = {}  # agent leg uuid -> leg
        self._jobs: dict[str, str] = {}  # Job-UUID -> agent leg uuid
        #: channel uuids of the last ``show channels`` listing (see :meth:`resync_from`)
        self.listed: frozenset[str] = frozenset()
        #: agent legs still ringing (or answered and parked) that the last resync took over
        #: from a ccserver before a restart: their originate's result goes to no job of ours
        self.adopted_ringing: list[AdoptedLeg] = []

    def call_id(self, uuid: str) -> str:
        return f"{self.node}:{uuid}"

    def expect_leg(self, leg_uuid: str, call_id: str, device: str, job_uuid: str | None) -> None:
        """Announce an agent leg about to be originated (``origination_uuid=leg_uuid``)."""
        self.legs[leg_uuid] = _Leg(call_id, device, job_uuid)
        if job_uuid is not None:
            self._jobs[job_uuid] = leg_uuid

    def agent_leg(self, call_id: str) -> str | None:
        """The uuid of the agent leg bridged to ``call_id`` right now, if any."""
        return next((u for u, leg in self.legs.items()
                     if leg.call_id == call_id and leg.bridged), None)

    def leg_failed(self, leg_uuid: str, reason: str, now: float) -> list[DomainEvent]:
        """The adapter gave up on a leg (bridge refused, job lost): report it once."""
        leg = self.legs.get(leg_uuid)
        if leg is None or leg.done:
            return []
        leg.done = True
        return [AgentLegFailed(leg.call_id, leg.device, reason, now)]  # type: ignore[arg-type]

    def feed(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        """Domain events for one ESL event (usually none)."""
        name = ev.headers.get("Event-Name", "")
        handler = _HANDLERS.get(name)
        return handler(self, ev, now) if handler is not None else []

    # -- handlers ----------------------------------------------------------------------------

    def _start(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        uuid = ev.get("Unique-ID")
        call = _Call(self.call_id(uuid), uuid, ev.get("Caller-Caller-ID-Number"),
                     ev.get("Caller-Destination-Number"))
        self.calls[uuid] = call
        out: list[DomainEvent] = [CallStarted(call.call_id, self.node, uuid, call.caller,
                                              call.did, now)]
        if ev.get("Answer-State") == "answered":
            call.answered = True
            out.append(CallAnswered(call.call_id, now))
        return out

    def _create(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        uuid = ev.get("Unique-ID")
        leg = self.legs.get(uuid)
        if leg is not None:
            return [AgentLegRinging(leg.call_id, leg.device, now)]
        if (ev.get("Call-Direction") == "inbound" and uuid not in self.calls
                and ev.get("Caller-Context") in self.inbound_contexts):
            return self._start(ev, now)
        return []

    def _execute(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        # Our dialplan handing an inbound channel to ccserver's outbound socket makes it a call
        # even when it entered the switch in a context we do not list (a transfer from there).
        uuid = ev.get("Unique-ID")
        if (ev.get("Application") == "socket" and ev.get("Call-Direction") == "inbound"
                and uuid not in self.calls and uuid not in self.legs):
            return self._start(ev, now)
        return []

    def _answer(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        call = self.calls.get(ev.get("Unique-ID"))
        if call is None or call.answered:
            return []
        call.answered = True
        return [CallAnswered(call.call_id, now)]

    def _bridge(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        a, b = ev.get("Unique-ID"), ev.get("Other-Leg-Unique-ID")
        caller, agent = (a, b) if a in self.calls else (b, a)
        leg = self.legs.get(agent)
        if caller not in self.calls or leg is None or leg.bridged:
            return []
        leg.bridged = leg.done = True
        self.calls[caller].legs.append(agent)
        return [AgentLegAnswered(leg.call_id, leg.device, now)]

    def _dtmf(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        call = self.calls.get(ev.get("Unique-ID"))
        digit = ev.get("DTMF-Digit")
        if call is None or not digit:
            return []
        return [DigitsReceived(call.call_id, digit, now)]

    def _call_id_of(self, uuid: str) -> str | None:
        """The call a channel belongs to: as its caller or as one of its agent legs."""
        call = self.calls.get(uuid)
        if call is not None:
            return call.call_id
        leg = self.legs.get(uuid)
        return None if leg is None else leg.call_id

    def _hold(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        # Fired on the leg whose phone put the call on hold (a re-INVITE with a=sendonly, or
        # uuid_hold), usually the agent's; FreeSWITCH fires it only when the state changes.
        call_id = self._call_id_of(ev.get("Unique-ID"))
        if call_id is None:
            return []
        return [HoldChanged(call_id, ev.get("Event-Name") == "CHANNEL_HOLD", now)]

    def _record(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        call_id = self._call_id_of(ev.get("Unique-ID"))
        if call_id is None:
            return []
        path = ev.get("Record-File-Path")
        if ev.get("Event-Name") == "RECORD_START":
            return [RecordingStarted(call_id, path, now)]
        return [RecordingStopped(call_id, path, now)]

    def _job(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        leg_uuid = self._jobs.pop(ev.get("Job-UUID"), None)
        if leg_uuid is None:
            return []
        result = ev.body.strip()
        if result.startswith("+OK"):
            return []
        # "-ERR NO_ANSWER": originate failed; the cause name is the last word.
        cause = result.split()[-1] if result.split() else ""
        return self.leg_failed(leg_uuid, fs_leg_failure(cause), now)

    def _hangup(self, ev: EslEvent, now: float) -> list[DomainEvent]:
        uuid = ev.get("Unique-ID")
        disposition = ev.get("variable_sip_hangup_disposition")
        leg = self.legs.get(uuid)
        if leg is not None:
            leg.remote_end = disposition in _REMOTE_END
            if leg.job_uuid is None and not leg.done:
                # a ringing leg taken over at a resync: no job of ours will say why it ended,
                # its hang-up cause is the originate's (NO_ANSWER, USER_BUSY: capture c02)
                return self.leg_failed(uuid, fs_leg_failure(ev.get("Hangup-Cause")), now)
            return []
        call = self.calls.pop(uuid, None)
        if call is None:
            return []
        legs = [self.legs.pop(u) for u in call.legs if u in self.legs]
        for u in [u for u, lg in self.legs.items() if lg.call_id == call.call_id]:
            del self.legs[u]
        # No party known to have hung up (we sent the BYE or CANCEL, or the channel is not SIP
        # and says nothing) is "system", as on Asterisk when no HangupRequest came; "unknown"
        # is kept for calls whose end ccserver did not see at all (lost at a resync).
        by: HangupSide
        if disposition in _REMOTE_END:
            by = "caller"
        elif any(lg.remote_end for lg in legs):
            by = "agent"
        else:
            by = "system"
        cause = fs_hangup_cause(ev.get("Hangup-Cause"))
        if cause == "unknown" and by in ("caller", "agent"):
            cause = "normal_clearing"
        return [CallHungUp(call.call_id, cause, by, now)]

    # -- resync ------------------------------------------------------------------------------

    def _ours(self, r: dict[str, str]) -> bool:
        """A listed channel that is (or may become) one of our calls: an inbound channel we did
        not originate, known already or in one of our contexts."""
        uuid = r.get("uuid", "")
        return (r.get("direction") == "inbound" and uuid not in self.legs
                and (uuid in self.calls
                     or bool({r.get("context"), r.get("initial_context")} & self.inbound_contexts)))

    def unknown_agent_legs(self, rows: list[dict[str, str]]) -> list[str]:
        """The legs bridged to our callers that this normalizer did not originate (ccserver
        restarted since, or a transfer's gateway leg), and the originated legs bridged to nobody
        (an agent's phone still ringing, or answered and parked): the adapter reads their
        ``cc_call_id`` and ``cc_device`` for :meth:`resync_from`."""
        partners = _Partners(rows)
        bridged = [leg["uuid"] for r in rows if self._ours(r)
                   if (leg := partners.of(r)) is not None and leg.get("uuid") not in self.legs]
        unbridged = [r.get("uuid", "") for r in _unbridged_legs(rows)
                     if r.get("uuid", "") not in self.legs]
        return list(dict.fromkeys(bridged + unbridged))  # each asked for once

    def unknown_callers(self, rows: list[dict[str, str]]) -> list[str]:
        """Uuids of the listed channels a resync would adopt (ours, not a known call; after a
        restart: all of ours), whose kept facts are worth reading. Inbound channels in other
        contexts (the phones' own calls on a shared switch) are never adopted: asking each for
        facts would cost a ``uuid_getvar`` and a second listing at every login."""
        return [r.get("uuid", "") for r in rows if self._ours(r) and r.get("uuid", "") not in self.calls]

    def resync_from(self, rows: list[dict[str, str]], now: float,
                    variables: Mapping[str, Mapping[str, str]] | None = None,
                    facts: Mapping[str, CallFacts] | None = None) -> NodeResynced:
        """The node's live calls from the rows of ``show channels as json`` (forgetting missed
        hang-ups). ``variables`` are channel variables the adapter read, by channel uuid;
        ``facts`` what was kept on the callers' channels (by caller uuid).

        An agent leg ccserver originated before a restart is found by what the switch keeps:
        its ``cc_call_id`` names the call, and ``cc_device`` holds the dial string (both set at the
        originate); it is then tracked as bridged, as if this process had originated it. Without
        ``cc_device`` (a leg of an older ccserver, or not ours) the agent is ``user/<dest>``, the
        ``user/`` dial string agents are configured with: capture c08's leg
        ``sofia/internal/1001@127.0.0.1:5191`` has ``dest`` 1001.
        """
        variables = variables or {}
        by_uuid = {r.get("uuid", ""): r for r in rows}
        partners = _Partners(rows)
        self.listed = frozenset(by_uuid)
        # originated legs bridged to nobody, by the call they ring for: ours (known, or named
        # by the cc_call_id set at the originate)
        ringing = {found["cc_call_id"]: (u, found["cc_device"]) for r in _unbridged_legs(rows)
                   if (u := r.get("uuid", "")) not in self.legs
                   and (found := variables.get(u, {})).get("cc_call_id") and found.get("cc_device")}
        ringing |= {lg.call_id: (u, lg.device) for u, lg in self.legs.items()
                    if u in by_uuid and not lg.done}
        self.adopted_ringing = []
        live: list[LiveCall] = []
        kept: dict[str, _Call] = {}
        for r in rows:
            if not self._ours(r):
                continue
            uuid = r.get("uuid", "")
            # after the IVR ``dest`` is our after-IVR extension (capture c08): the DID is the
            # destination the call came in with
            call = self.calls.get(uuid) or _Call(
                self.call_id(uuid), uuid, r.get("cid_num", ""),
                r.get("initial_dest") or r.get("dest", ""), answered=r.get("callstate") == "ACTIVE")
            kept[uuid] = call
            agent_device = None
            other = partners.of(r)
            if other is not None:
                ou = other.get("uuid", "")
                leg = self.legs.get(ou)
                if leg is not None:
                    agent_device = leg.device
                else:
                    found = variables.get(ou, {})
                    dest = other.get("dest", "")
                    agent_device = (found.get("cc_device")
                                    or (f"user/{dest}" if dest else other.get("name", ou)))
                    if found.get("cc_call_id") == call.call_id:  # a leg ccserver originated
                        self.legs[ou] = _Leg(call.call_id, agent_device, None, bridged=True, done=True)
                        call.legs.append(ou)
            ringing_device = None
            if agent_device is None and call.call_id in ringing:
                leg_uuid, ringing_device = ringing[call.call_id]
                if leg_uuid not in self.legs:  # a ringing leg of a ccserver before a restart
                    self.legs[leg_uuid] = _Leg(call.call_id, ringing_device, None)
                    self.adopted_ringing.append(
                        AdoptedLeg(leg_uuid, call.call_id, uuid, ringing_device))
            try:
                duration = max(0.0, now - float(r.get("created_epoch", now)))
            except ValueError:
                duration = 0.0
            live.append(LiveCall(call.call_id, uuid, call.caller, call.did, agent_device, duration,
                                 (facts or {}).get(uuid), ringing_device))
        self.calls = kept
        pending = set(self._jobs.values())  # originates still running may not show yet
        self.legs = {u: lg for u, lg in self.legs.items() if u in by_uuid or u in pending}
        self._jobs = {j: u for j, u in self._jobs.items() if u in self.legs}
        return NodeResynced(self.node, tuple(live), now)


@dataclass(frozen=True, slots=True)
class AdoptedLeg:
    """An agent leg a resync took over still ringing (or answered and parked, waiting for its
    bridge): the adapter bridges it once it has answered."""

    uuid: str
    call_id: str
    #: the caller's channel uuid
    caller: str
    device: str


def _unbridged_legs(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The listed outbound legs running no application yet (ringing) or ``&park()`` (answered,
    not bridged): what an agent leg of ours is before its ``uuid_bridge`` (capture c01)."""
    return [r for r in rows if r.get("direction") == "outbound"
            and r.get("application", "") in ("", "park")]


def channel_rows(show_channels_json: str) -> list[dict[str, str]]:
    """The rows of a ``show channels as json`` reply (``{"row_count": 0}`` has none).

    Raises ``ValueError`` when the body is not the expected JSON.
    """
    data = json.loads(show_channels_json)
    if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
        raise ValueError("show channels as json: not an object with a 'rows' list")
    return [r for r in data.get("rows", []) if isinstance(r, dict)]


class _Partners:
    """The other leg of each listed channel: the one ``uuid_bridge`` names, or an originated
    leg whose ``call_uuid`` is the channel (both in capture c08)."""

    def __init__(self, rows: list[dict[str, str]]):
        self._by_uuid = {r.get("uuid", ""): r for r in rows}
        self._by_call = {r.get("call_uuid", ""): r for r in rows
                         if r.get("call_uuid") not in ("", r.get("uuid"))}

    def of(self, r: dict[str, str]) -> dict[str, str] | None:
        if r.get("application") == "uuid_bridge":
            other = self._by_uuid.get(r.get("application_data", ""))
            if other is not None and other is not r:
                return other
        return self._by_call.get(r.get("uuid", ""))


_HANDLERS = {
    "CHANNEL_CREATE": EslNormalizer._create,
    "CHANNEL_EXECUTE": EslNormalizer._execute,
    "CHANNEL_ANSWER": EslNormalizer._answer,
    "CHANNEL_BRIDGE": EslNormalizer._bridge,
    "CHANNEL_HOLD": EslNormalizer._hold,
    "CHANNEL_UNHOLD": EslNormalizer._hold,
    "DTMF": EslNormalizer._dtmf,
    "RECORD_START": EslNormalizer._record,
    "RECORD_STOP": EslNormalizer._record,
    "BACKGROUND_JOB": EslNormalizer._job,
    "CHANNEL_HANGUP_COMPLETE": EslNormalizer._hangup,
}
