"""AmiConnection and AsteriskAdapter over real TCP against a tiny AMI server replaying captures."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from panoramisk import Manager

from ccserver.core.commands import RingAgent, StartRecording
from ccserver.core.events import (
    AgentLegFailed,
    CallHungUp,
    CallerLeaving,
    DomainEvent,
    NodeConnectionChanged,
    NodeResynced,
)
from ccserver.hardware import NodeConfig
from ccserver.pbx.asterisk.adapter import AsteriskAdapter
from ccserver.pbx.asterisk.ami_client import AmiConnection
from ccserver.pbx.asterisk.ami_codec import AmiParser, Message, encode
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.base import CommandFailed

from captures import ASTERISK_CAPTURES

FIXTURES = ASTERISK_CAPTURES
SECRET = "s3cret-Do-Not-Log-42"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def capture_frames(name: str) -> list[bytes]:
    """The capture's messages as raw bytes (each with its terminating blank line)."""
    raw = (FIXTURES / name).read_bytes()[len(BANNER):]
    return [f + b"\r\n\r\n" for f in raw.split(b"\r\n\r\n") if f]


def reply(action: Message, *pairs: tuple[str, str]) -> bytes:
    return encode([pairs[0], ("ActionID", action.get("ActionID", "")), *pairs[1:]])


Handler = Callable[[Message, asyncio.StreamWriter], Awaitable[None]]


class FakeAmi:
    """Speaks AMI like Asterisk 22 on a real socket: banner, Login, Ping, Filter, plus hooks."""

    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.answer_ping = True
        self.logins: list[tuple[float, bool]] = []
        self.actions: list[Message] = []
        self.after_login: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None
        self.handlers: dict[str, Handler] = {}
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        # one writer at a time, like Asterisk: a reply never lands inside another message
        self.lock = asyncio.Lock()

    async def __aenter__(self) -> FakeAmi:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        writer.write(BANNER)
        parser = AmiParser(expect_banner=False)
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    assert isinstance(msg, Message)
                    self.actions.append(msg)
                    async with self.lock:
                        if not await self._answer(msg, writer):
                            return
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()

    async def _after_login(self, writer: asyncio.StreamWriter) -> None:
        assert self.after_login is not None
        async with self.lock:
            await self.after_login(writer)

    async def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> bool:
        action = msg.get("Action", "")
        if action == "Login":
            ok = msg.get("Secret") == self.secret
            self.logins.append((time.monotonic(), ok))
            if not ok:  # what Asterisk does: an error, then it hangs up
                writer.write(reply(msg, ("Response", "Error"), ("Message", "Authentication failed")))
                await writer.drain()
                return False
            writer.write(reply(msg, ("Response", "Success"), ("Message", "Authentication accepted")))
            await writer.drain()
            if self.after_login is not None:
                task = asyncio.create_task(self._after_login(writer))
                self.tasks.add(task)
        elif action == "Ping":
            if self.answer_ping:
                writer.write(reply(msg, ("Response", "Success"), ("Ping", "Pong"),
                                   ("Timestamp", "1795481314.000000")))
        elif action == "Filter":
            writer.write(reply(msg, ("Response", "Success"), ("Message", "Success")))
        elif action in self.handlers:
            await self.handlers[action](msg, writer)
        else:
            writer.write(reply(msg, ("Response", "Error"), ("Message", f"Invalid/unknown command: {action}.")))
        return True


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Message] = []
        self.ups = 0
        self.downs = 0

    def on_event(self, msg: Message) -> None:
        self.events.append(msg)

    async def on_up(self) -> None:
        self.ups += 1

    def on_down(self) -> None:
        self.downs += 1


def connection(port: int, rec: Recorder, secret: str = SECRET, backoff: float = 0.05,
               **kw: float) -> AmiConnection:
    opts: dict[str, float] = dict(ping_interval=5.0, ping_timeout=3.0)
    opts.update(kw)
    return AmiConnection("127.0.0.1", port, "ccserver", secret, "call,dtmf",
                         on_event=rec.on_event, on_up=rec.on_up, on_down=rec.on_down,
                         backoff=Backoff(initial=backoff, cap=0.4, stable_after=10.0), **opts)


def newchannel_zoe() -> tuple[bytes, bytes]:
    """Capture 02's Newchannel with CallerIDName 'Zoë', cut between the two bytes of 'ë'."""
    frame = next(f for f in capture_frames("02-inbound-queue-answered.in.raw")
                 if f.startswith(b"Event: Newchannel"))
    frame = frame.replace(b"CallerIDName: Lab Caller", "CallerIDName: Zoë".encode())
    cut = frame.index("ë".encode()) + 1
    return frame[:cut], frame[cut:]


async def send_split(writer: asyncio.StreamWriter, first: bytes, second: bytes) -> None:
    writer.write(first)
    await writer.drain()
    await asyncio.sleep(0.05)  # two TCP segments, two reads on the other side
    writer.write(second)
    await writer.drain()


async def test_utf8_split_across_reads_survives_and_panoramisk_loses_it() -> None:
    first, second = newchannel_zoe()
    async with FakeAmi() as ami:
        ami.after_login = lambda w: send_split(w, first, second)
        rec = Recorder()
        conn = connection(ami.port, rec)
        await conn.start()
        try:
            await until(lambda: any(m.get("Event") == "Newchannel" for m in rec.events))
        finally:
            await conn.stop()
        (ev,) = [m for m in rec.events if m.get("Event") == "Newchannel"]
        assert ev["CallerIDName"] == "Zoë"
        assert ev["Uniqueid"] == "1795481314.0"

        # The pitfall this fixes: panoramisk's own protocol decodes each read separately with
        # errors='ignore', so both halves of the 'ë' vanish.
        got: list[object] = []
        manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=ami.port,
                          username="ccserver", secret=SECRET, ping_delay=60)
        manager.register_event("Newchannel", lambda _m, event: got.append(event))
        await manager.connect()
        try:
            await until(lambda: bool(got))
        finally:
            manager.close()
        assert got[0]["CallerIDName"] == "Zo"


async def test_wrong_secret_logs_clearly_without_the_secret_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAmi() as ami:
        rec = Recorder()
        conn = connection(ami.port, rec, secret="wrong-" + SECRET)
        await conn.start()
        try:
            await until(lambda: len(ami.logins) >= 4)
        finally:
            await conn.stop()
    assert not any(ok for _, ok in ami.logins) and rec.ups == 0 and not conn.connected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("127.0.0.1" in e and "'ccserver'" in e and "Authentication failed" in e
               for e in errors)
    assert SECRET not in caplog.text
    gaps = [b[0] - a[0] for a, b in zip(ami.logins, ami.logins[1:])]
    # backoff 0.05 doubling, jittered into [0.5, 1] x delay: the third gap beats the first
    assert gaps[0] >= 0.02 and gaps[2] > gaps[0]


async def test_unanswered_ping_drops_the_half_open_link_and_reconnects() -> None:
    async with FakeAmi() as ami:
        rec = Recorder()
        interval, timeout, backoff = 0.2, 0.2, 0.05
        conn = connection(ami.port, rec, ping_interval=interval, ping_timeout=timeout,
                          backoff=backoff)
        await conn.start()
        try:
            await until(lambda: conn.connected and rec.ups == 1)
            ami.answer_ping = False  # the socket stays open, Asterisk "hangs"
            start = time.monotonic()
            await until(lambda: len(ami.logins) == 2, timeout=3.0)
            elapsed = time.monotonic() - start
            ami.answer_ping = True
            await until(lambda: rec.ups == 2)
        finally:
            await conn.stop()
    assert elapsed <= interval + timeout + backoff + 0.25
    assert rec.downs == 2  # the dropped session, then stop()
    assert any(a.get("Action") == "Ping" for a in ami.actions)


async def test_server_closing_the_socket_means_reconnect_and_login_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAmi() as ami:
        rec = Recorder()
        conn = connection(ami.port, rec)
        await conn.start()
        try:
            await until(lambda: rec.ups == 1)
            ami.writers[0].close()
            await until(lambda: rec.ups == 2 and conn.connected)
            pong = await conn.send_action({"Action": "Ping"})
        finally:
            await conn.stop()
    assert [ok for _, ok in ami.logins] == [True, True] and rec.downs == 2
    assert pong["Ping"] == "Pong"
    logins = [a for a in ami.actions if a.get("Action") == "Login"]
    assert all(a["Events"] == "call,dtmf" for a in logins)
    filters = [a["MatchCriteria"] for a in ami.actions if a.get("Action") == "Filter"]
    assert "action(exclude),name(VarSet)" in filters and "action(exclude),name(CEL)" in filters
    assert SECRET not in caplog.text


async def test_a_malformed_frame_is_skipped_and_the_connection_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = capture_frames("02-inbound-queue-answered.in.raw")
    events = [f for f in frames if f.startswith((b"Event: Newchannel", b"Event: Hangup"))]

    async def stream(w: asyncio.StreamWriter) -> None:
        w.write(events[0] + b"this line has no colon\r\nEvent: X\r\n\r\n" + events[-1])
        await w.drain()

    async with FakeAmi() as ami:
        ami.after_login = stream
        rec = Recorder()
        conn = connection(ami.port, rec)
        await conn.start()
        try:
            with caplog.at_level(logging.WARNING):
                await until(lambda: any(m.get("Event") == "Hangup" for m in rec.events))
            await asyncio.sleep(0.1)
            assert conn.connected
        finally:
            await conn.stop()
    assert len(ami.logins) == 1
    assert [m["Event"] for m in rec.events] == ["Newchannel", "Hangup"]
    assert "bad frame" in caplog.text and "no colon" in caplog.text


async def test_pending_action_fails_when_the_link_drops() -> None:
    async def never(msg: Message, w: asyncio.StreamWriter) -> None:
        w.close()

    async with FakeAmi() as ami:
        ami.handlers["Redirect"] = never
        rec = Recorder()
        conn = connection(ami.port, rec)
        await conn.start()
        try:
            await until(lambda: conn.connected)
            with pytest.raises(ConnectionError):
                await conn.send_action({"Action": "Redirect", "Channel": "PJSIP/x-1"})
            await until(lambda: conn.connected and len(ami.logins) == 2)
            with pytest.raises(ValueError):  # header injection never reaches the wire
                await conn.send_action({"Action": "Ping", "X": "a\r\nAction: Command"})
        finally:
            await conn.stop()
    assert not [a for a in ami.actions if "X" in a or a.get("Action") == "Command"]


async def test_a_reply_that_never_comes_is_logged_with_the_action_and_the_wait(caplog) -> None:
    async def silent(msg: Message, w: asyncio.StreamWriter) -> None:
        pass  # Asterisk busy: the socket stays up, no reply

    class Resyncing(Recorder):
        async def on_up(self) -> None:  # what the adapter does after each login
            await conn.send_list_action({"Action": "CoreShowChannels"}, timeout=0.2)

    caplog.set_level(logging.WARNING, logger="ccserver.pbx.asterisk.ami_client")
    async with FakeAmi() as ami:
        ami.handlers["CoreShowChannels"] = silent
        conn = connection(ami.port, Resyncing())
        await conn.start()
        try:
            await until(lambda: any("CoreShowChannels" in r.getMessage() for r in caplog.records))
        finally:
            await conn.stop()
    first = next(r for r in caplog.records if "CoreShowChannels" in r.getMessage())
    assert first.getMessage() == f"AMI 127.0.0.1:{ami.port}: no reply to CoreShowChannels within 0.2s"


# -- the adapter end to end ------------------------------------------------------------------


def node(port: int) -> NodeConfig:
    return NodeConfig(name="lab", kind="asterisk", host="127.0.0.1", ami_port=port,
                      ami_user="ccserver", ami_secret_env="LAB_SECRET",
                      inbound_contexts=["from-carrier"], recording_root="/rec/",
                      ping_interval=5.0, ping_timeout=3.0)


async def test_adapter_resyncs_on_login_then_follows_events_and_runs_commands() -> None:
    frames = capture_frames("10b-status-call-bridged.in.raw")
    listing = [f for f in frames if b"ActionID: 10b-status-call-bridged-2\r\n" in f]
    after = frames[frames.index(listing[-1]) + 1:]

    async def core_show_channels(msg: Message, w: asyncio.StreamWriter) -> None:
        aid = msg["ActionID"].encode()
        for f in listing:  # the captured reply, items and Complete, under our ActionID
            w.write(f.replace(b"10b-status-call-bridged-2", aid))
        for f in after:  # then the rest of the capture: the caller hangs up
            w.write(f)
        await w.drain()

    async def ok(msg: Message, w: asyncio.StreamWriter) -> None:
        w.write(reply(msg, ("Response", "Success"), ("Message", "Variable Set")))

    async def no_channel(msg: Message, w: asyncio.StreamWriter) -> None:
        w.write(reply(msg, ("Response", "Error"), ("Message", "Channel does not exist: PJSIP/gone-1")))

    out: list[DomainEvent] = []
    async with FakeAmi() as ami:
        ami.handlers |= {"CoreShowChannels": core_show_channels, "Setvar": ok,
                         "Redirect": no_channel, "MixMonitor": ok}
        adapter = AsteriskAdapter(node(ami.port), out.append, SECRET, clock=lambda: 7.0)
        await adapter.start()
        try:
            await until(lambda: any(isinstance(e, CallHungUp) for e in out))
            assert adapter.connected
            with pytest.raises(CommandFailed, match="Channel does not exist"):
                await adapter.execute(RingAgent("lab", "lab:9.9", "PJSIP/gone-1", "PJSIP/1002", 15))
            await adapter.execute(StartRecording("lab", "lab:9.9", "PJSIP/gone-1", "lab/9.9.wav"))
            with pytest.raises(CommandFailed):
                await adapter.execute(StartRecording("lab", "lab:9.9", "PJSIP/gone-1", "../etc/x"))
        finally:
            await adapter.stop()

    up, resync, leaving, hung = out[:4]
    assert up == NodeConnectionChanged("lab", True, 7.0)
    assert isinstance(resync, NodeResynced) and len(resync.calls) == 1
    assert resync.calls[0].call_id == "lab:1795481753.51"
    assert resync.calls[0].agent_device == "PJSIP/1001"
    assert leaving == CallerLeaving("lab:1795481753.51", 7.0)
    assert hung == CallHungUp("lab:1795481753.51", "normal_clearing", "caller", 7.0)
    assert out[4:] == [AgentLegFailed("lab:9.9", "PJSIP/1002", "error", 7.0),
                       NodeConnectionChanged("lab", False, 7.0)]
    sent = [(a["Action"], a.get("Variable"), a.get("Value"), a.get("Context"), a.get("File"))
            for a in ami.actions if a["Action"] in ("Setvar", "Redirect", "MixMonitor")]
    assert sent == [
        ("Setvar", "CC_AGENT_DEVICE", "PJSIP/1002", None, None),
        ("Setvar", "CC_RING_TIMEOUT", "15", None, None),
        ("Redirect", None, None, "ccserver-connect", None),
        ("MixMonitor", None, None, None, "/rec/lab/9.9.wav"),
    ]


async def test_stop_landing_with_a_ping_reply_still_stops(monkeypatch) -> None:
    """Python 3.11's ``asyncio.wait_for`` swallows a cancel that arrives in the same loop turn
    as its awaited reply; the connection would keep pinging forever and ``stop()`` never return.
    Here the cancel is made to land exactly there, on the first Ping reply."""
    from ccserver.pbx.asterisk import ami_client

    armed: list[AmiConnection] = []
    original = ami_client.AmiProtocol.request

    def request(self, action):
        act = original(self, action)
        if action.get("Action") == "Ping" and armed:
            conn = armed.pop()
            act.future.add_done_callback(lambda _: conn._task.cancel())  # before wait's wake-up
        return act

    monkeypatch.setattr(ami_client.AmiProtocol, "request", request)
    async with FakeAmi() as ami:
        rec = Recorder()
        conn = connection(ami.port, rec, ping_interval=0.1, ping_timeout=1.0)
        await conn.start()
        try:
            await until(lambda: conn.connected)
            task = conn._task
            armed.append(conn)
            async with asyncio.timeout(3):
                await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
        finally:
            await conn.stop()
