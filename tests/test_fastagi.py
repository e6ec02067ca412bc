"""FastAGI server over real TCP, with a test-side peer playing Asterisk from the captures."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

import pytest
from panoramisk.fast_agi import Application

from ccserver.core.events import IvrFinished
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.runner import serve_ivr
from ccserver.pbx.asterisk.fastagi import AgiSession, FastAgiServer

ROOT = Path(__file__).resolve().parents[1]
from captures import ASTERISK_CAPTURES as CAPTURES  # noqa: E402


def _env(capture: str) -> bytes:
    raw = (CAPTURES / capture).read_bytes()
    return raw[: raw.index(b"\n\n") + 2]


def _replies(capture: str) -> list[bytes]:
    raw = (CAPTURES / capture).read_bytes()
    return raw[raw.index(b"\n\n") + 2 :].splitlines(keepends=True)


#: the captured environment, exactly as Asterisk 22 sent it (args lang=en, flow=agi-only)
ENV_07 = _env("07-fastagi.agi.in.raw")
#: the same with our dialplan's arguments, as AGI(agi://.../ivr,node=pbx1,did=5551000) sends them
ENV_OURS = ENV_07.replace(
    b"agi_arg_1: lang=en\nagi_arg_2: flow=agi-only\n",
    b"agi_arg_1: node=pbx1\nagi_arg_2: did=5551000\n",
)
assert ENV_OURS != ENV_07

#: 07b: the caller hung up 0.8 s into STREAM FILE
REPLY_HANGUP_DURING_STREAM = _replies("07b-fastagi-caller-hangup.agi.in.raw")[1:4]
assert REPLY_HANGUP_DURING_STREAM == [
    b"200 result=-1 endpos=2560\n",
    b"HANGUP\n",
    b"511 Command Not Permitted on a dead channel or intercept routine\n",
]

OK = [b"200 result=0\n"]
STREAMED = [b"200 result=0 endpos=11234\n"]
SET_OK = [b"200 result=1\n"]
WAIT = 2.0  # seconds any single step may take before a test fails


class AsteriskPeer:
    """Asterisk's side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.commands: list[str] = []

    @classmethod
    async def connect(cls, port: int, env: bytes = ENV_OURS) -> AsteriskPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(env)
        await writer.drain()
        return cls(reader, writer)

    async def command(self) -> str | None:
        """The next command line, or None once the server closed the connection."""
        line = await asyncio.wait_for(self.reader.readline(), WAIT)
        if not line:
            return None
        self.commands.append(line.decode().rstrip("\n"))
        return self.commands[-1]

    async def send(self, lines: list[bytes]) -> None:
        self.writer.write(b"".join(lines))
        await self.writer.drain()

    async def converse(self, respond: Callable[[str], list[bytes] | None]) -> list[str]:
        """Answer each command with ``respond(command)`` until the server closes; None = go silent."""
        while (cmd := await self.command()) is not None:
            lines = respond(cmd)
            if lines is None:
                break
            await self.send(lines)
        return self.commands

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), WAIT) == b""

    def close(self) -> None:
        self.writer.close()


def asterisk(get_data: list[bytes] | None = None) -> Callable[[str], list[bytes]]:
    """A responder like the captured Asterisk; GET DATA answers are taken from ``get_data``."""
    answers = list(get_data or [])

    def respond(cmd: str) -> list[bytes]:
        if cmd == "ANSWER":
            return OK
        if cmd.startswith("STREAM FILE"):
            return STREAMED
        if cmd.startswith("GET DATA"):
            return [answers.pop(0)] if answers else [b"200 result= (timeout)\n"]
        if cmd.startswith("SET VARIABLE"):
            return SET_OK
        return [b"510 Invalid or unknown command\n"]

    return respond


@pytest.fixture
def events() -> list[IvrFinished]:
    return []


@pytest.fixture
async def port(events: list[IvrFinished]):
    library = FlowLibrary(ROOT / "ivr_flows", {"*": "main"})
    server = FastAgiServer(
        "127.0.0.1", 0, lambda s: serve_ivr(s, library, events.append, lambda: 1000.0),
        command_timeout=0.5,
    )
    yield await server.start()
    await server.stop()


async def _start(on_session, **kw) -> tuple[FastAgiServer, int]:
    server = FastAgiServer("127.0.0.1", 0, on_session, **kw)
    return server, await server.start()


# --- full IVR runs ------------------------------------------------------------------------


async def test_menu_digit_1_queues_support(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)
    commands = await peer.converse(asterisk([b"200 result=1\n"]))
    assert commands == [
        "ANSWER",
        'STREAM FILE hello-world "0123456789*#"',
        "GET DATA demo-instruct 5000 1",
        'SET VARIABLE CC_QUEUE "support"',
    ]
    assert events == [IvrFinished(
        call_id="pbx1:1795481499.35", node="pbx1", channel="PJSIP/carrier-0000000f",
        caller="+15551230000", did="5551000", queue="support",
        path=("greeting", "main_menu", "main_menu:1", "to_support"),
        variables={"CC_QUEUE": "support", "ivr_version": "main@1", "ivr_digits": "1",
                   "ivr_timings": "0,0,0,0"},
        priority=0, at=1000.0,
    )]


async def test_invalid_digit_then_valid(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)
    commands = await peer.converse(asterisk([b"200 result=9\n", b"200 result=2\n"]))
    assert commands[2:] == [
        "GET DATA demo-instruct 5000 1",
        'STREAM FILE invalid "0123456789*#"',
        "GET DATA demo-instruct 5000 1",
        'STREAM FILE one-moment-please ""',
        'SET VARIABLE CC_QUEUE "support"',
    ]
    [ev] = events
    assert ev.path == ("greeting", "main_menu", "main_menu:9", "main_menu:2", "priority_notice",
                       "to_support_priority")
    assert (ev.queue, ev.priority) == ("support", 1)


async def test_timeouts_exhausted(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)
    commands = await peer.converse(asterisk())
    assert commands.count("GET DATA demo-instruct 5000 1") == 3
    assert commands.count('STREAM FILE vm-sorry "0123456789*#"') == 2
    assert commands[-2:] == ['STREAM FILE pls-hold-while-try ""', 'SET VARIABLE CC_QUEUE "support"']
    [ev] = events
    assert ev.queue == "support" and ev.path.count("main_menu:timeout") == 3


async def test_digit_interrupting_greeting(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)

    def respond(cmd: str) -> list[bytes]:
        if cmd.startswith("STREAM FILE hello-world"):
            return [b"200 result=49 endpos=4000\n"]  # ASCII "1"
        return asterisk()(cmd)

    commands = await peer.converse(respond)
    assert not any(c.startswith("GET DATA") for c in commands)
    assert events[0].path[2] == "main_menu:1" and events[0].queue == "support"


# --- the caller leaves --------------------------------------------------------------------


async def test_caller_hangs_up_during_stream_file(
    port: int, events: list[IvrFinished], caplog: pytest.LogCaptureFixture
) -> None:
    """The 07b sequence: result=-1, the unsolicited HANGUP line, then 511."""
    peer = await AsteriskPeer.connect(port)

    def respond(cmd: str) -> list[bytes]:
        return REPLY_HANGUP_DURING_STREAM if cmd.startswith("STREAM FILE") else asterisk()(cmd)

    commands = await peer.converse(respond)
    assert commands == ["ANSWER", 'STREAM FILE hello-world "0123456789*#"']
    assert await peer.closed_by_server()
    [ev] = events
    assert ev.queue is None and ev.path == ("greeting",)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_hangup_line_as_reply_to_get_data(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)

    def respond(cmd: str) -> list[bytes]:
        if cmd.startswith("GET DATA"):
            return REPLY_HANGUP_DURING_STREAM[1:]  # HANGUP, then 511
        return asterisk()(cmd)

    commands = await peer.converse(respond)
    assert commands[-1] == "GET DATA demo-instruct 5000 1"
    assert events[0].queue is None and events[0].path == ("greeting", "main_menu")


async def test_peer_closes_mid_command(port: int, events: list[IvrFinished]) -> None:
    peer = await AsteriskPeer.connect(port)
    await peer.converse(lambda cmd: None if cmd.startswith("GET DATA") else asterisk()(cmd))
    peer.close()
    for _ in range(100):
        if events:
            break
        await asyncio.sleep(0.01)
    assert events[0].queue is None and events[0].path == ("greeting", "main_menu")


# --- broken peers -------------------------------------------------------------------------


async def test_malformed_reply_ends_session(
    port: int, events: list[IvrFinished], caplog: pytest.LogCaptureFixture
) -> None:
    peer = await AsteriskPeer.connect(port)
    respond = asterisk()
    commands = await peer.converse(
        lambda cmd: [b"this is not agi\n"] if cmd.startswith("GET DATA") else respond(cmd)
    )
    assert commands[-1].startswith("GET DATA")
    assert "malformed reply to 'GET DATA demo-instruct 5000 1'" in caplog.text
    assert events[0].queue is None


async def test_command_timeout(port: int, events: list[IvrFinished], caplog: pytest.LogCaptureFixture) -> None:
    peer = await AsteriskPeer.connect(port)
    assert await peer.command() == "ANSWER"  # and never reply (the fixture's timeout is 0.5 s)
    assert await peer.closed_by_server()
    assert "no reply to 'ANSWER' within 0.5s" in caplog.text
    assert events[0].path == () and events[0].queue is None


async def test_rejected_command_is_logged_as_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    async def on_session(session: AgiSession) -> None:
        await session.answer()

    server, port = await _start(on_session)
    try:
        peer = await AsteriskPeer.connect(port)
        await peer.converse(lambda cmd: [b"510 Invalid or unknown command\n"])
        assert "route 'ivr' failed" in caplog.text and "510 Invalid" in caplog.text
    finally:
        await server.stop()


async def test_environment_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    sessions: list[AgiSession] = []

    async def on_session(session: AgiSession) -> None:
        sessions.append(session)

    server, port = await _start(on_session)
    try:
        peer = await AsteriskPeer.connect(port, ENV_07[:200])  # no blank line
        peer.writer.write_eof()
        started = time.monotonic()
        assert await peer.closed_by_server()
        assert time.monotonic() - started < 1.0
        assert "AGI environment cut short" in caplog.text and sessions == []
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("env", "logged"),
    [
        (b"x" * 70_000, "is over"),
        (b"GET / HTTP/1.0\n\n", "unexpected line"),
        (ENV_07.replace(b"agi_network_script: ivr", b"agi_network_script: other"), "no route for 'other'"),
    ],
)
async def test_bad_environments_are_refused(env: bytes, logged: str, caplog: pytest.LogCaptureFixture) -> None:
    server, port = await _start(lambda s: asyncio.sleep(0))
    try:
        peer = await AsteriskPeer.connect(port, env)
        assert await peer.closed_by_server()
        assert logged in caplog.text
    finally:
        await server.stop()


async def test_environment_timeout(caplog: pytest.LogCaptureFixture) -> None:
    server, port = await _start(lambda s: asyncio.sleep(0), env_timeout=0.2)
    try:
        peer = await AsteriskPeer.connect(port, ENV_07[:100])
        assert await peer.closed_by_server()
        assert "not complete within 0.2s" in caplog.text
    finally:
        await server.stop()


# --- identity and quoting -----------------------------------------------------------------


async def test_session_identity_from_the_real_capture(caplog: pytest.LogCaptureFixture) -> None:
    """The captured call passed no node=/did= arguments: node 'unknown', DID from agi_dnid."""
    seen: list[AgiSession] = []

    async def on_session(session: AgiSession) -> None:
        seen.append(session)
        await session.set_variable("CC_NOTE", 'say "hi" \\ bye')

    server, port = await _start(on_session)
    try:
        peer = await AsteriskPeer.connect(port, ENV_07)
        assert await peer.converse(lambda cmd: SET_OK) == ['SET VARIABLE CC_NOTE "say \\"hi\\" \\\\ bye"']
    finally:
        await server.stop()
    [s] = seen
    assert (s.call_id, s.node, s.did, s.caller, s.channel, s.language) == (
        "unknown:1795481499.35", "unknown", "agi", "+15551230000", "PJSIP/carrier-0000000f", "en",
    )
    assert s.env["network_script"] == "ivr"
    assert "no node= argument" in caplog.text


async def test_stop_cuts_live_sessions() -> None:
    started = asyncio.Event()

    async def on_session(session: AgiSession) -> None:
        started.set()
        await session.answer()

    server, port = await _start(on_session)
    peer = await AsteriskPeer.connect(port)
    await asyncio.wait_for(started.wait(), WAIT)
    await asyncio.wait_for(server.stop(), WAIT)
    assert await peer.command() == "ANSWER"
    assert await peer.closed_by_server()


# --- the panoramisk pitfall this module exists for ----------------------------------------


async def test_panoramisk_handler_spins_on_early_eof() -> None:
    """panoramisk 1.4's Application.handler, peer gone before the blank line.

    ``reader.read`` returns ``b''`` at EOF without suspending, so the handler's loop never
    yields: a 0.1 s asyncio timeout cannot fire and other tasks stop running. The reader below
    breaks the loop after 0.3 s so the test can end.
    """

    class StillSpinning(Exception):
        pass

    class Reader(asyncio.StreamReader):
        calls = 0
        t0 = time.monotonic()

        async def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if time.monotonic() - self.t0 > 0.3:
                raise StillSpinning
            return await super().read(n)

    class Writer:
        def get_extra_info(self, name: str) -> None:
            return None

        def close(self) -> None:
            pass

    reader = Reader()
    reader.feed_data(ENV_07[:200])
    reader.feed_eof()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    reader.t0 = time.monotonic()
    with pytest.raises(StillSpinning):  # not TimeoutError: the timeout never got a chance
        await asyncio.wait_for(Application().handler(reader, Writer()), 0.1)
    beat.cancel()
    assert reader.calls > 1000  # read() returned b'' again and again
    assert ticks <= 2  # the event loop was starved the whole time
