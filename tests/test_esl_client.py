"""The ESL links' own reports, against a FreeSWITCH stand-in on a real socket: a link (inbound, or
a call's outbound socket) whose reply does not come is logged with what did not come or the
exception's type, never as an empty warning."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from ccserver.pbx.backoff import Backoff
from ccserver.pbx.freeswitch.esl_client import EslConnection
from ccserver.pbx.freeswitch.outbound import FsOutboundServer

LOGGER = "ccserver.pbx.freeswitch.esl_client"


class Switch:
    """Sends ``auth/request``; replies ``+OK accepted`` to every command unless ``mute``."""

    def __init__(self, mute: bool) -> None:
        self.mute = mute
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Switch:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        try:
            while True:
                await reader.readuntil(b"\n\n")
                if not self.mute:  # a muted switch: the socket stays up, no reply comes
                    writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def first_warning(caplog: pytest.LogCaptureFixture, logger: str, about: str) -> str:
    """The first warning of ``logger`` that holds ``about`` (waited for, never slept for)."""
    deadline = time.monotonic() + 10.0
    while not (found := [r for r in caplog.records
                         if r.name == logger and r.levelno == logging.WARNING
                         and about in r.getMessage()]):
        assert time.monotonic() < deadline, f"no warning about {about!r} within 10s"
        await asyncio.sleep(0.01)
    return found[0].getMessage()


async def warning_of(caplog: pytest.LogCaptureFixture, switch: Switch,
                     on_up: Callable[[], Awaitable[None]], about: str) -> str:
    """The first warning of an inbound link to ``switch`` that holds ``about``."""
    conn = EslConnection("127.0.0.1", switch.port, "esl-test-secret-5", ("CHANNEL_CREATE",),
                         on_event=lambda _e: None, on_up=on_up, on_down=lambda: None,
                         command_timeout=0.2, backoff=Backoff(cap=0.5, stable_after=10.0))
    await conn.start()
    try:
        return await first_warning(caplog, LOGGER, about)
    finally:
        await conn.stop()


async def test_a_login_whose_auth_reply_never_comes_is_logged_with_what_and_how_long(
        caplog: pytest.LogCaptureFixture) -> None:
    async def up() -> None:
        pass

    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with Switch(mute=True) as switch:
        message = await warning_of(caplog, switch, up, "connect failed")
    assert message.startswith(f"ESL 127.0.0.1:{switch.port}: connect failed: "
                              "no reply to auth within 1.2s; retrying in ")


async def test_a_resync_that_times_out_is_logged_by_its_exception_type(
        caplog: pytest.LogCaptureFixture) -> None:
    async def resync() -> None:  # asyncio.timeout's own TimeoutError has no message
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with Switch(mute=False) as switch:
        message = await warning_of(caplog, switch, resync, "reconnecting")
    assert message == f"ESL 127.0.0.1:{switch.port}: TimeoutError; reconnecting"


async def test_an_outbound_socket_whose_connect_reply_never_comes_is_logged_by_its_type(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = "ccserver.pbx.freeswitch.outbound"
    caplog.set_level(logging.WARNING, logger=logger)

    async def flow(_session: object) -> None:
        raise AssertionError("no session opens without a connect reply")

    server = FsOutboundServer("127.0.0.1", 0, flow, default_node="fs1", command_timeout=0.2)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readuntil(b"\n\n") == b"connect\n\n"  # FreeSWITCH stays silent
        message = await first_warning(caplog, logger, "failed")
        writer.close()
    finally:
        await server.stop()
    assert message == "ESL outbound : 'connect' failed (TimeoutError); ending the session"


async def test_ccserver_dropping_the_link_itself_is_not_logged_as_a_lost_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    async def up() -> None:
        pass

    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with Switch(mute=True) as switch:  # a login that times out: ccserver drops the link
        await warning_of(caplog, switch, up, "connect failed")
    async with Switch(mute=False) as switch:  # a link up, then ccserver stops
        ups: list[None] = []

        async def counted() -> None:
            ups.append(None)

        conn = EslConnection("127.0.0.1", switch.port, "esl-test-secret-5", ("CHANNEL_CREATE",),
                             on_event=lambda _e: None, on_up=counted, on_down=lambda: None,
                             command_timeout=0.2, backoff=Backoff(cap=0.5, stable_after=10.0))
        await conn.start()
        deadline = time.monotonic() + 10.0
        while not ups:
            assert time.monotonic() < deadline, "no login within 10s"
            await asyncio.sleep(0.01)
        await conn.stop()
    assert [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()] == []
