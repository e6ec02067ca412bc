"""One ESL inbound connection that stays up: greenswitch's session, our framing and lifecycle.

What we keep from greenswitch: :class:`greenswitch.esl.InboundESL` (connect, the auth handshake,
``send`` with replies matched to commands in order through gevent ``AsyncResult``). What we
replace, and why (greenswitch 0.0.19, ``esl.py``):

* ``receive_events``/``handle_event``: greenswitch URL-decodes a whole header block *before*
  splitting it into lines (a ``%0A`` in a value splits a header), raises ``KeyError`` on a frame
  without ``Content-Type``, parses ``text/event-json`` bodies as header lines, and trusts any
  ``Content-Length`` (a lying one blocks its reader for good). We read raw bytes into our
  sans-I/O :class:`~ccserver.pbx.freeswitch.esl_codec.EslParser`; a bad frame drops the
  connection with a clear log line and the reconnect loop takes over.
* ``send``: greenswitch writes the command as given (a line break smuggles in a second command);
  we go through :func:`esl_codec.encode_command`, which refuses them. When the socket closes,
  greenswitch leaves the waiting commands blocked forever; we fail them.
* the ``process_events`` greenlet polling a queue once a second: events go straight from the
  reader to asyncio.
* lifecycle: reconnection with a capped exponential backoff and jitter
  (:class:`~ccserver.pbx.backoff.Backoff`), a reply deadline on every command
  (a job that never returns drops the link instead of hanging), and a periodic ``api status``
  liveness probe so a half-open TCP connection is noticed.

The password is sent here and never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import gevent
from greenswitch.esl import InboundESL, NotConnectedError

from ccserver.pbx.freeswitch.esl_codec import (
    KNOWN_CONTENT_TYPES,
    EslEvent,
    EslParser,
    EslProtocolError,
    Frame,
    encode_command,
    parse_event,
)
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.base import why
from ccserver.pbx.freeswitch.gevent_thread import GeventThread

log = logging.getLogger(__name__)


class AuthFailed(Exception):
    """FreeSWITCH refused the ESL password."""


class AclRefused(AuthFailed):
    """FreeSWITCH's ``apply-inbound-acl`` refused ccserver's address: instead of an
    ``auth/request`` it sent ``text/rude-rejection`` ("Access Denied, go away.", mod_event_socket.c)
    and closed. Like a wrong password, only the PBX admin can mend it."""


class _Inbound(InboundESL):
    """greenswitch's inbound session with our parser and safe writes (runs in the hub thread)."""

    def __init__(self, host: str, port: int, password: str, timeout: float,
                 on_event: Callable[[EslEvent], None], on_closed: Callable[[str], None]):
        super().__init__(host, port, password, timeout=timeout)
        self._on_event = on_event
        self._on_closed = on_closed
        self._parser = EslParser()
        #: the text of a ``text/rude-rejection`` the server sent, if it did
        self.rejection = ""

    def start_event_handlers(self) -> None:
        self._receive_events_greenlet = gevent.spawn(self.receive_events)

    def receive_events(self) -> None:
        why = "closed by FreeSWITCH"
        try:
            while self._run:
                data = self.sock.recv(65536)
                if not data:
                    break
                for frame in self._parser.feed(data):
                    self._dispatch(frame)
        except EslProtocolError as e:
            why = f"bad ESL frame ({e})"
        except OSError as e:
            why = f"socket error ({e})"
        finally:
            self.close_link(why)

    def close_link(self, why: str, report: bool = True) -> None:
        """Close the socket and fail every command still waiting for a reply; ``report``: tell
        ``on_closed`` that a live link was lost."""
        was = self.connected and report
        self.connected = False
        self._run = False
        self._auth_request_event.set()  # a connect() still waiting for auth/request returns
        pending, self._commands_sent = self._commands_sent, []
        for result in pending:
            result.set_exception(ConnectionError(f"ESL connection lost: {why}"))
        sock = getattr(self, "sock", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if was:
            self._on_closed(why)

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype == "auth/request":
            self._auth_request_event.set()
        elif ctype in ("command/reply", "api/response"):
            if not self._commands_sent:
                raise EslProtocolError(f"{ctype} with no command waiting for it")
            self._commands_sent.pop(0).set(frame)
        elif ctype in ("text/event-json", "text/event-plain"):
            self._on_event(parse_event(frame))
        elif ctype == "text/disconnect-notice":
            log.info("ESL %s:%s: disconnect notice: %s", self.host, self.port, frame.text().strip())
        elif ctype == "text/rude-rejection":
            self.rejection = frame.text().strip()
            raise EslProtocolError(f"rude rejection: {frame.text().strip()}")
        elif ctype not in KNOWN_CONTENT_TYPES:
            # The frame was complete (its length known), so the stream is still in step.
            log.warning("ESL %s:%s: ignoring a frame with unknown Content-Type %r",
                        self.host, self.port, ctype)

    def send_command(self, command: str, headers: dict[str, str] | None = None) -> Frame:
        """Send one command and block this greenlet until its reply frame."""
        raw = encode_command(command, headers)
        if not self.connected:
            raise NotConnectedError()
        return self.send(raw[:-2].decode())

    def login(self) -> None:
        """Connect and authenticate; raise :class:`AuthFailed` on a refused password."""
        self.connect_and_wait()
        reply = self.send_command(f"auth {self.password}")
        if reply.reply_text != "+OK accepted":
            self.close_link("authentication refused")
            raise AuthFailed(f"ESL {self.host}:{self.port}: password refused ({reply.reply_text})")

    def connect_and_wait(self) -> None:
        """greenswitch's ``connect`` up to the auth/request, without sending the password."""
        self.sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))
        self.sock.settimeout(None)
        self.connected = True
        self.start_event_handlers()
        if not self._auth_request_event.wait(timeout=self.timeout) or not self.connected:
            self.close_link("no auth/request")
            if self.rejection:
                raise AclRefused(f"ESL {self.host}:{self.port}: refused by FreeSWITCH's ACL "
                                 f"(rude rejection: {self.rejection!r}); allow ccserver's address "
                                 "in event_socket.conf.xml's apply-inbound-acl")
            raise ConnectionError(f"ESL {self.host}:{self.port}: no auth/request from the server")

    def shutdown(self) -> None:
        """ccserver drops the link (stop, or a login or resync that failed, each logged by its
        caller): no link was lost to report."""
        self.close_link("closed by ccserver", report=False)


class EslConnection:
    """Keeps one authenticated ESL inbound session to a node up, from asyncio.

    ``on_event`` gets every event in stream order; ``on_up`` runs after each (re)login and
    subscription (a failure there drops the link and retries); ``on_down`` when it is lost.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        events: tuple[str, ...],
        *,
        on_event: Callable[[EslEvent], None],
        on_up: Callable[[], Awaitable[None]],
        on_down: Callable[[], None],
        command_timeout: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        backoff: Backoff,
        exit_timeout: float = 1.0,
    ):
        self.host, self.port = host, port
        self._password = password
        self._events = events
        self._on_event, self._on_up, self._on_down = on_event, on_up, on_down
        self.command_timeout = command_timeout
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
        self._backoff = backoff
        self._exit_timeout = exit_timeout
        #: stop() sent ``exit``: the link closing now is expected, not a loss
        self._stopping = False
        self._hub = GeventThread(f"esl-{host}:{port}")
        self._session: _Inbound | None = None
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.connected = False
        self.logins = 0

    async def start(self) -> None:
        self._stopping = False
        self._hub.start()
        self._task = asyncio.create_task(self._run(), name=f"esl-{self.host}:{self.port}")

    async def stop(self) -> None:
        """Say ``exit``, close the session and stop reconnecting.

        FreeSWITCH answers ``exit`` with ``+OK bye`` and a disconnect notice, then closes
        (capture freeswitch-esl/01b): the session ends as a client leaving, not a dropped
        link. The wait for the reply is bounded by ``exit_timeout``.
        """
        session = self._session
        if self._task is not None and self.connected and session is not None:
            self._stopping = True
            try:
                async with asyncio.timeout(self._exit_timeout):
                    await self._hub.call(session.send_command, "exit")
            except (ConnectionError, TimeoutError, NotConnectedError):
                pass  # gone or silent: closing the socket below ends the session all the same
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop()
        self._hub.stop()

    async def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await self._hub.call(session.shutdown)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            lost = self._lost = asyncio.Event()

            def on_event(ev: EslEvent) -> None:
                loop.call_soon_threadsafe(self._on_event, ev)

            def on_closed(why: str, lost: asyncio.Event = lost) -> None:  # this link's event
                loop.call_soon_threadsafe(self._closed, lost, why)

            session = _Inbound(self.host, self.port, self._password, self.command_timeout,
                               on_event, on_closed)
            self._session = session
            try:
                login_wait = self.command_timeout + 1
                try:
                    async with asyncio.timeout(login_wait):
                        await self._hub.call(session.login)
                except TimeoutError:  # asyncio's own says nothing: say what did not come
                    raise TimeoutError(f"no reply to auth within {login_wait:g}s") from None
                reply = await self._send(session, f"event json {' '.join(self._events)}", None, None)
                if not reply.reply_text.startswith("+OK"):
                    raise ConnectionError(f"event subscription refused: {reply.reply_text}")
            except (AuthFailed, OSError, ConnectionError, TimeoutError, EslProtocolError,
                    NotConnectedError) as e:
                await self._drop()
                wait = self._backoff.next_wait()
                if isinstance(e, AuthFailed):
                    log.error("%s; retrying in %.1fs", e, wait)
                else:
                    log.warning("ESL %s:%s: connect failed: %s; retrying in %.1fs",
                                self.host, self.port, why(e), wait)
                await asyncio.sleep(wait)
                continue
            self.connected = True
            self.logins += 1
            self._backoff.link_up()
            log.info("ESL %s:%s: connected", self.host, self.port)
            try:
                await self._on_up()
                await self._watch(lost)
            except Exception as e:  # a failed resync or probe: start over on a fresh link
                log.warning("ESL %s:%s: %s; reconnecting", self.host, self.port, why(e))
            finally:
                self.connected = False
                await self._drop()
                self._on_down()
            await asyncio.sleep(self._backoff.next_wait())

    def _closed(self, lost: asyncio.Event, why: str) -> None:
        if not self._stopping:
            log.warning("ESL %s:%s: connection lost: %s", self.host, self.port, why)
        lost.set()

    async def _watch(self, lost: asyncio.Event) -> None:
        while True:
            try:
                async with asyncio.timeout(self._ping_interval):
                    await lost.wait()
                return
            except TimeoutError:
                pass
            await self.api("status", timeout=self._ping_timeout)

    async def command(self, command: str, headers: dict[str, str] | None = None,
                      timeout: float | None = None) -> Frame:
        """Send a command, return its reply frame.

        Raises :class:`ConnectionError` when not connected or when no reply comes within the
        deadline (the link is then dropped: replies are matched in order, so a missing one
        would shift every later reply).
        """
        session = self._session
        if session is None or not self.connected:
            raise ConnectionError(f"ESL {self.host}:{self.port} is not connected")
        return await self._send(session, command, headers, timeout)

    async def _send(self, session: _Inbound, command: str, headers: dict[str, str] | None,
                    timeout: float | None) -> Frame:
        wait = self.command_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                return await self._hub.call(session.send_command, command, headers)
        except TimeoutError:
            verb = command.split(" ", 2)[:2]
            log.error("ESL %s:%s: no reply to %r within %.1fs; dropping the connection",
                      self.host, self.port, " ".join(verb), wait)
            await self._hub.call(session.close_link, f"no reply to {' '.join(verb)!r}")
            raise ConnectionError(f"no reply to {' '.join(verb)!r} within {wait}s") from None
        except NotConnectedError:
            raise ConnectionError(f"ESL {self.host}:{self.port} is not connected") from None

    async def api(self, command: str, timeout: float | None = None) -> str:
        """``api <command>``: the response body (``-ERR ...`` bodies are returned, not raised)."""
        reply = await self.command(f"api {command}", timeout=timeout)
        if reply.content_type != "api/response":
            return reply.reply_text  # a bare/unknown api gives a command/reply -ERR
        return reply.text()

    async def bgapi(self, command: str, job_uuid: str) -> str:
        """``bgapi <command>`` with our own Job-UUID (so its BACKGROUND_JOB cannot race us).

        Returns the reply text (``+OK Job-UUID: ...`` or ``-ERR ...``).
        """
        reply = await self.command(f"bgapi {command}", {"Job-UUID": job_uuid})
        return reply.reply_text
