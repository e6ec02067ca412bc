"""The Asterisk PBX adapter: AMI events in, PBX-neutral commands out (see pbx/base.py).

Glue only: :class:`AmiConnection` keeps the session up, :class:`AmiNormalizer` turns events
into domain events, and this class maps commands onto AMI actions for ccserver's dialplan
(``dialplans/asterisk/extensions.conf``).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from posixpath import normpath

from ccserver.core.commands import (
    CallbackAgent,
    ChangeSpyMode,
    Command,
    ConfirmCallback,
    HangupCall,
    KeepCallFacts,
    MuteRecording,
    RingAgent,
    SendToVoicemail,
    SpyMode,
    StartRecording,
    StartSpy,
    StopRecording,
    StopSpy,
    TransferCall,
)
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    CallHungUp,
    LegFailure,
    NodeConnectionChanged,
    SpyEnded,
    SpyModeChanged,
    SpyStarted,
)
from ccserver.core.facts import CallFacts
from ccserver.hardware import NodeConfig
from ccserver.pbx.asterisk.ami_client import AmiConnection
from ccserver.pbx.asterisk.ami_codec import Message
from ccserver.pbx.asterisk.normalize import AmiNormalizer
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.base import CommandFailed, EventSink, ended_unseen, gone_at_resync, why
from ccserver.pbx.causes import hangup_cause
from ccserver.pbx.contexts import (
    CALLBACK_CONFIRM_CONTEXT,
    CALLBACK_CONTEXT,
    CONNECT_CONTEXT,
    SPY_CONTEXT,
    TRANSFER_CONTEXT,
    VOICEMAIL_CONTEXT,
)
from ccserver.pbx.facts import ASTERISK_VARIABLE, FactsError, decode_facts, encode_facts

log = logging.getLogger(__name__)

#: AMI event classes of everything AmiNormalizer reads (the Privilege: of Newchannel, Newstate,
#: DialBegin/End, Hold, MixMonitor*, Hangup* is "call"; DTMFEnd is "dtmf").
EVENTS_MASK = "call,dtmf"
#: OriginateResponse ``Reason`` (the outgoing channel's last control frame) -> why the leg failed
_ORIGINATE_FAILURES: dict[str, LegFailure] = {"0": "unavailable", "1": "rejected", "3": "no_answer",
                                              "5": "busy", "8": "unavailable"}
#: ChanSpy options per mode: q = no beep / name, d = DTMF 4/5/6 switch listen/whisper/barge
#: (how ChangeSpyMode works without re-dialing the supervisor), E = end when the spied-on
#: channel hangs up, g() = only channels whose SPYGROUP we set for this session
SPY_OPTIONS: dict[SpyMode, str] = {"listen": "qdE", "whisper": "qdEw", "barge": "qdEB"}
#: the digit ChanSpy's ``d`` option reads to switch to each mode
SPY_DIGITS: dict[SpyMode, str] = {"listen": "4", "whisper": "5", "barge": "6"}
_SPY_MODE_OF: dict[str, SpyMode] = {digit: mode for mode, digit in SPY_DIGITS.items()}
#: seconds the supervisor's phone rings before the spy attempt is given up
SPY_RING_SECONDS = 30
_SAFE_CHANNEL = re.compile(r"^[A-Za-z0-9/@._:+-]{1,80}$")
_SAFE_SESSION = re.compile(r"^[0-9a-f]{8,32}$")


class AsteriskAdapter:
    """A :class:`~ccserver.pbx.base.PbxAdapter` for one Asterisk node."""

    def __init__(
        self,
        node: NodeConfig,
        sink: EventSink,
        secret: str,
        clock: Callable[[], float] = time.time,
    ):
        self.node = node.name
        self._recording_root = node.recording_root.rstrip("/")
        self._sink = sink
        self._clock = clock
        self.normalizer = AmiNormalizer(node.name, set(node.inbound_contexts))
        self._conn = AmiConnection(
            node.host, node.ami_port, node.ami_user, secret, EVENTS_MASK,
            on_event=self._on_event, on_up=self._on_up, on_down=self._on_down,
            ping_interval=node.ping_interval, ping_timeout=node.ping_timeout,
            backoff=Backoff(cap=node.reconnect_max, stable_after=node.reconnect_reset_after),
        )
        self._ids = itertools.count(1)
        #: while a CoreShowChannels runs: its ActionID and the items received so far
        self._resync_id: str | None = None
        self._resync_items: list[Message] = []
        #: the kept facts read just before that CoreShowChannels: channel Uniqueid -> facts
        self._resync_facts: dict[str, CallFacts] = {}
        #: spy sessions being set up or running, by id
        self._spies: dict[str, _Spy] = {}
        #: callbacks ringing an agent: Originate ActionID -> (call id, device)
        self._callbacks_ringing: dict[str, tuple[str, str]] = {}
        #: callbacks the agent answered: agent channel Uniqueid -> call id
        self._callback_legs: dict[str, str] = {}
        self._recording_problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"AsteriskAdapter({self.node!r})"

    @property
    def connected(self) -> bool:
        return self._conn.connected

    @property
    def recording_problems(self) -> tuple[str, ...]:
        """Why an on-demand start would be refused: the AMI user's rights, read at each login."""
        return self._recording_problems

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background; return at once."""
        await self._conn.start()

    async def stop(self) -> None:
        await self._conn.stop()

    # -- events ------------------------------------------------------------------------------

    def ivr_started(self, uniqueid: str) -> None:
        """ccserver's FastAGI runs the IVR on channel ``uniqueid`` of this node: track its call
        from now on, whatever context the channel was born in (see AmiNormalizer.claim)."""
        for event in self.normalizer.claim(uniqueid, self._clock()):
            self._sink(event)

    def _on_event(self, msg: Message) -> None:
        if self._resync_id is not None and msg.get("ActionID") == self._resync_id:
            # Applied right at CoreShowChannelsComplete, in stream order: events before it are
            # older than the snapshot, events after it continue from it.
            if msg.get("Event") == "CoreShowChannel":
                self._resync_items.append(msg)
            elif msg.get("Event") == "CoreShowChannelsComplete":
                items, self._resync_id, self._resync_items = self._resync_items, None, []
                now = self._clock()
                facts, self._resync_facts = self._resync_facts, {}
                self._sink(self.normalizer.resync_from(items, now, facts))
                self._resynced(items, now)
            return
        if self._spies:
            self._spy_event(msg)
        if self._callbacks_ringing or self._callback_legs:
            self._callback_event(msg)
        for event in self.normalizer.feed(msg, self._clock()):
            self._sink(event)

    def _check_rights(self) -> None:
        """Say at login, not at the first call, what this AMI user's write classes keep from
        ccserver. Recordings of policy "all" start in the dialplan and need no right, but an
        on-demand start during a call is AMI ``MixMonitor``, registered with the ``system``
        class only (apps/app_mixmonitor.c)."""
        problems = () if self._may_send("MixMonitor") else (
            f"node {self.node}: AMI user {self._conn.username!r} may not send MixMonitor (write "
            "class system): recordings started on demand during a call are refused",)
        if problems and problems != self._recording_problems:
            log.warning("%s", problems[0])
        self._recording_problems = problems

    def _may_send(self, action: str) -> bool:
        """Whether this AMI user may send ``action``, as ``ListCommands`` listed at the last login
        (True while that is not known)."""
        allowed = self._conn.allowed
        return allowed is None or action in allowed

    async def _on_up(self) -> None:
        self._check_rights()
        self._sink(NodeConnectionChanged(self.node, True, self._clock()))
        # before the listing: only ccserver writes the facts, and none is written meanwhile
        # that a call this listing shows for the first time could need
        self._resync_facts = await self._kept_facts()
        self._resync_id = f"ccserver-resync-{next(self._ids)}"
        self._resync_items = []
        replies = await self._conn.send_list_action(
            {"Action": "CoreShowChannels", "ActionID": self._resync_id}
        )
        if replies[0].get("Response") != "Success":
            self._resync_id = None
            raise CommandFailed(f"CoreShowChannels on {self.node}: {replies[0].get('Message')}")

    async def _kept_facts(self) -> dict[str, CallFacts]:
        """Every channel's kept call facts (Uniqueid -> facts), from one ``Status`` action asking
        for the variable: Asterisk answers each channel with a ``Variable: NAME=value`` header
        (``generate_status`` in ``main/manager.c``; the action needs the ``call`` or
        ``reporting`` class, which the shipped user has)."""
        try:
            replies = await self._conn.send_list_action(
                {"Action": "Status", "ActionID": f"ccserver-facts-{next(self._ids)}",
                 "Variables": ASTERISK_VARIABLE})
        except TimeoutError:
            # a very busy node: resync without them rather than drop the link and ask again
            replies = [Message([("Response", "Error"), ("Message", "no reply in time")])]
        if replies[0].get("Response") != "Success":
            log.warning("node %s: Status failed (%s): calls adopted at this resync lose what "
                        "was kept of them", self.node, replies[0].get("Message"))
            return {}
        facts: dict[str, CallFacts] = {}
        for item in replies:
            if item.get("Event") != "Status":
                continue
            for variable in item.values_of("Variable"):
                name, _, value = variable.partition("=")
                # an unset variable is a NULL printed with %s: "(null)" (generate_status)
                if name != ASTERISK_VARIABLE or value in ("", "(null)"):
                    continue
                try:
                    facts[item.get("Uniqueid", "")] = decode_facts(value)
                except FactsError as e:
                    log.warning("node %s: channel %s: %s", self.node, item.get("Channel"), e)
        return facts

    def _on_down(self) -> None:
        self._resync_id = None
        self._sink(NodeConnectionChanged(self.node, False, self._clock()))

    # -- commands ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> None:
        """Carry out ``command``; raise :class:`CommandFailed` if Asterisk refuses it."""
        if command.node != self.node:
            raise CommandFailed(f"command for node {command.node!r} sent to {self.node!r}")
        if isinstance(command, RingAgent):
            await self._ring(command)
        elif isinstance(command, CallbackAgent):
            await self._callback(command)
        elif isinstance(command, HangupCall):
            await self._act({"Action": "Hangup", "Channel": command.channel,
                             "Cause": str(command.cause)})
        elif isinstance(command, SendToVoicemail):
            await self._setvar(command.channel, "CC_VOICEMAIL_BOX", command.box)
            await self._act({"Action": "Redirect", "Channel": command.channel,
                             "Context": VOICEMAIL_CONTEXT, "Exten": "s", "Priority": "1"})
        elif isinstance(command, ConfirmCallback):
            await self._act({"Action": "Redirect", "Channel": command.channel,
                             "Context": CALLBACK_CONFIRM_CONTEXT, "Exten": "s", "Priority": "1"})
        elif isinstance(command, TransferCall):
            await self._act({"Action": "Redirect", "Channel": command.channel,
                             "Context": TRANSFER_CONTEXT, "Exten": command.destination,
                             "Priority": "1"})
        elif isinstance(command, StartRecording):
            await self._record(command)
        elif isinstance(command, KeepCallFacts):
            await self._setvar(command.channel, ASTERISK_VARIABLE, encode_facts(command.facts))
        elif isinstance(command, StopRecording):
            await self._act({"Action": "StopMixMonitor", "Channel": command.channel})
        elif isinstance(command, MuteRecording):
            # MixMonitorMute writes silence while muted: the file keeps the call's time line.
            await self._act({"Action": "MixMonitorMute", "Channel": command.channel,
                             "Direction": "both", "State": "1" if command.muted else "0"})
        elif isinstance(command, StartSpy):
            await self._start_spy(command)
        elif isinstance(command, ChangeSpyMode):
            spy = self._spy(command.session)
            # The ``;2`` half runs ChanSpy: the digit must be *received* there (option d).
            # Asterisk ignores "Async" here; without it panoramisk takes the reply "DTMF
            # successfully queued" for an async Originate's and fails on the missing header.
            await self._act({"Action": "PlayDTMF", "Channel": spy.local[:-1] + "2",
                             "Digit": SPY_DIGITS[command.mode], "Receive": "true", "Async": "false"})
        elif isinstance(command, StopSpy):
            spy = self._spy(command.session)
            await self._act({"Action": "Hangup", "Channel": spy.local, "Cause": "16"})
        else:
            raise CommandFailed(f"unsupported command {type(command).__name__}")

    async def _ring(self, cmd: RingAgent) -> None:
        # The dialplan's [ccserver-connect] dials ${CC_AGENT_DEVICE} for ${CC_RING_TIMEOUT}s,
        # recording into ${CC_RECORD_FILE} (MixMonitor option b: only while bridged) if set.
        record = None
        if cmd.record_file is not None:
            try:
                record = self._recording_path(cmd.record_file)
            except CommandFailed as e:
                log.error("call %s: not recorded: %s", cmd.call_id, e)
        try:
            await self._setvar(cmd.channel, "CC_AGENT_DEVICE", cmd.device)
            await self._setvar(cmd.channel, "CC_RING_TIMEOUT", str(cmd.timeout))
            if record is not None:
                self.normalizer.expect_ring_recording(cmd.channel, record)
                await self._setvar(cmd.channel, "CC_RECORD_FILE", record)
            await self._act({"Action": "Redirect", "Channel": cmd.channel,
                             "Context": CONNECT_CONTEXT, "Exten": "s", "Priority": "1"})
        except CommandFailed:
            # Nothing will ring, so no DialEnd will come: tell the core the leg failed.
            self._sink(AgentLegFailed(cmd.call_id, cmd.device, "error", self._clock()))
            raise

    async def _callback(self, cmd: CallbackAgent) -> None:
        """Originate the agent's device into ``[ccserver-callback]``, which dials the number once
        the agent answers. Tracked from the event stream, in order: the OriginateResponse (by
        ActionID) says answered or why not, the agent channel's Hangup ends the call."""
        action_id = f"ccserver-callback-{next(self._ids)}"
        self._callbacks_ringing[action_id] = (cmd.call_id, cmd.device)
        try:
            replies = await self._conn.send_list_action({
                "Action": "Originate", "ActionID": action_id, "Channel": cmd.device, "Async": "true",
                "Context": CALLBACK_CONTEXT, "Exten": cmd.number, "Priority": "1",
                "Timeout": str(cmd.timeout * 1000), "CallerID": f'"Callback" <{cmd.number}>',
                "Variable": [f"CC_CALL_ID={cmd.call_id}"],
            }, timeout=cmd.timeout + 10.0)
            refused = next((r for r in replies if r.get("Response") == "Error"), None)
            if refused is not None:
                raise CommandFailed(f"Originate callback {cmd.call_id}: {refused.get('Message', 'refused')}")
        except (ConnectionError, TimeoutError, ValueError, CommandFailed) as e:
            if self._callbacks_ringing.pop(action_id, None) is not None:
                self._sink(AgentLegFailed(cmd.call_id, cmd.device, "error", self._clock()))
            raise CommandFailed(f"Originate callback {cmd.call_id}: {why(e)}") from e

    def _resynced(self, items: list[Message], now: float) -> None:
        """End the callbacks and spy sessions whose channels went while the link was down."""
        callbacks = gone_at_resync(self._callback_legs, {m.get("Uniqueid", "") for m in items})
        spying = {spy.session for m in items if (spy := self._spy_of(m.get("Channel", ""))) is not None}
        spies = [self._spies.pop(s.session) for s in list(self._spies.values())
                 if s.local and s.session not in spying]
        for event in ended_unseen(self.node, now, callbacks, [(s.call_id, s.session) for s in spies]):
            self._sink(event)

    def _callback_event(self, msg: Message) -> None:
        name = msg.get("Event")
        if name == "OriginateResponse" and msg.get("ActionID") in self._callbacks_ringing:
            call_id, device = self._callbacks_ringing.pop(msg["ActionID"])
            if msg.get("Response") == "Success":
                self._callback_legs[msg.get("Uniqueid", "")] = call_id
                self._sink(AgentLegAnswered(call_id, device, self._clock()))
            else:
                why = _ORIGINATE_FAILURES.get(msg.get("Reason", ""), "error")
                self._sink(AgentLegFailed(call_id, device, why, self._clock()))
        elif name == "Hangup" and msg.get("Uniqueid") in self._callback_legs:
            call_id = self._callback_legs.pop(msg["Uniqueid"])
            cause = msg.get("Cause", "")
            self._sink(CallHungUp(call_id, hangup_cause(int(cause)) if cause.isdigit() else "unknown",
                                  "unknown", self._clock()))

    async def _setvar(self, channel: str, name: str, value: str) -> None:
        await self._act({"Action": "Setvar", "Channel": channel, "Variable": name,
                         "Value": value})

    def _recording_path(self, file: str) -> str:
        """``file`` (a name ccserver made) under the node's recording root, as the PBX sees it."""
        name = normpath(file)
        if name.startswith(("/", "..")) or not name or name == ".":
            raise CommandFailed(f"recording file {file!r} must stay under the node's root")
        return f"{self._recording_root}/{name}"

    async def _record(self, cmd: StartRecording) -> None:
        file = self._recording_path(cmd.file)
        started = self.normalizer.ring_recording_started(cmd.channel, file, self._clock())
        if started is not None:  # [ccserver-connect] started it with the ring
            self._sink(started)
            return
        # Not started by the dialplan (an on-demand start, or an [ccserver-connect] older than
        # its MixMonitor line): the AMI action, which needs the system class.
        unstarted = self.normalizer.forget_ring_recording(cmd.channel, file)
        if not self._may_send("MixMonitor"):  # Asterisk would answer Permission denied
            hint = (" and [ccserver-connect] did not start it (does it run MixMonitor before Dial?)"
                    if unstarted else "")
            raise CommandFailed(f"MixMonitor on {self.node}: AMI user {self._conn.username!r} "
                                f"lacks the write class system, needed to start recording "
                                f"during a call{hint}")
        self.normalizer.expect_recording(cmd.channel, file)  # MixMonitorStart has no file name
        try:
            await self._act({"Action": "MixMonitor", "Channel": cmd.channel, "File": file,
                             "Options": "b"})
        except CommandFailed:
            self.normalizer.expect_recording(cmd.channel, None)
            raise

    def _spy(self, session: str) -> _Spy:
        spy = self._spies.get(session)
        if spy is None or not spy.local:
            raise CommandFailed(f"no spy session {session!r} on {self.node}")
        return spy

    async def _start_spy(self, cmd: StartSpy) -> None:
        """Originate ``Local/<session>@ccserver-spy/n``: its ``;2`` half runs ChanSpy on the agent
        channel only, its ``;1`` half dials the supervisor (shape of captures 04a-c)."""
        if not _SAFE_SESSION.match(cmd.session):
            raise CommandFailed(f"spy session id {cmd.session!r} is not one ccserver made")
        if not _SAFE_CHANNEL.match(cmd.supervisor_device):
            raise CommandFailed(f"supervisor device {cmd.supervisor_device!r}: not a dial string")
        target = self.normalizer.agent_channel(cmd.call_id)
        if target is None:
            raise CommandFailed(f"call {cmd.call_id}: no agent connected on {self.node}")
        if not _SAFE_CHANNEL.match(target):
            raise CommandFailed(f"agent channel {target!r}: unexpected characters")
        group = f"cc{cmd.session}"
        await self._setvar(target, "SPYGROUP", group)
        action: dict[str, str | Sequence[str]] = {
            "Action": "Originate", "Channel": f"Local/{cmd.session}@{SPY_CONTEXT}/n",
            "Application": "Dial", "Data": f"{cmd.supervisor_device},{SPY_RING_SECONDS}",
            "CallerID": f'"Supervisor" <{cmd.session[:8]}>',
            "Timeout": str(SPY_RING_SECONDS * 1000), "Async": "true",
            "Variable": [f"CC_SPY_TARGET={target}",
                         f"CC_SPY_OPTIONS={SPY_OPTIONS[cmd.mode]}g({group})"],
        }
        # Known before Originate: ChanSpyStart comes before OriginateResponse (capture 04a).
        spy = self._spies[cmd.session] = _Spy(cmd.session, cmd.call_id)
        try:
            replies = await self._conn.send_list_action(action, timeout=SPY_RING_SECONDS + 10.0)
        except (ConnectionError, TimeoutError, ValueError) as e:
            self._spies.pop(cmd.session, None)
            await self._clear_spygroup(target)
            raise CommandFailed(f"Originate spy on {self.node}: {why(e)}") from e
        done = next((r for r in replies if r.get("Event") == "OriginateResponse"), None)
        if done is None or done.get("Response") != "Success" or not done.get("Channel"):
            self._spies.pop(cmd.session, None)
            await self._clear_spygroup(target)
            why = (done or replies[0]).get("Message") or (done or {}).get("Reason", "failed")
            raise CommandFailed(f"spy on {cmd.call_id}: originate refused ({why})")
        spy.local = done["Channel"]
        if spy.ended:  # ChanSpy found nothing to watch and both halves are gone already
            self._spies.pop(cmd.session, None)
            raise CommandFailed(f"spy on {cmd.call_id}: the agent channel could not be reached")

    async def _clear_spygroup(self, channel: str) -> None:
        try:
            await self._setvar(channel, "SPYGROUP", "")
        except CommandFailed:
            pass  # the channel is gone: nothing left to clean

    def _spy_of(self, channel: str) -> _Spy | None:
        """The session of a ``Local/<session>@ccserver-spy-XXXXXXXX;N`` channel."""
        if not channel.startswith("Local/"):
            return None
        session, at, rest = channel[6:].partition("@")
        return self._spies.get(session) if at and rest.startswith(SPY_CONTEXT + "-") else None

    def _spy_event(self, msg: Message) -> None:
        name = msg.get("Event")
        if name == "ChanSpyStart":
            spy = self._spy_of(msg.get("SpyerChannel", ""))
            if spy is not None:
                self._sink(SpyStarted(spy.call_id, spy.session, self._clock()))
        elif name == "DTMFEnd":
            # A digit ChanSpy reads on the ``;2`` half switches the mode, whoever sent it: our
            # PlayDTMF or the supervisor's keypad (which passes through ``;1`` as "Sent" first).
            channel, mode = msg.get("Channel", ""), _SPY_MODE_OF.get(msg.get("Digit", ""))
            spy = self._spy_of(channel)
            if (spy is not None and mode is not None and channel.endswith(";2")
                    and msg.get("Direction") == "Received"):
                self._sink(SpyModeChanged(spy.call_id, spy.session, mode, self._clock()))
        elif name == "Hangup":
            spy = self._spy_of(msg.get("Channel", ""))
            if spy is not None and not spy.ended:
                spy.ended = True
                if spy.local:  # a failed start is reported by execute(), not as an event
                    del self._spies[spy.session]
                    self._sink(SpyEnded(spy.call_id, spy.session, self._clock()))

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str = "",
        caller_id: str | None = None,
        timeout: float = 30.0,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Originate ``channel`` to a dialplan place or an application (``Async: true``).

        Returns once Asterisk reports the outcome (``OriginateResponse``); raises
        :class:`CommandFailed` if it was refused or the channel could not be reached.
        """
        action: dict[str, str | Sequence[str]] = {
            "Action": "Originate", "Channel": channel, "Async": "true",
            "Timeout": str(int(timeout * 1000)),
        }
        if application is not None:
            action |= {"Application": application, "Data": data}
        elif context is not None and exten is not None:
            action |= {"Context": context, "Exten": exten, "Priority": str(priority)}
        else:
            raise CommandFailed("originate needs an application or a context and exten")
        if caller_id is not None:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        try:
            replies = await self._conn.send_list_action(action, timeout=timeout + 10.0)
        except (ConnectionError, TimeoutError, ValueError) as e:
            raise CommandFailed(f"Originate {channel}: {why(e)}") from e
        for reply in replies:
            if reply.get("Response") not in (None, "Success"):
                raise CommandFailed(f"Originate {channel}: "
                                    f"{reply.get('Message') or reply.get('Reason', 'failed')}")

    async def _act(self, action: dict[str, str]) -> Message:
        try:
            reply = await self._conn.send_action(action)
        except (ConnectionError, TimeoutError, ValueError) as e:
            raise CommandFailed(f"{action['Action']} on {self.node}: {why(e)}") from e
        if reply.get("Response") != "Success":
            raise CommandFailed(reply.get("Message") or f"{action['Action']} refused")
        return reply


@dataclass(slots=True)
class _Spy:
    session: str
    call_id: str
    #: the ``;1`` half of the Local channel (dials the supervisor), once Originate answered
    local: str = ""
    #: a half of the Local channel hung up
    ended: bool = False
