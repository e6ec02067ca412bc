"""The FreeSWITCH simulator against the real captures: what it sends must look like FreeSWITCH.

Raw TCP clients replay the captured commands into the simulator and compare its answers with the
captured bytes (exactly where the bytes carry nothing call-specific, by structure elsewhere).
"""

from __future__ import annotations

import asyncio
import json

from ccserver.pbx.freeswitch.esl_codec import EslParser, Frame, encode_command, parse_event
from ccserver.pbx.freeswitch.outbound import FsOutboundServer
from ccserver.sim.freeswitch import CallerScript, SimAgent, SimulatedFreeSwitch
from captures import FREESWITCH_CAPTURES


def capture_frames(name: str) -> list[Frame]:
    return EslParser().feed((FREESWITCH_CAPTURES / f"{name}.rx.raw").read_bytes())


async def read_all(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), timeout):
        data += chunk
    return data


class Client:
    """A raw ESL client that reads whole frames."""

    def __init__(self, reader, writer):
        self.reader, self.writer, self.parser, self.frames = reader, writer, EslParser(), []

    async def frame(self) -> Frame:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(65536), 3)
            assert data, "closed"
            self.frames.extend(self.parser.feed(data))
        return self.frames.pop(0)

    async def send(self, command: str, **headers: str) -> Frame:
        self.writer.write(encode_command(command, headers or None))
        return await self.frame()


async def sim_and_client(password="ClueCon"):
    sim = SimulatedFreeSwitch(node="fs", esl_password=password, outbound_host="127.0.0.1",
                              outbound_port=1, agents=[SimAgent("user/1001", answer_delay=0.1)])
    port = await sim.start()
    return sim, Client(*await asyncio.open_connection("127.0.0.1", port))


async def test_wrong_password_is_byte_for_byte_the_capture():
    sim, c = await sim_and_client()
    try:
        c.writer.write((FREESWITCH_CAPTURES / "01a-auth-wrong-password.tx.raw").read_bytes())
        got = await read_all(c.reader)
        assert got == (FREESWITCH_CAPTURES / "01a-auth-wrong-password.rx.raw").read_bytes()
    finally:
        await sim.stop()


async def test_errors_and_exit_match_the_capture():
    captured = [f for f in capture_frames("07-errors-and-unknown")
                if f.content_type in ("command/reply", "text/disconnect-notice")]
    sim, c = await sim_and_client()
    try:
        assert (await c.frame()) == Frame({"Content-Type": "auth/request"})
        assert await c.send("api status") == captured[0]  # before auth: -ERR command not found
        assert (await c.send("auth ClueCon")).reply_text == "+OK accepted"
        assert await c.send("this_is_not_a_command") == captured[2]
        assert await c.send("event plain") == captured[3]
        bare_api = await c.send("api")
        assert bare_api.content_type == "command/reply" and bare_api.reply_text == "-ERR command not found"
        assert await c.send("exit") == captured[-2]
        assert await c.frame() == captured[-1]
    finally:
        await sim.stop()


async def test_api_job_and_event_frames_have_the_capture_shape():
    real_api = next(f for f in capture_frames("01b-auth-ok-and-api") if f.content_type == "api/response")
    real_job = next(f for f in capture_frames("07-errors-and-unknown") if f.headers.get("Job-UUID"))
    real_events = [parse_event(f) for f in capture_frames("02b-callcenter-call-json")
                   if f.content_type == "text/event-json"]
    sim, c = await sim_and_client()
    try:
        await c.frame()
        await c.send("auth ClueCon")
        assert (await c.send("event json BACKGROUND_JOB CHANNEL_CREATE")).reply_text == \
            "+OK event listener enabled json"
        api = await c.send("api show channels as json")
        assert list(api.headers) == list(real_api.headers)  # Content-Type, then Content-Length
        assert api.text() == '{"row_count": 0}'
        job = await c.send("bgapi originate {origination_uuid=abc}user/1001 &park()", **{"Job-UUID": "j-1"})
        assert list(job.headers) == list(real_job.headers)
        assert job.reply_text == "+OK Job-UUID: j-1"
        create = await c.frame()
        assert list(create.headers) == ["Content-Length", "Content-Type"]  # as captured
        sim_create = parse_event(create)
        real_create = next(e for e in real_events if e.name == "CHANNEL_CREATE"
                           and e.get("Call-Direction") == "outbound")
        used = {"Event-Name", "Unique-ID", "Call-Direction", "Caller-Context",
                "Caller-Destination-Number", "Caller-Caller-ID-Number", "Channel-Name",
                "Answer-State", "Core-UUID", "Event-Date-Timestamp"}
        assert used <= set(real_create.headers) and used <= set(sim_create.headers)
        assert sim_create.get("Unique-ID") == "abc"
        done = parse_event(await c.frame())
        assert (done.name, done.get("Job-UUID"), done.body) == ("BACKGROUND_JOB", "j-1", "+OK abc\n")
    finally:
        await sim.stop()


async def test_outbound_socket_speaks_like_the_capture():
    real = capture_frames("06-outbound-socket")
    real_connect, real_linger, real_bye = real[0], real[-2], real[-1]
    got: list[Frame] = []
    finished = asyncio.Event()

    async def ccserver_side(reader, writer):
        c = Client(reader, writer)
        got.append(await c.send("connect"))
        got.append(await c.send("myevents json"))
        got.append(await c.send("linger 5"))
        got.append(await c.send("sendmsg", **{"call-command": "execute", "execute-app-name": "answer",
                                              "Event-UUID": "11111111-aaaa-bbbb-cccc-000000000001"}))
        while True:
            data = await reader.read(65536)
            if not data:
                break
            c.frames.extend(c.parser.feed(data))
        got.extend(c.frames)
        finished.set()

    server = await asyncio.start_server(ccserver_side, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sim = SimulatedFreeSwitch(node="fs", esl_password="x", outbound_host="127.0.0.1",
                              outbound_port=port, agents=[])
    await sim.start()
    try:
        call = sim.place_call(CallerScript(hangup_during_ivr_after=0.3))
        await asyncio.wait_for(finished.wait(), 5)
        assert await call.wait(2) == "ivr_hangup"
        connect = got[0]
        assert list(connect.headers)[-4:] == list(real_connect.headers)[-4:]
        assert connect.headers["Reply-Text"] == "+OK\n" and connect.headers["Unique-ID"] == call.uniqueid
        assert connect.headers["variable_cc_node"] == "fs"
        assert [f.reply_text for f in got[1:4]] == ["+OK Events Enabled", "+OK will linger 5 seconds", "+OK"]
        events = [parse_event(f) for f in got[4:] if f.content_type == "text/event-json"]
        complete = next(e for e in events if e.name == "CHANNEL_EXECUTE_COMPLETE")
        assert complete.get("Application-UUID") == "11111111-aaaa-bbbb-cccc-000000000001"
        assert [e.name for e in events][-2:] == ["CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"]
        linger, bye = got[-2], got[-1]
        assert list(linger.headers) == list(real_linger.headers)
        assert linger.headers["Linger-Time"] == "5"
        assert list(bye.headers) == list(real_bye.headers) and bye.body == real_bye.body
    finally:
        await sim.stop()
        server.close()
        await server.wait_closed()


async def test_uuid_kill_stops_a_ringing_phone_and_ends_its_originate_at_once():
    sim = SimulatedFreeSwitch(node="fs", esl_password="ClueCon", outbound_host="127.0.0.1",
                              outbound_port=1, agents=[SimAgent("user/1001", answers=False)])
    port = await sim.start()
    c = Client(*await asyncio.open_connection("127.0.0.1", port))
    try:
        await c.frame()
        await c.send("auth ClueCon")
        await c.send("event json BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE")
        await c.send("bgapi originate {origination_uuid=leg-1,originate_timeout=60}user/1001 &park()",
                     **{"Job-UUID": "j-1"})
        assert sim.busy == {"user/1001": "leg-1"}
        c.writer.write(encode_command("api uuid_kill leg-1 ORIGINATOR_CANCEL"))
        # the originate does not wait out its 60 s: the phone stops ringing, the job says why
        # (the api reply and the events may come in any order)
        frames = [await c.frame() for _ in range(3)]
        (reply,) = [f for f in frames if f.content_type == "api/response"]
        job, hangup = sorted((parse_event(f) for f in frames if f is not reply), key=lambda e: e.name)
        assert reply.text() == "+OK\n"
        assert (hangup.name, hangup.get("Hangup-Cause")) == ("CHANNEL_HANGUP_COMPLETE", "ORIGINATOR_CANCEL")
        assert hangup.get("variable_sip_hangup_disposition") == "send_cancel"  # it never answered
        assert (job.name, job.body) == ("BACKGROUND_JOB", "-ERR ORIGINATOR_CANCEL\n")
        assert sim.busy == {} and "leg-1" not in sim.channels
    finally:
        await sim.stop()


# -- against the captures of ccserver's own dialplan (freeswitch-ccserver/) -------------------

OWN_DIALPLAN = FREESWITCH_CAPTURES.parent / "freeswitch-ccserver"


def own_bodies(name: str) -> list[tuple[str, str]]:
    """(Content-Type, body) of every frame FreeSWITCH sent in capture ``name``, cut with plain
    string splitting (an oracle of its own: not the codec under test)."""
    data, out = (OWN_DIALPLAN / name).read_bytes().decode("latin-1"), []
    while data:
        head, _, data = data.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.split("\n") if ": " in line)
        length = int(fields.get("Content-Length", "0"))
        out.append((fields.get("Content-Type", ""), data[:length]))
        data = data[length:]
    return out


def own_events(name: str) -> list[dict[str, str]]:
    return [json.loads(body) for ctype, body in own_bodies(name) if ctype == "text/event-json"]


class EventClient(Client):
    """A raw client subscribed to events: replies are told apart from events, which are kept."""

    def __init__(self, reader, writer):
        super().__init__(reader, writer)
        self.events: list[dict[str, str]] = []

    async def command(self, command: str, **headers: str) -> Frame:
        self.writer.write(encode_command(command, headers or None))
        while (frame := await self.frame()).content_type == "text/event-json":
            self.events.append(parse_event(frame).headers)
        return frame

    async def event(self, name: str) -> dict[str, str]:
        """The next event called ``name`` (the ones before it are kept)."""
        while True:
            frame = await self.frame()
            if frame.content_type == "text/event-json":
                self.events.append(parse_event(frame).headers)
                if self.events[-1]["Event-Name"] == name:
                    return self.events[-1]


async def bridged_call():
    """A caller through the simulated dialplan to the hold music, agent 1001 originated and
    bridged with ``uuid_bridge`` as ccserver does (capture c01), and a raw client subscribed to
    every event: (sim, client, the caller's SimCall, cleanup)."""
    outbound = FsOutboundServer("127.0.0.1", 0, lambda s: s.set_variable("CC_QUEUE", "support"))
    sim = SimulatedFreeSwitch(node="fs1", esl_password="ClueCon", outbound_host="127.0.0.1",
                              outbound_port=await outbound.start(),
                              agents=[SimAgent("user/1001", answer_delay=0.05)])
    c = EventClient(*await asyncio.open_connection("127.0.0.1", await sim.start()))
    await c.frame()
    await c.command("auth ClueCon")
    await c.command("event json ALL")
    call = sim.place_call(CallerScript(patience=30, talk_time=30))
    while (await c.event("CHANNEL_EXECUTE")).get("Application") != "endless_playback":
        pass
    await c.command(f"bgapi originate {{origination_uuid=leg-1,cc_caller_uuid={call.uniqueid}}}"
                    "user/1001 &park()", **{"Job-UUID": "j-1"})
    await c.event("BACKGROUND_JOB")
    assert (await c.command(f"api uuid_bridge {call.uniqueid} leg-1")).text().startswith("+OK")

    async def cleanup():
        await sim.stop()
        await outbound.stop()
    return sim, c, call, cleanup


async def test_show_channels_of_a_bridged_call_has_the_captured_shape():
    (real,) = [json.loads(b) for t, b in own_bodies("c08-link-cut-resync.esl-2.in.raw")
               if t == "api/response" and b.startswith("{")]
    sim, c, call, cleanup = await bridged_call()
    try:
        body = (await c.command("api show channels as json")).text()
        got = json.loads(body)
        # compact, as FreeSWITCH writes it: no space or line break anywhere
        assert body == json.dumps(got, separators=(",", ":"))
        by_direction = {r["direction"]: r for r in got["rows"]}
        for row in real["rows"]:
            mine = by_direction[row["direction"]]
            assert list(mine) == list(row)  # the same 38 columns in the same order
            for key in ("state", "application", "dialplan", "callstate", "callee_direction",
                        "initial_context", "secure"):
                assert mine[key] == row[key], (row["direction"], key)
            assert all(isinstance(v, str) for v in mine.values())
        assert by_direction["inbound"]["dest"] == "ccserver-after-ivr"
        assert by_direction["inbound"]["initial_dest"] == call.script.did
        assert by_direction["outbound"]["call_uuid"] == call.uniqueid
    finally:
        await cleanup()


async def test_hold_brings_the_hold_music_execute_on_the_caller_as_captured():
    real = own_events("c07-hold-then-transfer.esl.in.raw")
    at = next(i for i, e in enumerate(real) if e["Event-Name"] == "CHANNEL_HOLD")
    legs = {real[at]["Unique-ID"]: "agent", real[at]["Other-Leg-Unique-ID"]: "caller"}

    def story(events):
        return [(e["Event-Name"], legs.get(e.get("Unique-ID")), e.get("Application"),
                 e.get("Application-Data")) for e in events]

    sim, c, call, cleanup = await bridged_call()
    try:
        assert sim.hold(call, True)
        start = len(c.events)
        await c.event("CHANNEL_EXECUTE")
        legs |= {"leg-1": "agent", call.uniqueid: "caller"}
        assert story(c.events[start:]) == story(real[at:at + 2])
    finally:
        await cleanup()


async def test_a_recording_ended_by_the_hang_up_stops_with_the_captured_cause():
    (real,) = [e for e in own_events("c05-recording-uuid-record.esl.in.raw")
               if e["Event-Name"] == "RECORD_STOP"]
    sim, c, call, cleanup = await bridged_call()
    try:
        reply = await c.command(f"api uuid_record {call.uniqueid} start /rec/x.wav")
        assert reply.text() == "+OK Success\n"
        sim.hangup(sim.channels[call.uniqueid], "NORMAL_CLEARING", "recv_bye")
        stop = await c.event("RECORD_STOP")
        assert stop["Record-Completion-Cause"] == real["Record-Completion-Cause"] == "success-silence"
    finally:
        await cleanup()
