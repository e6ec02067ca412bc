"""A simulated FreeSWITCH node running ccserver's dialplan (``dialplans/freeswitch/ccserver.xml``).

Per call: the caller channel is created in context ``ccserver-inbound`` -> ``socket`` to ccserver's
outbound-socket server (``connect``, ``myevents``, ``linger``, ``sendmsg`` execute answer /
playback / play_and_get_digits / set / hangup) -> when ccserver closes the socket, the dialplan
continues: with ``CC_QUEUE`` set the caller waits on ``endless_playback`` (hold music) until
ccserver bridges an agent leg (``bgapi originate`` then ``uuid_bridge``) or the caller gives up;
without it the call is hung up. Agents answer after a delay, or not (the originate job then
returns ``-ERR NO_ANSWER``), or are busy (``-ERR USER_BUSY``).

Events carry the headers ccserver and the captures share (Unique-ID, Call-Direction,
Caller-*, Answer-State, Hangup-Cause, variable_sip_hangup_disposition, Job-UUID, ...). A linger
after a hang-up is shortened to :data:`LINGER_SECONDS` so tests stay fast; the order of notices
(``linger`` then ``disconnect``) is the captured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from ccserver.pbx.contexts import CALLBACK_CONTEXT, INBOUND_CONTEXT, TRANSFER_CONTEXT
from ccserver.pbx.freeswitch.esl_codec import (
    EslCommandParser,
    EslProtocolError,
    encode_event_json,
    encode_event_plain,
    encode_frame,
)
from ccserver.sim.asterisk.agents import CallerScript, Outcome, SimAgent, SimCall
from ccserver.sim.asterisk.media import SimRecording, SimSpy

from .esl_server import EslServer, disconnect_notice, reply

CORE_UUID = "5e3c2a10-0000-4000-8000-5151c0de0001"
#: what our dialplan's after-IVR extension reads: ``<exten> XML <context>`` to transfer to
TRANSFER_VAR = "cc_transfer_to"
#: seconds the simulator lingers after a hang-up before closing an outbound socket
LINGER_SECONDS = 0.05
#: the extension our dialplan's socket step continues to (``transfer ccserver-after-ivr XML
#: ccserver-inbound``, captures c01-c08); the caller's ``dest`` from then on
AFTER_IVR = "ccserver-after-ivr"
#: the hold music ``ccserver_vars.xml`` names (``local_stream://moh`` in the captures)
HOLD_MUSIC = "local_stream://moh"
#: where this FreeSWITCH's ``$${sounds_dir}`` points
SOUNDS_DIR = "/usr/share/freeswitch/sounds"


@dataclass(eq=False)
class FsChannel:
    uuid: str
    name: str
    direction: str
    cid_num: str
    cid_name: str
    dest: str
    context: str
    created: float = field(default_factory=time.time)
    #: the destination the channel was created with (``dest`` changes as the dialplan moves on)
    initial_dest: str = ""
    answered: bool = False
    gone: bool = False
    #: the phone on this leg put the call on hold (FreeSWITCH's CF_LEG_HOLDING)
    holding: bool = False
    bridged_to: FsChannel | None = None
    recording: str | None = None
    application: str = ""
    application_data: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    device: str | None = None  #: agent legs: the device dialed
    #: set when the channel hangs up (wakes an originate still ringing it)
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.initial_dest = self.initial_dest or self.dest

    @property
    def state(self) -> str:
        """FreeSWITCH's channel state: ``uuid_bridge`` leaves the caller (whose dialplan it
        interrupted) in CS_SOFT_EXECUTE and the originated leg in CS_EXCHANGE_MEDIA (capture
        c08's ``show channels``, c05's CHANNEL_BRIDGE)."""
        if self.gone:
            return "CS_HANGUP"
        if self.bridged_to is not None and self.application == "uuid_bridge":
            return "CS_SOFT_EXECUTE" if self.direction == "inbound" else "CS_EXCHANGE_MEDIA"
        return "CS_EXECUTE"


class SimulatedFreeSwitch:
    """An ESL inbound server plus the calls and agents behind it."""

    def __init__(self, *, node: str = "fs", esl_password: str, outbound_host: str,
                 outbound_port: int, agents: list[SimAgent], hostname: str = "simfs"):
        self.node = node
        self.outbound = (outbound_host, outbound_port)
        self.agents = {a.device: a for a in agents}
        self.hostname = hostname
        self.server = EslServer(esl_password, self.api, self._background)
        self.channels: dict[str, FsChannel] = {}
        self.busy: dict[str, str] = {}  # device -> leg uuid
        self.calls: dict[str, _CallRun] = {}  # caller uuid -> run
        self.recordings: dict[str, SimRecording] = {}  # channel uuid -> running uuid_record
        self.spies: dict[str, SimSpy] = {}  # supervisor leg uuid -> what it monitors
        #: callbacks carried out: (agent device, number bridged), and how long each conversation lasts
        self.callbacks: list[tuple[str, str]] = []
        self.callback_talk_time = 1.0
        #: every api / bgapi command received, in order (tests check their exact shape)
        self.received: list[str] = []
        #: every application ccserver ran over an outbound socket: (channel uuid, app, argument)
        self.executed: list[tuple[str, str, str]] = []
        #: the prompt files under ``$${sounds_dir}`` (paths relative to it, ``en/hello-world.wav``);
        #: None: every prompt exists. A missing one ends ``playback`` with FILE NOT FOUND.
        self.sound_files: set[str] | None = None
        #: whether the switch can open a recording file (False: its own view of the folder is
        #: wrong, e.g. a mount missing on the switch). FreeSWITCH opens the file at the start
        #: (switch_ivr_async.c, switch_ivr_record_session_event), so ``uuid_record start`` is
        #: then refused with mod_commands.c's "-ERR Cannot record session!"
        self.recording_writable = True
        self._tasks: set[asyncio.Task] = set()
        self._seq = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for ESL inbound clients; return the port."""
        return await self.server.start(host, port)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.stop()

    async def drop_esl_connections(self) -> None:
        await self.server.drop()

    async def cut_esl(self, cut: bool) -> None:
        """A network cut between ccserver and the switch, until called with False (see
        :meth:`EslServer.cut`); calls, originates and outbound sockets go on meanwhile."""
        await self.server.cut(cut)

    def set_esl_frozen(self, frozen: bool) -> None:
        """Keep TCP open but send and answer nothing (a hung switch / half-open link)."""
        self.server.frozen = frozen

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- calls -------------------------------------------------------------------------------

    def place_call(self, script: CallerScript) -> SimCall:
        """A new inbound call on ``script.did``; returns its handle at once."""
        ch = FsChannel(str(uuidlib.uuid4()), f"sofia/external/{script.caller.lstrip('+')}@sim",
                       "inbound", script.caller, script.caller_name, script.did, INBOUND_CONTEXT)
        self.channels[ch.uuid] = ch
        call = SimCall(script, ch.uuid, ch.name)
        run = _CallRun(self, script, ch, call)
        self.calls[ch.uuid] = run
        self._spawn(run.run())
        return call

    def live_calls(self) -> list[SimCall]:
        return [r.call for r in self.calls.values() if not r.call.done.is_set()]

    def hold(self, call: SimCall, on: bool) -> bool:
        """The agent's phone puts ``call``'s caller on hold (a re-INVITE with ``a=sendonly``) or
        takes them off it: CHANNEL_HOLD / CHANNEL_UNHOLD on the agent leg, only when that
        changes anything (``switch_channel_mark_hold``). False when no agent is connected."""
        caller = self.channels.get(call.uniqueid)
        leg = caller.bridged_to if caller is not None else None
        if leg is None or leg.gone:
            return False
        if leg.holding != on:
            leg.holding = on
            self.emit("CHANNEL_HOLD" if on else "CHANNEL_UNHOLD", leg)
            if on:  # the held party hears the hold music (capture c07: an execute on the caller)
                self.emit("CHANNEL_EXECUTE", caller, Application="playback",
                          **{"Application-Data": HOLD_MUSIC, "Application-UUID": str(uuidlib.uuid4())})
        return True

    def sound_exists(self, ch: FsChannel, name: str) -> bool:
        """Whether ``playback`` of ``name`` on ``ch`` would open a file: streams always; a
        relative name under the channel's ``sound_prefix``, else ``$${sounds_dir}``
        (switch_ivr_play_file)."""
        if self.sound_files is None or "://" in name:
            return True
        if not name.startswith("/"):
            prefix = ch.variables.get("sound_prefix") or SOUNDS_DIR
            name = f"{prefix.replace('${sounds_dir}', SOUNDS_DIR)}/{name}"
        return name.removeprefix(SOUNDS_DIR + "/") in self.sound_files

    # -- events ------------------------------------------------------------------------------

    def headers(self, name: str, ch: FsChannel | None = None, **extra: str) -> dict[str, str]:
        self._seq += 1
        h = {"Event-Name": name, "Core-UUID": CORE_UUID, "FreeSWITCH-Hostname": self.hostname,
             "FreeSWITCH-Switchname": self.hostname, "FreeSWITCH-IPv4": "127.0.0.1",
             "Event-Date-Timestamp": str(int(time.time() * 1_000_000)),
             "Event-Calling-File": "switch_channel.c", "Event-Sequence": str(self._seq)}
        if ch is not None:
            h |= {"Channel-State": ch.state,
                  "Channel-Call-State": "HANGUP" if ch.gone else (
                      "ACTIVE" if ch.answered else "RINGING"),
                  "Unique-ID": ch.uuid, "Call-Direction": ch.direction,
                  "Answer-State": "hangup" if ch.gone else (
                      "answered" if ch.answered else "ringing"),
                  "Channel-Name": ch.name, "Caller-Direction": ch.direction,
                  "Caller-Caller-ID-Name": ch.cid_name, "Caller-Caller-ID-Number": ch.cid_num,
                  "Caller-Destination-Number": ch.dest, "Caller-Unique-ID": ch.uuid,
                  "Caller-Context": ch.context, "Channel-Call-UUID": ch.uuid,
                  "Caller-Channel-Created-Time": str(int(ch.created * 1_000_000))}
            if ch.bridged_to is not None:
                h["Other-Leg-Unique-ID"] = ch.bridged_to.uuid
            h |= {f"variable_{k}": v for k, v in ch.variables.items()}
        return h | extra

    def emit(self, name: str, ch: FsChannel | None = None, body: str = "", **extra: str) -> None:
        headers = self.headers(name, ch, **extra)
        self.server.publish(headers, body)
        if ch is not None:
            run = self.calls.get(ch.uuid)
            if run is not None and run.socket is not None:
                run.socket.event(headers, body)

    def hangup(self, ch: FsChannel, cause: str, disposition: str) -> None:
        """Hang ``ch`` up; a bridged partner follows (hangup_after_bridge)."""
        if ch.gone:
            return
        ch.gone = True
        ch.ended.set()
        ch.variables |= {"sip_hangup_disposition": disposition, "hangup_cause": cause}
        if ch.recording is not None:
            self._stop_recording(ch)
        self.spies.pop(ch.uuid, None)
        for spy_uuid, spy in list(self.spies.items()):
            if spy.target == ch.uuid and spy_uuid in self.channels:  # eavesdrop ends with its target
                self.hangup(self.channels[spy_uuid], "NORMAL_CLEARING", "send_bye")
        self.emit("CHANNEL_HANGUP", ch, **{"Hangup-Cause": cause})
        self.emit("CHANNEL_HANGUP_COMPLETE", ch, **{"Hangup-Cause": cause})
        self.channels.pop(ch.uuid, None)
        if ch.device is not None and self.busy.get(ch.device) == ch.uuid:
            del self.busy[ch.device]
        run = self.calls.get(ch.uuid)
        if run is not None:
            run.on_hangup()
        other = ch.bridged_to
        if other is not None and not other.gone:
            self.hangup(other, "NORMAL_CLEARING", "send_bye")
            peer_run = self.calls.get(other.uuid)
            if peer_run is not None:
                peer_run.end("answered")

    # -- ESL commands ------------------------------------------------------------------------

    async def api(self, rest: str) -> str:
        self.received.append(f"api {rest}")
        cmd, _, args = rest.partition(" ")
        argv = args.split()
        if cmd == "status":
            return f"UP 0 years, 0 days\nFreeSWITCH ({self.hostname}) is ready\n"
        if cmd == "version":
            return "FreeSWITCH Version 1.10.12-sim (64bit)"
        if cmd == "show" and args == "channels as json":
            return self._show_channels()
        if cmd in ("uuid_kill", "uuid_bridge", "uuid_record", "uuid_getvar", "uuid_setvar",
                   "uuid_recv_dtmf", "uuid_transfer") and not argv:
            return f"-USAGE: {cmd} <uuid>\n"
        ch = self.channels.get(argv[0]) if argv else None
        if cmd == "uuid_kill":
            if ch is None:
                return "-ERR No such channel!\n"
            # a connected channel is sent a BYE; before the answer, a phone we ring a CANCEL and
            # an inbound caller a final error response
            disposition = ("send_bye" if ch.answered
                           else "send_cancel" if ch.direction == "outbound" else "send_refuse")
            self.hangup(ch, argv[1] if len(argv) > 1 else "NORMAL_CLEARING", disposition)
            return "+OK\n"
        if cmd == "uuid_bridge":
            other = self.channels.get(argv[1]) if len(argv) > 1 else None
            if ch is None or other is None:
                return "-ERR no such channel\n"
            return self._bridge(ch, other)
        if cmd == "uuid_record":
            return self._record(ch, argv)
        if cmd == "uuid_transfer":
            run = self.calls.get(argv[0])
            if ch is None or run is None:
                return "-ERR No such channel!\n"
            return run.transfer(argv[1:])
        if cmd == "uuid_setvar":
            if ch is None:
                return "-ERR No such channel!\n"
            if len(argv) < 2:
                return "-USAGE: <uuid> <var> [value]\n"
            if len(argv) > 2:  # the value is the rest of the line (split into 3 at most)
                ch.variables[argv[1]] = args.split(None, 2)[2]
            else:  # no value unsets the variable
                ch.variables.pop(argv[1], None)
            return "+OK\n"
        if cmd == "uuid_recv_dtmf":
            if ch is None or len(argv) < 2:
                return "-ERR no such channel\n"
            for digit in argv[1]:  # read on the leg's next media frame, after this reply (capture 04)
                asyncio.get_running_loop().call_soon(self._read_digit, ch, digit, "2000", "APP")
            return f"+OK {ch.uuid} received DTMF {argv[1]}.\n"
        if cmd == "uuid_getvar":
            if ch is None:
                return "-ERR No such channel!\n"
            return ch.variables.get(argv[1], "_undef_") if len(argv) > 1 else "-USAGE\n"
        return f"-ERR {cmd} Command not found!\n"

    def _show_channels(self) -> str:
        """``show channels as json`` as FreeSWITCH 1.11 writes it (capture c08): compact JSON, the
        38 columns of the ``channels`` table in its order, every value a string."""
        rows = [self._channel_row(ch) for ch in self.channels.values()]
        if not rows:
            return '{"row_count": 0}'
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))

    def _channel_row(self, ch: FsChannel) -> dict[str, str]:
        partner = ch.bridged_to
        inbound = ch.direction == "inbound"
        # an originated leg's own caller profile has no caller id; the bridge sends it the caller's
        sent = (partner.cid_name, partner.cid_num) if partner and not inbound else ("0000000000",) * 2
        codec = {f"{way}_{what}": value for way in ("read", "write")
                 for what, value in (("codec", "PCMA"), ("rate", "8000"), ("bit_rate", "64000"))}
        return {
            "uuid": ch.uuid, "direction": ch.direction,
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ch.created)),
            "created_epoch": str(int(ch.created)), "name": ch.name, "state": ch.state,
            "cid_name": ch.cid_name, "cid_num": ch.cid_num, "ip_addr": "127.0.0.1" if inbound else "",
            "dest": ch.dest, "application": ch.application, "application_data": ch.application_data,
            "dialplan": "XML" if inbound else "", "context": ch.context, **codec,
            "secure": "", "hostname": self.hostname,
            "presence_id": "" if inbound or ch.device is None else f"{ch.dest}@sim",
            "presence_data": "", "accountcode": "",
            "callstate": "ACTIVE" if ch.answered else "RINGING",
            "callee_name": "", "callee_num": "0000000000", "callee_direction": "SEND" if partner else "",
            "call_uuid": partner.uuid if partner and not inbound else ch.uuid,
            "sent_callee_name": sent[0], "sent_callee_num": sent[1],
            "initial_cid_name": ch.cid_name if inbound else "",
            "initial_cid_num": ch.cid_num if inbound else "0000000000",
            "initial_ip_addr": "127.0.0.1" if inbound else "", "initial_dest": ch.initial_dest,
            "initial_dialplan": "XML" if inbound else "", "initial_context": ch.context,
        }

    def _bridge(self, a: FsChannel, b: FsChannel) -> str:
        a.bridged_to, b.bridged_to = b, a
        for ch, other in ((a, b), (b, a)):
            ch.application, ch.application_data = "uuid_bridge", other.uuid
        caller, leg = (a, b) if a.uuid in self.calls else (b, a)
        self.emit("CHANNEL_BRIDGE", caller, **{"Other-Leg-Unique-ID": leg.uuid})
        run = self.calls.get(caller.uuid)
        if run is not None:
            run.on_bridged(leg)
        return f"+OK {b.uuid}\n"

    def _record(self, ch: FsChannel | None, argv: list[str]) -> str:
        if ch is None:
            return "-ERR No such channel!\n"
        if len(argv) >= 3 and argv[1] == "start":
            if not self.recording_writable:
                return "-ERR Cannot record session!\n"
            ch.recording = argv[2]
            self.recordings[ch.uuid] = SimRecording(argv[2])
            self.emit("RECORD_START", ch, **{"Record-File-Path": argv[2]})
            return "+OK Success\n"
        if len(argv) >= 3 and argv[1] in ("mask", "unmask") and ch.recording == argv[2]:
            self.recordings[ch.uuid].mute(argv[1] == "mask")
            return "+OK Success\n"
        if len(argv) >= 3 and argv[1] == "stop" and ch.recording is not None:
            self._stop_recording(ch)
            return "+OK Success\n"
        return "-ERR Cannot stop record session!\n"

    def _stop_recording(self, ch: FsChannel) -> None:
        path, ch.recording = ch.recording, None
        rec = self.recordings.pop(ch.uuid, None)
        if rec is not None:
            rec.close()
        # switch_ivr_async.c: a channel that hung up closes its recording "success-silence"
        # (capture c05), a ``uuid_record stop`` on a live one "success-maxtime"
        cause = "success-silence" if ch.gone else "success-maxtime"
        self.emit("RECORD_STOP", ch, **{"Record-File-Path": path or "",
                                        "Record-Completion-Cause": cause})

    async def _spy_originate(self, variables: dict[str, str], device: str, app: str) -> str:
        """``&eavesdrop(<uuid>)`` / ``&three_way(<uuid>)`` from the supervisor's phone (capture 04)."""
        agent = self.agents.get(device)
        if agent is None:
            return "-ERR USER_NOT_REGISTERED\n"
        if device in self.busy:
            return "-ERR USER_BUSY\n"
        name, _, target_uuid = app.rstrip(")").partition("(")
        leg = FsChannel(variables.get("origination_uuid") or str(uuidlib.uuid4()),
                        f"sofia/internal/{agent.extension}@sim", "outbound",
                        variables.get("origination_caller_id_number", ""),
                        variables.get("origination_caller_id_name", ""), agent.extension, "default",
                        device=device, variables={k: v for k, v in variables.items()
                                                  if k.startswith("eavesdrop_")})
        self.channels[leg.uuid] = leg
        self.busy[device] = leg.uuid
        self.emit("CHANNEL_CREATE", leg)
        if not agent.take_answers():
            await asyncio.sleep(float(variables.get("originate_timeout", "60")))
            if not leg.gone:
                self.hangup(leg, "NO_ANSWER", "send_cancel")
            return "-ERR NO_ANSWER\n"
        await asyncio.sleep(agent.answer_delay)
        if leg.gone:
            return "-ERR ORIGINATOR_CANCEL\n"
        leg.answered = True
        leg.application, leg.application_data = name.lstrip("&"), target_uuid
        self.emit("CHANNEL_ANSWER", leg)
        target = self.channels.get(target_uuid)
        group = variables.get("eavesdrop_require_group")
        if target is None or (group is not None and target.variables.get("eavesdrop_group") != group):
            # eavesdrop refuses ("no such uuid" / not in the group) and the leg hangs up. The
            # session thread reports that while the api thread reports the job: either may come
            # first; this one sends the harder order for a client, the leg's end first.
            self.hangup(leg, "NORMAL_CLEARING", "send_bye")
            return f"+OK {leg.uuid}\n"
        self.spies[leg.uuid] = SimSpy(leg.uuid, target_uuid,
                                      "barge" if "three_way" in name else "listen", device)
        self.emit("CHANNEL_EXECUTE", leg, Application=name.lstrip("&"),
                  **{"Application-Data": target_uuid})
        return f"+OK {leg.uuid}\n"

    def _read_digit(self, ch: FsChannel, digit: str, duration: str, source: str) -> None:
        """A digit queued on ``ch``. Only an application that reads digits dequeues it, and the
        DTMF event comes from that dequeue (capture 04): here eavesdrop (keys on), whose 0 / 1 /
        2 / 3 listen / talk to the caller / whisper / talk to both."""
        spy = self.spies.get(ch.uuid)
        keys_on = ch.application == "eavesdrop" and ch.variables.get("eavesdrop_enable_dtmf") == "true"
        if spy is None or not keys_on:
            return  # three_way, or eavesdrop with keys off, reads none
        self.emit("DTMF", ch, **{"DTMF-Digit": digit, "DTMF-Duration": duration, "DTMF-Source": source})
        spy.digits.append(digit)
        spy.mode = {"0": "listen", "1": "caller", "2": "whisper", "3": "barge"}.get(digit, spy.mode)

    def press_spy_key(self, leg: str, digit: str) -> None:
        """The supervisor on spy leg ``leg`` presses ``digit`` on their phone (RFC 2833)."""
        self._read_digit(self.channels[leg], digit, "1280", "RTP")

    def _background(self, rest: str, job: str) -> None:
        self.received.append(f"bgapi {rest}")
        self._spawn(self._job(rest, job))

    async def _job(self, rest: str, job: str) -> None:
        cmd, _, args = rest.partition(" ")
        result = await (self._originate(args) if cmd == "originate" else self.api(rest))
        self.emit("BACKGROUND_JOB", None, body=result,
                  **{"Job-UUID": job, "Job-Command": cmd, "Job-Command-Arg": args})

    async def _callback(self, leg: FsChannel, number: str) -> None:
        """Our dialplan's ``ccserver-callback`` on the answered agent leg: bridge the number out
        through the gateway; they talk ``callback_talk_time``, then the agent hangs up."""
        leg.application, leg.application_data = "bridge", f"sofia/gateway/carrier/{number}"
        self.emit("CHANNEL_EXECUTE", leg, Application="bridge", **{"Application-Data": leg.application_data})
        self.callbacks.append((leg.device or "", number))
        await asyncio.sleep(self.callback_talk_time)
        if not leg.gone:
            self.hangup(leg, "NORMAL_CLEARING", "recv_bye")

    async def _originate(self, args: str) -> str:
        # {a=b,c=d}<device> &park()
        if not args.startswith("{") or "}" not in args:
            return "-ERR INVALID_NUMBER_FORMAT\n"
        head, _, tail = args[1:].partition("}")
        device, _, app = tail.partition(" ")
        variables = dict(kv.split("=", 1) for kv in head.split(",") if "=" in kv)
        if app.startswith(("&eavesdrop(", "&three_way(")):
            return await self._spy_originate(variables, device, app)
        agent = self.agents.get(device)
        if agent is None:
            return "-ERR USER_NOT_REGISTERED\n"
        if device in self.busy:
            return "-ERR USER_BUSY\n"
        timeout = float(variables.get("originate_timeout", "60"))
        run = self.calls.get(variables.get("cc_caller_uuid", ""))
        leg = FsChannel(variables.get("origination_uuid") or str(uuidlib.uuid4()),
                        f"sofia/internal/{agent.extension}@sim", "outbound",
                        run.channel.cid_num if run else "0000000000",
                        run.channel.cid_name if run else "", agent.extension, "default",
                        device=device, variables=variables)  # all set on the leg: switch_ivr_originate.c
        self.channels[leg.uuid] = leg
        self.busy[device] = leg.uuid
        if run is not None:
            run.call.agents_rung.append(device)
        self.emit("CHANNEL_CREATE", leg)
        if agent.take_answers() and agent.answer_delay < timeout:
            if not await self._rings(leg, agent.answer_delay):
                return f"-ERR {leg.variables['hangup_cause']}\n"
            leg.answered = True
            leg.application, leg.application_data = "park", ""
            self.emit("CHANNEL_ANSWER", leg)
            number, _, where = app.partition(" ")
            if where == f"XML {CALLBACK_CONTEXT}":
                self._spawn(self._callback(leg, number))
            return f"+OK {leg.uuid}\n"
        if not await self._rings(leg, timeout):
            return f"-ERR {leg.variables['hangup_cause']}\n"
        self.hangup(leg, "NO_ANSWER", "send_cancel")
        return "-ERR NO_ANSWER\n"

    @staticmethod
    async def _rings(leg: FsChannel, seconds: float) -> bool:
        """Let ``leg`` ring for ``seconds``; False as soon as it is hung up (``uuid_kill``): the
        originate then ends at once with the leg's hang-up cause, as FreeSWITCH's does."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await leg.ended.wait()
        return not leg.gone


class _OutboundSocket:
    """The simulated switch's side of one outbound socket (FreeSWITCH connects to ccserver)."""

    def __init__(self, run: _CallRun, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.run, self.reader, self.writer = run, reader, writer
        self.format: str | None = None
        self.linger: int | None = None
        self.lock = asyncio.Lock()
        self.apps: set[asyncio.Task] = set()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def event(self, headers: dict[str, str], body: str = "") -> None:
        if self.format is not None:
            encode = encode_event_json if self.format == "json" else encode_event_plain
            self.send(encode(headers, body))

    def connect_reply(self) -> bytes:
        sim, ch = self.run.sim, self.run.channel
        data = sim.headers("CHANNEL_DATA", ch)
        head = encode_frame(data, urlencode=True)[:-1]
        return head + (b"Content-Type: command/reply\nReply-Text: %2BOK%0A\n"
                       b"Socket-Mode: async\nControl: full\n\n")

    async def serve(self) -> None:
        parser = EslCommandParser()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for cmd in parser.feed(data):
                    if not self.command(cmd.line, cmd.headers):
                        return
                await self.writer.drain()
        except (EslProtocolError, ConnectionError):
            return
        finally:
            for t in list(self.apps):
                t.cancel()

    def command(self, line: str, headers: dict[str, str]) -> bool:
        verb, _, rest = line.partition(" ")
        if verb == "connect":
            self.send(self.connect_reply())
        elif verb == "myevents":
            self.format = "json" if rest.strip() == "json" else "plain"
            self.send(reply("+OK Events Enabled"))
        elif verb == "linger":
            self.linger = int(rest) if rest.strip().isdigit() else 0
            self.send(reply(f"+OK will linger {rest} seconds" if rest else "+OK will linger"))
        elif verb == "sendmsg":
            self.send(reply("+OK"))
            if headers.get("call-command") == "hangup":
                self.run.sim.hangup(self.run.channel, headers.get("hangup-cause",
                                                                  "NORMAL_CLEARING"), "send_bye")
            elif headers.get("call-command") == "execute":
                task = asyncio.create_task(self._app(headers))
                self.apps.add(task)
                task.add_done_callback(self.apps.discard)
        elif verb == "exit":
            self.send(reply("+OK bye"))
            self.send(disconnect_notice())
            return False
        else:
            self.send(reply("-ERR command not found"))
        return True

    async def _app(self, headers: dict[str, str]) -> None:
        async with self.lock:  # event-lock: applications run one after the other
            await self.run.execute(headers.get("execute-app-name", ""),
                                   headers.get("execute-app-arg", ""),
                                   headers.get("Event-UUID", ""))

    async def hung_up(self) -> None:
        """After a hang-up: the lingering notice, the last events, the goodbye, the close."""
        session = (self.run.channel.uuid, self.run.channel.name)
        if self.linger is not None:
            self.send(disconnect_notice("linger", self.linger, session))
            await asyncio.sleep(LINGER_SECONDS)
        self.send(disconnect_notice("disconnect", session=session))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        self.writer.close()


class _CallRun:
    """Our dialplan for one caller channel."""

    def __init__(self, sim: SimulatedFreeSwitch, script: CallerScript, channel: FsChannel,
                 call: SimCall):
        self.sim, self.script, self.channel, self.call = sim, script, channel, call
        self.socket: _OutboundSocket | None = None
        self.phase = "ivr"
        self._digits = list(script.digits)
        self._bridged = asyncio.Event()
        self._gone = asyncio.Event()
        #: (exten, context) of a ``uuid_transfer`` of the caller, once one came
        self._moved: tuple[str, str] | None = None
        self._moved_event = asyncio.Event()

    def on_hangup(self) -> None:
        self._gone.set()
        if self.phase == "ivr":
            self.end("ivr_hangup")

    def on_bridged(self, leg: FsChannel) -> None:
        self.call.agent = leg.device
        self._bridged.set()

    def transfer(self, argv: list[str]) -> str:
        """``uuid_transfer <uuid> <exten> XML <context>`` of the waiting or talking caller: the
        agent leg (if bridged) hangs up and the caller runs ``<exten>`` of ``<context>``."""
        if len(argv) != 3 or argv[1] != "XML":
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        if self.phase not in ("wait", "talk") or self._moved is not None:
            return f"-ERR the simulator transfers only waiting or talking callers (phase {self.phase})\n"
        self._moved = (argv[0], argv[2])
        leg = self.channel.bridged_to
        if leg is not None:  # leaving the bridge: the agent's leg has nothing left to do
            self.channel.bridged_to = leg.bridged_to = None
            self.sim.emit("CHANNEL_UNBRIDGE", self.channel, **{"Other-Leg-Unique-ID": leg.uuid})
            self.sim.hangup(leg, "NORMAL_CLEARING", "send_bye")
        self._moved_event.set()
        return "+OK\n"

    async def _follow_transfer(self) -> None:
        assert self._moved is not None
        exten, context = self._moved
        if context == TRANSFER_CONTEXT:
            await self._transfer_out(exten)
            return
        self.sim.hangup(self.channel, "NO_ROUTE_DESTINATION", "send_bye")  # a context we lack
        self.end("hungup")

    def end(self, outcome: Outcome) -> None:
        if not self.call.done.is_set():
            self.call.outcome = outcome
            self.call.variables = dict(self.channel.variables)
            self.call.done.set()

    async def run(self) -> None:
        sim, ch, s = self.sim, self.channel, self.script
        try:
            ch.variables |= {"cc_node": sim.node, "cc_did": s.did}
            sim.emit("CHANNEL_CREATE", ch)
            if s.hangup_during_ivr_after is not None:
                asyncio.get_running_loop().call_later(
                    s.hangup_during_ivr_after,
                    lambda: self.phase == "ivr" and sim.hangup(ch, "NORMAL_CLEARING", "recv_bye"))
            while True:
                ch.application, ch.application_data = "socket", f"{sim.outbound[0]}:{sim.outbound[1]}"
                sim.emit("CHANNEL_EXECUTE", ch, Application="socket",
                         **{"Application-Data": f"{ch.application_data} async full"})
                await self._socket()
                if ch.gone:
                    return
                sim.emit("CHANNEL_EXECUTE_COMPLETE", ch, Application="socket",
                         **{"Application-Response": "_none_"})
                # the after-IVR extension of our dialplan: follow the flow's transfer
                exten, _, context = ch.variables.pop(TRANSFER_VAR, "").partition(" XML ")
                if not exten:
                    break
                sim.emit("CHANNEL_EXECUTE", ch, Application="transfer",
                         **{"Application-Data": f"{exten} XML {context}"})
                if context == TRANSFER_CONTEXT:
                    await self._transfer_out(exten)
                    return
                ch.dest, ch.variables["cc_did"] = exten, exten  # another DID: its IVR runs
            queue = ch.variables.get("CC_QUEUE")
            if not queue:
                self.phase = "done"
                sim.hangup(ch, "NORMAL_CLEARING", "send_bye")
                self.end("no_queue")
                return
            self.phase = "wait"
            ch.dest = AFTER_IVR
            sim.emit("CHANNEL_EXECUTE", ch, Application="transfer",
                     **{"Application-Data": f"{AFTER_IVR} XML {INBOUND_CONTEXT}"})
            if not ch.answered:
                ch.answered = True
                sim.emit("CHANNEL_ANSWER", ch)
            ch.application, ch.application_data = "endless_playback", HOLD_MUSIC
            sim.emit("CHANNEL_EXECUTE", ch, Application="endless_playback",
                     **{"Application-Data": HOLD_MUSIC})
            bridged = asyncio.create_task(self._bridged.wait())
            gone = asyncio.create_task(self._gone.wait())
            moved = asyncio.create_task(self._moved_event.wait())
            done, pending = await asyncio.wait({bridged, gone, moved}, timeout=s.patience,
                                               return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            if not done:  # the caller gives up
                sim.hangup(ch, "NORMAL_CLEARING", "recv_bye")
                self.end("abandoned")
                return
            if gone in done:
                self.end("hungup")
                return
            if moved in done:
                await self._follow_transfer()
                return
            self.phase = "talk"
            gone = asyncio.create_task(self._gone.wait())
            moved = asyncio.create_task(self._moved_event.wait())
            done, pending = await asyncio.wait({gone, moved}, timeout=s.talk_time,
                                               return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            if gone in done:
                self.end("answered" if self.call.agent else "hungup")
                return
            if moved in done:
                await self._follow_transfer()
                return
            leg = ch.bridged_to
            if s.hangup_side == "agent" and leg is not None:
                sim.hangup(leg, "NORMAL_CLEARING", "recv_bye")
            else:
                sim.hangup(ch, "NORMAL_CLEARING", "recv_bye")
            self.end("answered")
        finally:
            if not ch.gone and self.call.done.is_set():
                sim.hangup(ch, "NORMAL_CLEARING", "send_bye")
            if self.call.done.is_set():
                sim.calls.pop(ch.uuid, None)

    async def _transfer_out(self, number: str) -> None:
        """``[ccserver-transfer]``: bridge to the number through the gateway; the caller hangs
        up after ``talk_time``."""
        sim, ch = self.sim, self.channel
        self.phase = "talk"
        self.call.transferred_to = number
        sim.emit("CHANNEL_EXECUTE", ch, Application="bridge",
                 **{"Application-Data": f"sofia/gateway/carrier/{number}"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.script.talk_time):
                await self._gone.wait()
        if not ch.gone:
            sim.hangup(ch, "NORMAL_CLEARING", "recv_bye")
        self.end("transferred")

    async def _socket(self) -> None:
        host, port = self.sim.outbound
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            self.phase = "done"
            self.sim.hangup(self.channel, "DESTINATION_OUT_OF_ORDER", "send_bye")
            self.end("agi_failed")
            return
        self.socket = _OutboundSocket(self, reader, writer)
        serving = asyncio.create_task(self.socket.serve())
        gone = asyncio.create_task(self._gone.wait())
        await asyncio.wait({serving, gone}, return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            await self.socket.hung_up()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        else:
            gone.cancel()
            writer.close()
        self.socket = None

    async def execute(self, app: str, arg: str, event_uuid: str) -> None:
        """One dialplan application sent by ccserver over the outbound socket."""
        sim, ch = self.sim, self.channel
        if ch.gone:
            return
        ids = {"Application": app, "Application-Data": arg, "Application-UUID": event_uuid}
        sim.executed.append((ch.uuid, app, arg))
        sim.emit("CHANNEL_EXECUTE", ch, **ids)
        response = "_none_"
        if app == "answer":
            if not ch.answered:
                ch.answered = True
                sim.emit("CHANNEL_ANSWER", ch)
        elif app == "set":
            name, _, value = arg.partition("=")
            ch.variables[name] = value
        elif app == "playback" and not sim.sound_exists(ch, arg):
            response = "FILE NOT FOUND"  # mod_dptools.c playback_function: at once, no digit read
        elif app == "playback":
            response = "FILE PLAYED"
            ch.variables.pop("playback_terminator_used", None)
            await asyncio.sleep(0.02)
            if self.script.barge_in and self._digits and ch.variables.get(
                    "playback_terminators", "none") != "none":
                digit = self._digits.pop(0)[:1]
                if digit:
                    await asyncio.sleep(self.script.dtmf_delay)
                    self._dtmf(digit)
                    ch.variables["playback_terminator_used"] = digit
        elif app == "play_and_get_digits":
            argv = arg.split()
            var = argv[7] if len(argv) > 7 else "pagd"
            timeout = int(argv[3]) / 1000 if len(argv) > 3 and argv[3].isdigit() else 5.0
            ch.variables.pop("read_result", None)
            if len(argv) > 5 and not sim.sound_exists(ch, argv[5]):
                # switch_ivr_read: a prompt that does not open ends the read before any digit
                # and before read_result is set; the application reports nothing else
                ch.variables.pop(var, None)
                sim.emit("CHANNEL_EXECUTE_COMPLETE", ch, **ids, **{"Application-Response": response})
                return
            entry = self._digits.pop(0) if self._digits else ""
            ch.variables["read_result"] = "success" if entry else "timeout"
            if entry:
                await asyncio.sleep(self.script.dtmf_delay)
                for d in entry:
                    self._dtmf(d)
                terminator = argv[4] if len(argv) > 4 and argv[4] != "none" else ""
                ch.variables[var] = entry[:-1] if terminator and entry.endswith(terminator) else entry
            else:
                await asyncio.sleep(min(timeout, 0.2))
                ch.variables[var] = ""
        elif app in ("speak", "say"):
            self.call.applications.append((app, arg))
            await asyncio.sleep(0.02)
        elif app == "record":
            self.call.applications.append((app, arg))
            argv = arg.split()
            limit = float(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 60.0
            await asyncio.sleep(min(limit, 0.1))  # the caller speaks, then silence ends it
            ch.variables["record_ms"] = "100"
        elif app == "hangup":
            sim.hangup(ch, arg or "NORMAL_CLEARING", "send_bye")
            return
        if ch.gone:
            return
        sim.emit("CHANNEL_EXECUTE_COMPLETE", ch, **ids, **{"Application-Response": response})

    def _dtmf(self, digit: str) -> None:
        self.sim.emit("DTMF", self.channel, **{"DTMF-Digit": digit, "DTMF-Duration": "2000",
                                               "DTMF-Source": "INBAND_AUDIO"})
