"""FastAGI server: Asterisk's ``AGI(agi://ccserver:4573/ivr,node=...,did=...)`` lands here.

Routing (``add_route``) is panoramisk's ``fast_agi.Application``; the connection handling is
ours, because panoramisk 1.4

* reads the environment with ``while b'\\n\\n' not in buffer: buffer += await reader.read(...)``:
  when the peer closes before the blank line, ``read`` returns ``b''`` at once without ever
  suspending, so the loop spins and starves the whole event loop (no timeout can fire);
* reads one reply line per command, so the unsolicited ``HANGUP`` line Asterisk sends when the
  caller leaves is taken as the reply, and ``511`` / ``result=-1`` are not seen as a hang-up.

Here the environment is read with ``readuntil`` under a size limit and a timeout, replies are
framed by :mod:`agi_codec`, every command has a timeout, and the session is an
:class:`AgiSession` implementing :class:`~ccserver.ivr.media.MediaSession`. The PBX-neutral
:func:`~ccserver.ivr.runner.serve_ivr` is re-exported here, the usual ``on_session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Awaitable, Callable

from panoramisk.fast_agi import Application

from ccserver.ivr.media import CallerHungUp
from ccserver.ivr.runner import serve_ivr
from ccserver.pbx.asterisk.agi_codec import (
    MAX_ENV,
    AgiEnvironment,
    AgiProtocolError,
    AgiReply,
    AgiReplyReader,
    parse_environment,
    quote_arg,
)

__all__ = ["AgiCommandError", "AgiLinkLost", "AgiSession", "FastAgiServer", "serve_ivr"]

log = logging.getLogger(__name__)

#: STREAM FILE escape-digit arguments: any DTMF digit stops the sound, or none does
_ESCAPE_ALL = '"0123456789*#"'
_ESCAPE_NONE = '""'
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: a sound name is sent unquoted: a space, quote or line break would corrupt the command line
_SOUND = re.compile(r'^[^\s"\\]+$')
_RAW_RESULT = re.compile(r"\bresult=(\S*)")
_LANGUAGE = re.compile(r"^[a-z]{2}(_[A-Za-z]{2})?$")
_EXTEN = re.compile(r"^[A-Za-z0-9_+*#-]{1,64}$")
_TTS_UNSAFE = re.compile(r'[\\",\r\n]')


class AgiCommandError(Exception):
    """Asterisk rejected a command (``510`` unknown, ``520`` bad usage): a bug on our side."""


class AgiLinkLost(CallerHungUp):
    """The FastAGI connection is unusable (timeout, garbage, reset): the channel is out of reach.

    A :class:`CallerHungUp` so the IVR ends the same way; the reason is logged when raised.
    """


class AgiSession:
    """One FastAGI connection = one live channel; implements ``MediaSession``.

    Identity comes from the environment: ``node`` and ``did`` from the ``node=`` / ``did=``
    AGI arguments our dialplan passes (``did`` falls back to ``agi_dnid``, then
    ``agi_extension``), ``call_id = f"{node}:{agi_uniqueid}"``.
    """

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float,
    ) -> None:
        self.env = env
        args = env.keyword_args
        self.node = args.get("node", "")
        if not self.node:
            log.warning("FastAGI %s: no node= argument; using node 'unknown'", env.get("channel"))
            self.node = "unknown"
        self.call_id = f"{self.node}:{env.get('uniqueid')}"
        dnid = env.get("dnid")
        self.did = args.get("did") or (dnid if dnid not in ("", "unknown") else env.get("extension"))
        self.caller = env.get("callerid")
        self.channel = env.get("channel")
        self.language = env.get("language", "en")
        self._reader = reader
        self._writer = writer
        self._timeout = command_timeout
        self._replies = AgiReplyReader()
        #: set once the channel is gone; later commands raise without touching the socket
        self._gone = False
        #: the dialplan application that speaks text (``Flite``: app_flite; ``Festival``; ...)
        self.tts_application = "Flite"
        #: prompts STREAM FILE could not open since the IVR engine last looked (it empties this)
        self.missing_prompts: list[str] = []

    async def answer(self) -> None:
        """``ANSWER`` (harmless when the dialplan already answered)."""
        await self._command("ANSWER")

    async def play(self, prompt: str, interruptible: bool = True) -> str:
        """``STREAM FILE``; returns the digit that stopped it, or ``""``."""
        escape = _ESCAPE_ALL if interruptible else _ESCAPE_NONE
        reply = await self._command(f"STREAM FILE {_sound(prompt)} {escape}", unopened_ok=True)
        if reply.result == -1:  # the file did not open (see _command): nothing was played
            self.missing_prompts.append(prompt)
            return ""
        # result is the ASCII code of the interrupting digit, 0 when the sound played through
        return chr(reply.result) if reply.result else ""

    async def collect(
        self, prompt: str, max_digits: int, timeout: float,
        terminator: str = "#", inter_digit_timeout: float | None = None,
    ) -> str:
        """``GET DATA``; returns the digits (``""`` on timeout). ``#`` ends input, never returned.

        Other terminators or a distinct inter-digit timeout go through :meth:`collect_digits`.
        """
        if terminator != "#" or (inter_digit_timeout is not None and inter_digit_timeout != timeout):
            return await self.collect_digits(
                prompt, max_digits, timeout, terminator, inter_digit_timeout or timeout
            )
        reply = await self._command(
            f"GET DATA {_sound(prompt)} {round(timeout * 1000)} {max_digits}",
            extra_wait=timeout * max_digits,
        )
        # taken from the raw line: the parsed integer would turn "01" into 1 and drop "*"
        match = _RAW_RESULT.search(reply.text)
        return match.group(1) if match else ""

    async def collect_digits(
        self, prompt: str, max_digits: int, timeout: float, terminator: str, inter_digit_timeout: float
    ) -> str:
        """Digit by digit: ``STREAM FILE`` (any digit stops it), then ``WAIT FOR DIGIT`` per digit.

        For what ``GET DATA`` cannot do: a terminator other than ``#`` (or none) and an
        inter-digit timeout different from the first-digit one.
        """
        got = await self.play(prompt, interruptible=True)
        wait = timeout
        while len(got) < max_digits and (not got or got[-1] != terminator):
            reply = await self._command(f"WAIT FOR DIGIT {round(wait * 1000)}", extra_wait=wait)
            if reply.result <= 0:
                break
            got += chr(reply.result)
            wait = inter_digit_timeout
        return got[:-1] if terminator and got.endswith(terminator) else got

    async def set_variable(self, name: str, value: str) -> None:
        """``SET VARIABLE name "value"`` with the value quoted."""
        if not _VARIABLE.match(name):
            raise ValueError(f"bad channel variable name {name!r}")
        await self._command(f"SET VARIABLE {name} {quote_arg(value)}")

    async def set_language(self, language: str) -> None:
        """``SET VARIABLE CHANNEL(language) xx``: Asterisk then picks ``sounds/xx/`` files."""
        if not _LANGUAGE.match(language):
            raise ValueError(f"bad language {language!r}")
        await self._command(f"SET VARIABLE CHANNEL(language) {language}")
        self.language = language

    async def speak(self, text: str, language: str, interruptible: bool = True) -> str:
        """``EXEC <tts_application> "text"`` (app_flite by default); not interruptible by DTMF.

        Quotes, backslashes and commas (Asterisk's argument separator) become spaces.
        """
        clean = _TTS_UNSAFE.sub(" ", text)
        reply = await self._command(f"EXEC {self.tts_application} {quote_arg(clean)}")
        if reply.result == -2:
            raise AgiCommandError(f"TTS application {self.tts_application!r} is not loaded in Asterisk")
        return ""

    async def record(self, name: str, max_seconds: int) -> str:
        """``RECORD FILE name wav "#" ms BEEP``: up to ``max_seconds``, ``#`` stops; returns ``name.wav``."""
        await self._command(
            f"RECORD FILE {_sound(name)} wav \"#\" {max_seconds * 1000} BEEP", extra_wait=max_seconds
        )
        return f"{name}.wav"

    async def transfer(self, destination: str) -> None:
        """``EXEC Goto``: another DID re-enters ``[ccserver-inbound]``; a number goes to
        ``[ccserver-transfer]``. Asterisk follows it when the AGI session ends."""
        if destination.startswith("did:"):
            context, exten = "ccserver-inbound", destination[4:]
        else:
            context, exten = "ccserver-transfer", destination
        if not _EXTEN.match(exten):
            raise ValueError(f"bad transfer destination {destination!r}")
        await self._command(f"EXEC Goto {context},{exten},1")

    async def say_number(self, number: int) -> None:
        """``SAY NUMBER n ""`` (no escape digits) in the channel's language."""
        await self._command(f'SAY NUMBER {int(number)} ""', extra_wait=5)

    async def _command(self, line: str, extra_wait: float = 0.0, unopened_ok: bool = False) -> AgiReply:
        """Send ``line``; its reply. Raises :class:`CallerHungUp` when the channel is gone.

        ``unopened_ok``: a STREAM FILE whose file Asterisk cannot open answers
        ``200 result=-1 endpos=0`` on a live channel (res_agi.c ``handle_streamfile``, when
        ``ast_openstream`` fails), the same result a hang-up gives (then with a HANGUP line or a
        511 to come, capture 07b). ``CHANNEL STATUS``, refused on a dead channel, tells them
        apart; the reply is returned when the channel is still up.
        """
        reply = await self._send(line, extra_wait)
        if reply.code == 511 or reply.result == -1:
            if not (unopened_ok and reply.extra.get("endpos") == "0"
                    and (await self._send("CHANNEL STATUS", 0.0)).code == 200):
                raise self._hung_up(f"{reply.text!r} to {line!r}")
        elif reply.code != 200:
            raise AgiCommandError(f"{line!r} -> {reply.text!r}")
        return reply

    async def _send(self, line: str, extra_wait: float) -> AgiReply:
        if self._gone:
            raise CallerHungUp(self.call_id)
        timeout = self._timeout + extra_wait
        try:
            self._writer.write(line.encode() + b"\n")
            await self._writer.drain()
            async with asyncio.timeout(timeout):
                reply = await self._read_reply()
        except TimeoutError:
            raise self._lost(f"no reply to {line!r} within {timeout:.1f}s") from None
        except (AgiProtocolError, ValueError) as err:  # ValueError: line over the reader's limit
            raise self._lost(f"malformed reply to {line!r}: {err}") from None
        except ConnectionError as err:
            raise self._lost(f"connection error on {line!r}: {err}") from None
        return reply

    async def _read_reply(self) -> AgiReply:
        while True:
            raw = await self._reader.readline()
            if not raw.endswith(b"\n"):
                raise self._hung_up("connection closed by Asterisk")
            item = self._replies.feed_line(raw.decode("utf-8", errors="replace"))
            if item == "HANGUP":
                raise self._hung_up("HANGUP notice")
            if isinstance(item, AgiReply) and item.code != 100:  # 100 = "Trying...", more follows
                return item

    def _hung_up(self, why: str) -> CallerHungUp:
        self._gone = True
        log.info("FastAGI %s: caller gone (%s)", self.call_id, why)
        return CallerHungUp(self.call_id)

    def _lost(self, why: str) -> AgiLinkLost:
        self._gone = True
        log.warning("FastAGI %s: link lost, ending session: %s", self.call_id, why)
        return AgiLinkLost(self.call_id)


def _sound(name: str) -> str:
    if not _SOUND.match(name):
        raise ValueError(f"bad sound name {name!r}")
    return name


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


class _AgiApplication(Application):
    """panoramisk's router with a connection handler that cannot spin or hang."""

    def __init__(self, command_timeout: float, env_timeout: float) -> None:
        super().__init__()
        self.command_timeout = command_timeout
        self.env_timeout = env_timeout
        self.live: set[asyncio.Task[None]] = set()

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.live.add(task)
        peer = writer.get_extra_info("peername")
        try:
            env = await self._read_environment(reader, peer)
            if env is None:
                return
            script = env.get("network_script")
            route = self._route.get(script)
            if route is None:
                log.error("FastAGI from %s: no route for %r", peer, script)
                return
            session = AgiSession(env, reader, writer, self.command_timeout)
            try:
                await route(session)
            except Exception:
                log.exception("FastAGI %s: route %r failed", session.call_id, script)
        except asyncio.CancelledError:
            # stop() cancels live sessions. Swallowed on purpose: Python 3.11's start_server
            # callback calls task.exception() on the handler task and logs a cancelled one as an error.
            pass
        finally:
            self.live.discard(task)
            await _close(writer)

    async def _read_environment(
        self, reader: asyncio.StreamReader, peer: object
    ) -> AgiEnvironment | None:
        try:
            async with asyncio.timeout(self.env_timeout):
                block = await reader.readuntil(b"\n\n")
            return parse_environment(block)
        except asyncio.IncompleteReadError as err:
            log.warning("AGI environment cut short from %s after %d bytes", peer, len(err.partial))
        except asyncio.LimitOverrunError:
            log.warning("AGI environment from %s is over %d bytes", peer, MAX_ENV)
        except TimeoutError:
            log.warning("AGI environment from %s not complete within %.1fs", peer, self.env_timeout)
        except (AgiProtocolError, ConnectionError) as err:
            log.warning("AGI environment from %s: %s", peer, err)
        return None


class FastAgiServer:
    """Listens for Asterisk's FastAGI connections and hands each ``/ivr`` one to ``on_session``.

    The connection is closed when ``on_session`` returns (Asterisk then continues the
    dialplan). ``command_timeout`` bounds the wait for any reply (``GET DATA`` also gets its
    digit timeout on top); ``env_timeout`` bounds the wait for the environment.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_session: Callable[[AgiSession], Awaitable[object]],
        *,
        command_timeout: float = 120.0,
        env_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self._on_session = on_session
        self._command_timeout = command_timeout
        self._env_timeout = env_timeout
        self._server: asyncio.Server | None = None
        self._app: _AgiApplication | None = None

    async def start(self) -> int:
        """Start listening; return the bound port (useful with ``port=0``)."""
        # built here: panoramisk's Application looks up the running loop in its constructor
        self._app = _AgiApplication(self._command_timeout, self._env_timeout)
        self._app.add_route("ivr", self._ivr)
        self._server = await asyncio.start_server(self._app.handler, self.host, self.port, limit=MAX_ENV)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut the sessions still running (Asterisk continues their dialplan)."""
        if self._server is None or self._app is None:
            return
        self._server.close()
        tasks = list(self._app.live)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _ivr(self, session: AgiSession) -> None:
        await self._on_session(session)
