"""The FreeSWITCH PBX adapter: ESL events in, PBX-neutral commands out (see pbx/base.py).

Glue only: :class:`EslConnection` keeps the session up, :class:`EslNormalizer` turns events into
domain events, and this class maps commands onto ESL ``api``/``bgapi`` calls:

* ``RingAgent``: ``bgapi originate {origination_uuid=L,...}<device> &park()`` with our own
  Job-UUID, then, when the BACKGROUND_JOB says ``+OK`` (the agent answered),
  ``uuid_bridge <caller> L``. A ``-ERR <CAUSE>`` job result becomes ``AgentLegFailed(reason)``;
  a job that never returns within the ring timeout plus :data:`JOB_GRACE` gives up the leg
  (``AgentLegFailed("error")``) and kills it, so the ACD offers the caller to someone else.
  A caller who hangs up while the leg rings takes it along: ``uuid_kill L ORIGINATOR_CANCEL``,
  also when the hang-up went unseen while the link was down (the resync no longer lists it).
* ``SendToVoicemail`` / ``ConfirmCallback``: ``uuid_transfer`` into our dialplan's context.
* ``HangupCall``: ``uuid_kill``; ``StartRecording``/``StopRecording``: ``uuid_record``.
* ``KeepCallFacts``: ``uuid_setvar <caller> cc_call_facts <value>``, read back with
  ``uuid_getvar`` for the calls a resync does not know (:mod:`ccserver.pbx.facts`).

Event format: we subscribe with ``event json``. One ``json.loads`` per event is C code and
gives final values; the plain format needs a second header parse and URL-decoding of every value
(HANGUP_COMPLETE carries ~190 of them), and it frames bodies twice: on the captured call JSON
parses about 2.8x faster than plain (``bench/esl_formats.py``). Both parse (the codec reads both), so
switching costs one word.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid as uuidlib
from collections.abc import Callable
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
from ccserver.hardware import FreeSwitchNodeConfig
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.base import CommandFailed, EventSink, ended_unseen, gone_at_resync, why
from ccserver.pbx.causes import FS_CAUSE_CODES, fs_hangup_cause
from ccserver.pbx.contexts import (
    CALLBACK_CONFIRM_CONTEXT,
    CALLBACK_CONTEXT,
    TRANSFER_CONTEXT,
    VOICEMAIL_CONTEXT,
)
from ccserver.pbx.facts import FREESWITCH_VARIABLE, FactsError, decode_facts, encode_facts
from ccserver.pbx.freeswitch.esl_client import EslConnection
from ccserver.pbx.freeswitch.esl_codec import EslEvent
from ccserver.pbx.freeswitch.normalize import SUBSCRIBED, EslNormalizer, channel_rows

log = logging.getLogger(__name__)

#: seconds beyond the ring timeout an originate job may take before we give up on it
JOB_GRACE = 10.0
#: FreeSWITCH's ring time for an originate without ``originate_timeout`` (SWITCH_DEFAULT_TIMEOUT,
#: switch_ivr_originate.c)
FS_ORIGINATE_TIMEOUT = 60
#: the variables ccserver sets on an agent leg at the originate that a restarted one reads back
_LEG_VARIABLES = ("cc_call_id", "cc_device", "originate_timeout")

#: Q.850 code -> the FreeSWITCH cause name uuid_kill takes (first name listed for each code)
_CAUSE_NAMES: dict[int, str] = {}
for _name, _code in FS_CAUSE_CODES.items():
    _CAUSE_NAMES.setdefault(_code, _name)

_DIAL_STRING_FORBIDDEN = set(" \t\r\n{}'\"")
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
#: an originate job's ``-ERR <cause>`` -> why the agent leg failed
_ORIGINATE_FAILURES: dict[str, LegFailure] = {
    "NO_ANSWER": "no_answer", "NO_USER_RESPONSE": "no_answer", "USER_BUSY": "busy",
    "CALL_REJECTED": "rejected", "USER_NOT_REGISTERED": "unavailable", "SUBSCRIBER_ABSENT": "unavailable",
}
#: seconds the supervisor's phone may ring before the spy attempt is given up
SPY_RING_SECONDS = 30
#: eavesdrop's DTMF controls (``eavesdrop_enable_dtmf=true``, capture 04): 0 = listen only,
#: 2 = talk to the eavesdropped (agent) leg = whisper, 3 = three-way = barge
SPY_DIGITS: dict[SpyMode, str] = {"listen": "0", "whisper": "2", "barge": "3"}
_SPY_MODE_OF: dict[str, SpyMode] = {digit: mode for mode, digit in SPY_DIGITS.items()}
#: eavesdrop's 1 = talk to the other party (the caller) only. Not a mode of ccserver: Asterisk's
#: ChanSpy has none like it, and a voice the caller hears but the agent does not undercuts the
#: agent mid-call. The adapter puts the session straight back in its mode (README).
CALLER_ONLY_DIGIT = "1"


class FreeSwitchAdapter:
    """A :class:`~ccserver.pbx.base.PbxAdapter` for one FreeSWITCH node."""

    #: uuid_record needs no right an ESL login could lack (see PbxAdapter.recording_problems)
    recording_problems: tuple[str, ...] = ()

    def __init__(
        self,
        node: FreeSwitchNodeConfig,
        sink: EventSink,
        secret: str,
        clock: Callable[[], float] = time.time,
    ):
        self.node = node.name
        self._recording_root = node.recording_root.rstrip("/")
        self._sink = sink
        self._clock = clock
        self.normalizer = EslNormalizer(node.name, set(node.inbound_contexts))
        self._conn = EslConnection(
            node.host, node.esl_port, secret, SUBSCRIBED,
            on_event=self._on_event, on_up=self._on_up, on_down=self._on_down,
            command_timeout=node.command_timeout,
            ping_interval=node.ping_interval, ping_timeout=node.ping_timeout,
            backoff=Backoff(cap=node.reconnect_max, stable_after=node.reconnect_reset_after),
        )
        #: Job-UUID -> (the ring command, agent leg uuid) for originates still running
        self._ring_jobs: dict[str, tuple[RingAgent, str]] = {}
        #: ring jobs sent on a link that went down: their BACKGROUND_JOB went to that link's
        #: listener only, so the resync settles them from the channel listing
        self._orphans: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        #: Job-UUID -> future of the originate result, for spy legs being set up
        self._spy_jobs: dict[str, asyncio.Future[str]] = {}
        #: spy sessions running, by session; and by supervisor leg uuid from the originate on
        #: (its hang-up or keys may come right behind the job's result)
        self._spies: dict[str, _Spy] = {}
        self._spy_legs: dict[str, _Spy] = {}
        #: callbacks ringing an agent: Job-UUID -> the command; answered: agent leg uuid -> call id
        self._callback_jobs: dict[str, CallbackAgent] = {}
        self._callback_legs: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"FreeSwitchAdapter({self.node!r})"

    @property
    def connected(self) -> bool:
        return self._conn.connected

    @property
    def connection(self) -> EslConnection:
        return self._conn

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background; return at once."""
        await self._conn.start()

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._conn.stop()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, ev: EslEvent) -> None:
        now = self._clock()
        name = ev.get("Event-Name")
        if name == "CHANNEL_HANGUP_COMPLETE":
            # before the core hears of the hang-up, so the kill goes out ahead of its next offer
            gone = ev.get("Unique-ID")
            self._cancel_ringing(lambda caller: caller == gone)
        for event in self.normalizer.feed(ev, now):
            self._sink(event)
        if name == "CHANNEL_HANGUP_COMPLETE" and ev.get("Unique-ID") in self._spy_legs:
            spy = self._spy_legs.pop(ev.get("Unique-ID"))
            spy.ended = True
            if self._spies.pop(spy.session, None) is not None:  # a start still running fails itself
                self._sink(SpyEnded(spy.call_id, spy.session, now))
        if name == "DTMF" and ev.get("Unique-ID") in self._spy_legs:
            self._spy_key(self._spy_legs[ev.get("Unique-ID")], ev.get("DTMF-Digit"), now)
        if name == "CHANNEL_HANGUP_COMPLETE" and ev.get("Unique-ID") in self._callback_legs:
            call_id = self._callback_legs.pop(ev.get("Unique-ID"))
            self._sink(CallHungUp(call_id, fs_hangup_cause(ev.get("Hangup-Cause")), "unknown", now))
        if name == "BACKGROUND_JOB" and ev.get("Job-UUID") in self._callback_jobs:
            cmd = self._callback_jobs.pop(ev.get("Job-UUID"))
            result = ev.body.strip()
            if result.startswith("+OK"):
                self._callback_legs[result[3:].strip()] = cmd.call_id
                self._sink(AgentLegAnswered(cmd.call_id, cmd.device, now))
            else:
                failure = _ORIGINATE_FAILURES.get(result.removeprefix("-ERR").strip(), "error")
                self._sink(AgentLegFailed(cmd.call_id, cmd.device, failure, now))
        if name == "BACKGROUND_JOB":
            spy = self._spy_jobs.pop(ev.get("Job-UUID"), None)
            if spy is not None and not spy.done():
                spy.set_result(ev.body.strip())
            result = ev.body.strip()
            ring = self._ring_jobs.pop(ev.get("Job-UUID"), None)
            if ring is None and result.startswith("+OK"):  # a leg taken over at a restart
                ring = self._ring_jobs.pop(result[3:].strip(), None)
            if ring is not None and result.startswith("+OK"):
                self._spawn(self._bridge(*ring))
        if name == "CHANNEL_HANGUP_COMPLETE":
            # a leg taken over at a restart is tracked by its uuid; its hang-up ended it
            self._ring_jobs.pop(ev.get("Unique-ID"), None)

    async def _on_up(self) -> None:
        self._sink(NodeConnectionChanged(self.node, True, self._clock()))
        body = await self._conn.api("show channels as json")
        try:
            rows = channel_rows(body)
            unknown = self.normalizer.unknown_callers(rows)
            facts = {}
            if unknown:  # read what was kept of them, then list afresh: events went on meanwhile
                facts = {u: f for u in unknown if (f := await self._kept_facts(u)) is not None}
                rows = channel_rows(await self._conn.api("show channels as json"))
        except ValueError as e:
            raise CommandFailed(f"show channels on {self.node}: {e}") from None
        now = self._clock()
        # legs that this process did not originate (a restart): what we set on ours at the
        # originate says whose they are (every {} variable is set on the leg:
        # switch_ivr_originate.c)
        variables = {leg: {name: await self._getvar(leg, name) for name in _LEG_VARIABLES}
                     for leg in self.normalizer.unknown_agent_legs(rows)}
        snapshot = self.normalizer.resync_from(rows, now, variables, facts)
        listed = self.normalizer.listed
        self._adopt_ringing(variables)
        # callers who left while the link was down: their agent legs would ring on
        self._cancel_ringing(lambda caller: caller not in listed)
        self._sink(snapshot)
        self._settle_orphans({r.get("uuid", ""): r for r in rows})
        # what ended while the link was down and the listing cannot show: callbacks, spy sessions
        callbacks = gone_at_resync(self._callback_legs, listed)
        spies = []
        for spy in gone_at_resync(self._spy_legs, listed):
            spy.ended = True
            if self._spies.pop(spy.session, None) is not None:
                spies.append((spy.call_id, spy.session))
        for event in ended_unseen(self.node, now, callbacks, spies):
            self._sink(event)

    def _adopt_ringing(self, variables: dict[str, dict[str, str]]) -> None:
        """Agent legs a ccserver before a restart rang, still ringing: their originate's result
        carries a Job-UUID no job of ours has, so they are tracked by the leg uuid the result
        names (``+OK <uuid>``, capture c01) and settled like an orphaned ring: one answered
        meanwhile (parked) is bridged now, one still ringing when its result says so."""
        for leg in self.normalizer.adopted_ringing:
            try:
                timeout = int(variables.get(leg.uuid, {}).get("originate_timeout") or "")
            except ValueError:
                timeout = FS_ORIGINATE_TIMEOUT
            cmd = RingAgent(self.node, leg.call_id, leg.caller, leg.device, timeout)
            self._ring_jobs[leg.uuid] = (cmd, leg.uuid)
            self._orphans.add(leg.uuid)

    def _settle_orphans(self, listed: dict[str, dict[str, str]]) -> None:
        """Ring jobs whose result went to the lost link. An agent leg that answered is parked
        (``&park()``; the listing says callstate ACTIVE, application park): bridge it, as the
        job's ``+OK`` would have. One still ringing will report on this link. One gone ended
        while we were away, for a reason nobody can tell now: the agent is not blamed."""
        for job in [j for j in self._orphans if j in self._ring_jobs]:
            cmd, leg = self._ring_jobs[job]
            row = listed.get(leg)
            if row is not None and row.get("callstate") == "ACTIVE" and row.get("application") == "park":
                del self._ring_jobs[job]
                log.info("node %s: agent leg %s answered while the link was down; bridging",
                         self.node, leg)
                self._spawn(self._bridge(cmd, leg))
            elif row is None:
                del self._ring_jobs[job]
                self._emit(self.normalizer.leg_failed(leg, "cancelled", self._clock()))
            else:
                self._spawn(self._job_deadline(job, leg, cmd.timeout + JOB_GRACE))
        self._orphans.clear()

    async def _kept_facts(self, channel: str) -> CallFacts | None:
        """The call facts kept on ``channel``, if any. ``show channels as json`` carries no
        channel variables (38 fixed keys; its ``dest`` is ``ccserver-after-ivr`` by then, not
        the DID: capture c08 of freeswitch-ccserver), so ask: ``uuid_getvar`` answers the bare
        value, ``_undef_`` when unset (``mod_commands.c``; capture 06 of freeswitch-esl)."""
        value = await self._getvar(channel, FREESWITCH_VARIABLE)
        if not value:
            return None
        try:
            return decode_facts(value)
        except FactsError as e:
            log.warning("node %s: channel %s: %s", self.node, channel, e)
            return None

    def _on_down(self) -> None:
        self._orphans |= self._ring_jobs.keys()
        self._sink(NodeConnectionChanged(self.node, False, self._clock()))

    async def _getvar(self, channel: str, name: str) -> str:
        """A channel variable's value, ``""`` when unset (``uuid_getvar`` answers ``_undef_``)."""
        value = (await self._conn.api(f"uuid_getvar {channel} {name}")).strip()
        return "" if value == "_undef_" or value.startswith(("-ERR", "-USAGE")) else value

    # -- commands ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> None:
        """Carry out ``command``; raise :class:`CommandFailed` if FreeSWITCH refuses it."""
        if command.node != self.node:
            raise CommandFailed(f"command for node {command.node!r} sent to {self.node!r}")
        if isinstance(command, RingAgent):
            await self._ring(command)
        elif isinstance(command, CallbackAgent):
            await self._callback(command)
        elif isinstance(command, HangupCall):
            cause = _CAUSE_NAMES.get(command.cause, "NORMAL_CLEARING")
            await self._api(f"uuid_kill {_uuid(command.channel)} {cause}")
        elif isinstance(command, SendToVoicemail):
            # the box is the extension (the config allows only [0-9A-Za-z_-] in it)
            await self._api(f"uuid_transfer {_uuid(command.channel)} {command.box} XML "
                            f"{VOICEMAIL_CONTEXT}")
        elif isinstance(command, ConfirmCallback):
            await self._api(f"uuid_transfer {_uuid(command.channel)} s XML "
                            f"{CALLBACK_CONFIRM_CONTEXT}")
        elif isinstance(command, TransferCall):
            # TransferCall admits only digits (and a leading +): no argument can be smuggled in
            await self._api(f"uuid_transfer {_uuid(command.channel)} {command.destination} XML "
                            f"{TRANSFER_CONTEXT}")
        elif isinstance(command, StartRecording):
            await self._record(command)
        elif isinstance(command, KeepCallFacts):
            await self._api(f"uuid_setvar {_uuid(command.channel)} {FREESWITCH_VARIABLE} "
                            f"{encode_facts(command.facts)}")
        elif isinstance(command, StopRecording):
            await self._api(f"uuid_record {_uuid(command.channel)} stop all")
        elif isinstance(command, MuteRecording):
            # mask writes silence in place of the audio: the file keeps the call's time line
            verb = "mask" if command.muted else "unmask"
            await self._api(f"uuid_record {_uuid(command.channel)} {verb} {self._path(command.file)}")
        elif isinstance(command, StartSpy):
            await self._start_spy(command)
        elif isinstance(command, ChangeSpyMode):
            await self._api(f"uuid_recv_dtmf {self._spy(command.session).leg} {SPY_DIGITS[command.mode]}")
        elif isinstance(command, StopSpy):
            await self._api(f"uuid_kill {self._spy(command.session).leg}")
        else:
            raise CommandFailed(f"unsupported command {type(command).__name__}")

    async def _ring(self, cmd: RingAgent) -> None:
        leg = str(uuidlib.uuid4())
        job = str(uuidlib.uuid4())
        try:
            caller = _uuid(cmd.channel)
            if not cmd.device or _DIAL_STRING_FORBIDDEN & set(cmd.device):
                raise CommandFailed(f"device {cmd.device!r}: not a usable dial string")
        except CommandFailed:
            self._fail_leg_now(cmd, leg)
            raise
        self.normalizer.expect_leg(leg, cmd.call_id, cmd.device, job)
        self._ring_jobs[job] = (cmd, leg)
        variables = ",".join([
            f"origination_uuid={leg}", f"originate_timeout={cmd.timeout}",
            f"cc_call_id={cmd.call_id}", f"cc_caller_uuid={caller}", f"cc_device={cmd.device}",
            "ignore_early_media=true", "hangup_after_bridge=true",
        ])
        try:
            reply = await self._conn.bgapi(f"originate {{{variables}}}{cmd.device} &park()", job)
        except ConnectionError as e:
            self._ring_jobs.pop(job, None)
            self._emit(self.normalizer.leg_failed(leg, "error", self._clock()))
            raise CommandFailed(f"originate on {self.node}: {e}") from e
        if not reply.startswith("+OK"):
            self._ring_jobs.pop(job, None)
            self._emit(self.normalizer.leg_failed(leg, "error", self._clock()))
            raise CommandFailed(f"originate on {self.node}: {reply}")
        self._spawn(self._job_deadline(job, leg, cmd.timeout + JOB_GRACE))

    async def _callback(self, cmd: CallbackAgent) -> None:
        """``bgapi originate {...}<device> <number> XML ccserver-callback``: the agent's phone
        rings; once answered, our dialplan's ``ccserver-callback`` context bridges the number.
        The job's result says answered or why not; the leg's hang-up ends the call."""
        if not cmd.device or _DIAL_STRING_FORBIDDEN & set(cmd.device) or not _NUMBER.match(cmd.number):
            self._sink(AgentLegFailed(cmd.call_id, cmd.device, "error", self._clock()))
            raise CommandFailed(f"callback {cmd.call_id}: unusable device {cmd.device!r} or number {cmd.number!r}")
        job = str(uuidlib.uuid4())
        variables = ",".join([
            f"origination_uuid={uuidlib.uuid4()}", f"originate_timeout={cmd.timeout}",
            f"cc_call_id={cmd.call_id}", f"origination_caller_id_number={cmd.number}",
            "ignore_early_media=true",
        ])
        self._callback_jobs[job] = cmd
        try:
            reply = await self._conn.bgapi(
                f"originate {{{variables}}}{cmd.device} {cmd.number} XML {CALLBACK_CONTEXT}", job)
        except ConnectionError as e:
            reply = f"-ERR {e}"
        if not reply.startswith("+OK"):
            if self._callback_jobs.pop(job, None) is not None:
                self._sink(AgentLegFailed(cmd.call_id, cmd.device, "error", self._clock()))
            raise CommandFailed(f"callback originate on {self.node}: {reply.strip()}")

    def _cancel_ringing(self, gone: Callable[[str], bool]) -> None:
        """Hang up the agent legs still ringing for callers whose channel is ``gone``. Asterisk's
        Dial dies with its caller; an originated leg would ring on, and the agent's next offer
        would fail USER_BUSY."""
        for job, (cmd, leg) in list(self._ring_jobs.items()):
            if gone(cmd.channel):
                del self._ring_jobs[job]
                self._spawn(self._kill_quietly(leg, "ORIGINATOR_CANCEL"))

    def _fail_leg_now(self, cmd: RingAgent, leg: str) -> None:
        self.normalizer.expect_leg(leg, cmd.call_id, cmd.device, None)
        self._emit(self.normalizer.leg_failed(leg, "error", self._clock()))

    def _emit(self, events) -> None:
        for e in events:
            self._sink(e)

    async def _job_deadline(self, job: str, leg: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if job in self._orphans:
            return  # its result went to a link that is gone: the next resync settles it
        if self._ring_jobs.pop(job, None) is None:
            return
        log.error("node %s: originate job %s (leg %s) never returned in %.0fs; giving up the leg",
                  self.node, job, leg, seconds)
        self._emit(self.normalizer.leg_failed(leg, "error", self._clock()))
        await self._kill_quietly(leg, "ORIGINATOR_CANCEL")

    async def _bridge(self, cmd: RingAgent, leg: str) -> None:
        try:
            await self._api(f"uuid_bridge {_uuid(cmd.channel)} {leg}")
        except CommandFailed as e:
            # The caller left while the agent picked up, or the leg vanished: free the agent.
            log.warning("node %s: bridging %s to agent leg %s failed: %s",
                        self.node, cmd.call_id, leg, e)
            self._emit(self.normalizer.leg_failed(leg, "error", self._clock()))
            await self._kill_quietly(leg, "NORMAL_CLEARING")

    def _path(self, file: str) -> str:
        name = normpath(file)
        if name.startswith(("/", "..")) or not name or name == "." or " " in name:
            raise CommandFailed(f"recording file {file!r} must stay under the node's root")
        return f"{self._recording_root}/{name}"

    async def _record(self, cmd: StartRecording) -> None:
        await self._api(f"uuid_record {_uuid(cmd.channel)} start {self._path(cmd.file)}")

    def _spy(self, session: str) -> _Spy:
        spy = self._spies.get(session)
        if spy is None:
            raise CommandFailed(f"no spy session {session!r} on {self.node}")
        return spy

    async def _start_spy(self, cmd: StartSpy) -> None:
        """Ring the supervisor into ``eavesdrop`` on the agent leg (group-checked, keys on) with
        the command shapes of capture 04, then send the mode's key. Every mode starts this way so
        that each can switch: capture 04's ``three_way`` barge reads no keys."""
        if not cmd.session.isalnum():
            raise CommandFailed(f"spy session id {cmd.session!r} is not one ccserver made")
        if not cmd.supervisor_device or _DIAL_STRING_FORBIDDEN & set(cmd.supervisor_device):
            raise CommandFailed(f"supervisor device {cmd.supervisor_device!r}: not a dial string")
        target = self.normalizer.agent_leg(cmd.call_id)
        if target is None:
            raise CommandFailed(f"call {cmd.call_id}: no agent connected on {self.node}")
        leg, job, group = str(uuidlib.uuid4()), str(uuidlib.uuid4()), f"cc{cmd.session}"
        variables = [f"origination_uuid={leg}", "origination_caller_id_number=ccserver",
                     "origination_caller_id_name=Supervisor", f"originate_timeout={SPY_RING_SECONDS}",
                     "eavesdrop_enable_dtmf=true", f"eavesdrop_require_group={group}"]
        # eavesdrop checks the group: this leg may join only the channel we marked for it
        await self._api(f"uuid_setvar {target} eavesdrop_group {group}")
        spy = self._spy_legs[leg] = _Spy(cmd.session, cmd.call_id, leg)
        result = asyncio.get_running_loop().create_future()
        self._spy_jobs[job] = result
        try:
            try:
                reply = await self._conn.bgapi(
                    f"originate {{{','.join(variables)}}}{cmd.supervisor_device} &eavesdrop({target})", job)
                if not reply.startswith("+OK"):
                    raise CommandFailed(f"originate on {self.node}: {reply.strip()}")
                async with asyncio.timeout(SPY_RING_SECONDS + JOB_GRACE):
                    outcome = await result
            except (ConnectionError, TimeoutError) as e:
                raise CommandFailed(f"spy originate on {self.node}: {why(e)}") from e
            finally:
                self._spy_jobs.pop(job, None)
            if not outcome.startswith("+OK"):
                raise CommandFailed(f"spy on {cmd.call_id}: supervisor not reached ({outcome})")
            if spy.ended:  # eavesdrop refused the agent leg (gone, or not in the group)
                raise CommandFailed(f"spy on {cmd.call_id}: the agent leg could not be reached")
            self._spies[cmd.session] = spy
            if cmd.mode != "listen":
                await self._api(f"uuid_recv_dtmf {leg} {SPY_DIGITS[cmd.mode]}")
        except CommandFailed:
            await self._undo_spy(spy, target)
            raise
        self._sink(SpyStarted(cmd.call_id, cmd.session, self._clock()))

    async def _undo_spy(self, spy: _Spy, target: str) -> None:
        """A failed start leaves nothing behind: no supervisor leg, and no group mark on the
        agent leg (as the Asterisk adapter clears its SPYGROUP)."""
        self._spies.pop(spy.session, None)
        self._spy_legs.pop(spy.leg, None)
        if not spy.ended:
            await self._kill_quietly(spy.leg)
        try:
            await self._conn.api(f"uuid_setvar {target} eavesdrop_group")  # no value: unset
        except ConnectionError:
            pass  # the link is down: nothing can be cleaned, and the next session sets its own

    def _spy_key(self, spy: _Spy, digit: str, now: float) -> None:
        """A key eavesdrop read on the supervisor's leg (the only trace of a mode switch, capture
        04): one ccserver sent or one the supervisor pressed on their phone."""
        if digit == CALLER_ONLY_DIGIT:
            log.warning("node %s: spy session %s: the supervisor pressed %s (talk to the caller "
                        "only), not a ccserver mode; back to %s", self.node, spy.session, digit, spy.mode)
            self._spawn(self._restore_spy_mode(spy))
            return
        mode = _SPY_MODE_OF.get(digit)
        if mode is not None:
            spy.mode = mode
            self._sink(SpyModeChanged(spy.call_id, spy.session, mode, now))

    async def _restore_spy_mode(self, spy: _Spy) -> None:
        try:
            await self._api(f"uuid_recv_dtmf {spy.leg} {SPY_DIGITS[spy.mode]}")
        except CommandFailed as e:
            log.warning("node %s: spy session %s: mode %s not restored: %s", self.node, spy.session,
                        spy.mode, e)

    async def _kill_quietly(self, leg: str, cause: str = "") -> None:
        try:
            await self._conn.api(f"uuid_kill {leg} {cause}".rstrip())
        except ConnectionError:
            pass

    async def _api(self, command: str) -> str:
        try:
            body = await self._conn.api(command)
        except ConnectionError as e:
            raise CommandFailed(f"{command.split()[0]} on {self.node}: {e}") from e
        if not body.startswith("+OK"):
            raise CommandFailed(f"{command.split()[0]} on {self.node}: {body.strip()}")
        return body


@dataclass(slots=True)
class _Spy:
    session: str
    call_id: str
    #: the supervisor's leg, running eavesdrop on the agent leg
    leg: str
    #: what the last key eavesdrop read switched it to (it starts listening)
    mode: SpyMode = "listen"
    #: the leg hung up, or went while the link was down
    ended: bool = False


def _uuid(channel: str) -> str:
    """A channel on FreeSWITCH is its UUID; refuse anything that could add arguments."""
    if not channel or any(c.isspace() for c in channel) or len(channel) > 64:
        raise CommandFailed(f"channel {channel!r}: not a FreeSWITCH channel uuid")
    return channel
