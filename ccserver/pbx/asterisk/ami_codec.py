"""Sans-I/O AMI framing: bytes in, messages out; messages in, bytes out.

AMI is ``Key: Value\\r\\n`` lines ending with an empty line. Asterisk writes UTF-8 but a TCP read
may end in the middle of a multi-byte character, so bytes are buffered until a whole message
(``\\r\\n\\r\\n``) is there and only then decoded; undecodable bytes become U+FFFD instead of
disappearing. A frame that is not ``Key: Value`` lines is reported as :class:`BadFrame`, never
raised: one bad frame must not kill a connection.
"""

from __future__ import annotations

from dataclasses import dataclass

EOL = b"\r\n"
END = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
#: refuse to buffer a single message larger than this (a peer that never ends its frame)
MAX_MESSAGE = 1 << 20


class Message(dict[str, str]):
    """One AMI message: headers in arrival order. Lookups are case-sensitive as sent by Asterisk.

    A header that repeats (``Output:``, ``Variable:``) keeps every value in ``multi``; the dict
    itself holds the last value.
    """

    def __init__(self, pairs: list[tuple[str, str]] | None = None):
        super().__init__()
        self.multi: dict[str, list[str]] = {}
        for k, v in pairs or ():
            self.add(k, v)

    def add(self, key: str, value: str) -> None:
        if key in self:
            self.multi.setdefault(key, [self[key]]).append(value)
        self[key] = value

    def values_of(self, key: str) -> list[str]:
        return self.multi.get(key, [self[key]] if key in self else [])

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action(self) -> str | None:
        return self.get("Action")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line Asterisk sends on connect, e.g. ``Asterisk Call Manager/11.0.0``."""

    version: str


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be parsed; ``reason`` says why, ``raw`` holds (a prefix of) it."""

    reason: str
    raw: bytes


Item = Message | Banner | BadFrame


def encode(headers: Message | dict[str, str] | list[tuple[str, str]]) -> bytes:
    """Serialize one message. Values must not contain CR or LF (that would inject headers)."""
    pairs = headers if isinstance(headers, list) else _pairs(headers)
    out = []
    for k, v in pairs:
        v = str(v)
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k or ":" in k:
            raise ValueError(f"AMI header {k!r}: value contains a line break or the key a colon")
        out.append(f"{k}: {v}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def _pairs(m: Message | dict[str, str]) -> list[tuple[str, str]]:
    multi = getattr(m, "multi", {})
    pairs = []
    for k, v in m.items():
        for one in multi.get(k, [v]):
            pairs.append((k, one))
    return pairs


def parse_message(block: bytes) -> Message | BadFrame:
    """Parse one message (without its terminating blank line)."""
    text = block.decode("utf-8", errors="replace")
    msg = Message()
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):  # "AccountCode:" with an empty value and no space
                key, value = line[:-1], ""
            else:
                return BadFrame(f"line without 'Key: Value': {line[:80]!r}", block[:256])
        if not key or key != key.strip():
            return BadFrame(f"bad header name {key[:40]!r}", block[:256])
        msg.add(key, value)
    if not msg:
        return BadFrame("empty message", block[:256])
    return msg


class AmiParser:
    """Incremental parser. Feed it bytes as they arrive; iterate the complete items.

    ``expect_banner`` is for the client side (Asterisk greets first); the server side (the
    simulator) parses actions with ``expect_banner=False``.
    """

    def __init__(self, expect_banner: bool = True):
        self._buf = bytearray()
        self._banner_pending = expect_banner

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        items: list[Item] = []
        if self._banner_pending:
            nl = self._buf.find(EOL)
            if nl < 0:
                if len(self._buf) > 1024:
                    items.append(BadFrame("no banner line", bytes(self._buf[:256])))
                    self._buf.clear()
                return items
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 2]
            self._banner_pending = False
            if line.startswith(BANNER_PREFIX):
                items.append(Banner(line[len(BANNER_PREFIX):].decode("ascii", "replace")))
            else:
                items.append(BadFrame("expected the AMI banner", line[:256]))
        while True:
            # Asterisk sometimes sends a stray CRLF between messages.
            while self._buf[:2] == EOL:
                del self._buf[:2]
            end = self._buf.find(END)
            if end < 0:
                if len(self._buf) > MAX_MESSAGE:
                    items.append(BadFrame("message too large", bytes(self._buf[:256])))
                    self._buf.clear()
                return items
            block = bytes(self._buf[:end])
            del self._buf[: end + 4]
            items.append(parse_message(block))
