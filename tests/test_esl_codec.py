"""The ESL codec against real FreeSWITCH captures, bad input, and a hypothesis fuzz."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccserver.pbx.freeswitch.esl_codec import (
    KNOWN_CONTENT_TYPES,
    MAX_HEADER_BYTES,
    EslParser,
    EslProtocolError,
    Frame,
    encode_command,
    encode_event_json,
    encode_event_plain,
    encode_frame,
    parse_event,
)
from captures import FREESWITCH_CAPTURES, FREESWITCH_CCSERVER_CAPTURES

RX = sorted(FREESWITCH_CAPTURES.glob("*.rx.raw"))
#: every stream a FreeSWITCH sent: the lab's and ccserver's own sessions (ESL and outbound)
ALL_RX = RX + sorted(FREESWITCH_CCSERVER_CAPTURES.glob("*.in.raw"))


def plain_frames(raw: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The reference the parser is checked against, in a few lines of plain splitting: a header
    block to the empty line, ``Name: value`` lines (URL-decoded), then ``Content-Length`` bytes."""
    out, at = [], 0
    while at < len(raw):
        end = raw.index(b"\n\n", at)
        headers = dict(line.split(": ", 1) for line in raw[at:end].decode().split("\n"))
        headers = {k: unquote(v) for k, v in headers.items()}
        length = int(headers.get("Content-Length", 0))
        out.append((headers, raw[end + 2:end + 2 + length]))
        at = end + 2 + length
    return out


def plain_event(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """An event's headers (and ``_body``) read without the codec: JSON, or URL-encoded lines."""
    if headers["Content-Type"] == "text/event-json":
        # a repeated variable is a JSON array (variable_DP_MATCH); an event keeps it as JSON text
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(body).items()}
    block, _, rest = body.decode().partition("\n\n")
    fields = {k: unquote(v) for k, v in (line.split(": ", 1) for line in block.split("\n"))}
    if "Content-Length" in fields:
        fields["_body"] = rest[:int(fields.pop("Content-Length"))]
    return fields


@pytest.mark.parametrize("path", ALL_RX, ids=lambda p: p.name)
def test_every_frame_and_event_is_read_as_plain_splitting_reads_it(path):
    raw = path.read_bytes()
    frames = EslParser().feed(raw)
    reference = plain_frames(raw)
    assert [(f.headers, f.body) for f in frames] == reference
    for frame, (headers, body) in zip(frames, reference):
        if frame.content_type.startswith("text/event-"):
            ev = parse_event(frame)
            expected = plain_event(headers, body)
            assert ev.body == expected.pop("_body", "")
            assert ev.headers == expected


@pytest.mark.parametrize("path", RX, ids=lambda p: p.name)
def test_the_raw_files_are_the_timelines_reads_put_together(path):
    """The .timeline.tsv (what the outbound replay reads) covers both raw files, read by read."""
    tsv = path.with_name(path.name.replace(".rx.raw", ".timeline.tsv"))
    rows = [line.split("\t") for line in tsv.read_text().splitlines() if not line.startswith("#")]
    for direction in ("rx", "tx"):
        raw = path.with_name(path.name.replace(".rx.raw", f".{direction}.raw")).read_bytes()
        slices = [(int(o), int(n)) for _, d, o, n in rows if d == direction]
        assert b"".join(raw[o:o + n] for o, n in slices) == raw
        assert all(o == sum(n for _, n in slices[:i]) for i, (o, _) in enumerate(slices))


def frames_of(name: str) -> list[Frame]:
    parser = EslParser()
    frames = parser.feed((FREESWITCH_CAPTURES / name).read_bytes())
    assert parser.buffered == 0
    return frames


@pytest.mark.parametrize("path", RX, ids=lambda p: p.name)
def test_every_capture_parses_to_the_summary_count_with_nothing_left(path):
    data = path.read_bytes()
    whole = EslParser().feed(data)
    summary = path.with_name(path.name.replace(".rx.raw", ".summary.txt")).read_text()
    assert f"({len(whole)} rx msgs" in summary.splitlines()[0]
    # the same frames whatever the chunking: one byte at a time for the small ones, 1000 else
    parser, step = EslParser(), (1 if len(data) < 5000 else 1000)
    chunked = [f for i in range(0, len(data), step) for f in parser.feed(data[i:i + step])]
    assert chunked == whole and parser.buffered == 0
    assert {f.content_type for f in whole} <= KNOWN_CONTENT_TYPES
    for f in whole:
        if f.content_type.startswith("text/event-"):
            assert parse_event(f).headers["Event-Name"]


def test_outbound_connect_reply_is_url_decoded_with_content_type_last():
    connect = frames_of("06-outbound-socket.rx.raw")[0]
    assert list(connect.headers)[-4] == "Content-Type"  # after ~160 channel headers
    assert connect.content_type == "command/reply"
    assert connect.headers["Reply-Text"] == "+OK\n" and connect.reply_text == "+OK"
    assert connect.headers["Event-Name"] == "CHANNEL_DATA"
    assert connect.headers["Caller-Destination-Number"] == "8084"


def test_plain_background_job_has_an_inner_body_and_decoded_values():
    events = [parse_event(f) for f in frames_of("07-errors-and-unknown.rx.raw")
              if f.content_type == "text/event-plain"]
    jobs = [e for e in events if e.name == "BACKGROUND_JOB"]
    assert [j.body for j in jobs] == ["-ERR no_such_api_command Command not found!\n",
                                      "-ERR USER_BUSY\n"]
    assert jobs[0].get("FreeSWITCH-IPv6") == "fd00::2"
    assert "Content-Length" not in jobs[0].headers


def test_plain_and_json_events_agree_on_the_same_fields():
    plain = [parse_event(f) for f in frames_of("02a-callcenter-call-plain.rx.raw")
             if f.content_type == "text/event-plain"]
    js = [parse_event(f) for f in frames_of("02b-callcenter-call-json.rx.raw")
          if f.content_type == "text/event-json"]
    def create(events):
        return next(e for e in events if e.name == "CHANNEL_CREATE")
    for key in ("Caller-Destination-Number", "Caller-Caller-ID-Number", "Call-Direction"):
        assert create(plain).get(key) == create(js).get(key) != ""
    agent_state = [e.get("CC-Agent-State") for e in plain if e.get("CC-Action") == "agent-state-change"]
    assert "In a queue call" in agent_state


def test_api_response_body_keeps_its_exact_bytes():
    frames = frames_of("01b-auth-ok-and-api.rx.raw")
    bodies = [f.text() for f in frames if f.content_type == "api/response"]
    assert json.loads(bodies[1]) == {"row_count": 0}
    assert bodies[2] == "\n0 total.\n"


def test_encoders_reproduce_capture_frames():
    data = (FREESWITCH_CAPTURES / "07-errors-and-unknown.rx.raw").read_bytes()
    for f in EslParser().feed(data):
        if f.content_type in ("api/response", "text/disconnect-notice", "command/reply"):
            assert encode_frame(f.headers, f.body) in data
    js = (FREESWITCH_CAPTURES / "02b-callcenter-call-json.rx.raw").read_bytes()
    for f in EslParser().feed(js)[:30]:
        if f.content_type == "text/event-json":
            ev = parse_event(f)
            assert parse_event(EslParser().feed(encode_event_json(ev.headers, ev.body))[0]) == ev


def test_plain_encoder_round_trips():
    ev_frame = EslParser().feed(encode_event_plain({"Event-Name": "BACKGROUND_JOB",
                                                    "Job-UUID": "j 1:%"}, "+OK abc\n"))
    ev = parse_event(ev_frame[0])
    assert ev.headers == {"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j 1:%"}
    assert ev.body == "+OK abc\n"
    assert parse_event(EslParser().feed(encode_event_plain({"Event-Name": "HEARTBEAT"}))[0]).body == ""


@pytest.mark.parametrize("bad, field", [
    (b"Content-Type: api/response\nContent-Length: ten\n\n", "Content-Length"),
    (b"Content-Type: api/response\nContent-Length: -3\n\n", "Content-Length"),
    (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "Content-Length"),
    (b"this line has no colon\n\n", "header line"),
])
def test_bad_frames_raise_a_clear_error(bad, field):
    with pytest.raises(EslProtocolError, match=field):
        EslParser().feed(bad)


def test_endless_header_block_is_refused_not_buffered_forever():
    parser = EslParser()
    with pytest.raises(EslProtocolError, match="header block"):
        for _ in range(MAX_HEADER_BYTES // 1000 + 2):
            parser.feed(b"X-Filler: " + b"a" * 990 + b"\n")


def test_truncated_body_waits_and_completes_later():
    parser = EslParser()
    assert parser.feed(b"Content-Type: api/response\nContent-Length: 10\n\n12345") == []
    assert parser.feed(b"67890Content-Type: auth/request\n\n") == [
        Frame({"Content-Type": "api/response", "Content-Length": "10"}, b"1234567890"),
        Frame({"Content-Type": "auth/request"}),
    ]


def test_bad_event_bodies():
    with pytest.raises(EslProtocolError, match="not JSON"):
        parse_event(Frame({"Content-Type": "text/event-json"}, b"{nope"))
    with pytest.raises(EslProtocolError, match="inner Content-Length"):
        parse_event(Frame({"Content-Type": "text/event-plain"},
                          b"Event-Name: X\nContent-Length: 50\n\nshort"))
    with pytest.raises(EslProtocolError, match="not an event"):
        parse_event(Frame({"Content-Type": "text/unknown"}, b""))


def test_commands_cannot_smuggle_a_second_command():
    assert encode_command("api status") == b"api status\n\n"
    assert encode_command("sendmsg abc", {"call-command": "execute"}) == (
        b"sendmsg abc\ncall-command: execute\n\n")
    with pytest.raises(EslProtocolError, match="command"):
        encode_command("api status\n\nexit")
    with pytest.raises(EslProtocolError, match="execute-app-arg"):
        encode_command("sendmsg", {"execute-app-arg": "x\nevil: 1"})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_fuzz_parser_never_crashes_or_hangs(chunks):
    parser = EslParser()
    for chunk in chunks:
        try:
            for frame in parser.feed(chunk):
                if frame.content_type.startswith("text/event-"):
                    try:
                        parse_event(frame)
                    except EslProtocolError:
                        pass
        except EslProtocolError:
            parser = EslParser()  # the stream is dropped and a new one starts
    assert parser.buffered <= MAX_HEADER_BYTES + 200 * 20


CAPTURE = (FREESWITCH_CAPTURES / "07-errors-and-unknown.rx.raw").read_bytes()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(CAPTURE) - 1), st.binary(min_size=1, max_size=8))
def test_fuzz_mutated_capture(pos, junk):
    data = CAPTURE[:pos] + junk + CAPTURE[pos + len(junk):]
    parser = EslParser()
    try:
        for frame in parser.feed(data):
            if frame.content_type.startswith("text/event-"):
                try:
                    parse_event(frame)
                except EslProtocolError:
                    pass
    except EslProtocolError:
        pass


def test_a_json_event_with_bytes_that_are_not_utf8_is_kept():
    # a caller's display name is caller-controlled; one bad byte must not cost the event (or the link)
    body = b'{"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Name": "Zo\xff\xfe", "Unique-ID": "u1"}'
    event = parse_event(Frame({"Content-Type": "text/event-json", "Content-Length": str(len(body))}, body))
    assert event.headers["Event-Name"] == "CHANNEL_CREATE"
    assert event.headers["Caller-Caller-ID-Name"].startswith("Zo")


@pytest.mark.parametrize("fmt", ["plain", "json"])
async def test_the_simulators_bytes_read_as_plain_splitting_reads_them(fmt):
    """The FreeSWITCH simulator checked with the same oracle as the captures: every byte it sends
    for a whole call (events, replies, the goodbye) frames and decodes as plain splitting does."""
    import asyncio

    from ccserver.sim.freeswitch import CallerScript, SimAgent, SimulatedFreeSwitch

    sim = SimulatedFreeSwitch(node="fs", esl_password="ClueCon", outbound_host="127.0.0.1",
                              outbound_port=1, agents=[SimAgent("user/1001", answer_delay=0.1)])
    port = await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"auth ClueCon\n\nevent {fmt} ALL\n\napi show channels as json\n\n".encode())
        raw = b""
        async with asyncio.timeout(10):
            while raw.count(b"Content-Type: api/response") < 1:
                raw += await reader.read(65536)
            sim.place_call(CallerScript())  # its IVR socket cannot connect: the call ends at once
            while b"CHANNEL_HANGUP_COMPLETE" not in raw:
                raw += await reader.read(65536)
            writer.write(b"exit\n\n")
            while chunk := await reader.read(65536):
                raw += chunk
    finally:
        await sim.stop()
    frames = EslParser().feed(raw)
    assert [(f.headers, f.body) for f in frames] == plain_frames(raw)
    events = [(f, h, b) for f, (h, b) in zip(frames, plain_frames(raw))
              if f.content_type.startswith("text/event-")]
    assert len(events) >= 3
    for frame, headers, body in events:
        ev, expected = parse_event(frame), plain_event(headers, body)
        assert (ev.body, ev.headers) == (expected.pop("_body", ""), expected)
