"""One inbound call running OUR dialplan (``dialplans/asterisk/extensions.conf``), as a coroutine.

[ccserver-inbound] Answer + FastAGI -> [ccserver-wait] MusicOnHold -> (AMI Redirect)
[ccserver-connect] MixMonitor(CC_RECORD_FILE) if set, Dial(CC_AGENT_DEVICE, CC_RING_TIMEOUT)
-> bridge, or StopMixMonitor and back to the wait.
Event order and headers follow the captures (app_queue-only events aside).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ccserver.pbx.contexts import INBOUND_CONTEXT, TRANSFER_CONTEXT

from .agents import CallerScript, Outcome, SimCall
from .agi_client import DIALPLAN_CLASS, FastAgiSession
from .channels import CARRIER, CAUSE_TXT, RINGING, UP, Bridge, Channel, Pairs

if TYPE_CHECKING:
    from .pbx import SimulatedAsterisk

CALL, CDR = 2, 1024
Target = tuple[str, str, int]
WAIT: Target = ("ccserver-wait", "s", 1)
CONNECT: Target = ("ccserver-connect", "s", 1)
#: the trunk's own context (README step 1's example) and how long the far end rings before it
#: answers a transfer (c07: DialBegin to DialEnd ANSWER about 1 s)
TRUNK_CONTEXT = "from-carrier"
TRUNK_ANSWER_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happens to a call from outside its dialplan coroutine.

    kind: ``bye`` (caller hangs up), ``patience`` (caller gives up), ``ami_hangup``, ``redirect``,
    ``answer`` (agent phone answers), ``talk_end`` (scripted end of the conversation).
    ``chan`` is the channel it concerns (caller or agent leg).
    """

    kind: Literal["bye", "patience", "ami_hangup", "redirect", "answer", "talk_end"]
    chan: Channel
    cause: int = 16
    target: Target | None = None


class CallerGone(Exception):
    """The caller channel is gone; the dialplan stops."""


class CallRun:
    """The dialplan execution of one caller channel, plus the agent leg it dials."""

    def __init__(self, sim: SimulatedAsterisk, script: CallerScript, channel: Channel,
                 call: SimCall):
        self.sim = sim
        self.script = script
        self.channel = channel
        self.call = call
        self.gone = asyncio.Event()
        self._digits = deque(script.digits)
        self._signals: deque[Signal] = deque()
        self._wake = asyncio.Event()
        self._phase = "ivr"
        self._agi: FastAgiSession | None = None
        self._agi_exit: Target | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._end_cause = 0

    # -- AgiHost -------------------------------------------------------------------------
    def event(self, name: str, category: int, extra: Pairs = ()) -> None:
        self.sim.emit(name, category, self.channel.snapshot() + list(extra))

    def set_var(self, name: str, value: str) -> None:
        self.channel.variables[name.lstrip("_")] = value
        self.event("VarSet", DIALPLAN_CLASS, [("Variable", name), ("Value", value)])

    def next_digits(self) -> str | None:
        return self._digits.popleft() if self._digits else None

    def seconds(self, sim_seconds: float) -> float:
        return self.sim.seconds(sim_seconds)

    def hangup_from_agi(self) -> None:
        self.post(Signal("ami_hangup", self.channel, 16))

    def goto(self, context: str, exten: str, priority: int) -> None:
        # AGI EXEC Goto: Asterisk continues there once the AGI returns
        self._agi_exit = (context, exten, priority)

    def ran(self, application: str, data: str) -> None:
        self.call.applications.append((application, data))

    # -- signals -------------------------------------------------------------------------
    def post(self, sig: Signal) -> None:
        """Deliver a signal. During the IVR a hang-up or redirect ends the AGI right away."""
        if self.channel.hungup:
            return
        if self._phase == "ivr" and sig.chan is self.channel and sig.kind != "answer":
            if self.gone.is_set():
                return
            if sig.kind == "redirect":
                self._agi_exit = sig.target
            else:
                self._request_hangup(sig)
                self._end_cause = 16 if sig.kind == "ami_hangup" else 0
                self.call.outcome = "hungup" if sig.kind == "ami_hangup" else "ivr_hangup"
            self.gone.set()
            if self._agi is not None:
                self._agi.notify_gone()
            return
        self._signals.append(sig)
        self._wake.set()

    def _later(self, key: str, sim_seconds: float, sig: Signal) -> None:
        self._cancel(key)
        self._timers[key] = asyncio.get_running_loop().call_later(
            self.seconds(sim_seconds), self.post, sig)

    def _cancel(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def _next(self, timeout: float | None) -> Signal | None:
        """The next signal, or None after ``timeout`` simulated seconds."""
        deadline = None if timeout is None else time.monotonic() + self.seconds(timeout)
        while not self._signals:
            self._wake.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                return None
        return self._signals.popleft()

    # -- event helpers -------------------------------------------------------------------
    def _ev(self, name: str, ch: Channel, extra: Pairs = (), category: int = CALL) -> None:
        self.sim.emit(name, category, ch.snapshot() + list(extra))

    def _exten(self, priority: int, app: str, data: str) -> None:
        ch = self.channel
        ch.priority, ch.application, ch.app_data = priority, app, data
        self._ev("Newexten", ch, [("Extension", ch.exten), ("Application", app), ("AppData", data)],
                 DIALPLAN_CLASS)

    def _goto(self, target: Target) -> None:
        self.channel.context, self.channel.exten, self.channel.priority = target

    def _dial_ev(self, name: str, agent: Channel, extra: Pairs) -> None:
        self.sim.emit(name, CALL, self.channel.snapshot() + agent.snapshot("Dest") + list(extra))

    def _bridge_ev(self, name: str, bridge: Bridge, ch: Channel | None = None) -> None:
        self.sim.emit(name, CALL, bridge.snapshot() + (ch.snapshot() if ch else []))

    def _request_hangup(self, sig: Signal, cause: int | None = None) -> None:
        """A BYE shows as HangupRequest (with ``cause`` if the channel has one); an AMI Hangup
        as SoftHangupRequest with its Cause."""
        if sig.kind == "ami_hangup":
            self._ev("SoftHangupRequest", sig.chan, [("Cause", str(sig.cause))])
        else:
            self._ev("HangupRequest", sig.chan, [] if cause is None else [("Cause", str(cause))])

    def _hangup(self, ch: Channel, cause: int) -> None:
        # Asterisk 22 closes a running MixMonitor at hang-up without a MixMonitorStop event
        # (captures 02, 05: only StopMixMonitor produces one)
        for rec in ch.mixmonitors:
            rec.close()
        ch.mixmonitors.clear()
        ch.hungup = True
        self._ev("Hangup", ch, [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])
        self.sim.forget(ch)

    def _cdr(self, agent: Channel | None) -> None:
        ch, now = self.channel, time.time()
        answered = ch.answered_wall or now
        fmt = "%Y-%m-%d %H:%M:%S"
        self.sim.emit("Cdr", CDR, [
            ("AccountCode", ch.accountcode), ("Source", ch.caller_num),
            ("Destination", self.script.did), ("DestinationContext", "ccserver-inbound"),
            ("CallerID", f'"{ch.caller_name}" <{ch.caller_num}>'), ("Channel", ch.name),
            ("DestinationChannel", agent.name if agent else ""), ("LastApplication", ch.application),
            ("LastData", ch.app_data), ("StartTime", time.strftime(fmt, time.localtime(ch.started_wall))),
            ("AnswerTime", time.strftime(fmt, time.localtime(answered))),
            ("EndTime", time.strftime(fmt, time.localtime(now))),
            ("Duration", str(int(now - ch.started_wall))), ("BillableSeconds", str(int(now - answered))),
            ("Disposition", "ANSWERED"), ("AMAFlags", "DOCUMENTATION"), ("UniqueID", ch.uniqueid),
            ("UserField", "")])

    def _end(self, cause: int, outcome: Outcome, soft: bool = True) -> None:
        """The caller's dialplan is over: SoftHangupRequest, Cdr, Hangup."""
        if self.call.outcome is None:
            self.call.outcome = outcome
        if soft:
            self._ev("SoftHangupRequest", self.channel, [("Cause", "16")])
        self._cdr(None)
        self._hangup(self.channel, cause)
        raise CallerGone

    # -- the dialplan ----------------------------------------------------------------------
    async def run(self) -> None:
        """Run the call to its end; always marks the SimCall done."""
        try:
            if self.channel.context != INBOUND_CONTEXT:
                self._from_carrier()
            target = await self._inbound()
            while True:
                if target == WAIT:
                    target = await self._wait()
                elif target == CONNECT:
                    target = await self._connect()
                elif target[0] == TRANSFER_CONTEXT:
                    target = await self._transfer(target)
                elif target[0] == INBOUND_CONTEXT:  # a transfer to another DID of ours
                    self._goto(target)
                    target = await self._inbound()
                else:  # no such extension: the PBX hangs the channel up
                    self._end(16, "hungup")
        except CallerGone:
            pass
        finally:
            for key in list(self._timers):
                self._cancel(key)
            if not self.channel.hungup:
                self.sim.forget(self.channel)
            self.call.variables = dict(self.channel.variables)
            self.call.done.set()

    def _from_carrier(self) -> None:
        """The trunk's own context: ``exten => _[+0-9A-Za-z].,1,Goto(ccserver-inbound,${EXTEN},1)``.

        A Goto is a ``Newexten`` of the ``dialplan`` class and nothing else: the channel's next
        event already shows the new context (capture asterisk-ccserver/c01: ``Newchannel``
        from-carrier, then ``Newstate`` ccserver-inbound).
        """
        did = self.channel.exten
        priority = 1
        if self.script.carrier_answers:
            self._exten(priority, "Answer", "")
            self._answer()
            priority += 1
        self._exten(priority, "Goto", f"{INBOUND_CONTEXT},{did},1")
        self._goto((INBOUND_CONTEXT, did, 1))

    def _answer(self) -> None:
        """``Answer()``: a ``Newstate`` Up, none for a channel already up (main/channel.c
        ``ast_raw_answer_with_stream`` only logs "Skipping answer" then: no state change)."""
        ch = self.channel
        if ch.state != UP:
            ch.state, ch.answered_wall = UP, time.time()
            self._ev("Newstate", ch)

    async def _inbound(self) -> Target:
        ch, s, did = self.channel, self.script, self.channel.exten
        self._phase, self._agi_exit = "ivr", None
        self._exten(1, "NoOp", f"ccserver inbound {did} from {s.caller}")
        self._exten(2, "Set", f"__CC_DID={did}")
        self.set_var("__CC_DID", did)
        self._exten(3, "Answer", "")
        self._answer()
        host, port = self.sim.agi_host, self.sim.agi_port
        args = [f"node={self.sim.node}", f"did={did}"]
        self._exten(4, "AGI", f"agi://{host}:{port}/ivr," + ",".join(args))
        if s.hangup_during_ivr_after is not None:
            self._later("ivr", s.hangup_during_ivr_after, Signal("bye", ch))
        self._agi = FastAgiSession(self, host, port, "ivr", args)
        status = await self._agi.run()
        self._cancel("ivr")
        self._phase = "dialplan"
        if self.call.outcome in ("ivr_hangup", "hungup"):
            self.set_var("AGISTATUS", "HANGUP")
            self._end(self._end_cause, self.call.outcome)
        self.set_var("AGISTATUS", status)
        if self._agi_exit is not None:
            return self._agi_exit
        queue = ch.variables.get("CC_QUEUE", "")
        self._exten(5, "GotoIf", f"{1 if queue else 0}?ccserver-wait,s,1")
        if not queue:
            self._exten(6, "Hangup", "")
            self._end(16, "agi_failed" if status == "FAILURE" else "no_queue")
        self._later("patience", s.patience, Signal("patience", ch))
        return WAIT

    def _caller_hangup(self, sig: Signal, agent: Channel | None = None) -> None:
        """The caller hangs up (BYE, patience or AMI) outside a bridge."""
        self._request_hangup(sig)
        outcome: Outcome = "hungup" if sig.kind == "ami_hangup" else "abandoned"
        if agent is not None:
            self._dial_ev("DialEnd", agent, [("DialStatus", "CANCEL")])
            self._ev("SoftHangupRequest", self.channel, [("Cause", "16")])
            self._hangup(agent, 0)
            self.sim.release(agent)
            self._end(sig.cause if sig.kind == "ami_hangup" else 0, outcome, soft=False)
        self._end(sig.cause if sig.kind == "ami_hangup" else 0, outcome)

    async def _transfer(self, target: Target) -> Target:
        """``[ccserver-transfer]``: Dial the external number through the trunk. Its leg is a new
        ``PJSIP/carrier`` channel born in the trunk's context; it answers after
        ``TRUNK_ANSWER_DELAY`` and is bridged with the caller until one of them hangs up (the
        caller after ``talk_time``), as in capture asterisk-ccserver/c07."""
        ch, number, sim = self.channel, target[1], self.sim
        self._goto(target)
        self._exten(1, "NoOp", f"ccserver transfer to {number}")
        self._exten(2, "Dial", f"PJSIP/{number}@carrier,60")
        self.call.transferred_to = number
        self.call.outcome = "transferred"
        leg = sim.new_channel(f"{CARRIER}-{sim.ids.suffix()}", "<unknown>", "<unknown>",
                              TRUNK_CONTEXT, "s", linkedid=ch.uniqueid, owner=self)
        self._ev("Newchannel", leg)
        leg.caller_num, leg.exten = number, number  # the number dialed (NewCallerid, noise here)
        self._dial_ev("DialBegin", leg, [("DialString", f"{number}@carrier")])
        ch.connected_num, ch.connected_name = leg.caller_num, leg.caller_name
        leg.connected_num, leg.connected_name = ch.caller_num, ch.caller_name
        leg.state = RINGING
        self._ev("Newstate", leg)
        self._dial_ev("DialState", leg, [("DialStatus", "RINGING")])
        self._later("answer", TRUNK_ANSWER_DELAY, Signal("answer", leg))
        while True:
            sig = await self._next(None)
            assert sig is not None
            if sig.kind == "answer" and sig.chan is leg:
                break
            if sig.chan is ch and sig.kind in ("bye", "ami_hangup"):
                self._cancel("answer")
                self._caller_hangup(sig, leg)
        leg.state, leg.answered_wall = UP, time.time()
        self._ev("Newstate", leg)
        leg.exten = ""  # as Dial does for any answered leg (DialEnd's DestExten)
        self._dial_ev("DialEnd", leg, [("DialStatus", "ANSWER")])
        return await self._bridge(leg, "transferred")  # only a redirect returns

    async def _wait(self) -> Target:
        ch = self.channel
        self._goto(WAIT)
        self._exten(1, "NoOp", f"ccserver waiting in {ch.variables.get('CC_QUEUE', '')}")
        self._exten(2, "MusicOnHold", "default")
        self._ev("MusicOnHoldStart", ch, [("Class", "default")])
        while True:
            sig = await self._next(None)
            assert sig is not None
            if sig.chan is not ch:
                continue  # stale signal of an agent leg already gone
            if sig.kind == "redirect" and sig.target is not None:
                self._ev("MusicOnHoldStop", ch)
                return sig.target
            if sig.kind in ("bye", "patience", "ami_hangup"):
                self._request_hangup(sig)
                self._ev("MusicOnHoldStop", ch)
                outcome: Outcome = "hungup" if sig.kind == "ami_hangup" else "abandoned"
                self._end(sig.cause if sig.kind == "ami_hangup" else 0, outcome)

    async def _connect(self) -> Target:
        ch = self.channel
        self._goto(CONNECT)
        device = ch.variables.get("CC_AGENT_DEVICE", "")
        timeout = ch.variables.get("CC_RING_TIMEOUT", "")
        record, previous = ch.variables.get("CC_RECORD_FILE", ""), ch.variables.get("CC_RECORDING", "")
        self._exten(1, "NoOp", f"ccserver ringing {device}")
        self._exten(2, "ExecIf", f"{int(bool(previous))}?StopMixMonitor()")
        if previous:
            self.sim.stop_mixmonitor(ch)  # nothing left running after its own no-answer path
        self._exten(3, "Set", f"CC_RECORDING={record}")
        self.set_var("CC_RECORDING", record)
        self._exten(4, "Set", "CC_RECORD_FILE=")
        self.set_var("CC_RECORD_FILE", "")
        self._exten(5, "ExecIf", f"{int(bool(record))}?MixMonitor({record},b)")
        if record:
            self.sim.start_mixmonitor(ch, record)
        self._exten(6, "Dial", f"{device},{timeout}")
        status = await self._dial(device, float(timeout) if timeout.strip().isdigit() else None)
        if isinstance(status, tuple):
            return status
        self.set_var("DIALSTATUS", status)
        self._exten(7, "GotoIf", "0?done")
        self._exten(8, "ExecIf", f"{int(bool(record))}?StopMixMonitor()")
        if record:
            self.sim.stop_mixmonitor(ch)
        self._exten(9, "Goto", "ccserver-wait,s,1")
        return WAIT

    async def _dial(self, device: str, timeout: float | None) -> str | Target:
        ch, sim = self.channel, self.sim
        agent = sim.agents.get(device)
        self.call.agents_rung.append(device)
        if agent is None:
            return "CHANUNAVAIL"  # ast_request fails: no channel, no Dial* events
        leg = sim.new_channel(f"{device}-{sim.ids.suffix()}", agent.extension, agent.display_name,
                              "from-agents", "s", linkedid=ch.uniqueid, owner=self)
        leg.application, leg.app_data = "AppDial", "(Outgoing Line)"
        self._ev("Newchannel", leg)
        self._dial_ev("DialBegin", leg, [("DialString", device.partition("/")[2])])  # "1001" (c01)
        if not sim.occupy(device, leg):
            self._dial_ev("DialEnd", leg, [("DialStatus", "BUSY")])
            self._hangup(leg, 17)
            return "BUSY"
        ch.connected_num, ch.connected_name = leg.caller_num, leg.caller_name
        leg.connected_num, leg.connected_name = ch.caller_num, ch.caller_name
        leg.exten = ch.exten
        leg.state = RINGING
        self._ev("Newstate", leg)
        self._dial_ev("DialState", leg, [("DialStatus", "RINGING")])
        if agent.take_answers():
            self._later("answer", agent.answer_delay, Signal("answer", leg))
        deadline = None if timeout is None else time.monotonic() + self.seconds(timeout)
        while True:
            left = None if deadline is None else max(0.0, (deadline - time.monotonic()) / self.seconds(1.0))
            sig = await self._next(left)
            if sig is None:
                self._cancel("answer")
                self._dial_ev("DialEnd", leg, [("DialStatus", "NOANSWER")])
                self._hangup(leg, 0)
                sim.release(leg)
                return "NOANSWER"
            if sig.kind == "answer" and sig.chan is leg:
                self._cancel("patience")
                leg.state, leg.answered_wall = UP, time.time()
                self._ev("Newstate", leg)
                # Dial empties the answered leg's Exten (DialEnd's DestExten and its later
                # events say "": capture asterisk-ccserver/c01)
                leg.exten = ""
                self._dial_ev("DialEnd", leg, [("DialStatus", "ANSWER")])
                self.call.agent = device
                return await self._bridge(leg)
            if sig.chan is ch and sig.kind in ("bye", "patience", "ami_hangup"):
                self._cancel("answer")
                self._caller_hangup(sig, leg)
            if sig.chan is ch and sig.kind == "redirect" and sig.target is not None:
                self._cancel("answer")
                self._dial_ev("DialEnd", leg, [("DialStatus", "CANCEL")])
                self._hangup(leg, 0)
                sim.release(leg)
                return sig.target
            if sig.chan is leg and sig.kind == "ami_hangup":
                self._cancel("answer")
                self._request_hangup(sig)
                self._dial_ev("DialEnd", leg, [("DialStatus", "NOANSWER")])
                self._hangup(leg, sig.cause)
                sim.release(leg)
                return "NOANSWER"

    async def _bridge(self, leg: Channel, outcome: Outcome = "answered") -> Target:
        ch = self.channel
        bridge = Bridge()
        self._bridge_ev("BridgeCreate", bridge)
        for member in (leg, ch):
            bridge.channels.append(member)
            member.bridge = bridge
            self._bridge_ev("BridgeEnter", bridge, member)
        self.call.outcome = outcome
        ender = leg if self.script.hangup_side == "agent" else ch
        self._later("talk", self.script.talk_time, Signal("talk_end", ender))
        while True:
            sig = await self._next(None)
            assert sig is not None
            if sig.kind not in ("talk_end", "bye", "ami_hangup", "redirect"):
                continue
            if sig.chan is not ch and sig.chan is not leg:
                continue
            self._cancel("talk")
            if sig.kind == "redirect" and sig.target is not None:
                # the caller leaves the bridge already at its new place (c07's BridgeLeave)
                self._goto(sig.target)
                self._leave(bridge, ch)
                self._leave(bridge, leg)
                self._bridge_ev("BridgeDestroy", bridge)
                self._hangup(leg, 16)
                self.sim.release(leg)
                return sig.target
            # a caller's BYE in Dial's bridge carries Cause 16 (captures asterisk-ccserver/c01,
            # c02, c05-c08; app_queue's bridge in asterisk-ami/02 gives none)
            self._request_hangup(sig, 16 if sig.chan is ch else None)
            if sig.chan is ch:  # the caller ends it (capture 02)
                self._leave(bridge, ch)
                self._ev("SoftHangupRequest", ch, [("Cause", "16")])
                self._leave(bridge, leg)
            else:  # the agent ends it (capture 02b); the dialplan goes on to Hangup()
                self._leave(bridge, leg)
                self._leave(bridge, ch)
                self.set_var("DIALSTATUS", "ANSWER")
                self._exten(7, "GotoIf", "1?done")
                self._exten(10, "Hangup", "")
                self._ev("SoftHangupRequest", ch, [("Cause", "16")])
            self._bridge_ev("BridgeDestroy", bridge)
            self._hangup(leg, 16)
            self.sim.release(leg)
            self._hangup(ch, 16)
            self._cdr(leg)
            raise CallerGone

    def _leave(self, bridge: Bridge, member: Channel) -> None:
        bridge.channels.remove(member)
        member.bridge = None
        self._bridge_ev("BridgeLeave", bridge, member)
