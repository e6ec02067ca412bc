"""ccserver's ESL outbound-socket server: each call our dialplan hands over is an IVR session.

The dialplan (``dialplans/freeswitch/ccserver.xml``) runs ``socket <ccserver>:8084 async full``;
FreeSWITCH connects here, once per call. We send ``connect`` (the reply carries the channel's
data as headers), ``myevents json`` (only this channel's events) and ``linger`` (so the last
events after a hang-up still arrive), then drive the channel with ``sendmsg`` ``execute``
messages. Each carries an ``Event-UUID`` that FreeSWITCH copies into the matching
CHANNEL_EXECUTE_COMPLETE as ``Application-UUID``: that is how a completion is tied to its
command. A CHANNEL_HANGUP, a ``text/disconnect-notice`` or the socket closing ends the session:
every waiting and later call raises :class:`~ccserver.ivr.media.CallerHungUp`.

When the flow ends we close the socket and the dialplan continues: to the queue's wait music when
the flow set ``CC_QUEUE``, else to a hang-up.

This side is asyncio with our codec rather than greenswitch's ``OutboundESLServer``: that server
accepts by polling a non-blocking socket every 0.1 s, parses frames with the same flaws as its
inbound client, and would put a thread hop on every IVR step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ccserver.ivr.media import CallerHungUp, MediaSession
from ccserver.pbx.base import why
from ccserver.pbx.contexts import INBOUND_CONTEXT, TRANSFER_CONTEXT
from ccserver.pbx.freeswitch.esl_codec import (
    KNOWN_CONTENT_TYPES,
    EslEvent,
    EslParser,
    EslProtocolError,
    Frame,
    encode_command,
    parse_event,
)

log = logging.getLogger(__name__)

#: seconds FreeSWITCH keeps the socket after a hang-up so the last events reach us
LINGER_SECONDS = 10
# matched whole (fullmatch): "$" alone would let a trailing line break through
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: what a prompt name may contain (a file path relative to the sounds dir, or a tone_stream://)
_SOUND = re.compile(r"[A-Za-z0-9_/.:%(),=;+-]{1,200}")
_DIGITS_VAR = "cc_digits"
_LANGUAGE = re.compile(r"[a-z]{2}(_[A-Za-z]{2})?")
_EXTEN = re.compile(r"[A-Za-z0-9_+*#-]{1,64}")
#: what must not reach the speak application's argument ("|" separates engine, voice and text)
_TTS_UNSAFE = re.compile(r"[|\r\n\x00]")
#: what the caller hears before a voicemail recording starts
BEEP = "tone_stream://%(500,0,800)"
#: the channel variable the after-IVR extension transfers to when set
TRANSFER_VAR = "cc_transfer_to"


@dataclass(frozen=True, slots=True)
class SoundFiles:
    """Where a node's FreeSWITCH finds the prompts flows name the Asterisk way (``hello-world``):
    the node's ``sound_dir`` and ``sound_extension`` (``hardware/``, validated there)."""

    directory: str = ""
    extension: str = "wav"

    def path(self, name: str) -> str:
        """``hello-world`` -> ``<directory>/hello-world.<extension>``. Absolute paths, names that
        have an extension and streams (``tone_stream://...``) are FreeSWITCH's already and pass
        unchanged."""
        if name.startswith("/") or ":" in name or "." in name.rpartition("/")[2]:
            return name
        if self.extension:
            name = f"{name}.{self.extension}"
        return f"{self.directory}/{name}" if self.directory else name


class OutboundSession:
    """One outbound-socket connection = one live channel; implements ``MediaSession``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 command_timeout: float):
        self._reader, self._writer = reader, writer
        self._timeout = command_timeout
        self._parser = EslParser()
        self._replies: list[asyncio.Future[Frame]] = []
        self._completions: dict[str, asyncio.Future[EslEvent]] = {}
        self._digits: list[str] = []
        self._gone = False
        #: ccserver closes the socket (the flow ended): its end is not the caller's
        self._closing = False
        self._reader_task: asyncio.Task | None = None
        self.node = self.call_id = self.channel = self.caller = self.did = ""
        self.language = ""
        #: prompts FreeSWITCH could not open since the IVR engine last looked (it empties this)
        self.missing_prompts: list[str] = []
        #: when FreeSWITCH created the channel (epoch seconds), from the ``connect`` reply
        self.created_at: float | None = None
        #: how prompt names become files on this node (set by the server once the node is known)
        self.sounds = SoundFiles()
        #: the TTS engine and voice ``speak`` uses (mod_flite's by default)
        self.tts_engine, self.tts_voice = "flite", "kal"

    # -- connection --------------------------------------------------------------------------

    async def open(self, default_node: str | None) -> bool:
        """``connect`` + ``myevents`` + ``linger``; False when the channel is not usable."""
        self._reader_task = asyncio.create_task(self._read_loop())
        data = await self._send("connect")
        h = data.headers
        self.channel = h.get("Unique-ID", "")
        self.node = h.get("variable_cc_node") or (default_node or "")
        if not self.channel or not self.node:
            log.error("ESL outbound: connect reply without %s; closing",
                      "Unique-ID" if not self.channel else "variable_cc_node (and no default node)")
            return False
        self.call_id = f"{self.node}:{self.channel}"
        self.caller = h.get("Caller-Caller-ID-Number", "")
        self.did = h.get("variable_cc_did") or h.get("Caller-Destination-Number", "")
        self.language = h.get("variable_cc_language", "")
        # microseconds (capture c01's connect reply); the arrival of a call whose CHANNEL_CREATE
        # ccserver missed
        created = h.get("Caller-Channel-Created-Time", "")
        self.created_at = int(created) / 1e6 if created.isdigit() and int(created) else None
        await self._send("myevents json")
        await self._send(f"linger {LINGER_SECONDS}")
        return True

    async def close(self) -> None:
        self._closing = True
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _read_loop(self) -> None:
        why = "socket closed by FreeSWITCH"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for frame in self._parser.feed(data):
                    self._dispatch(frame)
        except EslProtocolError as e:
            why = f"bad ESL frame ({e})"
            log.warning("ESL outbound %s: %s; ending the session", self.call_id, why)
        except ConnectionError as e:
            why = f"socket error ({e})"
        finally:
            self._hang_up(why)
            for fut in self._replies:
                if not fut.done():
                    fut.set_exception(CallerHungUp(self.call_id))
            self._replies.clear()

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in ("command/reply", "api/response"):
            if not self._replies:
                raise EslProtocolError(f"{ctype} with no command waiting for it")
            fut = self._replies.pop(0)
            if not fut.done():
                fut.set_result(frame)
        elif ctype in ("text/event-json", "text/event-plain"):
            self._on_event(parse_event(frame))
        elif ctype == "text/disconnect-notice":
            # "linger": the channel hung up and the last events follow; "disconnect": the end.
            self._hang_up(f"disconnect notice ({frame.headers.get('Content-Disposition', '')})")
        elif ctype not in KNOWN_CONTENT_TYPES:
            log.warning("ESL outbound %s: ignoring a frame with unknown Content-Type %r",
                        self.call_id, ctype)

    def _on_event(self, ev: EslEvent) -> None:
        name = ev.get("Event-Name")
        if name == "CHANNEL_EXECUTE_COMPLETE":
            fut = self._completions.pop(ev.get("Application-UUID"), None)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        elif name == "DTMF":
            self._digits.append(ev.get("DTMF-Digit"))
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self._hang_up(f"{name} {ev.get('Hangup-Cause')}")

    def _hang_up(self, why: str) -> None:
        if not self._gone and not self._closing:
            log.info("ESL outbound %s: caller gone (%s)", self.call_id, why)
        self._gone = True
        for fut in self._completions.values():
            if not fut.done():
                fut.set_exception(CallerHungUp(self.call_id))
        self._completions.clear()

    async def _send(self, command: str, headers: dict[str, str] | None = None) -> Frame:
        if self._gone and not command.startswith(("linger", "myevents")):
            raise CallerHungUp(self.call_id)
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._replies.append(fut)
        try:
            self._writer.write(encode_command(command, headers))
            await self._writer.drain()
            async with asyncio.timeout(self._timeout):
                return await fut
        except (ConnectionError, TimeoutError) as e:
            log.warning("ESL outbound %s: %r failed (%s); ending the session",
                        self.call_id, command.split()[0], why(e))
            self._hang_up("link lost")
            self._reader.feed_eof()
            raise CallerHungUp(self.call_id) from None

    async def execute(self, app: str, arg: str = "", wait: float = 0.0) -> EslEvent:
        """Run a dialplan application on the channel and wait for its completion event."""
        event_uuid = str(uuidlib.uuid4())
        done: asyncio.Future[EslEvent] = asyncio.get_running_loop().create_future()
        self._completions[event_uuid] = done
        headers = {"call-command": "execute", "execute-app-name": app}
        if arg:
            headers["execute-app-arg"] = arg
        headers |= {"event-lock": "true", "Event-UUID": event_uuid}
        try:
            reply = await self._send("sendmsg", headers)
            if not reply.reply_text.startswith("+OK"):
                raise CallerHungUp(self.call_id)
            async with asyncio.timeout(self._timeout + wait):
                return await done
        except TimeoutError:
            self._hang_up(f"{app} never completed")
            raise CallerHungUp(self.call_id) from None
        finally:
            # A hang-up while the sendmsg was in flight fails ``done`` too, and nobody awaits it
            # then: take its outcome so asyncio does not log "exception was never retrieved".
            self._completions.pop(event_uuid, None)
            if done.done() and not done.cancelled():
                done.exception()

    # -- MediaSession ------------------------------------------------------------------------

    async def answer(self) -> None:
        await self.execute("answer")

    async def play(self, prompt: str, interruptible: bool = True) -> str:
        """``playback``; with ``interruptible`` any digit stops it and is returned."""
        await self.execute("set", "playback_terminators="
                           + ("0123456789*#" if interruptible else "none"))
        self._digits.clear()
        ev = await self.execute("playback", self.sounds.path(_sound(prompt)), wait=600)
        if ev.get("Application-Response") == "FILE NOT FOUND":  # mod_dptools.c playback_function
            self.missing_prompts.append(prompt)
        used = ev.get("variable_playback_terminator_used")
        return used or (self._digits[0] if interruptible and self._digits else "")

    async def collect(
        self, prompt: str, max_digits: int, timeout: float,
        terminator: str = "#", inter_digit_timeout: float | None = None,
    ) -> str:
        """``play_and_get_digits``: up to ``max_digits`` digits, ``terminator`` ends (never
        returned), ``timeout`` for the first digit and ``inter_digit_timeout`` for each next one;
        ``""`` on timeout."""
        ms = round(timeout * 1000)
        digit_ms = round((inter_digit_timeout or timeout) * 1000)
        # play_and_get_digits takes "none" for "no terminator"
        arg = (f"1 {max_digits} 1 {ms} {terminator or 'none'} {self.sounds.path(_sound(prompt))} "
               f"silence_stream://250 {_DIGITS_VAR} [0-9*#]+ {digit_ms}")
        ev = await self.execute("play_and_get_digits", arg, wait=timeout * (max_digits + 1) + 600)
        if not ev.get("variable_read_result"):
            # switch_ivr_read sets read_result (success / timeout / failure) on every read that
            # got past its prompt; a prompt that does not open skips it, and the application
            # answers "_none_" either way
            self.missing_prompts.append(prompt)
        return ev.get(f"variable_{_DIGITS_VAR}")

    async def set_variable(self, name: str, value: str) -> None:
        if not _VARIABLE.fullmatch(name):
            raise ValueError(f"bad channel variable name {name!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"channel variable {name}: value must be one line")
        await self.execute("set", f"{name}={value}")


    async def set_language(self, language: str) -> None:
        """``default_language`` (say / phrase modules) and ``sound_prefix``: FreeSWITCH then plays
        relative sound names from ``$${sounds_dir}/<language>`` (``pt_BR`` -> ``pt/BR``)."""
        if not _LANGUAGE.fullmatch(language):
            raise ValueError(f"bad language {language!r}")
        await self.execute("set", f"default_language={language}")
        await self.execute("set", "sound_prefix=${sounds_dir}/" + language.replace("_", "/"))
        self.language = language

    async def speak(self, text: str, language: str, interruptible: bool = True) -> str:
        """``speak <engine>|<voice>|<text>`` (mod_flite by default); like Asterisk's TTS, not
        interrupted by DTMF. ``|`` and line breaks in the text become spaces."""
        clean = _TTS_UNSAFE.sub(" ", text)
        await self.execute("speak", f"{self.tts_engine}|{self.tts_voice}|{clean}", wait=600)
        return ""

    async def record(self, name: str, max_seconds: int) -> str:
        """A beep, then ``record $${recordings_dir}/<name>.wav <max_seconds>``; ``#`` stops it.
        Returns ``<name>.wav`` (relative to the recordings directory)."""
        await self.execute("set", "playback_terminators=#")
        await self.execute("playback", BEEP, wait=5)
        await self.execute("record", "${recordings_dir}/" + f"{_sound(name)}.wav {max_seconds}",
                           wait=max_seconds + 5)
        return f"{name}.wav"

    async def say_number(self, number: int) -> None:
        """``say <module> number pronounced n``: mod_say of the channel's language (``pt_BR``
        -> ``pt``), English when none was chosen."""
        module = (self.language or "en").split("_")[0]
        await self.execute("say", f"{module} number pronounced {int(number)}", wait=30)

    async def transfer(self, destination: str) -> None:
        """Leave the target in ``cc_transfer_to`` (``<exten> XML <context>``); the dialplan's
        after-IVR extension transfers there once we close the socket (as Asterisk follows a
        ``Goto`` after the AGI): another DID re-enters ``ccserver-inbound``, a number goes to
        ``ccserver-transfer``."""
        if destination.startswith("did:"):
            context, exten = INBOUND_CONTEXT, destination[4:]
        else:
            context, exten = TRANSFER_CONTEXT, destination
        if not _EXTEN.fullmatch(exten):
            raise ValueError(f"bad transfer destination {destination!r}")
        await self.execute("set", f"{TRANSFER_VAR}={exten} XML {context}")


def _sound(name: str) -> str:
    if not _SOUND.fullmatch(name):
        raise ValueError(f"bad sound name {name!r}")
    return name


class FsOutboundServer:
    """Listens for FreeSWITCH's outbound sockets and runs ``on_session`` for each call."""

    def __init__(self, host: str, port: int,
                 on_session: Callable[[MediaSession], Awaitable[object]],
                 default_node: str | None = None, command_timeout: float = 10.0,
                 sounds: Mapping[str, SoundFiles] | None = None):
        self.host, self.port = host, port
        self._on_session = on_session
        self.default_node = default_node
        #: node name -> where its prompts are (nodes not listed: :class:`SoundFiles` defaults)
        self._sounds = dict(sounds or {})
        self._timeout = command_timeout
        self._server: asyncio.base_events.Server | None = None
        self.live: set[asyncio.Task] = set()

    async def start(self) -> int:
        """Listen; return the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self.live):
            task.cancel()
        await asyncio.gather(*self.live, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.live.add(task)
        session = OutboundSession(reader, writer, self._timeout)
        try:
            if await session.open(self.default_node):
                session.sounds = self._sounds.get(session.node, session.sounds)
                await self._on_session(session)
        except CallerHungUp:
            pass
        except Exception:  # one broken call must not take the server down
            log.exception("ESL outbound %s: session failed", session.call_id or "?")
        finally:
            self.live.discard(task)
            await session.close()
