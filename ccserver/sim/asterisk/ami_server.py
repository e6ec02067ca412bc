"""The AMI side of the simulated Asterisk: a TCP server speaking AMI 11.0.0 like Asterisk 22.

Session handling mirrors ``main/manager.c``: banner, Login/Logoff, per-session event class mask
(``Events:`` at login and the ``Events`` action), per-session filters, Ping, ListCommands, the
user's ``write`` classes checked against each action's (``ami_privileges``: an action the user may
not send gets ``Permission denied``, as ``process_message`` answers), and the error texts for
unknown or unauthenticated actions. Everything else is delegated to an action handler.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from ccserver.pbx.asterisk.ami_codec import AmiParser, BadFrame, Message, encode

from .ami_filters import EventFilter, FilterError, parse_filter, should_send
from .ami_privileges import ACTION_CLASSES, CLASS_ORDER, allowed_actions, may_send, priv_text
from .channels import Pairs

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
#: event classes in Asterisk's ``perms[]`` order (the order used in ``Privilege:``)
CLASSES = {
    "system": 1, "call": 2, "log": 4, "verbose": 8, "command": 16, "agent": 32, "user": 64,
    "config": 128, "dtmf": 256, "reporting": 512, "cdr": 1024, "dialplan": 2048,
    "originate": 4096, "agi": 8192, "cc": 16384, "aoc": 32768, "test": 65536,
    "security": 131072, "message": 262144,
}
ALL_CLASSES = sum(CLASSES.values())
#: a client this far behind is dropped, as Asterisk does after its write timeout
MAX_BACKLOG = 16 << 20
_TRUE = {"yes", "true", "y", "t", "1", "on"}
_FALSE = {"no", "false", "n", "f", "0", "off"}

#: handler(session, action) -> False when the action name is unknown
ActionHandler = Callable[["AmiSession", Message], Awaitable[bool]]


def privilege(category: int) -> str:
    """``call`` -> ``call,all`` as in the ``Privilege:`` header."""
    return ",".join([n for n, bit in CLASSES.items() if category & bit] + ["all"])


def strings_to_mask(value: str) -> int:
    """Asterisk's ``strings_to_mask``: number, boolean, or a comma list of class names."""
    if value.isdigit():
        return int(value)
    if value.lower() in _FALSE:
        return 0
    if value.lower() in _TRUE:
        return ALL_CLASSES
    names = {p.strip().lower() for p in value.split(",")}
    return sum(bit for n, bit in CLASSES.items() if n in names or "all" in names)


def event_tv(t: float | None = None) -> str:
    """``2026-11-24T00:48:23.562+0000`` (security events)."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"


#: actions Asterisk 22 registers, lower-cased (Asterisk finds an action whatever its case)
_REGISTERED = frozenset(name.lower() for name in ACTION_CLASSES)


class AmiEvent:
    """One event, encoded once and offered to every session."""

    __slots__ = ("name", "category", "headers", "data", "_text")

    def __init__(self, name: str, category: int, headers: Pairs):
        self.name = name
        self.category = category
        pairs = [("Event", name), ("Privilege", privilege(category)), *headers]
        self.headers = dict(pairs)
        self.data = encode(pairs)
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.data.decode("utf-8", "replace")
        return self._text


class AmiSession:
    """One connected AMI client."""

    _ids = itertools.count(0x7FBA28001640, 0x1E70)

    def __init__(self, server: AmiServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username = ""
        self.send_events = ALL_CLASSES
        self.includes: list[EventFilter] = []
        self.excludes: list[EventFilter] = []
        self.session_id = f"0x{next(self._ids):x}"
        self.started = time.time()
        local, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
        self.local_address = f"IPV4/TCP/{local[0]}/{local[1]}"
        self.remote_address = f"IPV4/TCP/{peer[0]}/{peer[1]}" if peer else "IPV4/TCP/0.0.0.0/0"

    # -- output -------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.server.frozen or self.writer.is_closing():
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.writer.transport.abort()

    def send(self, pairs: Pairs) -> None:
        self.write(encode(pairs))

    def respond(self, msg: Message, response: str, message: str | None = None,
                extra: Pairs = ()) -> None:
        """``Response:`` then ActionID (only when the action had one), Message, extra headers."""
        pairs: Pairs = [("Response", response)]
        if "ActionID" in msg:
            pairs.append(("ActionID", msg["ActionID"]))
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        self.send(pairs)

    def ack(self, msg: Message, message: str | None = None, extra: Pairs = ()) -> None:
        self.respond(msg, "Success", message, extra)

    def error(self, msg: Message, message: str) -> None:
        self.respond(msg, "Error", message)

    def list_item(self, msg: Message, event: str, pairs: Pairs) -> None:
        """An item of a list response: ActionID right after Event, no Privilege."""
        head: Pairs = [("Event", event)]
        if "ActionID" in msg:
            head.append(("ActionID", msg["ActionID"]))
        self.send(head + list(pairs))

    def offer(self, ev: AmiEvent) -> None:
        """Deliver an event if this session's class mask and filters let it through."""
        if not self.authenticated or self.send_events & ev.category != ev.category:
            return
        if (self.includes or self.excludes) and not should_send(
                self.includes, self.excludes, ev.name, ev.headers, ev.text):
            return
        self.write(ev.data)

    def security_headers(self) -> Pairs:
        return [("SessionID", self.session_id), ("LocalAddress", self.local_address),
                ("RemoteAddress", self.remote_address)]

    # -- input --------------------------------------------------------------------------
    async def run(self) -> None:
        parser = AmiParser(expect_banner=False)
        self.write(BANNER)
        try:
            while data := await self.reader.read(65536):
                if self.server.frozen:
                    continue  # a half-open peer: what it sends is lost
                for item in parser.feed(data):
                    msg = Message() if isinstance(item, BadFrame) else item
                    assert isinstance(msg, Message)
                    if not await self._process(msg):
                        return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.server.sessions.discard(self)
            self.writer.close()

    async def _process(self, msg: Message) -> bool:
        """Handle one action; False closes the session."""
        action = msg.get("Action", "").strip()
        low = action.lower()
        if not action:
            self.error(msg, "Missing action in request")
            return True
        if not self.authenticated and low not in ("login", "logoff", "challenge"):
            self.error(msg, "Permission denied")
            return True
        if low == "login":
            return await self._login(msg)
        self.server.actions.append(msg)
        if low == "logoff":
            self.respond(msg, "Goodbye", "Thanks for all the fish.")
            await self._drain()
            return False
        if low in _REGISTERED and not may_send(self.server.write, action):
            self.error(msg, "Permission denied")
            self._security_event("RequestNotAllowed", action)
        elif low == "ping":
            self.ack(msg, extra=[("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
        elif low == "listcommands":
            self._list_commands(msg)
        elif low == "events":
            self._events(msg)
        elif low == "filter":
            self._filter(msg)
        elif not await self.server.handler(self, msg):
            self.error(msg, f"Invalid/unknown command: {action}. Use Action: ListCommands to "
                            "show available commands.")
            self._security_event("RequestBadFormat", action)
        return True

    def _security_event(self, name: str, action: str) -> None:
        self.server.broadcast(name, CLASSES["security"], [
            ("EventTV", event_tv()), ("Severity", "Error"), ("Service", "AMI"),
            ("EventVersion", "1"), *self.security_headers(),
            ("RequestType", f"Action: {action}"), ("SessionTV", event_tv(self.started)),
            ("AccountID", self.username)])

    def _list_commands(self, msg: Message) -> None:
        """``action_listcommands``: one ``Name: synopsis (Priv: ...)`` line per action the user
        may send (capture 08 shows the real list; the synopsis here is the action's name)."""
        self.ack(msg, extra=[(name, f"{name}.  (Priv: {priv_text(name)})")
                             for name in allowed_actions(self.server.write)])

    async def _login(self, msg: Message) -> bool:
        if self.authenticated:
            self.ack(msg, "Already authenticated")
            return True
        if (msg.get("Username"), msg.get("Secret")) != (self.server.user, self.server.secret):
            await asyncio.sleep(self.server.auth_fail_delay)  # manager.c sleeps 1 s
            self.error(msg, "Authentication failed")
            await self._drain()
            return False
        self.authenticated = True
        self.username = msg["Username"]
        if msg.get("Events"):
            self.send_events = strings_to_mask(msg["Events"])
        self.ack(msg, "Authentication accepted")
        if self.send_events & CLASSES["system"]:
            up = str(int(time.time() - self.server.booted))
            self.send([("Event", "FullyBooted"), ("Privilege", privilege(CLASSES["system"])),
                       ("Uptime", up), ("LastReload", up), ("Status", "Fully Booted")])
        now = event_tv()
        self.server.broadcast("SuccessfulAuth", CLASSES["security"], [
            ("EventTV", now), ("Severity", "Informational"), ("Service", "AMI"),
            ("EventVersion", "1"), ("AccountID", self.username), *self.security_headers(),
            ("UsingPassword", "0"), ("SessionTV", now)])
        return True

    def _events(self, msg: Message) -> None:
        mask = msg.get("EventMask", "")
        self.send_events = strings_to_mask(mask) if mask else ALL_CLASSES
        self.ack(msg, extra=[("Events", "On" if self.send_events else "Off")])

    def _filter(self, msg: Message) -> None:
        if msg.get("Operation", "").lower() != "add":
            self.error(msg, "Unknown operation")
            return
        try:
            f = parse_filter(msg.get("MatchCriteria", ""), msg.get("Filter", ""))
        except FilterError as exc:
            self.error(msg, str(exc))
            return
        (self.includes if f.include else self.excludes).append(f)
        self.ack(msg, "Success")

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except ConnectionError:
            pass


class AmiServer:
    """Accepts AMI clients and fans events out to them."""

    def __init__(self, handler: ActionHandler, *, user: str, secret: str,
                 write: frozenset[str] = frozenset(CLASS_ORDER), auth_fail_delay: float = 1.0):
        self.handler = handler
        self.user = user
        self.secret = secret
        #: the user's ``write`` classes (manager.conf): what it may send
        self.write = write
        #: every action a logged-in session sent, allowed or not, in order
        self.actions: list[Message] = []
        self.auth_fail_delay = auth_fail_delay
        self.sessions: set[AmiSession] = set()
        self.frozen = False
        self.booted = time.time()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def drop_all(self) -> None:
        """Abruptly close every client socket (no Goodbye)."""
        for s in list(self.sessions):
            s.writer.transport.abort()
        self.sessions.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await session.run()
        except asyncio.CancelledError:
            # Swallowed on purpose: Python 3.11's start_server callback calls task.exception()
            # on the handler task and logs a cancelled one as an error.
            pass
        finally:
            self._tasks.discard(task)

    def broadcast(self, name: str, category: int, headers: Pairs) -> None:
        """Emit an event to every session that subscribed to its class."""
        if not self.sessions:
            return
        ev = AmiEvent(name, category, headers)
        for s in list(self.sessions):
            s.offer(ev)
