"""The FastAGI side of the simulated Asterisk: Asterisk connects to the AGI server, sends the
``agi_*`` environment and answers commands (``res_agi.c`` behaviour as seen in captures 07/07b).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .agents import CallerScript
from .channels import Channel, Pairs

AGI_VERSION = "22.10.1"
SAMPLE_RATE = 8000
#: length in samples of the sounds we know (hello-world as in capture 07); others: 1 s
SOUNDS = {"hello-world": 11234, "beep": 2080}
DEFAULT_SOUND = SAMPLE_RATE
DEFAULT_GETDATA_TIMEOUT_MS = 2000
AGI_CLASS = 8192
DTMF_CLASS = 256
DIALPLAN_CLASS = 2048
_RESULT_TEXT = {200: "Success", -1: "Failure", 510: "Invalid or unknown command",
                511: "Command Not Permitted on a dead channel or intercept routine",
                520: "Usage"}


class AgiHost(Protocol):
    """What the AGI session needs from the call that runs it."""

    channel: Channel
    script: CallerScript
    gone: asyncio.Event  #: the channel hung up (or was redirected away) during the AGI

    def event(self, name: str, category: int, extra: Pairs = ()) -> None: ...
    def set_var(self, name: str, value: str) -> None: ...
    def next_digits(self) -> str | None: ...
    def seconds(self, sim_seconds: float) -> float: ...
    def hangup_from_agi(self) -> None: ...
    def goto(self, context: str, exten: str, priority: int) -> None: ...
    def ran(self, application: str, data: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Command:
    handler: Callable[[FastAgiSession, list[str]], object]
    dead_ok: bool
    usage: str


class _Usage(Exception):
    """The arguments do not fit: reply with the multi-line 520."""


def parse_args(line: str) -> list[str]:
    """Split a command line like ``res_agi.c``'s ``parse_args`` (quotes group, backslash escapes)."""
    args: list[str] = []
    cur: list[str] = []
    in_quote = escaped = have = False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped, have = False, True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote, have = not in_quote, True
        elif ch in " \t" and not in_quote:
            if have:
                args.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if have:
        args.append("".join(cur))
    return args


class FastAgiSession:
    """One FastAGI conversation for one channel."""

    def __init__(self, host: AgiHost, agi_host: str, agi_port: int, script_path: str,
                 args: list[str]):
        self.host = host
        self.address = (agi_host, agi_port)
        self.script_path = script_path
        self.args = args
        self.dead = False
        self._busy = False
        self._hangup_sent = False
        self._writer: asyncio.StreamWriter | None = None

    def environment(self) -> bytes:
        """The ``agi_*`` block exactly as Asterisk 22 sends it over FastAGI."""
        ch = self.host.channel
        host, port = self.address
        pairs = [
            ("network", "yes"), ("network_script", self.script_path),
            ("request", f"agi://{host}:{port}/{self.script_path}"), ("channel", ch.name),
            ("language", ch.language), ("type", ch.name.split("/", 1)[0]),
            ("uniqueid", ch.uniqueid), ("version", AGI_VERSION), ("callerid", ch.caller_num),
            ("calleridname", ch.caller_name), ("callingpres", "0"), ("callingani2", "0"),
            ("callington", "0"), ("callingtns", "0"), ("dnid", ch.exten), ("rdnis", "unknown"),
            ("context", ch.context), ("extension", ch.exten), ("priority", str(ch.priority)),
            ("enhanced", "0.0"), ("accountcode", ch.accountcode),
            ("threadid", str(140437364512448 + id(self) % 4096)),
        ] + [(f"arg_{i}", a) for i, a in enumerate(self.args, 1)]
        return "".join(f"agi_{k}: {v}\n" for k, v in pairs).encode() + b"\n"

    async def run(self) -> str:
        """Talk to the AGI server until it closes; return AGISTATUS."""
        try:
            reader, self._writer = await asyncio.open_connection(*self.address)
        except OSError:
            return "FAILURE"
        try:
            self._writer.write(self.environment())
            if self.host.gone.is_set():
                self.notify_gone()
            while line := await reader.readline():
                await self._execute(line.decode("utf-8", "replace").rstrip("\r\n"))
        except ConnectionError:
            pass
        finally:
            self._writer.close()
        return "HANGUP" if self.dead else "SUCCESS"

    def notify_gone(self) -> None:
        """The channel hung up: send ``HANGUP`` now, or after the running command's reply."""
        self.dead = True
        if not self._busy:
            self._send_hangup()

    def _send_hangup(self) -> None:
        if not self._hangup_sent and self._writer is not None:
            self._hangup_sent = True
            self._writer.write(b"HANGUP\n")

    def _send(self, text: str) -> None:
        assert self._writer is not None
        self._writer.write(text.encode() + b"\n")

    async def _execute(self, line: str) -> None:
        argv = parse_args(line)
        command_id = str(random.randint(1, 2**31 - 1))
        self.host.event("AGIExecStart", AGI_CLASS, [("CommandId", command_id), ("Command", line)])
        cmd = _lookup(argv)
        self._busy = True
        code: int
        if cmd is None:
            code = 510
            self._send("510 Invalid or unknown command")
        elif self.dead and not cmd.dead_ok:
            code = 511
            self._send_hangup()
            self._send("511 Command Not Permitted on a dead channel or intercept routine")
        else:
            try:
                result = cmd.handler(self, argv)
                code = (await result) if asyncio.iscoroutine(result) else int(result)  # type: ignore[arg-type]
            except _Usage:
                code = 520
                await self._usage(cmd.usage)
        self._busy = False
        self.host.event("AGIExecEnd", AGI_CLASS, [
            ("CommandId", command_id), ("Command", line), ("ResultCode", str(code)),
            ("Result", _RESULT_TEXT[code])])
        if self.dead:
            self._send_hangup()

    async def _usage(self, usage: str) -> None:
        assert self._writer is not None
        # Asterisk writes the first line on its own; the rest arrives in a second TCP chunk.
        self._send("520-Invalid command syntax.  Proper usage follows:")
        await self._writer.drain()
        self._send(f"{usage}\n520 End of proper usage.")

    # -- media helpers --------------------------------------------------------------------
    async def _pause(self, sim_seconds: float) -> bool:
        """Let ``sim_seconds`` of media pass; False if the channel went away meanwhile."""
        if self.host.gone.is_set():
            return False
        try:
            async with asyncio.timeout(self.host.seconds(sim_seconds)):
                await self.host.gone.wait()
        except TimeoutError:
            return True
        return False

    def _press(self, digits: str) -> None:
        for d in digits:
            self.host.event("DTMFBegin", DTMF_CLASS, [("Digit", d), ("Direction", "Received")])
            self.host.event("DTMFEnd", DTMF_CLASS, [("Digit", d), ("DurationMs", "120"),
                                                    ("Direction", "Received")])

    async def _play(self, sound: str, escape: str, take_digits: bool) -> tuple[int, int]:
        """Play ``sound``; return (result, endpos) with result = ascii of an escape digit or 0/-1."""
        samples = SOUNDS.get(sound, DEFAULT_SOUND)
        entry = self.host.next_digits() if take_digits and escape else None
        started = time.monotonic()
        delay = self.host.script.dtmf_delay
        if entry and entry[0] in escape and delay * SAMPLE_RATE < samples:
            if not await self._pause(delay):
                return -1, self._endpos(started, samples)
            self._press(entry[0])
            return ord(entry[0]), int(delay * SAMPLE_RATE)
        if not await self._pause(samples / SAMPLE_RATE):
            return -1, self._endpos(started, samples)
        return 0, samples

    def _endpos(self, started: float, samples: int) -> int:
        sim = (time.monotonic() - started) / self.host.seconds(1.0)
        return min(samples, int(sim * SAMPLE_RATE))

    # -- commands ---------------------------------------------------------------------------
    def cmd_answer(self, argv: list[str]) -> int:
        if len(argv) != 1:
            raise _Usage
        self._send("200 result=0")
        return 200

    def cmd_hangup(self, argv: list[str]) -> int:
        if len(argv) > 2:
            raise _Usage
        if len(argv) == 2 and argv[1] != self.host.channel.name:
            self._send("200 result=-1")
            return 200
        self._send("200 result=1")
        self.host.hangup_from_agi()
        return 200

    async def cmd_stream_file(self, argv: list[str]) -> int:
        if len(argv) not in (4, 5):
            raise _Usage
        res, endpos = await self._play(argv[2], argv[3], self.host.script.barge_in)
        self._send(f"200 result={res} endpos={endpos}")
        return 200 if res >= 0 else -1

    async def cmd_get_option(self, argv: list[str]) -> int:
        if len(argv) not in (4, 5):
            raise _Usage
        res, endpos = await self._play(argv[2], argv[3], False)
        if res == 0:
            entry = self.host.next_digits()
            timeout = int(argv[4]) / 1000 if len(argv) == 5 and argv[4].isdigit() else 5.0
            if entry and entry[0] in argv[3]:
                if await self._pause(min(self.host.script.dtmf_delay, timeout)):
                    self._press(entry[0])
                    res = ord(entry[0])
                else:
                    res = -1
            elif not await self._pause(timeout):
                res = -1
        self._send(f"200 result={res} endpos={endpos}")
        return 200 if res >= 0 else -1

    async def cmd_get_data(self, argv: list[str]) -> int:
        if len(argv) < 3 or len(argv) > 5:
            raise _Usage
        timeout_ms = int(argv[3]) if len(argv) > 3 and argv[3].isdigit() else 0
        timeout = (timeout_ms or DEFAULT_GETDATA_TIMEOUT_MS) / 1000
        max_digits = int(argv[4]) if len(argv) > 4 and argv[4].isdigit() else 1024
        prompt = SOUNDS.get(argv[2], DEFAULT_SOUND) / SAMPLE_RATE
        entry = self.host.next_digits() or ""
        collected = ""
        if entry:
            if not await self._pause(self.host.script.dtmf_delay):
                self._send("200 result=-1")
                return 200
            for d in entry:
                self._press(d)
                if d == "#":
                    break
                collected += d
                if len(collected) >= max_digits:
                    break
            if d == "#" or len(collected) >= max_digits:
                self._send(f"200 result={collected}")
                return 200
        elif not await self._pause(prompt):
            self._send("200 result=-1")
            return 200
        if not await self._pause(timeout):
            self._send("200 result=-1")
            return 200
        self._send(f"200 result={collected} (timeout)")
        return 200

    async def cmd_wait_for_digit(self, argv: list[str]) -> int:
        if len(argv) != 4:
            raise _Usage
        ms = int(argv[3]) if argv[3].lstrip("-").isdigit() else 0
        entry = self.host.next_digits()
        if entry:
            if not await self._pause(self.host.script.dtmf_delay):
                self._send("200 result=-1")
                return -1
            self._press(entry[0])
            self._send(f"200 result={ord(entry[0])}")
            return 200
        if not await self._pause(ms / 1000 if ms >= 0 else 3600.0):
            self._send("200 result=-1")
            return -1
        self._send("200 result=0")
        return 200

    async def cmd_say(self, argv: list[str]) -> int:
        if len(argv) < 4:
            raise _Usage
        self.host.ran(f"Say{argv[1].title()}", argv[2])
        ok = await self._pause(0.5 * len(argv[2]))
        self._send(f"200 result={0 if ok else -1}")
        return 200 if ok else -1

    async def cmd_exec(self, argv: list[str]) -> int:
        """``EXEC app args``: ``Goto`` moves the channel (followed when the AGI ends), a TTS
        application speaks; any other application is not loaded (``result=-2``)."""
        if len(argv) < 2:
            raise _Usage
        app, data = argv[1], " ".join(argv[2:])
        if app.lower() == "goto":
            parts = data.split(",")
            if len(parts) != 3 or not parts[2].isdigit():
                self._send("200 result=-1")
                return 200
            self.host.ran("Goto", data)
            self.host.goto(parts[0], parts[1], int(parts[2]))
            self._send("200 result=0")
            return 200
        if app.lower() in ("flite", "festival"):
            self.host.ran(app, data)
            ok = await self._pause(0.05 * max(1, len(data.split())))
            self._send(f"200 result={0 if ok else -1}")
            return 200 if ok else -1
        self._send("200 result=-2")
        return 200

    async def cmd_record_file(self, argv: list[str]) -> int:
        """``RECORD FILE name format escape timeout [offset] [BEEP] [s=silence]``: the caller
        speaks for a moment, then silence ends it (``(timeout)``)."""
        if len(argv) < 6 or not argv[5].lstrip("-").isdigit():
            raise _Usage
        self.host.ran("Record", f"{argv[2]}.{argv[3]}")
        if not await self._pause(min(int(argv[5]) / 1000, 1.0)):
            self._send("200 result=-1 (hangup) endpos=0")
            return -1
        self._send(f"200 result=0 (timeout) endpos={SAMPLE_RATE}")
        return 200

    def cmd_set_variable(self, argv: list[str]) -> int:
        if len(argv) != 4:
            raise _Usage
        self.host.set_var(argv[2], argv[3])
        self._send("200 result=1")
        return 200

    def cmd_get_variable(self, argv: list[str]) -> int:
        if len(argv) != 3:
            raise _Usage
        value = lookup_variable(self.host.channel, argv[2])
        self._send("200 result=0" if value is None else f"200 result=1 ({value})")
        return 200

    def cmd_get_full_variable(self, argv: list[str]) -> int:
        if len(argv) not in (4, 5):
            raise _Usage
        if len(argv) == 5 and argv[4] != self.host.channel.name:
            self._send("200 result=0")
            return 200
        self._send(f"200 result=1 ({substitute(self.host.channel, argv[3])})")
        return 200

    def cmd_verbose(self, argv: list[str]) -> int:
        if len(argv) < 2:
            raise _Usage
        self._send("200 result=1")
        return 200

    def cmd_noop(self, argv: list[str]) -> int:
        self._send("200 result=0")
        return 200

    def cmd_channel_status(self, argv: list[str]) -> int:
        if len(argv) > 3:
            raise _Usage
        self._send(f"200 result={self.host.channel.state}")
        return 200


_COMMANDS: dict[tuple[str, ...], _Command] = {
    ("answer",): _Command(FastAgiSession.cmd_answer, False,
                          "Answers channel if not already in answer state. Returns <literal>-1</literal> on channel failure, or <literal>0</literal> if successful."),
    ("hangup",): _Command(FastAgiSession.cmd_hangup, False,
                          "Hangs up the specified channel. If no channel name is given, hangs up the current channel"),
    ("stream", "file"): _Command(FastAgiSession.cmd_stream_file, False,
                                 "Send the given file, allowing playback to be interrupted by the given digits, if any."),
    ("get", "option"): _Command(FastAgiSession.cmd_get_option, False,
                                "Behaves similar to STREAM FILE but used with a timeout option."),
    ("get", "data"): _Command(FastAgiSession.cmd_get_data, False,
                              "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\nReturns the digits received from the channel at the other end."),
    ("wait", "for", "digit"): _Command(FastAgiSession.cmd_wait_for_digit, False,
                                       "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF digit."),
    ("say", "digits"): _Command(FastAgiSession.cmd_say, False,
                                "Say a given digit string, returning early if any of the given DTMF digits are received on the channel."),
    ("say", "number"): _Command(FastAgiSession.cmd_say, False,
                                "Say a given number, returning early if any of the given DTMF digits are received on the channel."),
    ("exec",): _Command(FastAgiSession.cmd_exec, False,
                        "Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>."),
    ("record", "file"): _Command(FastAgiSession.cmd_record_file, False,
                                 "Record to a file until a given dtmf digit in the sequence is received."),
    ("set", "variable"): _Command(FastAgiSession.cmd_set_variable, True,
                                  "Sets a variable to the current channel."),
    ("get", "variable"): _Command(FastAgiSession.cmd_get_variable, True,
                                  "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in parentheses."),
    ("get", "full", "variable"): _Command(FastAgiSession.cmd_get_full_variable, True,
                                          "Evaluates the given <replaceable>expression</replaceable> against the channel specified by <replaceable>channelname</replaceable>, or the current channel if <replaceable>channelname</replaceable> is not provided."),
    ("verbose",): _Command(FastAgiSession.cmd_verbose, True,
                           "Sends <replaceable>message</replaceable> to the console via verbose message system. <replaceable>level</replaceable> is the verbose level (1-4). Always returns <literal>1</literal>."),
    ("noop",): _Command(FastAgiSession.cmd_noop, True, "Does nothing."),
    ("channel", "status"): _Command(FastAgiSession.cmd_channel_status, False,
                                    "Returns the status of the specified <replaceable>channelname</replaceable>. If no channel name is given then returns the status of the current channel."),
}


def _lookup(argv: list[str]) -> _Command | None:
    words = tuple(a.lower() for a in argv)
    for n in (3, 2, 1):
        if words[:n] in _COMMANDS:
            return _COMMANDS[words[:n]]
    return None


def lookup_variable(ch: Channel, name: str) -> str | None:
    """A channel variable or one of the few dialplan functions the simulator knows."""
    builtin = {
        "CALLERID(num)": ch.caller_num, "CALLERID(name)": ch.caller_name,
        "CALLERID(all)": f'"{ch.caller_name}" <{ch.caller_num}>', "CHANNEL": ch.name,
        "CHANNEL(name)": ch.name, "UNIQUEID": ch.uniqueid, "EXTEN": ch.exten,
        "CONTEXT": ch.context, "EPOCH": str(int(time.time())), "CHANNEL(language)": ch.language,
    }
    if name in builtin:
        return builtin[name]
    return ch.variables.get(name.lstrip("_"))


def substitute(ch: Channel, expression: str) -> str:
    """Expand ``${NAME}`` references (not nested) the way ``pbx_substitute_variables`` would."""
    return re.sub(r"\$\{([^{}]+)\}", lambda m: lookup_variable(ch, m.group(1)) or "", expression)
