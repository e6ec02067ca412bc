"""Test helpers for the Asterisk simulator: a tiny AMI client, a scripted FastAGI server, captures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from ccserver.pbx.asterisk.ami_codec import AmiParser, Banner, Message, encode
from ccserver.pbx.asterisk.agi_codec import parse_environment

CAPTURES = Path("/work/shared/fixtures/asterisk-ami")


def capture(name: str) -> list[Message]:
    """The messages Asterisk sent in one capture (banner dropped)."""
    items = AmiParser().feed((CAPTURES / name).read_bytes())
    return [m for m in items if isinstance(m, Message)]


class AmiClient:
    """Minimal AMI client over a real TCP socket."""

    def __init__(self) -> None:
        self.parser = AmiParser()
        self.queue: list[Message] = []
        self.banner: bytes = b""
        self.closed = False

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.banner = await self.reader.readuntil(b"\r\n")
        self.parser.feed(self.banner)

    async def send(self, **headers: str) -> None:
        pairs = [(k.replace("_", ""), v) for k, v in headers.items()]
        self.writer.write(encode(pairs))
        await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout: float = 5.0) -> Message:
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                self.closed = True
                raise EOFError
            self.queue += [m for m in self.parser.feed(data) if isinstance(m, Message)]
        return self.queue.pop(0)

    async def until(self, pred: Callable[[Message], bool], timeout: float = 10.0) -> list[Message]:
        """Every message up to and including the first that matches ``pred``."""
        out: list[Message] = []
        while True:
            m = await self.read(timeout)
            out.append(m)
            if pred(m):
                return out

    async def login(self, events: str = "on", secret: str = "ccserver") -> Message:
        await self.send(Action="Login", ActionID="login", Username="ccserver", Secret=secret,
                        Events=events)
        return await self.read()

    async def close(self) -> None:
        self.writer.close()


class ScriptedAgi:
    """A FastAGI server that runs ``commands`` and records the raw bytes Asterisk sent."""

    def __init__(self, commands: list[str], close_after: bool = True):
        self.commands = commands
        self.close_after = close_after
        self.received: list[bytes] = []
        self.env: dict[str, str] = {}
        self.env_block = b""
        self.done = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.env_block = await reader.readuntil(b"\n\n")
        self.env = parse_environment(self.env_block[:-1]).values
        buf = b""
        for cmd in self.commands:
            writer.write(cmd.encode() + b"\n")
            await writer.drain()
            while True:  # read one full reply (plus any HANGUP line before it)
                chunk = await reader.readline()
                buf += chunk
                if not chunk or (chunk[:3].isdigit() and chunk[3:4] == b" "):
                    break
        self.received.append(buf)
        if self.close_after:
            writer.close()
        self.done.set()

    async def stop(self) -> None:
        self.server.close()


def keys(m: Message) -> list[str]:
    return list(m.keys())
