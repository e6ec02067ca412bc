"""The simulator's AMI protocol compared with the real Asterisk 22 captures (header names, order,
texts, values), through real TCP sockets: the lab captures (asterisk-ami/) and ccserver's own
dialplan (asterisk-ccserver/)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from captures import ASTERISK_CCSERVER_CAPTURES as CCSERVER_CAPTURES
from test_sim_asterisk import QUEUE_FLOW, AmiClient, Lab, ScriptedAgi, capture, keys

from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk
from ccserver.sim.asterisk.agents import SimCall
from ccserver.sim.asterisk.conf import load_dialplan


@pytest.fixture
async def sim():
    agi = ScriptedAgi(QUEUE_FLOW)
    # the user of the asterisk-ami captures: write = all (their README)
    s = SimulatedAsterisk(agi_host="127.0.0.1", agi_port=await agi.start(), agents=[],
                          time_scale=50.0, ami_write="all")
    await s.start()
    yield s
    await s.stop()
    await agi.stop()


async def client(sim: SimulatedAsterisk) -> AmiClient:
    c = AmiClient()
    await c.connect(sim.ami_port)
    return c


def by_id(msgs, action_id):
    return next(m for m in msgs if m.get("ActionID") == action_id)


async def test_banner_login_fullybooted_successfulauth(sim):
    c = await client(sim)
    assert c.banner == b"Asterisk Call Manager/11.0.0\r\n"
    ok = await c.login()
    got = [ok, await c.read(), await c.read()]
    cap = capture("01-login-idle-status.in.raw")[:3]
    assert [keys(m) for m in got] == [keys(m) for m in cap]
    assert (ok["Response"], ok["Message"]) == ("Success", "Authentication accepted")
    assert [m["Privilege"] for m in got[1:]] == ["system,all", "security,all"]
    await c.send(Action="Logoff", ActionID="bye")
    bye = await c.read()
    assert (bye["Response"], bye["Message"]) == ("Goodbye", "Thanks for all the fish.")
    with pytest.raises(EOFError):
        await c.read()


async def test_login_failure_closes_and_actions_need_login(sim):
    c = await client(sim)
    await c.send(Action="Ping", ActionID="early")
    assert (await c.read())["Message"] == "Permission denied"
    reply = await c.login(secret="wrong")
    assert keys(reply) == ["Response", "ActionID", "Message"]
    assert (reply["Response"], reply["Message"]) == ("Error", "Authentication failed")
    with pytest.raises(EOFError):
        await c.read()


async def test_ping_unknown_action_and_missing_actionid_as_08(sim):
    c = await client(sim)
    await c.login()
    await c.until(lambda m: m.event == "SuccessfulAuth")
    await c.send(Action="Ping", ActionID="p1")
    await c.send(Action="Ping")
    await c.send(Action="FooBar", ActionID="f")
    await c.send(Action="NoSuchAction")
    got = [await c.read() for _ in range(6)]
    cap = capture("08-command-and-errors.in.raw")
    ping = by_id(cap, "08-command-and-errors-9")
    i = cap.index(ping)
    assert [keys(m) for m in got[:2]] == [keys(ping), keys(cap[i + 1])]
    assert "ActionID" not in got[1]
    foo = by_id(cap, "08-command-and-errors-5")
    j = cap.index(foo)
    assert [keys(m) for m in got[2:]] == [keys(m) for m in (foo, cap[j + 1], cap[i + 2], cap[i + 3])]
    assert got[2]["Message"] == foo["Message"]
    assert got[4]["Message"] == cap[i + 2]["Message"] and got[5]["RequestType"] == "Action: NoSuchAction"


async def test_malformed_frame_keeps_connection(sim):
    c = await client(sim)
    await c.login()
    await c.raw(b"this is not ami\r\n\r\n")
    m = await c.until(lambda m: m.get("Response") == "Error")
    assert m[-1]["Message"] == "Missing action in request"
    await c.send(Action="Ping", ActionID="alive")
    assert (await c.until(lambda m: m.get("ActionID") == "alive"))[-1]["Ping"] == "Pong"


async def test_events_off_and_class_masks_as_09a_09c(sim):
    off = await client(sim)
    assert (await off.login(events="off"))["Message"] == "Authentication accepted"
    agent_only = await client(sim)
    await agent_only.login(events="agent")
    call_only = await client(sim)
    await call_only.login(events="call")
    sim.place_call(CallerScript())
    newchannel = await call_only.read()
    assert newchannel.event == "Newchannel" and newchannel["Privilege"] == "call,all"
    await off.send(Action="Ping", ActionID="x")
    assert (await off.read())["ActionID"] == "x"  # nothing else came first: no FullyBooted
    await agent_only.send(Action="Ping", ActionID="y")
    assert (await agent_only.read())["ActionID"] == "y"
    await off.send(Action="Events", ActionID="e1", EventMask="on")
    await off.send(Action="Events", ActionID="e2", EventMask="off")
    cap = capture("09a-events-off-and-eventmask.in.raw")
    on_reply, off_reply = await off.read(), await off.read()
    while off_reply.get("ActionID") != "e2":
        off_reply = await off.read()
    assert keys(on_reply) == keys(by_id(cap, "09a-events-off-and-eventmask-4"))
    assert (on_reply["Events"], off_reply["Events"]) == ("On", "Off")


async def test_filter_forms_as_09b(sim):
    c = await client(sim)
    await c.login()
    await c.until(lambda m: m.event == "SuccessfulAuth")
    await c.send(Action="Filter", ActionID="f1", Operation="Add", Filter="Event: Newstate")
    await c.send(Action="Filter", ActionID="f2", Operation="Add",
                 MatchCriteria="action(exclude),name(Newstate),header(ChannelState),method(exact)",
                 Filter="5")
    await c.send(Action="Filter", ActionID="f3", Operation="Add", MatchCriteria="nonsense(x)",
                 Filter="y")
    cap = capture("09b-filter-action.in.raw")
    replies = [await c.read() for _ in range(3)]
    assert [keys(m) for m in replies] == [keys(by_id(cap, f"09b-filter-action-{n}")) for n in (2, 5, 8)]
    assert replies[2]["Message"] == by_id(cap, "09b-filter-action-8")["Message"]
    sim.place_call(CallerScript())
    m = await c.read()
    assert m.event == "Newstate" and m["ChannelState"] == "6"
    await c.send(Action="Ping", ActionID="p")
    assert (await c.read())["ActionID"] == "p"


async def test_coreshowchannels_shape_as_10a_10b():
    async with Lab([SimAgent("PJSIP/1001", answer_delay=0.5)], QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript(talk_time=100))
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ami.send(Action="CoreShowChannels", ActionID="empty-ish")
        await lab.ring(call.channel, "PJSIP/1001")
        await lab.ami.until(lambda m: m.event == "BridgeEnter" and m["Channel"] == call.channel)
        await lab.ami.send(Action="CoreShowChannels", ActionID="cs")
        msgs = await lab.ami.until(lambda m: m.event == "CoreShowChannelsComplete"
                                   and m["ActionID"] == "cs")
    mine = [m for m in msgs if m.get("ActionID") == "cs"]
    cap = [m for m in capture("10b-status-call-bridged.in.raw")
           if m.get("ActionID") == "10b-status-call-bridged-2"]
    assert [keys(m) for m in mine] == [keys(m) for m in cap]
    assert mine[1]["BridgeId"] == mine[2]["BridgeId"] != ""
    assert mine[-1]["ListItems"] == "2"


async def test_concurrent_clients_each_get_events(sim):
    clients = [await client(sim) for _ in range(5)]
    for c in clients:
        await c.login(events="call")
    sim.place_call(CallerScript())
    firsts = await asyncio.gather(*(c.read() for c in clients))
    assert {m.event for m in firsts} == {"Newchannel"}


# -- ccserver's own dialplan: the simulator against asterisk-ccserver/ --------------------------
#
# Both sides are read by plain splitting (``plain_messages``), not by the AMI parser under test:
# the capture's bytes and the simulator's bytes alike. The simulator gets the FastAGI commands
# ccserver sent in the capture (its .agi.out.raw) and the AMI actions of a ring (Setvar, Setvar,
# Redirect, as in the capture's .ami.out.raw) at the moments the capture shows.
#
# Events are compared channel by channel: Asterisk publishes each channel's events in order,
# but two channels' events interleave as their threads run (the agent's Newstate comes before
# the caller's DialState in c01, after it in c02; the caller's Hangup before the agent's
# BridgeLeave in c01, after it in c05a), so a real Asterisk's own captures disagree there.

#: what the comparison leaves out: the dialplan's internals ccserver never reads (they reach the
#: shipped user only because its Filter actions are refused). Nothing the adapters read
#: (ADAPTER_READS) may be in it.
CCSERVER_NOISE = frozenset({"VarSet", "Newexten", "RTCPSent", "RTCPReceived", "NewCallerid",
                            "NewConnectedLine", "CEL", "DeviceStateChange"})
#: every AMI event AmiNormalizer or AsteriskAdapter acts on
ADAPTER_READS = frozenset({"Newchannel", "Newstate", "DTMFEnd", "DialBegin", "DialEnd", "Hold",
                           "Unhold", "MixMonitorStart", "MixMonitorStop", "HangupRequest",
                           "Hangup", "CoreShowChannel", "CoreShowChannelsComplete",
                           "OriginateResponse", "ChanSpyStart", "Shutdown"})
#: values compared besides the header names (ids are compared as the roles they stand for;
#: DestChannelState is left out: it is the other thread's state at that instant, c01 vs c02)
COMPARED = ("Context", "Exten", "Priority", "ChannelState", "CallerIDNum", "ConnectedLineNum",
            "Cause", "DialStatus", "Digit", "Direction", "Application", "ApplicationData",
            "DestContext", "DestExten", "DestPriority", "DialString", "ListItems")
PREFIXES = ("", "Dest", "Spyer", "Spyee")
IDS = tuple(f"{p}{k}" for p in PREFIXES for k in ("Channel", "Uniqueid", "Linkedid"))
CC_CALLER = "+15551231"  # the capture's caller, so that CallerIDNum compares too


def plain_messages(data: bytes) -> list[dict[str, str]]:
    """AMI messages by plain splitting: the oracle both sides are read with (banner dropped)."""
    text = data.decode("utf-8")
    if text.startswith("Asterisk Call Manager/"):
        text = text.split("\r\n", 1)[1]
    return [dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                 for line in block.split("\r\n") if line)
            for block in text.split("\r\n\r\n") if block.strip("\r\n")]


#: [ccserver-connect] of the shipped dialplan, which the simulator runs
CONNECT_STEPS = load_dialplan(Path(__file__).resolve().parents[1] / "dialplans" / "asterisk"
                              / "extensions.conf").find("ccserver-connect", "s").steps
#: The captures' ccserver (d4e882f) had [ccserver-connect] as NoOp, Dial, GotoIf, Goto, Hangup:
#: every event the caller has there (the whole ring and talk) says Priority 2, its Dial. Issue 10
#: item 7 put four recording lines before Dial (StopMixMonitor of a previous ring, take and clear
#: CC_RECORD_FILE, MixMonitor), so the same events now say the priority of today's Dial line.
CAPTURED_CONNECT_DIAL = "2"


def today(application: str) -> str:
    """The priority of the one line of today's [ccserver-connect] that runs ``application``,
    itself or as ExecIf's (``ExecIf(condition?Application(arguments))``)."""
    (priority,) = [str(p) for p, (app, data) in CONNECT_STEPS.items() if app == application
                   or (app == "ExecIf" and data.partition("?")[2].startswith(f"{application}("))]
    return priority


def todays_priorities(msgs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The capture's messages with its [ccserver-connect] Dial priority renumbered to today's
    (``CAPTURED_CONNECT_DIAL``); any other priority there is left as it was, to differ."""
    def moved(m: dict[str, str]) -> dict[str, str]:
        for prefix in PREFIXES:
            if (m.get(f"{prefix}Context") == "ccserver-connect"
                    and m.get(f"{prefix}Priority") == CAPTURED_CONNECT_DIAL):
                m = {**m, f"{prefix}Priority": today("Dial")}
        return m

    return [moved(m) for m in msgs]


def plain_capture(name: str) -> list[dict[str, str]]:
    """A capture by plain splitting, its [ccserver-connect] priorities today's."""
    return todays_priorities(plain_messages((CCSERVER_CAPTURES / name).read_bytes()))


def test_the_comparisons_hide_nothing_the_adapters_read() -> None:
    from test_sim_asterisk import NOISE

    from ccserver.pbx.asterisk.normalize import AmiNormalizer
    assert set(AmiNormalizer("x", set())._handlers) <= ADAPTER_READS
    assert not CCSERVER_NOISE & ADAPTER_READS
    assert not [name for name in ADAPTER_READS if NOISE.match(name)]  # the lab captures' filter


def per_channel(msgs: list[dict[str, str]], caller: str) -> dict[str, list[tuple]]:
    """Each channel's events in order, as (name, header names, ids as roles, compared values);
    channels are named by role: ``caller``, the agent's device (``PJSIP/1001``), ``""`` for
    events of no channel (bridges, list ends)."""
    def role(channel: str) -> str:
        base, _, suffix = channel.rpartition("-")
        if channel == caller:
            return "caller"
        return f"{base.partition('@')[2]};{suffix[-1]}" if channel.startswith("Local/") else base

    roles: dict[str, str] = {}
    for m in msgs:
        for prefix in PREFIXES:
            ch, uid = m.get(f"{prefix}Channel", ""), m.get(f"{prefix}Uniqueid", "")
            if ch and uid:
                roles[ch] = roles[uid] = role(ch)
    out: dict[str, list[tuple]] = {}
    for m in msgs:
        name = m.get("Event", "")
        if not name or name in CCSERVER_NOISE:  # replies to our own actions are not the call's
            continue
        ids = tuple((k, roles.get(m[k], "other")) for k in IDS if k in m)
        values = tuple((k, m[k]) for k in COMPARED if k in m)
        channel = m.get("Channel") or m.get("SpyerChannel", "")
        out.setdefault(roles.get(channel, ""), []).append((name, tuple(m), ids, values))
    return out


def call_part(msgs: list[dict[str, str]], caller: str) -> list[dict[str, str]]:
    """From the caller's Newchannel to the last event of the call's channels."""
    start = next(i for i, m in enumerate(msgs) if m.get("Event") == "Newchannel"
                 and m["Channel"] == caller)
    linked = msgs[start]["Uniqueid"]
    end = max(i for i, m in enumerate(msgs) if m.get("Linkedid") == linked)
    return msgs[start:end + 1]


def captured_call(name: str, caller: str) -> dict[str, list[tuple]]:
    return per_channel(call_part(plain_capture(name), caller), caller)


class RawAmi:
    """An AMI client that keeps the bytes it reads and splits them plainly."""

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.buf = await self.reader.readuntil(b"\r\n")
        self.msgs: list[dict[str, str]] = []
        self._seen = 0

    async def send(self, **headers: str) -> None:
        await self.send_pairs(list(headers.items()))

    async def send_pairs(self, pairs: list[tuple[str, str]]) -> None:
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n")
        await self.writer.drain()

    async def until(self, pred, timeout: float = 10.0) -> dict[str, str]:
        """Read until a message not seen yet matches ``pred``; all are kept in ``msgs``."""
        async with asyncio.timeout(timeout):
            while True:
                while self._seen < len(self.msgs):
                    self._seen += 1
                    if pred(self.msgs[self._seen - 1]):
                        return self.msgs[self._seen - 1]
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.buf += data
                whole = self.buf[:self.buf.rfind(b"\r\n\r\n") + 4]
                self.msgs = plain_messages(whole)

    async def ring(self, channel: str, device: str) -> None:
        """What ccserver sends to ring an agent (capture c01's out stream)."""
        for var, value in (("CC_AGENT_DEVICE", device), ("CC_RING_TIMEOUT", "8")):
            await self.send(Action="Setvar", Channel=channel, Variable=var, Value=value)
        await self.send(Action="Redirect", Channel=channel, Context="ccserver-connect", Exten="s",
                        Priority="1")


class CcLab:
    """The simulator as ccserver's lab Asterisk (README of asterisk-ccserver): the trunk's calls
    arrive in ``from-carrier``, the FastAGI server runs ccserver's recorded IVR commands."""

    def __init__(self, agents: list[SimAgent], capture: str, ami_write: str | None = None):
        commands = (CCSERVER_CAPTURES / f"{capture}.agi.out.raw").read_bytes().decode().splitlines()
        self.agi = ScriptedAgi(commands)
        self.agents = agents
        self.ami = RawAmi()
        #: the AMI user's write classes; None: the shipped manager.conf's, as in the captures
        self.ami_write = ami_write

    async def __aenter__(self) -> CcLab:
        self.sim = SimulatedAsterisk(node="pbx1", agi_host="127.0.0.1", agi_port=await self.agi.start(),
                                     agents=self.agents, time_scale=20.0, ami_write=self.ami_write)
        await self.ami.connect(await self.sim.start())
        await self.ami.send(Action="Login", Username="ccserver", Secret="ccserver",
                            Events="call,dtmf", ActionID="login")
        await self.ami.until(lambda m: m.get("ActionID") == "login")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.ami.writer.close()
        await self.sim.stop()
        await self.agi.stop()

    def call(self, **script: object) -> SimCall:
        return self.sim.place_call(CallerScript(**{"caller": CC_CALLER, "did": "5551000",
                                                   "context": "from-carrier", **script}))

    async def ring_when_waiting(self, call: SimCall, device: str) -> None:
        """Ring ``device`` once the caller waits on hold music, as ccserver does."""
        await self.ami.until(lambda m: m.get("Event") == "MusicOnHoldStart")
        await self.ami.ring(call.channel, device)

    async def connected(self, call: SimCall, device: str) -> str:
        """Ring ``device`` for the waiting caller; the agent's channel once both are bridged."""
        await self.ring_when_waiting(call, device)
        enter = await self.ami.until(lambda m: m.get("Event") == "BridgeEnter"
                                     and m["Channel"].startswith(f"{device}-"))
        await self.ami.until(lambda m: m.get("Event") == "BridgeEnter" and m["Channel"] == call.channel)
        return enter["Channel"]

    async def ended(self, call: SimCall) -> dict[str, list[tuple]]:
        """The call's events, channel by channel, once its last channel is gone."""
        await call.wait(10)
        await self.ami.send(Action="Ping", ActionID="after")  # everything before it has come
        await self.ami.until(lambda m: m.get("ActionID") == "after")
        return per_channel(call_part(self.ami.msgs, call.channel), call.channel)


async def test_an_answered_call_through_ccservers_dialplan_matches_capture_c01() -> None:
    async with CcLab([SimAgent("PJSIP/1001", answer_delay=1.0)], "c01-ivr-queue-answered") as lab:
        call = lab.call(talk_time=6.0)
        await lab.ring_when_waiting(call, "PJSIP/1001")
        ours = await lab.ended(call)
    assert ours == captured_call("c01-ivr-queue-answered.ami.in.raw", "PJSIP/carrier-0000006a")


async def test_ring_no_answer_then_the_next_agent_matches_capture_c02() -> None:
    agents = [SimAgent("PJSIP/1001", answers=False), SimAgent("PJSIP/1002", answer_delay=1.0)]
    async with CcLab(agents, "c02-rona-next-agent") as lab:
        call = lab.call(talk_time=16.0)
        await lab.ring_when_waiting(call, "PJSIP/1001")
        await lab.ami.until(lambda m: m.get("Event") == "DialEnd")
        await lab.ring_when_waiting(call, "PJSIP/1002")
        ours = await lab.ended(call)
    assert ours == captured_call("c02-rona-next-agent.ami.in.raw", "PJSIP/carrier-0000006c")


#: c05b's AMI user: the shipped one with the system class added (capture README), which the AMI
#: MixMonitor action needs (apps/app_mixmonitor.c)
C05B_WRITE = "call,reporting,originate,system"


async def test_a_recording_started_by_mixmonitor_matches_capture_c05b() -> None:
    async with CcLab([SimAgent("PJSIP/1001", answer_delay=1.0)], "c05b-recording-system-granted",
                     ami_write=C05B_WRITE) as lab:
        call = lab.call(did="5559000", talk_time=8.0)
        await lab.connected(call, "PJSIP/1001")
        # what the capture's ccserver sent at the answer when the DID's policy records (c05b's
        # out stream); today's sends it only for a start on demand (issue 10 item 7)
        await lab.ami.send(Action="MixMonitor", Channel=call.channel,
                           File="/var/spool/asterisk/monitor/pbx1-x.wav", Options="b", ActionID="rec")
        ours = await lab.ended(call)
    assert ours == captured_call("c05b-recording-system-granted.ami.in.raw", "PJSIP/carrier-00000073")


async def test_a_recording_started_by_ccserver_connect_matches_capture_c05b_but_its_start() -> None:
    """Today's recording of a DID policy (issue 10 item 7), by the shipped AMI user: ccserver
    sets CC_RECORD_FILE with the ring and [ccserver-connect] runs MixMonitor before Dial.

    c05b recorded the older way: the AMI MixMonitor action once the agent answered, so its one
    MixMonitorStart (the read at 6.003 s, after both BridgeEnters) no longer applies. Here the
    MixMonitorStart comes from the dialplan's MixMonitor line, before Dial: right after
    MusicOnHoldStop, at that line's priority. Everything else of the call is c05b's.
    """
    agents = [SimAgent("PJSIP/1001", answer_delay=1.0)]
    async with CcLab(agents, "c05b-recording-system-granted") as lab:
        call = lab.call(did="5559000", talk_time=8.0)
        await lab.ami.until(lambda m: m.get("Event") == "MusicOnHoldStart")
        await lab.ami.send(Action="Setvar", Channel=call.channel, Variable="CC_RECORD_FILE",
                           Value="/var/spool/asterisk/monitor/pbx1-x.wav")
        await lab.ami.ring(call.channel, "PJSIP/1001")
        ours = await lab.ended(call)
        refused = [m for m in lab.ami.msgs if m.get("Message") == "Permission denied"]
    theirs = captured_call("c05b-recording-system-granted.ami.in.raw", "PJSIP/carrier-00000073")
    assert refused == []  # Setvar and Redirect are of the call class the shipped user has
    (captured_start,) = [e for e in theirs["caller"] if e[0] == "MixMonitorStart"]
    names = [e[0] for e in ours["caller"]]
    i = names.index("MixMonitorStart")
    assert names.count("MixMonitorStart") == 1 and names[i - 1:i + 2] == [
        "MusicOnHoldStop", "MixMonitorStart", "DialBegin"]
    start = ours["caller"].pop(i)
    theirs["caller"].remove(captured_start)
    # the same event of the same channel; before Dial, so at the MixMonitor line and with no
    # connected line yet (c05b's DialBegin says <unknown> too)
    assert start[:3] == captured_start[:3]
    assert dict(start[3]) == {**dict(captured_start[3]), "Priority": today("MixMonitor"),
                              "ConnectedLineNum": "<unknown>"}
    assert ours == theirs


async def test_a_caller_abandoning_on_hold_music_matches_capture_c03() -> None:
    async with CcLab([], "c03-caller-abandons-waiting") as lab:
        call = lab.call(patience=8.0)
        ours = await lab.ended(call)
    assert ours == captured_call("c03-caller-abandons-waiting.ami.in.raw", "PJSIP/carrier-0000006f")


async def test_a_caller_hanging_up_in_the_ivr_matches_capture_c04() -> None:
    async with CcLab([], "c04-caller-hangup-in-ivr") as lab:
        # no key pressed; the BYE comes during GET DATA, 2 s into the IVR as in the capture
        call = lab.call(digits=[""], hangup_during_ivr_after=2.0)
        ours = await lab.ended(call)
        await lab.agi.done.wait()
    assert ours == captured_call("c04-caller-hangup-in-ivr.ami.in.raw", "PJSIP/carrier-00000070")
    replies = (CCSERVER_CAPTURES / "c04-caller-hangup-in-ivr.agi.in.raw").read_bytes().split(b"\n\n", 1)[1]
    assert re.fullmatch(re.escape(replies).replace(rb"endpos=8692", rb"endpos=\d+"),
                        b"".join(lab.agi.received))


async def test_the_listing_of_a_bridged_call_matches_capture_c08() -> None:
    async with CcLab([SimAgent("PJSIP/1001", answer_delay=1.0)], "c08-link-cut-resync") as lab:
        call = lab.call(talk_time=100.0)
        await lab.connected(call, "PJSIP/1001")
        await lab.ami.send(Action="CoreShowChannels", ActionID="ccserver-resync-2")
        await lab.ami.until(lambda m: m.get("Event") == "CoreShowChannelsComplete")
        ours = [m for m in lab.ami.msgs if m.get("ActionID") == "ccserver-resync-2"]
    theirs = [m for m in plain_capture("c08-link-cut-resync.ami-2.in.raw")
              if m.get("ActionID") == "ccserver-resync-2"]
    assert [tuple(ours[0].items())] == [tuple(theirs[0].items())]  # "Channels will follow"
    assert per_channel(ours, call.channel) == per_channel(theirs, "PJSIP/carrier-0000007d")
    assert len({m["BridgeId"] for m in ours if "BridgeId" in m}) == 1


async def test_hold_from_the_agents_phone_matches_capture_c07() -> None:
    async with CcLab([SimAgent("PJSIP/1001", answer_delay=1.0)], "c07-hold-then-transfer") as lab:
        call = lab.call(talk_time=11.0)
        await lab.connected(call, "PJSIP/1001")
        assert lab.sim.hold(call, True)
        assert lab.sim.hold(call, True)  # said again: the state did not change, nothing new
        await lab.ami.until(lambda m: m.get("Event") == "Hold")
        assert lab.sim.hold(call, False)
        ours = await lab.ended(call)
    assert ours == captured_call("c07-hold-then-transfer.ami.in.raw", "PJSIP/carrier-00000078")


async def test_a_transfer_through_the_trunk_matches_capture_c07() -> None:
    async with CcLab([SimAgent("PJSIP/1002", answer_delay=1.0)], "c07-hold-then-transfer") as lab:
        call = lab.call(talk_time=16.0)
        await lab.connected(call, "PJSIP/1002")
        # what ccserver sends for POST /calls/{id}/transfer (capture c07's out stream)
        await lab.ami.send(Action="Redirect", Channel=call.channel, Context="ccserver-transfer",
                           Exten="+15550001", Priority="1")
        ours = await lab.ended(call)
        assert call.outcome == "transferred" and call.transferred_to == "+15550001"
    assert ours == captured_call("c07-hold-then-transfer.ami.in.raw", "PJSIP/carrier-0000007a")


async def test_listen_whisper_barge_and_stop_match_capture_c06() -> None:
    session = "a8a1486bda918347"  # the capture's, so the Local channels' names compare too
    agents = [SimAgent("PJSIP/1001", answer_delay=1.0), SimAgent("PJSIP/9000", answer_delay=1.0)]
    async with CcLab(agents, "c06-supervisor-listen-whisper-barge") as lab:
        call = lab.call(talk_time=40.0)
        agent = await lab.connected(call, "PJSIP/1001")
        # ccserver's listen, then whisper / barge / listen, then stop (capture c06's out stream)
        await lab.ami.send(Action="Setvar", Channel=agent, Variable="SPYGROUP", Value=f"cc{session}")
        await lab.ami.send_pairs([
            ("Action", "Originate"), ("Channel", f"Local/{session}@ccserver-spy/n"),
            ("Application", "Dial"), ("Data", "PJSIP/9000,30"),
            ("CallerID", f'"Supervisor" <{session[:8]}>'), ("Timeout", "30000"), ("Async", "true"),
            ("Variable", f"CC_SPY_TARGET={agent}"),
            ("Variable", f"CC_SPY_OPTIONS=qdEg(cc{session})"), ("ActionID", "spy")])
        start = await lab.ami.until(lambda m: m.get("Event") == "ChanSpyStart")
        spy = start["SpyerChannel"][:-2]
        await lab.ami.until(lambda m: m.get("Event") == "BridgeEnter" and m["Channel"] == f"{spy};1")
        for digit in "564":
            await lab.ami.send(Action="PlayDTMF", Channel=f"{spy};2", Digit=digit, Receive="true",
                               Async="false")
            await lab.ami.until(lambda m: m.get("Event") == "DTMFEnd" and m.get("Digit") == digit)
        await lab.ami.send(Action="Hangup", Channel=f"{spy};1", Cause="16")
        ours = await lab.ended(call)
    assert ours == captured_call("c06-supervisor-listen-whisper-barge.ami.in.raw",
                                 "PJSIP/carrier-00000075")
