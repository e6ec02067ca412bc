"""The recorded outbound-socket sessions (captures 06, 06b) played into ccserver's OutboundSession.

A replaying peer stands in for FreeSWITCH: it connects to ccserver's outbound-socket server as
FreeSWITCH does and walks the capture's timeline. At each command the recorded client sent, it
waits for ccserver's command, checks it is the same kind (verb, call-command, application) and
answers with the recorded bytes: the reply, then the frames FreeSWITCH sent before the next
command, time compressed. The only rewrite is the execute id: ccserver picks its own
``Event-UUID``, which FreeSWITCH echoes as ``Application-UUID`` (same length, so every
``Content-Length`` holds). Recorded commands ccserver does not send (the capture client's
``uuid_getvar``, its ``sendmsg hangup``) are skipped with their reply; the frames after them
(the hang-up, the linger and disconnect notices) still come. Commands ccserver sends now that
the recording predates (``set`` at the flow's start, issue 10 item 5) are answered as FreeSWITCH
answered the recording's own first ``set``, with the id and argument of the one sent.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccserver.core.events import IvrFinished
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.media import CallerHungUp, MediaSession
from ccserver.ivr.runner import serve_ivr
from ccserver.pbx.freeswitch.esl_codec import (
    EslCommandParser,
    EslParser,
    encode_event_json,
    encode_frame,
    parse_event,
)
from ccserver.pbx.freeswitch.outbound import FsOutboundServer, OutboundSession
from captures import FREESWITCH_CAPTURES, FREESWITCH_CCSERVER_CAPTURES

#: recorded seconds -> replayed seconds
TIME_SCALE = 0.01
CALLER = "15551230000"
PAGD = "1 4 1 7000 # tone_stream://%(300,0,440) silence_stream://250 pagd_digits \\d+ 2000"
TONE = "tone_stream://%(1000,0,350,440)"


def kind(line: str, headers: dict[str, str]) -> tuple[str, str, str]:
    """What a command does, whatever its arguments: ``sendmsg <uuid>`` = ``sendmsg``."""
    return line.split()[0], headers.get("call-command", ""), headers.get("execute-app-name", "")


def what(command) -> tuple[str, str, str]:
    """A command as (line, application, its argument): all of it but the execute's own id."""
    return (command.line, command.headers.get("execute-app-name", ""),
            command.headers.get("execute-app-arg", ""))


def first_frame_length(data: bytes) -> int:
    head_end = data.index(b"\n\n") + 2
    length = next((int(line.split(b":")[1]) for line in data[:head_end].split(b"\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head_end + length


@dataclass
class Step:
    at: float
    sent_by_client: bool
    data: bytes


def timeline(name: str) -> list[Step]:
    """The reads of one recorded connection: a lab capture's ``.timeline.tsv`` over its raw
    files, or the ``.jsonl`` of one of ccserver's own (``c01-ivr-queue-answered.outbound``)."""
    jsonl = FREESWITCH_CCSERVER_CAPTURES / f"{name}.jsonl"
    if jsonl.exists():
        return [Step(r["t"], r["dir"] == "out", r["data"].encode("latin-1"))
                for r in map(json.loads, jsonl.read_text().splitlines())]
    rx = (FREESWITCH_CAPTURES / f"{name}.rx.raw").read_bytes()
    tx = (FREESWITCH_CAPTURES / f"{name}.tx.raw").read_bytes()
    steps = []
    for line in (FREESWITCH_CAPTURES / f"{name}.timeline.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        at, direction, offset, length = line.split("\t")
        raw = tx if direction == "tx" else rx
        steps.append(Step(float(at), direction == "tx", raw[int(offset):int(offset) + int(length)]))
    return steps


def recorded_execute_ids(steps: list[Step]) -> list[str]:
    """The ``Application-UUID`` of each application the capture's client executed, in order."""
    ids, app = [], None
    for step in steps:
        if step.sent_by_client:
            (cmd,) = EslCommandParser().feed(step.data)
            app = cmd.headers.get("execute-app-name")
            continue
        for frame in EslParser().feed(step.data) if app else []:
            if frame.content_type.startswith("text/event-"):
                ev = parse_event(frame)
                if ev.get("Event-Name") == "CHANNEL_EXECUTE" and ev.get("Application") == app:
                    ids.append(ev.get("Application-UUID"))
                    app = None
                    break
    return ids


def answer_to_first_set(steps: list[Step]) -> bytes:
    """What FreeSWITCH sent between the recording's first ``set`` and the client's next command:
    its ``+OK`` and the ``CHANNEL_EXECUTE`` / ``CHANNEL_EXECUTE_COMPLETE`` of the ``set``."""
    answer, inside = b"", False
    for step in steps:
        if step.sent_by_client:
            if inside:
                return answer
            (cmd,) = EslCommandParser().feed(step.data)
            inside = cmd.headers.get("execute-app-name") == "set"
        elif inside:
            answer += step.data
    raise AssertionError("the recording has no set")


def as_if_for(answer: bytes, execute_id: str, arg: str) -> bytes:
    """``answer`` (to a recorded ``set``) rewritten for another ``set``: its events carry
    ``execute_id`` and ``arg``, each ``Content-Length`` recomputed."""
    out = b""
    for frame in EslParser().feed(answer):
        if frame.content_type != "text/event-json":
            out += encode_frame(frame.headers, frame.body)
            continue
        event = json.loads(frame.body)
        event["Application-UUID"] = execute_id
        event["Application-Data"] = event["variable_current_application_data"] = arg
        out += encode_event_json(event)
    return out


@dataclass
class ReplayingPeer:
    """FreeSWITCH as recorded, for one outbound-socket connection."""

    capture: str
    #: client commands the recording lacks, answered with a reply FreeSWITCH gave in another capture
    borrowed: dict[str, bytes] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    borrowed_used: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: every command ccserver sent, as (line, application, its argument)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``set`` commands ccserver sends that the recording predates, as (line, application, its
    #: argument): answered like the recording's first ``set``
    unrecorded: list[tuple[str, str, str]] = field(default_factory=list)
    unrecorded_answered: list[tuple[str, str, str]] = field(default_factory=list)

    async def run(self, port: int, skip: set[str]) -> None:
        steps = timeline(self.capture)
        recorded_ids = iter(recorded_execute_ids(steps))
        renames: dict[bytes, bytes] = {}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser, pending = EslCommandParser(), []
        drop_reply, last = False, steps[0].at
        for step in steps:
            if step.sent_by_client:
                (recorded,) = EslCommandParser().feed(step.data)
                want = kind(recorded.line, recorded.headers)
                if want[0] in skip or want[1] in skip:
                    self.skipped.append(recorded.line)
                    drop_reply = True
                    continue
                while True:
                    while not pending:
                        data = await asyncio.wait_for(reader.read(65536), 5)
                        assert data, f"ccserver closed the socket while {recorded.line!r} was due"
                        pending.extend(parser.feed(data))
                    got = pending.pop(0)
                    mine = kind(got.line, got.headers)
                    if what(got) in self.unrecorded and what(got) != what(recorded):
                        self.sent.append(what(got))
                        self.unrecorded_answered.append(what(got))
                        writer.write(as_if_for(answer_to_first_set(steps), got.headers["Event-UUID"],
                                               got.headers["execute-app-arg"]))
                        continue
                    if mine == want or mine[0] not in self.borrowed:
                        break
                    self.borrowed_used.append(got.line)
                    writer.write(self.borrowed[mine[0]])
                self.sent.append(what(got))
                if mine != want:
                    self.mismatches.append(f"{got.line!r} where the recording has {recorded.line!r}")
                if want[1] == "execute":
                    renames[next(recorded_ids).encode()] = got.headers["Event-UUID"].encode()
                last = step.at
                continue
            await asyncio.sleep((step.at - last) * TIME_SCALE)
            last = step.at
            data = step.data
            if drop_reply:  # the reply to a command ccserver did not send
                data, drop_reply = data[first_frame_length(data):], False
            for old, new in renames.items():
                data = data.replace(old, new)
            writer.write(data)
            await writer.drain()
        writer.close()  # FreeSWITCH closes after the last disconnect notice
        await writer.wait_closed()


async def replay(capture: str, flow, skip: set[str], borrowed: dict[str, bytes] | None = None,
                 unrecorded: list[tuple[str, str, str]] | None = None):
    """Run ``flow`` on ccserver's session while the peer replays ``capture``."""
    outcome: dict[str, object] = {}
    sessions: list[OutboundSession] = []

    async def on_session(session: MediaSession) -> None:
        sessions.append(session)
        try:
            await flow(session, outcome)
        except CallerHungUp:
            outcome["hung_up"] = True  # not the exception: its frames would keep futures alive
            raise

    loop = asyncio.get_running_loop()
    unhandled: list[dict] = []  # e.g. "Future exception was never retrieved"
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    server = FsOutboundServer("127.0.0.1", 0, on_session, default_node="fs1", command_timeout=3.0)
    port = await server.start()
    peer = ReplayingPeer(capture, borrowed or {}, unrecorded=unrecorded or [])
    try:
        await asyncio.wait_for(peer.run(port, skip), 10)
        async with asyncio.timeout(5):
            while server.live:  # ccserver ends the session and closes its side
                await asyncio.sleep(0.01)
    finally:
        await server.stop()
        gc.collect()
        loop.set_exception_handler(None)
    outcome["unhandled"] = [c.get("message") for c in unhandled]
    return peer, sessions, outcome


def no_trouble_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("ccserver") and r.levelno >= logging.WARNING]


def why_gone(caplog) -> list[str]:
    """What told the session the caller was gone (logged once, the first time)."""
    return [r.getMessage().partition("caller gone ")[2] for r in caplog.records
            if "caller gone" in r.getMessage()]


async def test_caller_hangs_up_with_linger_plain_06(caplog):
    caplog.set_level(logging.INFO, "ccserver.pbx.freeswitch.outbound")
    async def flow(session: OutboundSession, outcome: dict) -> None:
        outcome["answer"] = (await session.execute("answer")).get("Application-Response")
        outcome["tone"] = (await session.execute("playback", TONE)).get("Application-Response")
        outcome["digits"] = (await session.execute("play_and_get_digits", PAGD)).get("variable_pagd_digits")
        await session.play("goodbye")  # the caller is gone by now, or goes while this waits
        outcome["after_hangup"] = "played"

    peer, (session,), outcome = await replay("06-outbound-socket", flow, skip={"api"})
    assert peer.mismatches == []
    assert peer.skipped == ["api uuid_getvar ee86855b-cc4b-450c-9fd1-fe7bd747fcda pagd_digits"]
    assert (session.channel, session.call_id) == ("ee86855b-cc4b-450c-9fd1-fe7bd747fcda",
                                                  "fs1:ee86855b-cc4b-450c-9fd1-fe7bd747fcda")
    assert (session.caller, session.did) == (CALLER, "8084")
    assert outcome["answer"] == "_none_" and outcome["tone"] == "FILE PLAYED"
    assert outcome["digits"] == "123"
    assert outcome["hung_up"] and "after_hangup" not in outcome
    assert why_gone(caplog) == ["(CHANNEL_HANGUP NORMAL_CLEARING)"]  # the event, before any notice
    assert no_trouble_logged(caplog) == [] and outcome["unhandled"] == []


async def test_json_session_without_linger_ends_on_one_disconnect_notice_06b(caplog):
    caplog.set_level(logging.INFO, "ccserver.pbx.freeswitch.outbound")
    # ccserver always asks to linger; 06b's client did not: FreeSWITCH's answer to it comes from 06
    linger_reply = next(s.data for s in timeline("06-outbound-socket")
                        if not s.sent_by_client and b"will linger" in s.data)

    async def flow(session: OutboundSession, outcome: dict) -> None:
        await session.execute("answer")
        outcome["digits"] = (await session.execute("play_and_get_digits", PAGD)).get("variable_pagd_digits")
        await session.execute("playback", TONE)
        outcome["after_hangup"] = "played"

    peer, (session,), outcome = await replay(
        "06b-outbound-socket-json-server-hangup", flow, skip={"hangup"},
        borrowed={"linger": linger_reply})
    assert peer.mismatches == [] and peer.borrowed_used == ["linger 10"]
    assert peer.skipped == ["sendmsg"]  # the capture client's hang-up; ccserver never sends one
    assert session.channel == "cc37648a-ba5f-493a-ba7a-2247aea7cccd" and session.caller == CALLER
    assert outcome["digits"] == "123"  # CHANNEL_PARK came first (a race in 06b): ignored
    assert outcome["hung_up"] and "after_hangup" not in outcome
    assert why_gone(caplog) == ["(CHANNEL_HANGUP NORMAL_CLEARING)"]  # the event, before any notice
    assert no_trouble_logged(caplog) == [] and outcome["unhandled"] == []


@pytest.mark.parametrize("capture", ["06-outbound-socket", "06b-outbound-socket-json-server-hangup"])
def test_the_peer_renames_every_execute_it_answers(capture):
    # the rewrite must keep each frame's length: ids are 36-character UUIDs on both sides
    ids = recorded_execute_ids(timeline(capture))
    assert ids and all(len(i) == len(str(uuidlib.uuid4())) for i in ids)


# -- ccserver's own outbound sessions (freeswitch-ccserver/): the shipped IVR, as recorded -------

ROOT = Path(__file__).resolve().parents[1]
OUTBOUND_SESSIONS = sorted(p.name.removesuffix(".jsonl")
                           for p in FREESWITCH_CCSERVER_CAPTURES.glob("*.outbound.jsonl"))


@pytest.mark.parametrize("capture", OUTBOUND_SESSIONS)
async def test_the_shipped_ivr_sends_what_it_sent_to_the_real_freeswitch(capture, caplog):
    caplog.set_level(logging.INFO, "ccserver.pbx.freeswitch.outbound")
    finished: list[IvrFinished] = []
    library = FlowLibrary(ROOT / "ivr_flows", {"*": "main"})

    async def flow(session: OutboundSession, outcome: dict) -> None:
        await serve_ivr(session, library, finished.append, lambda: 0.0)

    # The recordings predate issue 10 item 5: ccserver now sets the flow's language (main.yaml's
    # "en") on the channel right after the answer, so FreeSWITCH plays prompts from
    # $${sounds_dir}/en/. Those two sets are the only commands the recordings lack.
    language = [("sendmsg", "set", "default_language=en"),
                ("sendmsg", "set", "sound_prefix=${sounds_dir}/en")]
    peer, (session,), outcome = await replay(capture, flow, skip=set(), unrecorded=language)
    recorded = [what(c) for step in timeline(capture) if step.sent_by_client
                for c in EslCommandParser().feed(step.data)]
    answer = recorded.index(("sendmsg", "answer", ""))
    # the same commands, arguments and all, with the language set just after the answer
    assert peer.sent == recorded[:answer + 1] + language + recorded[answer + 1:]
    assert peer.unrecorded_answered == language
    assert peer.mismatches == [] and peer.skipped == []
    (done,) = finished
    if capture.startswith("c04-"):  # the caller hung up during the greeting
        assert done.caller_hung_up and done.queue is None
    else:  # digit 1 during the greeting
        assert done.queue == "support" and done.node == "fs1"
    # the arrival is when FreeSWITCH created the channel, from the connect reply (item 6)
    connect_reply = next(step.data for step in timeline(capture) if not step.sent_by_client)
    created = re.search(rb"\nCaller-Channel-Created-Time: (\d+)\n", connect_reply)[1]
    assert done.arrived_at == int(created) / 1e6
    # the prompts played on the real FreeSWITCH: none is taken for a missing one (item 5)
    assert no_trouble_logged(caplog) == []
    assert outcome["unhandled"] == []
