"""A TCP proxy in front of Postgres that a test can cut and restore.

``cut()`` aborts every proxied connection and stops listening, so new connections are refused:
as far as the client can tell, the database host went away. ``restore()`` listens again on the
same port. The upstream may be TCP or a Unix socket (the embedded server), taken from a DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


class PgProxy:
    """Forward ``127.0.0.1:<port>`` to the server of ``upstream_dsn``."""

    def __init__(self, upstream_dsn: str) -> None:
        self.upstream_dsn = upstream_dsn
        parts = urlsplit(upstream_dsn)
        query = parse_qs(parts.query)
        port = parts.port or int(query.get("port", ["5432"])[0])
        host = parts.hostname or query.get("host", ["127.0.0.1"])[0]
        self._unix_path = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
        self._target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dsn(self) -> str:
        """The upstream DSN with the proxy as its host."""
        parts = urlsplit(self.upstream_dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        query = {k: v for k, v in parse_qs(parts.query).items() if k not in ("host", "port")}
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, doseq=True), ""))

    async def start(self) -> None:
        """Listen (on a free port the first time, the same port afterwards)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        """Accept connections again."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(c_writer)
        try:
            if self._unix_path:
                u_reader, u_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                u_reader, u_writer = await asyncio.open_connection(*self._target)
        except OSError:
            c_writer.transport.abort()
            self._writers.discard(c_writer)
            self._tasks.discard(task)
            return
        self._writers.add(u_writer)
        try:
            await asyncio.gather(_pipe(c_reader, u_writer), _pipe(u_reader, c_writer))
        finally:
            for w in (c_writer, u_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side closed: close the other so the client sees it at once
