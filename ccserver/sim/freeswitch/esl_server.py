"""The simulator's ESL inbound server: auth/request, command/reply, api/response, events.

Frames are built with the codec's encoders the way FreeSWITCH 1.10 writes them (see the
captures in ``tests/fixtures/freeswitch-esl``): ``auth/request`` on connect, ``-ERR invalid``
then a ``text/disconnect-notice`` and a close for a wrong password, ``api/response`` with a
``Content-Length`` body, ``bgapi`` answered ``+OK Job-UUID: ...`` with the BACKGROUND_JOB event
later, events in plain or JSON as subscribed, ``exit`` answered ``+OK bye`` then a notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from collections.abc import Awaitable, Callable

from ccserver.pbx.freeswitch.esl_codec import (
    EslCommandParser,
    EslProtocolError,
    encode_event_json,
    encode_event_plain,
    encode_frame,
)

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

#: api handler: the arguments after the command name -> the response body
ApiHandler = Callable[[str], Awaitable[str]]


def reply(text: str, **extra: str) -> bytes:
    return encode_frame({"Content-Type": "command/reply", "Reply-Text": text, **extra})


def api_response(body: str) -> bytes:
    return encode_frame({"Content-Type": "api/response", "Content-Length": "0"}, body.encode())


def disconnect_notice(disposition: str | None = None, linger: int | None = None,
                      session: tuple[str, str] | None = None) -> bytes:
    """The goodbye notice; on an outbound socket (``session`` = (uuid, channel name)) it names
    the channel and its ``Content-Disposition`` (``linger`` with no body, then ``disconnect``)."""
    if session is None:
        return encode_frame({"Content-Type": "text/disconnect-notice", "Content-Length": "0"},
                            GOODBYE)
    head = {"Content-Type": "text/disconnect-notice", "Controlled-Session-UUID": session[0]}
    if disposition == "linger":
        return encode_frame(head | {"Content-Disposition": "linger", "Channel-Name": session[1],
                                    "Linger-Time": str(linger or 0), "Content-Length": "0"})
    return encode_frame(head | {"Content-Disposition": "disconnect", "Content-Length": "0"},
                        GOODBYE)


class EslSession:
    """One inbound ESL client of the simulator."""

    def __init__(self, server: EslServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.authed = False
        self.format: str | None = None  # "plain" | "json" once subscribed
        self.events: set[str] = set()
        self.all = False

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing() and not self.server.frozen:
            self.writer.write(data)

    def wants(self, name: str) -> bool:
        return self.format is not None and (self.all or name in self.events)

    def event(self, headers: dict[str, str], body: str = "") -> None:
        if self.wants(headers["Event-Name"]):
            encode = encode_event_json if self.format == "json" else encode_event_plain
            self.send(encode(headers, body))

    async def run(self) -> None:
        parser = EslCommandParser()
        self.send(encode_frame({"Content-Type": "auth/request"}))
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for cmd in parser.feed(data):
                    if self.server.frozen:
                        continue
                    if not await self._command(cmd.line, cmd.headers):
                        return
                await self.writer.drain()
        except (EslProtocolError, ConnectionError):
            return

    async def _command(self, line: str, headers: dict[str, str]) -> bool:
        verb, _, rest = line.partition(" ")
        if not self.authed:
            if verb != "auth":
                self.send(reply("-ERR command not found"))
                return True
            if rest != self.server.password:
                self.send(reply("-ERR invalid"))
                self.send(disconnect_notice())
                return False
            self.authed = True
            self.send(reply("+OK accepted"))
            return True
        if verb == "event":
            fmt, _, names = rest.partition(" ")
            if fmt not in ("plain", "json") or not names.strip():
                self.send(reply("-ERR no keywords supplied"))
                return True
            self.format = fmt
            for name in names.split():
                if name == "ALL":
                    self.all = True
                elif name != "CUSTOM":
                    self.events.add(name)
            self.send(reply(f"+OK event listener enabled {fmt}"))
        elif verb == "noevents":
            self.format, self.events, self.all = None, set(), False
            self.send(reply("+OK no longer listening for events"))
        elif verb == "exit":
            self.send(reply("+OK bye"))
            self.send(disconnect_notice())
            return False
        elif verb == "api":
            if not rest:
                self.send(reply("-ERR command not found"))
            else:
                self.send(api_response(await self.server.api(rest)))
        elif verb == "bgapi":
            job = headers.get("Job-UUID") or str(uuidlib.uuid4())
            self.send(reply(f"+OK Job-UUID: {job}", **{"Job-UUID": job}))
            self.server.background(rest, job)
        else:
            self.send(reply("-ERR command not found"))
        return True


class EslServer:
    """Accepts ESL inbound clients; ``api`` answers commands, events go to every subscriber."""

    def __init__(self, password: str, api: ApiHandler,
                 on_background: Callable[[str, str], None]):
        self.password = password
        self.api = api
        self.background = on_background
        self.sessions: set[EslSession] = set()
        self.frozen = False
        #: a network cut: new connections are closed at once (see :meth:`cut`)
        self.unreachable = False
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop(self) -> None:
        """Close every client connection at once (a FreeSWITCH restart, a network cut)."""
        for s in list(self.sessions):
            s.writer.close()

    async def cut(self, cut: bool) -> None:
        """Cut the network to every client (``True``: dropped now, new ones closed at once) or
        mend it. An event fired meanwhile reaches nobody: FreeSWITCH sends an event, the
        BACKGROUND_JOB of a ``bgapi`` too, only to the listeners connected when it fires."""
        self.unreachable = cut
        if cut:
            await self.drop()

    def _publish(self, headers: dict[str, str], body: str = "") -> None:
        for s in list(self.sessions):
            if s.authed:
                s.event(headers, body)

    publish = _publish

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.unreachable:
            writer.close()
            return
        session = EslSession(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            self.sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
