"""The FreeSWITCH simulator against the real captures: what it sends must look like FreeSWITCH.

Raw TCP clients replay the captured commands into the simulator and compare its answers with the
captured bytes (exactly where the bytes carry nothing call-specific, by structure elsewhere).
"""

from __future__ import annotations

import asyncio

from ccserver.pbx.freeswitch.esl_codec import EslParser, Frame, encode_command, parse_event
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
