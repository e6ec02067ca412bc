"""ccserver leaves a PBX link politely on shutdown: AMI ``Logoff``, ESL ``exit``, bounded waits.

The captures of ccserver's own sessions (``tests/fixtures/asterisk-ccserver/``,
``freeswitch-ccserver/``) end with ccserver closing the socket mid-session. The peers here are
small real TCP servers that answer the goodbye with the bytes a real Asterisk 22 and a real
FreeSWITCH sent (captures asterisk-ami/01 and freeswitch-esl/01b), or never answer it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from ccserver.pbx.asterisk.ami_client import AmiConnection
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.freeswitch.esl_client import EslConnection

from captures import ASTERISK_CAPTURES, FREESWITCH_CAPTURES

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def _asterisk_goodbye(action_id: str) -> bytes:
    """Asterisk 22's reply to Logoff (capture 01), for our ActionID."""
    raw = (ASTERISK_CAPTURES / "01-login-idle-status.in.raw").read_bytes()
    start = raw.index(b"Response: Goodbye\r\n")
    block = raw[start:raw.index(b"\r\n\r\n", start) + 4]
    return block.replace(b"ActionID: 01-login-idle-status-5", b"ActionID: " + action_id.encode())


def _freeswitch_bye() -> bytes:
    """FreeSWITCH's reply to ``exit`` and its disconnect notice (capture 01b, the last reads)."""
    raw = (FREESWITCH_CAPTURES / "01b-auth-ok-and-api.rx.raw").read_bytes()
    return raw[raw.index(b"Content-Type: command/reply\nReply-Text: +OK bye\n"):]


class Peer:
    """A one-connection TCP server: records every request block; ``answer(block)`` gives the
    bytes to write back and whether to close the session after them."""

    def __init__(self, greeting: bytes, separator: bytes,
                 answer: Callable[[str], tuple[bytes, bool]]):
        self.greeting, self.separator, self.answer = greeting, separator, answer
        self.requests: list[str] = []
        self.closed_by_client = asyncio.Event()

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.greeting)
        buf = b""
        try:
            while data := await reader.read(65536):
                buf += data
                while self.separator in buf:
                    block, buf = buf.split(self.separator, 1)
                    self.requests.append(block.decode())
                    reply, close = self.answer(block.decode())
                    writer.write(reply)
                    if close:
                        await writer.drain()
                        return
            self.closed_by_client.set()
        finally:
            writer.close()


def _ami_answer(goodbye: bool) -> Callable[[str], tuple[bytes, bool]]:
    def answer(block: str) -> tuple[bytes, bool]:
        headers = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
        aid = headers.get("ActionID", "")
        if headers["Action"] == "Login":
            return f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n".encode(), False
        if headers["Action"] == "Logoff":
            return (_asterisk_goodbye(aid), True) if goodbye else (b"", False)
        # the shipped user is refused Filter (capture asterisk-ccserver/c01)
        return f"Response: Error\r\nActionID: {aid}\r\nMessage: Permission denied\r\n\r\n".encode(), False
    return answer


async def _noop() -> None:
    pass


def _backoff() -> Backoff:
    # Both links take their reconnect timing as a Backoff (issue 10 item 14); these tests stop
    # the link, so only a stop that does not wait out a retry matters here.
    return Backoff(cap=2.0, stable_after=10.0)


def _ami(port: int) -> AmiConnection:
    return AmiConnection("127.0.0.1", port, "ccserver", "secret", "call,dtmf",
                         on_event=lambda m: None, on_up=_noop, on_down=lambda: None,
                         backoff=_backoff(), ping_interval=30, ping_timeout=3, logoff_timeout=0.5)


async def connected_then_stopped(conn: AmiConnection | EslConnection) -> float:
    """Start ``conn``, wait until it is logged in, stop it: the seconds ``stop()`` took."""
    await conn.start()
    async with asyncio.timeout(5):
        while not conn.connected:
            await asyncio.sleep(0.01)
    started = time.monotonic()
    await conn.stop()
    return time.monotonic() - started


async def test_ami_stop_logs_off_and_waits_for_asterisks_goodbye(caplog: pytest.LogCaptureFixture) -> None:
    async with Peer(BANNER, b"\r\n\r\n", _ami_answer(True)) as peer:
        caplog.set_level(logging.INFO)
        conn = _ami(peer.port)
        took = await connected_then_stopped(conn)
    assert peer.requests[-1].startswith("Action: Logoff\r\n")
    assert took < 0.4  # the Goodbye came: no waiting out the bound
    assert "connection lost" not in caplog.text and "reconnecting" not in caplog.text
    assert not conn.connected


async def test_ami_stop_gives_a_silent_asterisk_a_bounded_wait() -> None:
    async with Peer(BANNER, b"\r\n\r\n", _ami_answer(False)) as peer:
        took = await connected_then_stopped(_ami(peer.port))
        async with asyncio.timeout(2):
            await peer.closed_by_client.wait()  # and the socket is closed
    assert peer.requests[-1].startswith("Action: Logoff\r\n")
    assert 0.4 < took < 1.5


async def test_ami_stop_before_any_session_sends_nothing_and_returns() -> None:
    conn = _ami(1)  # nothing listens on port 1: never logged in
    await conn.start()
    async with asyncio.timeout(2):
        await conn.stop()
    assert not conn.connected


def _esl_answer(bye: bool) -> Callable[[str], tuple[bytes, bool]]:
    def answer(block: str) -> tuple[bytes, bool]:
        if block.startswith("auth "):
            return b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n", False
        if block.startswith("event "):
            return b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n", False
        if block == "exit":
            return (_freeswitch_bye(), True) if bye else (b"", False)
        return b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n", False
    return answer


def _esl(port: int) -> EslConnection:
    return EslConnection("127.0.0.1", port, "secret", ("CHANNEL_CREATE",), on_event=lambda e: None,
                         on_up=_noop, on_down=lambda: None, backoff=_backoff(), ping_interval=30,
                         exit_timeout=0.5)


@pytest.mark.parametrize("bye", [True, False], ids=["freeswitch-says-bye", "silent-freeswitch"])
async def test_esl_stop_says_exit_with_a_bounded_wait(bye: bool, caplog: pytest.LogCaptureFixture) -> None:
    async with Peer(b"Content-Type: auth/request\n\n", b"\n\n", _esl_answer(bye)) as peer:
        caplog.set_level(logging.INFO)
        took = await connected_then_stopped(_esl(peer.port))
        if not bye:
            async with asyncio.timeout(2):
                await peer.closed_by_client.wait()
    assert peer.requests[-1] == "exit"
    assert took < 0.4 if bye else 0.4 < took < 1.5
    if bye:  # FreeSWITCH's goodbye is read, and its close is no "connection lost"
        assert "disconnect notice: Disconnected, goodbye." in caplog.text
        assert "connection lost" not in caplog.text
