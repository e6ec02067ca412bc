"""Sans-I/O FastAGI framing.

Asterisk opens the connection and sends ``agi_key: value\\n`` lines ending with an empty line;
then each command line gets a reply ``NNN result=... [(data)] [key=value]``. ``520-`` starts a
multi-line usage reply that ends with ``520 End of proper usage.``. A channel that hangs up
produces an unsolicited ``HANGUP`` line before later replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: a bigger environment than this is not a real Asterisk
MAX_ENV = 64 * 1024


class AgiProtocolError(Exception):
    """The peer sent something that is not FastAGI."""


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sends on connect (keys without the ``agi_`` prefix)."""

    values: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def args(self) -> list[str]:
        """``agi_arg_1``, ``agi_arg_2``, ... in order."""
        out = []
        i = 1
        while f"arg_{i}" in self.values:
            out.append(self.values[f"arg_{i}"])
            i += 1
        return out

    @property
    def keyword_args(self) -> dict[str, str]:
        """Arguments written as ``key=value`` (our dialplan passes ``node=...,did=...``)."""
        return dict(a.split("=", 1) for a in self.args if "=" in a)


def parse_environment(block: bytes) -> AgiEnvironment:
    """Parse the environment block (everything before the blank line)."""
    text = block.decode("utf-8", errors="replace")
    values: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"AGI environment: unexpected line {line[:80]!r}")
        values[key[4:]] = value[1:] if value.startswith(" ") else value
    if "network_script" not in values and "request" not in values:
        raise AgiProtocolError("AGI environment: neither agi_request nor agi_network_script")
    return AgiEnvironment(values)


_REPLY = re.compile(r"^(\d{3})(?: result=(-?\d+|\S*))?(?: \((.*)\))?(?: (.*))?$")


@dataclass(frozen=True, slots=True)
class AgiReply:
    """A command's reply. ``result`` is the number after ``result=``; ``data`` is in brackets."""

    code: int
    result: int | None = None
    data: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200


def parse_reply(line: str) -> AgiReply:
    """Parse a single-line reply (``200 result=1 (1) endpos=11234``)."""
    m = _REPLY.match(line)
    if not m:
        raise AgiProtocolError(f"AGI reply: cannot parse {line[:80]!r}")
    code, result, data, rest = m.groups()
    extra: dict[str, str] = {}
    for tok in (rest or "").split():
        k, sep, v = tok.partition("=")
        if sep:
            extra[k] = v
    res = int(result) if result is not None and re.fullmatch(r"-?\d+", result) else None
    return AgiReply(int(code), res, data or "", extra, line)


class AgiReplyReader:
    """Incremental reader of replies. Feed lines; get replies and hang-up notices.

    ``feed_line`` returns an ``AgiReply``, the string ``"HANGUP"``, or ``None`` while a
    multi-line reply is still open.
    """

    def __init__(self) -> None:
        self._multi: list[str] | None = None

    def feed_line(self, line: str) -> AgiReply | str | None:
        line = line.rstrip("\r\n")
        if self._multi is not None:
            self._multi.append(line)
            if re.match(r"^\d{3} ", line):
                text = "\n".join(self._multi)
                self._multi = None
                return AgiReply(int(line[:3]), None, "", {}, text)
            return None
        if line == "HANGUP":
            return "HANGUP"
        if re.match(r"^\d{3}-", line):
            self._multi = [line]
            return None
        return parse_reply(line)


def quote_arg(value: str) -> str:
    """Quote one command argument; refuses line breaks (they would inject a second command)."""
    if "\n" in value or "\r" in value:
        raise ValueError("AGI argument contains a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
