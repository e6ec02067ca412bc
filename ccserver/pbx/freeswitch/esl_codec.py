"""FreeSWITCH Event Socket (ESL) framing, sans-I/O: bytes in, frames and events out.

An ESL frame is a header block (``Name: value`` lines ending at an empty line) followed by
``Content-Length`` bytes of body. Header order is not fixed (the outbound ``connect`` reply puts
``Content-Type`` last, after ~160 channel headers) and header values may be URL-encoded
(``Reply-Text: %2BOK%0A``), so every value is decoded here once.

Frame kinds by ``Content-Type``: ``auth/request``, ``command/reply``, ``api/response``,
``text/event-plain`` (the body is itself a URL-encoded header block, optionally followed by an
inner ``Content-Length`` body, e.g. BACKGROUND_JOB), ``text/event-json`` (one JSON object, the
body under ``_body``), ``text/disconnect-notice`` and ``text/rude-rejection``. Anything else is
still framed (the length is known) and left to the caller to refuse by name.

The parser bounds what it buffers: a header block longer than :data:`MAX_HEADER_BYTES` or a
``Content-Length`` that is not a number or exceeds :data:`MAX_BODY_BYTES` raises
:class:`EslProtocolError`, after which the stream cannot be trusted and must be dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, unquote

#: the longest header block accepted (the outbound ``connect`` reply is ~12 KB)
MAX_HEADER_BYTES = 256 * 1024
#: the longest body accepted (``show channels as json`` with thousands of calls stays far below)
MAX_BODY_BYTES = 32 * 1024 * 1024

KNOWN_CONTENT_TYPES = frozenset({
    "auth/request",
    "command/reply",
    "api/response",
    "text/event-plain",
    "text/event-json",
    "text/disconnect-notice",
    "text/rude-rejection",
    "log/data",
})


class EslProtocolError(ValueError):
    """The byte stream is not valid ESL; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One ESL frame: decoded headers and the raw body (``b""`` when there is none)."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        """``Reply-Text`` of a command/reply (``+OK accepted``, ``-ERR invalid``), stripped."""
        return self.headers.get("Reply-Text", "").strip()

    def text(self) -> str:
        """The body as text (FreeSWITCH sends UTF-8; anything else is replaced, not fatal)."""
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """One FreeSWITCH event: its headers (decoded) and its body (``""`` when none)."""

    headers: dict[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        """``Event-Name``, or the ``Event-Subclass`` of a CUSTOM event."""
        name = self.headers.get("Event-Name", "")
        if name == "CUSTOM":
            return self.headers.get("Event-Subclass", name)
        return name

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


def _parse_headers(block: bytes, what: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.decode("utf-8", "replace").split("\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(": ")
        if not sep:
            name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise EslProtocolError(f"{what}: header line {raw[:80]!r} has no 'Name: value' form")
        headers[name.strip()] = unquote(value.strip()) if "%" in value else value.strip()
    return headers


def _content_length(headers: dict[str, str], what: str) -> int:
    raw = headers.get("Content-Length")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise EslProtocolError(f"{what}: Content-Length {raw[:40]!r} is not a non-negative number")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise EslProtocolError(
            f"{what}: Content-Length {length} exceeds the {MAX_BODY_BYTES}-byte limit"
        )
    return length


class EslParser:
    """Incremental frame parser: :meth:`feed` bytes as they arrive, get complete frames back."""

    __slots__ = ("_buf", "_pending")

    def __init__(self) -> None:
        self._buf = bytearray()
        #: headers of a frame whose body is still arriving, and its length
        self._pending: tuple[dict[str, str], int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return every frame now complete. Raises :class:`EslProtocolError`."""
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while True:
            if self._pending is None:
                # FreeSWITCH never sends blank lines between frames, but tolerate stray ones.
                start = 0
                while start < len(buf) and buf[start] == 0x0A:
                    start += 1
                end = buf.find(b"\n\n", start)
                if end < 0:
                    if start:
                        del buf[:start]
                    if len(buf) > MAX_HEADER_BYTES:
                        raise EslProtocolError(
                            f"header block: no end after {MAX_HEADER_BYTES} bytes"
                        )
                    return frames
                headers = _parse_headers(bytes(buf[start:end]), "frame")
                del buf[: end + 2]
                self._pending = (headers, _content_length(headers, "frame"))
            headers, length = self._pending
            if len(buf) < length:
                return frames
            body = bytes(buf[:length])
            del buf[:length]
            self._pending = None
            frames.append(Frame(headers, body))


def parse_event(frame: Frame) -> EslEvent:
    """The event inside a ``text/event-plain`` or ``text/event-json`` frame.

    Raises :class:`EslProtocolError` for another Content-Type or a malformed body.
    """
    ctype = frame.content_type
    if ctype == "text/event-json":
        try:
            # a caller's display name may hold bytes that are not UTF-8: keep the event
            obj = json.loads(frame.body.decode("utf-8", "replace"))
        except ValueError as e:
            raise EslProtocolError(f"text/event-json body: not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise EslProtocolError("text/event-json body: not a JSON object")
        body = obj.pop("_body", "")
        headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
        return EslEvent(headers, body if isinstance(body, str) else json.dumps(body))
    if ctype == "text/event-plain":
        raw = frame.body
        end = raw.find(b"\n\n")
        block, rest = (raw, b"") if end < 0 else (raw[:end], raw[end + 2:])
        headers = _parse_headers(block, "text/event-plain body")
        length = _content_length(headers, "text/event-plain body")
        if len(rest) < length:
            raise EslProtocolError(
                f"text/event-plain body: inner Content-Length {length} but {len(rest)} bytes follow"
            )
        headers.pop("Content-Length", None)
        return EslEvent(headers, rest[:length].decode("utf-8", "replace"))
    raise EslProtocolError(f"Content-Type {ctype!r} is not an event")


# -- encoding (client commands, and the simulator's side of the wire) ---------------------------


def _check_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        # the value is not echoed: it may be the ESL password (a secret file's trailing newline)
        raise EslProtocolError(f"{what}: must be one line")
    return value


def encode_command(command: str, headers: dict[str, str] | None = None, body: str = "") -> bytes:
    """A client command (``api status``, ``sendmsg <uuid>`` + headers) as bytes on the wire.

    A line break inside the command or a header would smuggle in a second command, so it is
    refused with :class:`EslProtocolError`.
    """
    lines = [_check_line(command, "command")]
    for name, value in (headers or {}).items():
        lines.append(f"{_check_line(name, 'header name')}: {_check_line(value, name)}")
    data = body.encode()
    if data:
        lines.append(f"content-length: {len(data)}")
    return ("\n".join(lines) + "\n\n").encode() + data


def encode_frame(headers: dict[str, str], body: bytes = b"", *, urlencode: bool = False) -> bytes:
    """A frame as FreeSWITCH sends it; ``Content-Length`` is set (in place, or added last)
    to the body's length when there is a body."""
    lines = []
    for name, value in headers.items():
        if name == "Content-Length":
            value = str(len(body))
        lines.append(f"{name}: {quote(value, safe='') if urlencode else _check_line(value, name)}")
    if body and "Content-Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\n".join(lines) + "\n\n").encode() + body


def encode_event_plain(headers: dict[str, str], body: str = "") -> bytes:
    """A ``text/event-plain`` frame: URL-encoded header block, inner body if any."""
    inner = encode_frame(headers, body.encode(), urlencode=True)
    return f"Content-Length: {len(inner)}\nContent-Type: text/event-plain\n\n".encode() + inner


def encode_event_json(headers: dict[str, str], body: str = "") -> bytes:
    """A ``text/event-json`` frame (values not URL-encoded; the body under ``_body``)."""
    obj: dict[str, str] = dict(headers)
    if body:
        obj["_body"] = body
    data = json.dumps(obj, separators=(",", ":")).encode()
    return f"Content-Length: {len(data)}\nContent-Type: text/event-json\n\n".encode() + data


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A command as a client sends it: the first line, then optional headers (``sendmsg``)."""

    line: str
    headers: dict[str, str]


class EslCommandParser:
    """The server side's parser (used by the simulator): client commands out of bytes.

    A command is its first line plus optional ``Name: value`` lines, ended by an empty line.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ClientCommand]:
        """Add ``data``; return every command now complete. Raises :class:`EslProtocolError`."""
        self._buf += data
        out: list[ClientCommand] = []
        while True:
            end = self._buf.find(b"\n\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise EslProtocolError(f"command: no end after {MAX_HEADER_BYTES} bytes")
                return out
            block = bytes(self._buf[:end]).decode("utf-8", "replace").replace("\r", "")
            del self._buf[: end + 2]
            line, _, rest = block.lstrip("\n").partition("\n")
            if line:
                out.append(ClientCommand(line.strip(), _parse_headers(rest.encode(), "command")))
