"""The simulated Asterisk run through real sockets: calls, AGI, actions.

Also holds the small AMI client / FastAGI server helpers that test_sim_fidelity.py imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ccserver.pbx.asterisk.ami_codec import AmiParser, Message, encode
from ccserver.pbx.asterisk.agi_codec import parse_environment

from captures import ASTERISK_CAPTURES as CAPTURES  # noqa: E402


def capture(name: str) -> list[Message]:
    """The messages Asterisk sent in one capture (banner dropped)."""
    items = AmiParser().feed((CAPTURES / name).read_bytes())
    return [m for m in items if isinstance(m, Message)]


class AmiClient:
    """Minimal AMI client over a real TCP socket."""

    def __init__(self) -> None:
        self.parser = AmiParser()
        self.queue: list[Message] = []
        self.banner: bytes = b""
        self.closed = False

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.banner = await self.reader.readuntil(b"\r\n")
        self.parser.feed(self.banner)

    async def send(self, **headers: str) -> None:
        pairs = [(k.replace("_", ""), v) for k, v in headers.items()]
        self.writer.write(encode(pairs))
        await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout: float = 5.0) -> Message:
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                self.closed = True
                raise EOFError
            self.queue += [m for m in self.parser.feed(data) if isinstance(m, Message)]
        return self.queue.pop(0)

    async def until(self, pred: Callable[[Message], bool], timeout: float = 10.0) -> list[Message]:
        """Every message up to and including the first that matches ``pred``."""
        out: list[Message] = []
        while True:
            m = await self.read(timeout)
            out.append(m)
            if pred(m):
                return out

    async def login(self, events: str = "on", secret: str = "ccserver") -> Message:
        await self.send(Action="Login", ActionID="login", Username="ccserver", Secret=secret,
                        Events=events)
        return await self.read()

    async def close(self) -> None:
        self.writer.close()


class ScriptedAgi:
    """A FastAGI server that runs ``commands`` and records the raw bytes Asterisk sent."""

    def __init__(self, commands: list[str], close_after: bool = True):
        self.commands = commands
        self.close_after = close_after
        self.received: list[bytes] = []
        self.env: dict[str, str] = {}
        self.env_block = b""
        self.done = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.env_block = await reader.readuntil(b"\n\n")
        self.env = parse_environment(self.env_block[:-1]).values
        buf = b""
        for cmd in self.commands:
            writer.write(cmd.encode() + b"\n")
            await writer.drain()
            while True:  # read one full reply (plus any HANGUP line before it)
                chunk = await reader.readline()
                buf += chunk
                if not chunk or (chunk[:3].isdigit() and chunk[3:4] == b" "):
                    break
        self.received.append(buf)
        if self.close_after:
            writer.close()
        self.done.set()

    async def stop(self) -> None:
        self.server.close()


def keys(m: Message) -> list[str]:
    return list(m.keys())


# ---------------------------------------------------------------------------------------------
import re  # noqa: E402

import pytest  # noqa: E402

from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk  # noqa: E402

SCALE = 20.0
#: app_queue-only and noise events left out when comparing with the captures (none the adapter
#: reads: DTMF*, MixMonitor*, Dial*, Hangup*, ... are compared)
NOISE = re.compile(r"^(Queue.*|Agent.*|VarSet|CEL|Newexten|RTCP.*|DeviceStateChange|NewConnectedLine|"
                   r"NewCallerid|NewAccountCode|MusicOnHold.*|LocalBridge|Cdr|"
                   r"FullyBooted|SuccessfulAuth|AGIExec.*)$")
QUEUE_FLOW = ["SET VARIABLE CC_QUEUE support"]


def agent_part(msgs: list[Message], caller: str) -> list[Message]:
    """Events from the first agent Newchannel to the caller's Hangup, noise removed and the
    app_queue double DialEnd collapsed."""
    evs = [m for m in msgs if m.event and not NOISE.match(m.event)]
    start = next(i for i, m in enumerate(evs) if m.event == "Newchannel" and m["Channel"] != caller)
    end = next(i for i, m in enumerate(evs) if m.event == "Hangup" and m["Channel"] == caller)
    out: list[Message] = []
    for m in evs[start:end + 1]:
        if out and m.event == "DialEnd" and out[-1].event == "DialEnd" and \
                out[-1]["DestChannel"] == m["DestChannel"]:
            continue
        out.append(m)
    return out


def shape(msgs: list[Message], caller: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(event, leg, header names) per event: what must match the capture."""
    def leg(m: Message) -> str:
        ch = m.get("Channel", "")
        return "" if not ch else ("caller" if ch == caller else "agent")
    return [(m.event or "", leg(m), tuple(m.keys())) for m in msgs]


class Lab:
    """A simulator, a scripted AGI server and a logged-in AMI client acting as ccserver."""

    def __init__(self, agents: list[SimAgent], agi_commands: list[str], ami_write: str | None = None):
        self.agi = ScriptedAgi(agi_commands)
        self.agents = agents
        self.ami_write = ami_write
        self.ami = AmiClient()

    async def __aenter__(self) -> Lab:
        port = await self.agi.start()
        self.sim = SimulatedAsterisk(node="pbx1", agi_host="127.0.0.1", agi_port=port,
                                     agents=self.agents, time_scale=SCALE, ami_write=self.ami_write)
        await self.ami.connect(await self.sim.start())
        await self.ami.login()
        await self.ami.until(lambda m: m.event == "SuccessfulAuth")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ami.close()
        await self.sim.stop()
        await self.agi.stop()

    async def ring(self, caller_channel: str, device: str, timeout: int = 15) -> None:
        for var, value in (("CC_AGENT_DEVICE", device), ("CC_RING_TIMEOUT", str(timeout))):
            await self.ami.send(Action="Setvar", Channel=caller_channel, Variable=var, Value=value)
        await self.ami.send(Action="Redirect", Channel=caller_channel, Context="ccserver-connect",
                            Exten="s", Priority="1")


async def test_agent_hangup_matches_capture_02b():
    async with Lab([SimAgent("PJSIP/1002", answer_delay=0.5)], QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript(hangup_side="agent", talk_time=2.0))
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ring(call.channel, "PJSIP/1002")
        msgs = await lab.ami.until(lambda m: m.event == "Hangup" and m["Channel"] == call.channel)
    cap = capture("02b-ivr-fastagi-queue-agent-hangup.ami.in.raw")
    # that lab's queue recorded by itself (monitor-format): ccserver's dialplan starts no MixMonitor
    theirs = [m for m in agent_part(cap, "PJSIP/carrier-00000015") if m.event != "MixMonitorStart"]
    assert shape(agent_part(msgs, call.channel), call.channel) == shape(theirs, "PJSIP/carrier-00000015")


async def test_ring_no_answer_then_abandon_matches_capture_03():
    agents = [SimAgent("PJSIP/1003", answers=False), SimAgent("PJSIP/1001", answers=False)]
    async with Lab(agents, QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript(patience=20.0))
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ring(call.channel, "PJSIP/1003", timeout=15)
        first = await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ring(call.channel, "PJSIP/1001", timeout=15)
        rest = await lab.ami.until(lambda m: m.event == "Hangup" and m["Channel"] == call.channel)
        assert await call.wait(5) == "abandoned"
    cap = capture("03-queue-caller-abandon.in.raw")
    assert shape(agent_part(first + rest, call.channel), call.channel) == \
        shape(agent_part(cap, "PJSIP/carrier-00000004"), "PJSIP/carrier-00000004")
    statuses = [m["DialStatus"] for m in first + rest if m.event == "DialEnd"]
    assert statuses == ["NOANSWER", "CANCEL"]


async def test_busy_and_unknown_device_go_back_to_wait():
    async with Lab([SimAgent("PJSIP/1001", answer_delay=100)], QUEUE_FLOW * 1) as lab:
        a = lab.sim.place_call(CallerScript())
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart" and m["Channel"] == a.channel)
        await lab.ring(a.channel, "PJSIP/1001", timeout=60)
        await lab.ami.until(lambda m: m.event == "DialState")
        lab.agi.commands = QUEUE_FLOW
        b = lab.sim.place_call(CallerScript(caller="+15550000002"))
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart" and m["Channel"] == b.channel)
        await lab.ring(b.channel, "PJSIP/1001")
        msgs = await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        ends = [m for m in msgs if m.event == "DialEnd"]
        assert [m["DialStatus"] for m in ends] == ["BUSY"]
        hang = next(m for m in msgs if m.event == "Hangup")
        assert (hang["Cause"], hang["Cause-txt"]) == ("17", "User busy")
        await lab.ring(b.channel, "PJSIP/1999")
        msgs = await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        assert not [m for m in msgs if m.event and m.event.startswith("Dial")]  # ast_request fails
        await lab.ami.send(Action="Getvar", ActionID="g", Channel=b.channel, Variable="DIALSTATUS")
        reply = await lab.ami.until(lambda m: m.get("ActionID") == "g")
        assert reply[-1]["Value"] == "CHANUNAVAIL"


async def test_ami_hangup_and_mixmonitor_actions():
    async with Lab([], QUEUE_FLOW, ami_write="all") as lab:  # capture 05's user: write = all
        call = lab.sim.place_call(CallerScript())
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ami.send(Action="MixMonitor", ActionID="mm", Channel=call.channel, File="/tmp/x.wav")
        msgs = await lab.ami.until(lambda m: m.event == "MixMonitorStart")
        assert keys(msgs[-2]) == ["Response", "ActionID"]
        await lab.ami.send(Action="Hangup", ActionID="h", Channel=call.channel, Cause="16")
        msgs = await lab.ami.until(lambda m: m.event == "Hangup")
        assert msgs[0]["Message"] == "Channel Hungup"
        # no MixMonitorStop: Asterisk 22 closes the recording at hang-up silently (capture 05)
        assert [m.event for m in msgs[1:]] == ["SoftHangupRequest", "MusicOnHoldStop",
                                                "SoftHangupRequest", "Cdr", "Hangup"]
        await lab.ami.send(Action="Hangup", ActionID="h2", Channel=call.channel)
        assert (await lab.ami.read())["Message"] == "No such channel"
        assert await call.wait(5) == "hungup"


async def test_no_queue_hangs_up_by_dialplan():
    async with Lab([], ["ANSWER"]) as lab:
        call = lab.sim.place_call(CallerScript())
        msgs = await lab.ami.until(lambda m: m.event == "Hangup")
        assert await call.wait(5) == "no_queue"
    tail = [m.event for m in msgs if m.event in ("SoftHangupRequest", "Cdr", "Hangup")]
    assert tail == ["SoftHangupRequest", "Cdr", "Hangup"]
    assert msgs[-1]["Cause"] == "16"


async def test_agi_environment_and_replies_match_capture_07():
    cap = (CAPTURES / "07-fastagi.agi.out.raw").read_bytes().decode().splitlines()
    async with Lab([], cap) as lab:
        call = lab.sim.place_call(CallerScript(caller="+15551230000", did="agi", digits=["1"]))
        msgs = await lab.ami.until(lambda m: m.event == "Hangup")
        await lab.agi.done.wait()
    env = lab.agi.env
    theirs = parse_environment((CAPTURES / "07-fastagi.agi.in.raw").read_bytes().split(b"\n\n")[0])
    assert list(env) == list(theirs.values)
    assert env["network_script"] == "ivr" and env["request"].endswith("/ivr")
    assert env["arg_1"] == "node=pbx1" and env["arg_2"] == "did=agi" and env["dnid"] == "agi"
    assert env["uniqueid"] == call.uniqueid and env["channel"] == call.channel
    replies = (CAPTURES / "07-fastagi.agi.in.raw").read_bytes().split(b"\n\n", 1)[1]
    assert b"".join(lab.agi.received) == replies  # byte for byte
    ami = capture("07-fastagi.ami.in.raw")
    pick = ("AGIExecStart", "AGIExecEnd", "DTMFBegin", "DTMFEnd")
    assert [(m.event, tuple(m)) for m in msgs if m.event in pick] == \
        [(m.event, tuple(m)) for m in ami if m.event in pick]


async def test_caller_hangup_during_agi_matches_capture_07b():
    cmds = (CAPTURES / "07b-fastagi-caller-hangup.agi.out.raw").read_bytes().decode().splitlines()
    async with Lab([], cmds) as lab:
        call = lab.sim.place_call(CallerScript(did="agi", hangup_during_ivr_after=0.3))
        msgs = await lab.ami.until(lambda m: m.event == "Hangup")
        assert await call.wait(5) == "ivr_hangup"
    theirs = (CAPTURES / "07b-fastagi-caller-hangup.agi.in.raw").read_bytes().split(b"\n\n", 1)[1]
    ours = b"".join(lab.agi.received)
    pattern = re.escape(theirs).replace(rb"endpos=2560", rb"endpos=\d+")
    assert re.fullmatch(pattern, ours), ours
    ami = capture("07b-fastagi-caller-hangup.ami.in.raw")
    wanted = ("HangupRequest", "AGIExecStart", "AGIExecEnd", "SoftHangupRequest", "Hangup")
    ours_ev = [(m.event, m.get("ResultCode"), tuple(m)) for m in msgs if m.event in wanted]
    start = next(i for i, m in enumerate(ami) if m.event == "HangupRequest")
    theirs_ev = [(m.event, m.get("ResultCode"), tuple(m)) for m in ami[start:] if m.event in wanted]
    assert ours_ev[-len(theirs_ev):] == theirs_ev


async def test_drop_and_freeze_ami():
    async with Lab([], QUEUE_FLOW) as lab:
        lab.sim.set_ami_frozen(True)
        await lab.ami.send(Action="Ping", ActionID="p")
        with pytest.raises(TimeoutError):
            await lab.ami.read(timeout=0.3)
        lab.sim.set_ami_frozen(False)
        await lab.ami.send(Action="Ping", ActionID="p2")
        assert (await lab.ami.read())["ActionID"] == "p2"
        await lab.sim.drop_ami_connections()
        with pytest.raises((EOFError, ConnectionError)):
            await lab.ami.read(timeout=2)


async def test_many_clients_and_load():
    async with Lab([SimAgent(f"PJSIP/{n}", answer_delay=0.2) for n in range(2001, 2011)],
                   QUEUE_FLOW) as lab:
        other = AmiClient()
        await other.connect(lab.sim.ami_port)
        await other.login(events="call")
        calls = [lab.sim.place_call(CallerScript(caller=f"+1555{i:07d}", talk_time=0.5))
                 for i in range(10)]
        seen = 0
        while seen < 10:
            m = await lab.ami.read()
            if m.event == "MusicOnHoldStart":
                await lab.ring(m["Channel"], f"PJSIP/{2001 + seen}")
                seen += 1
        outcomes = await asyncio.gather(*(c.wait(20) for c in calls))
        assert outcomes == ["answered"] * 10
        got = await other.until(lambda m: m.event == "Newchannel")
        assert all(m.get("Privilege", "call,all") == "call,all" for m in got)
        await other.close()
