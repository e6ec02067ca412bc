"""``SimulatedAsterisk``: AMI server + channels + our dialplan, for e2e tests, demo mode and load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ccserver.pbx.asterisk.ami_codec import Message
from ccserver.pbx.contexts import CALLBACK_CONTEXT

from .agents import CallerScript, SimAgent, SimCall
from .agi_client import DIALPLAN_CLASS, DTMF_CLASS, lookup_variable
from .ami_privileges import write_classes
from .ami_server import AmiServer, AmiSession
from .calls import CALL, CallRun, Signal
from .channels import CARRIER, DOWN, RING, RINGING, UP, Bridge, Channel, IdAllocator
from .conf import SHIPPED_MANAGER_CONF, manager_user
from .media import SimRecording, SimSpy

T = TypeVar("T")


class _Originated:
    """Owner of a channel created by AMI Originate: it only needs to be hung up."""

    def __init__(self, sim: SimulatedAsterisk):
        self.sim = sim

    def post(self, sig: Signal) -> None:
        if sig.kind == "ami_hangup" and not sig.chan.hungup:
            ch = sig.chan
            if ch.name in self.sim.spies:  # hanging up the spy's Local;1 ends ChanSpy on ;2
                self.sim._end_spy(ch.name, sig.cause)
                return
            self.sim.emit("SoftHangupRequest", CALL, ch.snapshot() + [("Cause", str(sig.cause))])
            ch.hungup = True
            self.sim.emit("Hangup", CALL, ch.snapshot() + [("Cause", str(sig.cause)),
                                                           ("Cause-txt", "Normal Clearing")])
            self.sim.forget(ch)
            self.sim.release(ch)


class SimulatedAsterisk:
    """A simulated Asterisk 22 node running ccserver's dialplan.

    AMI is served on TCP (``start()`` returns the port); for each placed call the simulator
    connects to the FastAGI server at ``agi_host:agi_port``. ``time_scale`` divides every
    simulated duration (2.0 = twice as fast).

    The AMI user may send what its ``write`` classes allow, as on a real node: ``ami_write``
    (manager.conf syntax, e.g. ``"call,reporting,originate,system"``), else the ``write`` of
    user ``ami_user`` in ``manager_conf`` (by default the shipped dialplans/asterisk/manager.conf).
    """

    def __init__(self, *, node: str = "sim", agi_host: str, agi_port: int,
                 agents: list[SimAgent], ami_user: str = "ccserver",
                 ami_secret: str = "ccserver", time_scale: float = 1.0,
                 host: str = "127.0.0.1", ami_port: int = 0, ami_write: str | None = None,
                 manager_conf: Path = SHIPPED_MANAGER_CONF):
        self.node = node
        self.agi_host = agi_host
        self.agi_port = agi_port
        self.agents: dict[str, SimAgent] = {a.device: a for a in agents}
        self.time_scale = time_scale
        self.host = host
        self.ami_port = ami_port
        self.ids = IdAllocator()
        #: live channels by name
        self.channels: dict[str, Channel] = {}
        self.global_vars: dict[str, str] = {}
        self._busy: dict[str, Channel] = {}
        self._calls: dict[str, SimCall] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: spy sessions running, by the name of their Local ``;1`` channel
        self.spies: dict[str, SimSpy] = {}
        #: callbacks carried out: (agent device, number dialed), and how long each conversation lasts
        self.callbacks: list[tuple[str, str]] = []
        self.callback_talk_time = 1.0
        #: every AMI action received after login, in order (tests check their exact shape)
        self.received: list[Message] = []
        write = (write_classes(ami_write) if ami_write is not None
                 else manager_user(manager_conf, ami_user).write)
        self._ami = AmiServer(self._handle_action, user=ami_user, secret=ami_secret, write=write,
                              auth_fail_delay=self.seconds(1.0))

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> int:
        """Start the AMI server; return the bound port."""
        self.ami_port = await self._ami.start(self.host, self.ami_port)
        return self.ami_port

    async def stop(self) -> None:
        """Close AMI and drop every call (no events)."""
        await self._ami.stop()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drop_ami_connections(self) -> None:
        """Abruptly close every AMI client socket (reconnect / resync tests)."""
        self._ami.drop_all()
        await asyncio.sleep(0)

    def set_ami_frozen(self, frozen: bool) -> None:
        """Half-open simulation: sockets stay open but nothing is read, answered or sent."""
        self._ami.frozen = frozen

    # -- introspection ---------------------------------------------------------------------
    @property
    def ami_actions(self) -> list[Message]:
        """Every AMI action sent after login, refused ones, Pings and Filters included."""
        return self._ami.actions

    @property
    def live_calls(self) -> list[SimCall]:
        """Calls whose caller channel still exists."""
        return [c for c in self._calls.values() if not c.done.is_set()]

    def seconds(self, sim_seconds: float) -> float:
        """Real seconds for ``sim_seconds`` of simulated time."""
        return sim_seconds / self.time_scale

    # -- calls -----------------------------------------------------------------------------
    def hold(self, call: SimCall, on: bool) -> bool:
        """The agent's phone puts ``call``'s caller on hold (a re-INVITE with ``a=sendonly``) or
        takes them off it: Hold / Unhold on the agent's channel, then the caller's hold music,
        only when that changes anything (``res_pjsip_sdp_rtp.c``: remotely_held_changed;
        capture asterisk-ccserver/c07). False when no agent is connected."""
        caller = self.channels.get(call.channel)
        bridge = caller.bridge if caller is not None else None
        leg = next((c for c in bridge.channels if c is not caller), None) if bridge else None
        if caller is None or leg is None:
            return False
        if leg.holding != on:
            leg.holding = on
            if on:
                self.emit("Hold", CALL, leg.snapshot() + [("MusicClass", "default")])
                self.emit("MusicOnHoldStart", CALL, caller.snapshot() + [("Class", "default")])
            else:
                self.emit("Unhold", CALL, leg.snapshot())
                self.emit("MusicOnHoldStop", CALL, caller.snapshot())
        return True

    def place_call(self, script: CallerScript) -> SimCall:
        """An inbound call from the carrier arrives now; returns its handle at once."""
        ch = self.new_channel(f"{CARRIER}-{self.ids.suffix()}", script.caller, script.caller_name,
                              script.context, script.did)
        ch.state = RING
        call = SimCall(script, ch.uniqueid, ch.name)
        run = CallRun(self, script, ch, call)
        ch.owner = run
        self._calls[ch.uniqueid] = call
        self.emit("Newchannel", CALL, ch.snapshot())
        task = asyncio.get_running_loop().create_task(run.run(), name=f"sim-call-{ch.uniqueid}")
        self._tasks.add(task)
        task.add_done_callback(self._call_finished)
        return call

    def _call_finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._calls = {k: c for k, c in self._calls.items() if not c.done.is_set()}

    def new_channel(self, name: str, num: str, cid_name: str, context: str, exten: str, *,
                    linkedid: str | None = None, owner: object = None) -> Channel:
        uid = self.ids.uniqueid()
        ch = Channel(name, uid, linkedid or uid, num, cid_name, context, exten, owner=owner)
        self.channels[name] = ch
        return ch

    def forget(self, ch: Channel) -> None:
        self.channels.pop(ch.name, None)

    def occupy(self, device: str, ch: Channel) -> bool:
        """Mark an agent phone in use; False if it already has a call (it answers 486 Busy)."""
        if device in self._busy:
            return False
        self._busy[device] = ch
        return True

    def release(self, ch: Channel) -> None:
        if self._busy.get(ch.device) is ch:
            del self._busy[ch.device]

    def emit(self, name: str, category: int, headers: list[tuple[str, str]]) -> None:
        self._ami.broadcast(name, category, headers)
        if name == "Hangup" and self.spies:
            gone = dict(headers).get("Channel", "")
            for local, spy in list(self.spies.items()):
                if spy.target == gone:  # ChanSpy option E: the spied-on channel left
                    self._end_spy(local, 16)

    # -- AMI actions -----------------------------------------------------------------------
    async def _handle_action(self, s: AmiSession, m: Message) -> bool:
        self.received.append(m)
        handler = _ACTIONS.get(m.get("Action", "").strip().lower())
        if handler is None:
            return False
        await handler(self, s, m)
        return True

    def _channel(self, s: AmiSession, m: Message, missing: str) -> Channel | None:
        name = m.get("Channel", "")
        if not name:
            s.error(m, missing)
            return None
        ch = self.channels.get(name)
        if ch is None:
            s.error(m, "No such channel")
        return ch

    async def _core_show_channels(self, s: AmiSession, m: Message) -> None:
        s.ack(m, extra=[("EventList", "start"), ("Message", "Channels will follow")])
        chans = list(self.channels.values())
        for ch in chans:
            s.list_item(m, "CoreShowChannel", ch.snapshot() + [
                ("Application", ch.application), ("ApplicationData", ch.app_data),
                ("Duration", ch.duration()), ("BridgeId", ch.bridge.uniqueid if ch.bridge else "")])
        s.list_item(m, "CoreShowChannelsComplete", [("EventList", "Complete"),
                                                    ("ListItems", str(len(chans)))])

    async def _status(self, s: AmiSession, m: Message) -> None:
        """``Status`` the way ``action_status`` / ``generate_status`` (``main/manager.c``) answer:
        one ``Status`` event per channel (ActionID last), each requested variable as a
        ``Variable: NAME=value`` header (an unset one prints NULL: ``(null)``)."""
        name = m.get("Channel", "")
        chans = list(self.channels.values()) if not name else [
            ch for ch in self.channels.values() if ch.name == name]
        if name and not chans:
            s.error(m, "No such channel")
            return
        wanted = [v for v in m.get("Variables", "").split(",") if v]
        s.ack(m, extra=[("EventList", "start"), ("Message", "Channel status will follow")])
        tail = [("ActionID", m["ActionID"])] if "ActionID" in m else []
        for ch in chans:
            found = [(v, lookup_variable(ch, v)) for v in wanted]
            s.send([("Event", "Status"), ("Privilege", "Call"), *ch.snapshot(),
                    ("Type", ch.name.partition("/")[0]), ("DNID", ""),
                    ("EffectiveConnectedLineNum", ch.connected_num),
                    ("EffectiveConnectedLineName", ch.connected_name), ("TimeToHangup", "0"),
                    ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
                    ("Application", ch.application), ("Data", ch.app_data),
                    ("Nativeformats", "(alaw)"), ("Readformat", "alaw"), ("Readtrans", ""),
                    ("Writeformat", "alaw"), ("Writetrans", ""), ("Callgroup", "0"),
                    ("Pickupgroup", "0"), ("Seconds", str(int(time.monotonic() - ch.created))),
                    *[("Variable", f"{v}={'(null)' if value is None else value}")
                      for v, value in found], *tail])
        s.list_item(m, "StatusComplete", [("EventList", "Complete"), ("ListItems", str(len(chans))),
                                          ("Items", str(len(chans)))])

    async def _setvar(self, s: AmiSession, m: Message) -> None:
        var = m.get("Variable", "")
        if not var:
            s.error(m, "No variable specified")
            return
        if not m.get("Channel"):
            self.global_vars[var] = m.get("Value", "")
            s.ack(m, "Variable Set")
            return
        ch = self._channel(s, m, "No channel specified")
        if ch is None:
            return
        ch.variables[var.lstrip("_")] = m.get("Value", "")
        self.emit("VarSet", DIALPLAN_CLASS, ch.snapshot() + [("Variable", var), ("Value", m.get("Value", ""))])
        s.ack(m, "Variable Set")

    async def _getvar(self, s: AmiSession, m: Message) -> None:
        var = m.get("Variable", "")
        if not var:
            s.error(m, "No variable specified")
            return
        if m.get("Channel"):
            ch = self._channel(s, m, "No channel specified")
            if ch is None:
                return
            value = lookup_variable(ch, var) or ""
        else:
            value = str(int(time.time())) if var == "EPOCH" else self.global_vars.get(var, "")
        s.ack(m, extra=[("Variable", var), ("Value", value)])

    async def _redirect(self, s: AmiSession, m: Message) -> None:
        name, context = m.get("Channel", ""), m.get("Context", "")
        exten, priority = m.get("Exten", ""), m.get("Priority", "")
        for value, error in ((name, "Channel not specified"), (context, "Context not specified"),
                             (exten, "Exten not specified"), (priority, "Priority not specified")):
            if not value:
                s.error(m, error)
                return
        if not priority.isdigit() or int(priority) < 1:
            s.error(m, "Priority is invalid")
            return
        ch = self.channels.get(name)
        if ch is None:
            s.error(m, f"Channel does not exist: {name}")
            return
        s.ack(m, "Redirect successful")
        if isinstance(ch.owner, CallRun) and ch is ch.owner.channel:
            ch.owner.post(Signal("redirect", ch, target=(context, exten, int(priority))))

    async def _hangup(self, s: AmiSession, m: Message) -> None:
        ch = self._channel(s, m, "No channel specified")
        if ch is None:
            return
        cause = m.get("Cause", "")
        s.ack(m, "Channel Hungup")
        ch.owner.post(Signal("ami_hangup", ch, int(cause) if cause.isdigit() else 16))

    def start_mixmonitor(self, ch: Channel, file: str) -> None:
        """MixMonitor on ``ch`` (the AMI action or the dialplan application): MixMonitorStart."""
        ch.mixmonitors.append(SimRecording(file))
        self.emit("MixMonitorStart", CALL, ch.snapshot())

    def stop_mixmonitor(self, ch: Channel) -> bool:
        """StopMixMonitor on ``ch``: the last recording closes, MixMonitorStop (False: none ran)."""
        if not ch.mixmonitors:
            return False
        ch.mixmonitors.pop().close()
        self.emit("MixMonitorStop", CALL, ch.snapshot())
        return True

    async def _mixmonitor(self, s: AmiSession, m: Message) -> None:
        ch = self._channel(s, m, "No channel specified")
        if ch is None:
            return
        s.ack(m)  # no Message, no MixMonitorID (capture 05)
        self.start_mixmonitor(ch, m.get("File", f"{ch.uniqueid}.wav"))

    async def _stop_mixmonitor(self, s: AmiSession, m: Message) -> None:
        ch = self._channel(s, m, "No channel specified")
        if ch is None:
            return
        if not ch.mixmonitors:
            s.error(m, "Could not stop MixMonitor")
            return
        s.ack(m)
        self.stop_mixmonitor(ch)

    async def _mixmonitor_mute(self, s: AmiSession, m: Message) -> None:
        ch = self._channel(s, m, "No channel specified")
        if ch is None:
            return
        if not ch.mixmonitors:
            s.error(m, "Cannot set mute flag")
            return
        for rec in ch.mixmonitors:
            rec.mute(m.get("State", "") in ("1", "true", "yes", "on"))
        s.ack(m)

    async def _play_dtmf(self, s: AmiSession, m: Message) -> None:
        digit = m.get("Digit", "")
        if not digit:
            s.error(m, "No digit specified")
            return
        ch = self._channel(s, m, "Channel not specified")
        if ch is None:
            return
        s.ack(m, "DTMF successfully queued")
        if m.get("Receive", "").lower() in ("true", "yes", "1", "on"):
            # queued as a DTMF end frame: the reader reports it, with no begin of its own
            self._read_digit(ch, digit, m.get("Duration", "") or "0")

    def _read_digit(self, ch: Channel, digit: str, duration_ms: str) -> None:
        """What runs on ``ch`` reads ``digit`` (DTMFEnd, Direction Received, as in capture 02b);
        on a spy's ``;2`` half that is ChanSpy, whose option d switches mode on 4 / 5 / 6."""
        self.emit("DTMFEnd", DTMF_CLASS, ch.snapshot() + [("Digit", digit), ("DurationMs", duration_ms),
                                                          ("Direction", "Received")])
        spy = self.spies.get(ch.name[:-1] + "1") if ch.name.endswith(";2") else None
        if spy is not None:
            spy.digits.append(digit)
            spy.mode = {"4": "listen", "5": "whisper", "6": "barge"}.get(digit, spy.mode)

    def press_spy_key(self, local: str, digit: str) -> None:
        """The supervisor of the spy whose ``;1`` half is ``local`` presses ``digit`` on their
        phone: bridged to ``;1``, the digit is written there ("Sent") and read on ``;2``."""
        one, two = self.channels[local], self.channels[local[:-1] + "2"]
        self.emit("DTMFBegin", DTMF_CLASS, one.snapshot() + [("Digit", digit), ("Direction", "Sent")])
        self.emit("DTMFBegin", DTMF_CLASS, two.snapshot() + [("Digit", digit), ("Direction", "Received")])
        self.emit("DTMFEnd", DTMF_CLASS, one.snapshot() + [("Digit", digit), ("DurationMs", "120"),
                                                           ("Direction", "Sent")])
        self._read_digit(two, digit, "120")

    def _spy_originate(self, s: AmiSession, m: Message) -> None:
        """``Local/<session>@ccserver-spy/n``: ``;2`` answers and runs ChanSpy, ``;1`` dials the
        supervisor's phone and is bridged with it once it answers (captures 04a-c, and
        asterisk-ccserver/c06 for the order: OriginateResponse first, ChanSpyStart once the
        phone rings)."""
        where = m["Channel"].removeprefix("Local/").removesuffix("/n")
        session, _, context = where.partition("@")
        variables = dict(v.partition("=")[::2] for v in m.values_of("Variable"))
        suffix = self.ids.suffix()
        num, name = _split_callerid(m.get("CallerID", ""))
        one = self.new_channel(f"Local/{where}-{suffix};1", "<unknown>", "<unknown>", context,
                               session, owner=_Originated(self))
        two = self.new_channel(f"Local/{where}-{suffix};2", "<unknown>", "<unknown>", context,
                               session, linkedid=one.linkedid, owner=_Originated(self))
        two.state = RING
        for ch in (one, two):
            ch.variables.update(variables)
            self.emit("Newchannel", CALL, ch.snapshot())
            ch.caller_num, ch.caller_name = num or "<unknown>", name or "<unknown>"  # NewCallerid
        head = [("ActionID", m["ActionID"])] if "ActionID" in m else []
        self.emit("OriginateResponse", CALL, head + [
            ("Response", "Success"), ("Channel", one.name), ("Application", m.get("Application", "")),
            ("Data", m.get("Data", "")), ("Reason", "4"), ("Uniqueid", one.uniqueid),
            ("CallerIDNum", num or "<unknown>"), ("CallerIDName", name or "<unknown>")])
        # the Originate dials the Local channel itself (no calling channel, c06)
        self.emit("LocalBridge", CALL, one.snapshot("LocalOne") + two.snapshot("LocalTwo") + [
            ("Context", context), ("Exten", session), ("LocalOptimization", "No")])
        self.emit("DialBegin", CALL, one.snapshot("Dest") + [("DialString", where + "/n")])
        for ch, priority in ((two, 2), (one, 1)):  # ;2 answers (ChanSpy at priority 2), so ;1 does
            ch.state, ch.priority = UP, priority
            ch.connected_num, ch.connected_name = num or "<unknown>", name or "<unknown>"
            self.emit("Newstate", CALL, ch.snapshot())
        self.emit("DialEnd", CALL, one.snapshot("Dest") + [("DialStatus", "ANSWER")])
        target = self.channels.get(variables.get("CC_SPY_TARGET", ""))
        options = variables.get("CC_SPY_OPTIONS", "")
        group = options.partition("g(")[2].partition(")")[0]
        mode = "barge" if "B" in options else "whisper" if "w" in options else "listen"
        if target is None or not group or target.variables.get("SPYGROUP") != group:
            for ch in (two, one):  # ChanSpy found nothing it may watch: the spy ends
                ch.hungup = True
                self.emit("Hangup", CALL, ch.snapshot() + [("Cause", "16"), ("Cause-txt", "Normal Clearing")])
                self.forget(ch)
            return
        spy = self.spies[one.name] = SimSpy(session, target.name, mode, m.get("Data", "").split(",")[0])
        self._spawn(self._spy_dial(one, two, spy))

    async def _spy_dial(self, one: Channel, two: Channel, spy: SimSpy) -> None:
        """``;1`` runs ``Dial(<supervisor>,30)``: a phone the simulator does not know is
        unavailable, which ends the spy."""
        agent = self.agents.get(spy.supervisor_device)
        if agent is None:
            self._end_spy(one.name, 16)
            return
        phone = spy.phone = self.new_channel(f"{spy.supervisor_device}-{self.ids.suffix()}",
                                             agent.extension, agent.display_name, "from-agents", "s",
                                             linkedid=one.linkedid, owner=_Originated(self))
        self.emit("Newchannel", CALL, phone.snapshot())
        phone.exten = one.exten  # Dial gives the callee the caller's extension (DestExten, c06)
        self.emit("DialBegin", CALL, one.snapshot() + phone.snapshot("Dest") + [
            ("DialString", spy.supervisor_device.partition("/")[2])])
        phone.state = RINGING
        phone.connected_num, phone.connected_name = one.caller_num, one.caller_name
        one.connected_num, one.connected_name = phone.caller_num, phone.caller_name
        self.emit("Newstate", CALL, phone.snapshot())
        self.emit("DialState", CALL, one.snapshot() + phone.snapshot("Dest") + [("DialStatus", "RINGING")])
        two.priority = 3  # ChanSpy runs; the supervisor's number reaches ;2 as its caller id
        two.caller_num, two.caller_name = phone.caller_num, phone.caller_name
        target = self.channels.get(spy.target)
        if target is not None:
            self.emit("ChanSpyStart", CALL, two.snapshot("Spyer") + target.snapshot("Spyee"))
        await asyncio.sleep(self.seconds(agent.answer_delay))
        if one.name not in self.spies or one.hungup:
            return
        phone.state, phone.answered_wall = UP, time.time()
        self.emit("Newstate", CALL, phone.snapshot())
        phone.exten = ""
        self.emit("DialEnd", CALL, one.snapshot() + phone.snapshot("Dest") + [("DialStatus", "ANSWER")])
        bridge = spy.bridge = Bridge()
        self.emit("BridgeCreate", CALL, bridge.snapshot())
        for member in (phone, one):
            bridge.channels.append(member)
            member.bridge = bridge
            self.emit("BridgeEnter", CALL, bridge.snapshot() + member.snapshot())

    def _end_spy(self, local: str, cause: int) -> None:
        """The spy's ``;1`` is hung up (or its agent left): the bridge with the supervisor's
        phone comes apart, then both halves and the phone hang up, ``;2`` last (04a, c06)."""
        spy = self.spies.pop(local, None)
        if spy is None:
            return
        one, two = self.channels.get(local), self.channels.get(local[:-1] + "2")
        target = self.channels.get(spy.target)
        bridge, phone = spy.bridge, spy.phone
        if bridge is not None:
            for member in list(bridge.channels):
                bridge.channels.remove(member)
                member.bridge = None
                self.emit("BridgeLeave", CALL, bridge.snapshot() + member.snapshot())
            self.emit("BridgeDestroy", CALL, bridge.snapshot())
        if two is not None and not two.hungup:
            self.emit("HangupRequest", CALL, two.snapshot() + [("Cause", str(cause))])
        for ch in (one, phone):
            if ch is not None and not ch.hungup:
                ch.hungup = True
                self.emit("Hangup", CALL, ch.snapshot() + [("Cause", str(cause)),
                                                           ("Cause-txt", "Normal Clearing")])
                self.forget(ch)
        if two is not None and not two.hungup:
            if target is not None:
                self.emit("ChanSpyStop", CALL, two.snapshot("Spyer") + target.snapshot("Spyee"))
            self.emit("SoftHangupRequest", CALL, two.snapshot() + [("Cause", str(cause))])
            two.hungup = True
            self.emit("Hangup", CALL, two.snapshot() + [("Cause", str(cause)),
                                                        ("Cause-txt", "Normal Clearing")])
            self.forget(two)

    async def _originate(self, s: AmiSession, m: Message) -> None:
        if not m.get("Channel"):
            s.error(m, "Channel not specified")
            return
        if m["Channel"].startswith("Local/") and "@ccserver-spy" in m["Channel"]:
            s.ack(m, "Originate successfully queued")
            self._spy_originate(s, m)
            return
        task = self._spawn(self._do_originate(s, m))
        if m.get("Async", "").lower() in ("true", "yes", "1", "on"):
            s.ack(m, "Originate successfully queued")
        elif await task:
            s.ack(m, "Originate successfully queued")
        else:
            s.error(m, "Originate failed")

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as one of the simulator's tasks (``stop()`` cancels them)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_callback(self, ch: Channel, number: str) -> None:
        self._spawn(self._callback(ch, number))

    async def _callback(self, ch: Channel, number: str) -> None:
        """Our ``[ccserver-callback]`` on the answered agent channel: dial the number through the
        trunk; the person called answers, they talk ``callback_talk_time``, the agent hangs up."""
        ch.context, ch.exten, ch.priority = CALLBACK_CONTEXT, number, 1
        for priority, app, data in ((1, "NoOp", f"ccserver callback to {number}"),
                                    (2, "Dial", f"PJSIP/{number}@carrier,60")):
            ch.priority, ch.application, ch.app_data = priority, app, data
            self.emit("Newexten", DIALPLAN_CLASS, ch.snapshot() + [
                ("Extension", number), ("Application", app), ("AppData", data)])
        self.callbacks.append((ch.name.rsplit("-", 1)[0], number))
        await asyncio.sleep(self.seconds(self.callback_talk_time))
        if not ch.hungup:
            ch.hungup = True
            self.emit("Hangup", CALL, ch.snapshot() + [("Cause", "16"), ("Cause-txt", "Normal Clearing")])
            self.forget(ch)
            self.release(ch)

    async def _do_originate(self, s: AmiSession, m: Message) -> bool:
        """Ring an agent phone; OriginateResponse says whether it answered (Reason 4)."""
        device = m["Channel"]
        agent = self.agents.get(device)
        num, name = _split_callerid(m.get("CallerID", ""))
        ch: Channel | None = None
        reason = 0
        if agent is not None:
            ch = self.new_channel(f"{device}-{self.ids.suffix()}", agent.extension,
                                  agent.display_name, "from-agents", "s", owner=_Originated(self))
            ch.state = DOWN
            self.emit("Newchannel", CALL, ch.snapshot())
            if self.occupy(device, ch):
                ch.state = RINGING
                self.emit("Newstate", CALL, ch.snapshot())
                timeout = int(m.get("Timeout", "30000") or 30000) / 1000
                if agent.take_answers() and agent.answer_delay < timeout:
                    await asyncio.sleep(self.seconds(agent.answer_delay))
                    if not ch.hungup:
                        ch.state, reason = UP, 4
                        ch.application, ch.app_data = m.get("Application", ""), m.get("Data", "")
                        self.emit("Newstate", CALL, ch.snapshot())
                        if m.get("Context") == CALLBACK_CONTEXT:
                            self._spawn_callback(ch, m.get("Exten", ""))
                else:
                    await asyncio.sleep(self.seconds(timeout))
                    reason = 3
            else:
                reason = 5
        head = [("ActionID", m["ActionID"])] if "ActionID" in m else []
        where = ([("Application", m.get("Application", "")), ("Data", m.get("Data", ""))]
                 if m.get("Application") else
                 [("Context", m.get("Context", "")), ("Exten", m.get("Exten", ""))])
        self.emit("OriginateResponse", CALL, head + [
            ("Response", "Success" if reason == 4 else "Failure"), ("Channel", device if ch is None else ch.name),
            *where, ("Reason", str(reason)), ("Uniqueid", ch.uniqueid if ch else "<null>"),
            ("CallerIDNum", num or "<unknown>"), ("CallerIDName", name or "<unknown>")])
        if ch is not None and reason != 4 and not ch.hungup:
            ch.hungup = True
            self.emit("Hangup", CALL, ch.snapshot() + [("Cause", "19" if reason == 3 else "17"),
                                                       ("Cause-txt", "No user responding" if reason == 3 else "User busy")])
            self.forget(ch)
            self.release(ch)
        return reason == 4




def _split_callerid(value: str) -> tuple[str, str]:
    """``"Supervisor" <9000>`` -> (``9000``, ``Supervisor``)."""
    if "<" in value:
        name, _, rest = value.partition("<")
        return rest.rstrip(">").strip(), name.strip().strip('"')
    return value.strip(), ""


_ACTIONS = {
    "coreshowchannels": SimulatedAsterisk._core_show_channels,
    "setvar": SimulatedAsterisk._setvar,
    "status": SimulatedAsterisk._status,
    "getvar": SimulatedAsterisk._getvar,
    "redirect": SimulatedAsterisk._redirect,
    "hangup": SimulatedAsterisk._hangup,
    "mixmonitor": SimulatedAsterisk._mixmonitor,
    "stopmixmonitor": SimulatedAsterisk._stop_mixmonitor,
    "originate": SimulatedAsterisk._originate,
    "mixmonitormute": SimulatedAsterisk._mixmonitor_mute,
    "playdtmf": SimulatedAsterisk._play_dtmf,
}
