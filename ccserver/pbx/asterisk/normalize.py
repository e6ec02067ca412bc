"""AMI events to domain events: sans-I/O, pure, stateful.

:class:`AmiNormalizer` keeps a small table of the channels that belong to ccserver's calls and
turns the few AMI events that matter into :mod:`ccserver.core.events`. It never does I/O and
never reads a clock (``now`` is handed in), so captures replay into it byte for byte.

A call is a channel that enters ccserver's dialplan. A ``Newchannel`` in one of the node's
inbound contexts starts it at once; a channel born elsewhere (the carrier's own context, which
sends it on with ``Goto(ccserver-inbound,${EXTEN},1)``: README step 1) is kept aside until an
event of it shows ``Context: ccserver-inbound`` (or the wait / connect context): every AMI
channel event carries the channel's snapshot, and the first one after the ``Goto`` is the
``Newstate`` of ``Answer()`` (capture asterisk-ccserver/c01: ``Newchannel`` from-carrier, then
``Newstate`` ccserver-inbound). ``Newexten`` / ``VarSet`` would say it sooner, but they are of the
``dialplan`` class the shipped AMI user does not read. The call's key is the channel's
``Linkedid``, and every later channel with that ``Linkedid`` is one of its legs.

``BridgeEnter`` / ``BridgeLeave`` have no handler, on purpose. The agent leg is dialed by our
connect context, so its ``DialEnd`` with ``DialStatus: ANSWER`` already names the agent channel
(``DestChannel``) and comes before both channels enter the bridge (captures 02, 02b); the bridge
ends by a ``Hangup`` of one leg, which carries the cause ``BridgeLeave`` lacks. A transfer
ccserver orders is an AMI ``Redirect`` of the caller (the core knows it, having decided it), and
the live bridge membership a resync needs comes from ``CoreShowChannels`` (its ``BridgeId``,
capture 10b). What a bridge event alone would show, a transfer made from the agent's phone, also
raises ``BlindTransfer`` / ``AttendedTransfer``, of which no capture exists yet; handling it needs
one first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    CallerLeaving,
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
from ccserver.pbx.asterisk.ami_codec import Message
from ccserver.pbx.causes import hangup_cause, leg_failure
from ccserver.pbx.contexts import (
    CALLBACK_CONTEXT,
    CONNECT_CONTEXT,
    INBOUND_CONTEXT,
    TRANSFER_CONTEXT,
    WAIT_CONTEXT,
)

log = logging.getLogger(__name__)

#: High-volume events nothing here uses; dropped before any lookup (they should also be
#: filtered at the source, see ami_client).
NOISE = frozenset({"VarSet", "CEL", "Newexten", "RTCPSent", "RTCPReceived", "DeviceStateChange"})

#: ccserver's own dialplan contexts (dialplans/asterisk/extensions.conf) a caller moves through.
CCSERVER_CONTEXTS = frozenset({INBOUND_CONTEXT, WAIT_CONTEXT, CONNECT_CONTEXT})
#: ccserver contexts whose ``Dial`` rings someone other than an agent: the external number of a
#: transfer (capture c07: ``DialBegin`` of PJSIP/carrier-... with ``Context: ccserver-transfer``)
#: and a callback's number
_NOT_AGENT_DIALS = frozenset({TRANSFER_CONTEXT, CALLBACK_CONTEXT})

_UP = "6"  # AST_STATE_UP


def device_of(channel: str) -> str:
    """Dial string of a channel: ``PJSIP/1001-00000016`` -> ``PJSIP/1001``.

    Local channels also lose their ``;1``/``;2`` half marker.
    """
    name = channel.partition(";")[0]
    base, sep, suffix = name.rpartition("-")
    if sep and base and suffix and all(c in "0123456789abcdef" for c in suffix):
        return base
    return name


def _cid(value: str) -> str:
    return "" if value == "<unknown>" else value


def _duration(text: str) -> float:
    """``HH:MM:SS`` (hours may exceed 99) to seconds."""
    h, m, s = text.split(":")
    return float(int(h) * 3600 + int(m) * 60 + int(s))


@dataclass(slots=True)
class _Call:
    call_id: str
    key: str  # Linkedid
    channel: str  # the caller's channel name
    uniqueid: str
    caller: str
    did: str
    answered: bool = False
    #: agent channels being dialed (DestChannel -> device); one DialEnd each counts
    dialing: dict[str, str] = field(default_factory=dict)
    #: the agent channel that answered, if any
    connected: str | None = None
    #: who asked for the hang-up first (HangupRequest), if anyone did
    hangup_by: HangupSide | None = None
    #: files of running recordings, most recent last (StopMixMonitor stops the last one)
    recordings: list[str] = field(default_factory=list)
    #: the recording [ccserver-connect] started with the ring, kept back until the agent answers
    ringing_recording: str | None = None


@dataclass(slots=True)
class _Unclaimed:
    """A channel born outside the inbound contexts: ours once it enters our dialplan."""

    channel: str
    caller: str
    exten: str
    born: float
    answered: bool


class AmiNormalizer:
    """Feed AMI messages in arrival order; get domain events back."""

    def __init__(self, node: str, inbound_contexts: set[str]):
        self.node = node
        self.inbound_contexts = frozenset(inbound_contexts)
        self._calls: dict[str, _Call] = {}  # Linkedid -> call
        self._channels: dict[str, str] = {}  # Uniqueid -> Linkedid of its call
        #: channels that started a Linkedid of their own outside the inbound contexts, by
        #: Uniqueid, until they enter our dialplan or hang up (bounded by the node's channels)
        self._unclaimed: dict[str, _Unclaimed] = {}
        self._our_contexts = CCSERVER_CONTEXTS | self.inbound_contexts
        self._expected_files: dict[str, str] = {}  # channel -> file we asked MixMonitor for
        self._dialplan_files: dict[str, str] = {}  # channel -> file its next ring records into
        self._handlers: dict[str, Callable[[Message, float], list[DomainEvent]]] = {
            "Newchannel": self._newchannel,
            "Newstate": self._newstate,
            "DTMFEnd": self._dtmf_end,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "Hold": self._hold,
            "Unhold": self._hold,
            "MixMonitorStart": self._mixmonitor_start,
            "MixMonitorStop": self._mixmonitor_stop,
            "HangupRequest": self._hangup_request,
            "Hangup": self._hangup,
        }

    @property
    def live_call_ids(self) -> list[str]:
        """Ids of the calls currently tracked (for diagnostics and tests)."""
        return [c.call_id for c in self._calls.values()]

    def agent_channel(self, call_id: str) -> str | None:
        """The agent channel bridged to ``call_id``'s caller right now, if any."""
        call = self._calls.get(call_id.partition(":")[2])
        return call.connected if call is not None and call.call_id == call_id else None

    def expect_recording(self, channel: str, file: str | None) -> None:
        """Name the file of the next ``MixMonitorStart`` on ``channel``.

        Asterisk's ``MixMonitorStart`` carries no file name (see capture 05), so the adapter tells
        us what it asked for; ``None`` withdraws it (the action failed). Recordings started by
        someone else report ``file=""``.
        """
        if file is None:
            self._expected_files.pop(channel, None)
        else:
            self._expected_files[channel] = file

    def expect_ring_recording(self, channel: str, file: str) -> None:
        """The caller on ``channel`` is rung with ``CC_RECORD_FILE=file``: [ccserver-connect]
        starts MixMonitor on it before Dial. That start is only reported (by
        :meth:`ring_recording_started`) once the agent answered: a ring nobody answers ends in
        the dialplan's StopMixMonitor and is no recording of the call."""
        self._dialplan_files[channel] = file

    def ring_recording_started(self, channel: str, file: str, now: float) -> RecordingStarted | None:
        """The core asks to record ``channel`` into ``file`` (the agent answered): the
        :class:`RecordingStarted` of the dialplan's MixMonitor, or None if it never started."""
        call = next((c for c in self._calls.values() if c.channel == channel), None)
        if call is None or call.ringing_recording != file:
            return None
        call.ringing_recording = None
        call.recordings.append(file)
        return RecordingStarted(call.call_id, file, now)

    def forget_ring_recording(self, channel: str, file: str) -> bool:
        """Drop the ring recording of ``file`` on ``channel`` that never started; whether there
        was one (the dialplan was handed ``file`` but ran no MixMonitor)."""
        if self._dialplan_files.get(channel) != file:
            return False
        del self._dialplan_files[channel]
        return True

    def feed(self, msg: Message, now: float) -> list[DomainEvent]:
        """Turn one AMI message into zero or more domain events. Never raises."""
        name = msg.get("Event")
        if name is None or name in NOISE:
            return []
        try:
            claimed = self._claim(msg, now) if msg.get("Uniqueid") in self._unclaimed else []
            handler = self._handlers.get(name)
            return claimed if handler is None else claimed + handler(msg, now)
        except (KeyError, ValueError) as e:
            log.warning("AMI %s on node %s: malformed (%s: %s), skipped", name, self.node,
                        type(e).__name__, e)
            return []

    # -- lookups -----------------------------------------------------------------------------

    def _call_of(self, msg: Message) -> _Call | None:
        key = self._channels.get(msg.get("Uniqueid", ""))
        return None if key is None else self._calls.get(key)

    def _caller_call(self, msg: Message) -> _Call | None:
        """The call whose *caller* channel this message is about."""
        call = self._call_of(msg)
        return call if call is not None and call.uniqueid == msg.get("Uniqueid") else None

    # -- handlers ----------------------------------------------------------------------------

    def _newchannel(self, msg: Message, now: float) -> list[DomainEvent]:
        uid, key = msg["Uniqueid"], msg["Linkedid"]
        if key in self._calls:  # a leg of a known call (agent, Local half, ...)
            self._channels[uid] = key
            return []
        if msg.get("Context") in self.inbound_contexts:
            return self._start(uid, msg["Channel"], _cid(msg.get("CallerIDNum", "")),
                               msg.get("Exten", ""), msg.get("ChannelState") == _UP, now)
        if uid == key and not msg["Channel"].startswith("Local/"):
            self._unclaimed[uid] = _Unclaimed(msg["Channel"], _cid(msg.get("CallerIDNum", "")),
                                              msg.get("Exten", ""), now,
                                              msg.get("ChannelState") == _UP)
        return []

    def _start(self, uid: str, channel: str, caller: str, did: str, answered: bool,
               at: float) -> list[DomainEvent]:
        call = _Call(call_id=f"{self.node}:{uid}", key=uid, channel=channel, uniqueid=uid,
                     caller=caller, did=did, answered=answered)
        self._calls[uid] = call
        self._channels[uid] = uid
        return [CallStarted(call.call_id, self.node, channel, caller, did, at)]

    def _claim(self, msg: Message, now: float) -> list[DomainEvent]:
        """An event of a channel kept aside: start its call if it is in our dialplan now."""
        uid = msg["Uniqueid"]
        if msg.get("Event") == "Hangup":
            del self._unclaimed[uid]
            return []
        seen = self._unclaimed[uid]
        if msg.get("Context") not in self._our_contexts:
            seen.answered |= msg.get("ChannelState") == _UP
            return []
        # The DID is the extension it entered [ccserver-inbound] with (the Goto's ${EXTEN});
        # met first in the wait or connect context (its inbound events missed), its first one.
        did = msg.get("Exten", "") if msg.get("Context") == INBOUND_CONTEXT else seen.exten
        return self._adopt(uid, did, now)

    def claim(self, uniqueid: str, now: float) -> list[DomainEvent]:
        """ccserver's FastAGI session runs on channel ``uniqueid``: a call of ours, even before
        (or without) an AMI event showing it in our dialplan, e.g. when the trunk's context
        answered before its ``Goto`` (no ``Newstate`` in ccserver-inbound) or runs the AGI
        itself. Nothing for a channel already ours or never seen."""
        if uniqueid not in self._unclaimed:
            return []
        return self._adopt(uniqueid, self._unclaimed[uniqueid].exten, now)

    def _adopt(self, uid: str, did: str, now: float) -> list[DomainEvent]:
        """Start the call of a channel kept aside, at the time the channel was born."""
        seen = self._unclaimed.pop(uid)
        started = self._start(uid, seen.channel, seen.caller, did, seen.answered, seen.born)
        if seen.answered:  # answered before it reached us: the IVR runs from now on
            started.append(CallAnswered(started[0].call_id, now))
        return started

    def _newstate(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._caller_call(msg)
        if call is None or call.answered or msg["ChannelState"] != _UP:
            return []
        call.answered = True
        return [CallAnswered(call.call_id, now)]

    def _dtmf_end(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._caller_call(msg)
        if call is None or msg.get("Direction") != "Received" or not msg["Digit"]:
            return []
        return [DigitsReceived(call.call_id, msg["Digit"], now)]

    def _dial_begin(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._caller_call(msg)
        dest = msg.get("DestChannel")
        if call is None or not dest or msg.get("Context") in _NOT_AGENT_DIALS:
            return []
        device = device_of(dest)
        call.dialing[dest] = device
        dest_uid = msg.get("DestUniqueid")
        if dest_uid:  # the leg belongs to the call even if its Newchannel was missed
            self._channels[dest_uid] = call.key
        return [AgentLegRinging(call.call_id, device, now)]

    def _dial_end(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._caller_call(msg)
        dest = msg.get("DestChannel")
        # app_queue sends NOANSWER then CANCEL for the same leg (capture 03): first one counts
        if call is None or dest not in call.dialing:
            return []
        device = call.dialing.pop(dest)
        status = msg["DialStatus"]
        if status == "ANSWER":
            call.connected = dest
            return [AgentLegAnswered(call.call_id, device, now)]
        return [AgentLegFailed(call.call_id, device, leg_failure(status), now)]

    def _hold(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        return [HoldChanged(call.call_id, msg["Event"] == "Hold", now)]

    def _mixmonitor_start(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        channel = msg["Channel"]
        if channel == call.channel and channel in self._dialplan_files:
            call.ringing_recording = self._dialplan_files.pop(channel)
            return []
        file = self._expected_files.pop(channel, "")
        call.recordings.append(file)
        return [RecordingStarted(call.call_id, file, now)]

    def _mixmonitor_stop(self, msg: Message, now: float) -> list[DomainEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        if call.ringing_recording is not None:  # the ring was not answered: no recording
            call.ringing_recording = None
            return []
        file = call.recordings.pop() if call.recordings else ""
        return [RecordingStopped(call.call_id, file, now)]

    def _hangup_request(self, msg: Message, now: float) -> list[DomainEvent]:
        # HangupRequest is the far end hanging up (a BYE); an AMI or dialplan hang-up is only a
        # SoftHangupRequest. A ringing agent that declines is not "the agent hung up".
        call = self._call_of(msg)
        if call is None or call.hangup_by is not None:
            return []
        if msg["Uniqueid"] == call.uniqueid:
            # Said at once: the caller's DialEnd CANCEL comes after this and before its Hangup
            # (capture asterisk-ami/03: HangupRequest, MusicOnHoldStop, DialEnd CANCEL, ...,
            # Hangup), and the leg it ends must not send the leaving caller to another agent.
            call.hangup_by = "caller"
            return [CallerLeaving(call.call_id, now)]
        if msg.get("Channel") == call.connected:
            call.hangup_by = "agent"
        return []

    def _hangup(self, msg: Message, now: float) -> list[DomainEvent]:
        uid = msg["Uniqueid"]
        call = self._call_of(msg)
        if call is None:
            return []
        if uid != call.uniqueid:  # an agent leg or other helper channel of the call
            del self._channels[uid]
            return []
        try:
            cause = hangup_cause(int(msg.get("Cause", "0")))
        except ValueError:
            log.warning("AMI Hangup on node %s: bad Cause %r", self.node, msg.get("Cause"))
            cause = "unknown"
        if cause == "unknown" and call.hangup_by in ("caller", "agent"):
            # Asterisk reports Cause 0 for a plain BYE outside a bridge (captures 03, 07b): a party
            # hanging up is a normal clearing, whatever the number says.
            cause = "normal_clearing"
        self._forget(call)
        return [CallHungUp(call.call_id, cause, call.hangup_by or "system", now)]

    def _forget(self, call: _Call) -> None:
        del self._calls[call.key]
        for uid in [u for u, k in self._channels.items() if k == call.key]:
            del self._channels[uid]
        self._expected_files.pop(call.channel, None)
        self._dialplan_files.pop(call.channel, None)

    # -- resynchronization -------------------------------------------------------------------

    def _is_caller(self, item: Message) -> bool:
        uid = item.get("Uniqueid", "")
        if not uid or uid != item.get("Linkedid") or item.get("Channel", "").startswith("Local/"):
            return False
        if uid in self._calls:  # we saw it start
            return True
        ctx = item.get("Context", "")
        return not ctx or ctx in self._our_contexts

    def resync_from(self, items: list[Message], now: float,
                    facts: Mapping[str, CallFacts] | None = None) -> NodeResynced:
        """Rebuild the channel table from a ``CoreShowChannels`` listing and report live calls.

        ``items`` may contain the whole list reply; only ``CoreShowChannel`` events are read.
        ``facts`` are the kept call facts by caller Uniqueid (``Status``), reported with them.
        What a listing cannot tell (the DID of a caller who already left the inbound context,
        who asked to hang up, running recordings) is kept for calls we already knew.
        """
        rows = [m for m in items if m.get("Event") == "CoreShowChannel"]
        old = self._calls
        calls: dict[str, _Call] = {}
        channels: dict[str, str] = {}
        durations: dict[str, float] = {}
        bridges: dict[str, str] = {}  # BridgeId -> Linkedid of the caller in it
        unclaimed: dict[str, _Unclaimed] = {}
        for m in rows:
            if not self._is_caller(m):
                uid, chan = m.get("Uniqueid", ""), m.get("Channel", "")
                if uid and uid == m.get("Linkedid") and not chan.startswith("Local/"):
                    # still in the carrier's context: ours if it goes on into our dialplan
                    unclaimed[uid] = self._unclaimed.get(uid) or _Unclaimed(
                        chan, _cid(m.get("CallerIDNum", "")), m.get("Exten", ""), now,
                        m.get("ChannelState") == _UP)
                continue
            key, prev = m["Uniqueid"], old.get(m["Uniqueid"])
            inbound = m.get("Context") == INBOUND_CONTEXT or m.get("Context") in self.inbound_contexts
            fresh_did = m.get("Exten", "") if inbound else ""
            call = _Call(
                call_id=f"{self.node}:{key}", key=key, channel=m.get("Channel", ""), uniqueid=key,
                caller=_cid(m.get("CallerIDNum", "")),
                did=prev.did if prev else fresh_did,
                answered=m.get("ChannelState") == _UP,
            )
            if prev is not None:
                call.hangup_by, call.recordings = prev.hangup_by, prev.recordings
                call.ringing_recording = prev.ringing_recording
            calls[key] = call
            channels[key] = key
            try:
                durations[key] = _duration(m.get("Duration", "0:0:0"))
            except ValueError:
                log.warning("CoreShowChannel on node %s: bad Duration %r", self.node,
                            m.get("Duration"))
                durations[key] = 0.0
            if m.get("BridgeId"):
                bridges[m["BridgeId"]] = key
        for m in rows:
            uid, key = m.get("Uniqueid", ""), m.get("Linkedid", "")
            if key not in calls or uid == key:
                continue
            channels[uid] = key
            call, chan = calls[key], m.get("Channel", "")
            if m.get("BridgeId") and bridges.get(m["BridgeId"]) == key:
                call.connected = chan
            elif not m.get("BridgeId"):  # still ringing: its DialEnd is yet to come
                call.dialing[chan] = device_of(chan)
        self._calls, self._channels, self._unclaimed = calls, channels, unclaimed
        live = tuple(
            LiveCall(c.call_id, c.channel, c.caller, c.did,
                     device_of(c.connected) if c.connected else None, durations[k],
                     (facts or {}).get(c.uniqueid), next(iter(c.dialing.values()), None))
            for k, c in calls.items()
        )
        return NodeResynced(self.node, live, now)
