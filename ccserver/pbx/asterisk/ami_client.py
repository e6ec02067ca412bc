"""One AMI connection that stays up: panoramisk's response matching, our framing and lifecycle.

What we keep from panoramisk: :class:`~panoramisk.ami_protocol.AMIProtocol` and its
``handle_message``/:class:`~panoramisk.actions.Action` machinery, which matches replies (and
event lists) to actions by ``ActionID``. What we replace, and why:

* ``data_received``: panoramisk decodes every TCP chunk on its own with ``errors='ignore'``, so a
  UTF-8 character split across two reads silently disappears. Our :class:`AmiParser` buffers bytes
  until a message is complete; a bad frame is logged and skipped, never fatal.
* ``send``: panoramisk writes values as given, so a CR/LF in a value injects headers; we go
  through :func:`ami_codec.encode`, which refuses them.
* ``panoramisk.Manager``'s lifecycle: a fixed reconnect timer, a Ping nobody checks (a half-open
  TCP connection is never noticed), and re-sending unanswered actions after a reconnect (a stale
  ``Redirect`` replayed minutes later). :class:`AmiConnection` reconnects with a capped
  exponential backoff and jitter (:class:`~ccserver.pbx.backoff.Backoff`), declares the link
  dead when a Ping goes unanswered, and fails pending actions with
  :class:`ConnectionError` instead of replaying them.

Secrets: the Login action is built and written here and never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message as PanoMessage

from ccserver.pbx.asterisk.ami_codec import AmiParser, BadFrame, Banner, Message, encode
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.base import why

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``Filter`` actions sent after login: drop at the source the busy events ccserver never reads.
#: (``Filter`` needs the ``system`` write class, main/manager.c; a user without it does not send
#: them, and manager.conf's static ``eventfilter``s stand in.)
DEFAULT_FILTERS: tuple[str, ...] = (
    "VarSet", "CEL", "Newexten", "RTCPSent", "RTCPReceived", "DeviceStateChange",
)


class LoginFailed(Exception):
    """Asterisk refused the credentials."""


def _to_panoramisk(msg: Message) -> PanoMessage:
    headers: dict[str, str | list[str]] = {k: msg.multi.get(k, v) for k, v in msg.items()}
    pm = PanoMessage(headers)
    pm.ami = msg  # lets AmiConnection hand our own Message back to callers
    return pm


class AmiProtocol(AMIProtocol):
    """panoramisk's protocol with byte-level framing and CR/LF-safe writes.

    Every event goes to ``on_event`` in stream order, including event-list items (they carry the
    ActionID); replies to pending actions also complete their futures through ``handle_message``.
    """

    def __init__(self, on_event: Callable[[Message], None]):
        self._on_event = on_event
        self._parser = AmiParser()
        loop = asyncio.get_running_loop()
        #: resolves with the AMI version once the banner arrived
        self.banner: asyncio.Future[str] = loop.create_future()
        #: resolves when the connection is gone
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.log = log

    def data_received(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, Message):
                if "Event" in item:
                    if item["Event"] == "Shutdown":  # Asterisk is going away; reconnect later
                        self.transport.close()
                    self._on_event(item)
                aid = item.get("ActionID")
                if aid is not None and aid in self.responses:
                    self.handle_message(_to_panoramisk(item))
            elif isinstance(item, BadFrame):
                log.warning("AMI: skipped a bad frame (%s): %r", item.reason, item.raw[:80])
            elif isinstance(item, Banner) and not self.banner.done():
                self.version = item.version
                self.banner.set_result(item.version)

    def request(self, action: Mapping[str, str | Sequence[str]]) -> actions.Action:
        """Write one action; its ``future`` resolves with the reply (a list for event lists).

        Raises ``ValueError`` if a value contains CR or LF, before anything is written.
        """
        if self.closed:
            raise ConnectionError("AMI connection is closed")
        act = actions.Action(dict(action))
        pairs = [("Action", str(act["Action"]))]
        for k, v in act.items():
            if k.lower() != "action":
                pairs.extend((k, str(x)) for x in (v if isinstance(v, (list, tuple)) else [v]))
        payload = encode(pairs)
        self.responses[act.id] = act
        self.transport.write(payload)
        return act

    def forget(self, act: actions.Action) -> None:
        """Stop waiting for replies to ``act`` (it timed out)."""
        self.responses.pop(act.id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost.done():
            return
        self.closed = True
        if not self.banner.done():  # closed before saying hello: try again now, not at the timeout
            self.banner.set_exception(ConnectionError("AMI connection closed before the banner"))
        for act in self.responses.values():
            if not act.future.done():
                act.future.set_exception(ConnectionError("AMI connection lost"))
                act.future.exception()  # retrieved: nobody may be waiting any more
        self.responses.clear()
        self.lost.set_result(None)


async def _in_time(aw: Awaitable[T], seconds: float, what: str) -> T:
    """``aw`` within ``seconds``, else a ``TimeoutError`` saying what did not come (asyncio's
    own has no message, and the reconnect loop logs the message)."""
    try:
        async with asyncio.timeout(seconds):
            return await aw
    except TimeoutError:
        raise TimeoutError(f"no {what} within {seconds:g}s") from None


class AmiConnection:
    """Keep one logged-in AMI session to ``host:port`` alive until :meth:`stop`.

    ``on_event`` gets every event as it arrives (synchronously, in order). ``on_up`` is awaited
    after each successful login and filter setup, before Pings start; if it raises, the session
    is dropped and retried. ``on_down`` is called once for each session that had been up.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        events_mask: str,
        on_event: Callable[[Message], None],
        on_up: Callable[[], Awaitable[None]],
        on_down: Callable[[], None],
        ping_interval: float,
        ping_timeout: float,
        *,
        backoff: Backoff,
        filters: Sequence[str] = DEFAULT_FILTERS,
        connect_timeout: float = 5.0,
        action_timeout: float = 10.0,
        logoff_timeout: float = 1.0,
    ):
        self.host, self.port, self.username = host, port, username
        self._secret = secret
        self._events_mask = events_mask
        self._on_event, self._on_up, self._on_down = on_event, on_up, on_down
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
        self._backoff = backoff
        self._filters = tuple(filters)
        self._connect_timeout, self._action_timeout = connect_timeout, action_timeout
        self._logoff_timeout = logoff_timeout
        self._protocol: AmiProtocol | None = None
        self._up = False
        #: stop() is logging off: the link closing now is expected, not a loss to reconnect
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: the actions this user may send, as ``ListCommands`` listed them at the last login
        #: (None: not known, e.g. the reply was refused)
        self.allowed: frozenset[str] | None = None
        #: the missing-Filter-right line is logged once for this link, not at every login
        self._filters_refusal_logged = False

    def __repr__(self) -> str:  # never the secret
        return f"AmiConnection({self.username}@{self.host}:{self.port})"

    @property
    def connected(self) -> bool:
        """Logged in, filters set, and the transport is open."""
        return self._up and self._protocol is not None and not self._protocol.closed

    async def start(self) -> None:
        """Start connecting in the background; return at once."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"ami {self.host}:{self.port}")

    async def stop(self) -> None:
        """Log off, close the session and stop reconnecting.

        A logged-in session gets ``Action: Logoff`` first, so Asterisk ends it as a client
        leaving (``Response: Goodbye``, then it closes; capture asterisk-ami/01) rather than a
        dropped link. The wait for that reply is bounded by ``logoff_timeout``: a shutdown never
        hangs on a dead or silent peer.
        """
        task, self._task = self._task, None
        if task is not None and self.connected:
            self._stopping = True
            try:
                await self._request({"Action": "Logoff"}, self._logoff_timeout)
            except (ConnectionError, TimeoutError):
                pass  # gone or silent: closing the socket below ends the session all the same
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def send_action(
        self, action: Mapping[str, str | Sequence[str]], timeout: float | None = None
    ) -> Message:
        """Send an action and return its reply (for an event-list action, the first reply).

        ``Response: Error`` is returned, not raised. Raises :class:`ConnectionError` when not
        connected or when the connection drops before the reply, ``TimeoutError`` after
        ``timeout`` (default ``action_timeout``).
        """
        res = await self._request(action, timeout)
        return res[0] if isinstance(res, list) else res

    async def send_list_action(
        self, action: Mapping[str, str | Sequence[str]], timeout: float | None = None
    ) -> list[Message]:
        """Send an event-list action (``CoreShowChannels``, ...); return the reply, every item and
        the ``...Complete`` event. A refused action returns just its ``Response: Error``."""
        res = await self._request(action, timeout)
        return res if isinstance(res, list) else [res]

    async def _request(
        self, action: Mapping[str, str | Sequence[str]], timeout: float | None
    ) -> Message | list[Message]:
        proto = self._protocol
        if proto is None or proto.closed:
            raise ConnectionError(f"AMI {self.host}:{self.port} is not connected")
        act = proto.request(action)
        try:
            res = await _in_time(act.future, timeout or self._action_timeout,
                                 f"reply to {action.get('Action')}")
        except TimeoutError:
            proto.forget(act)
            raise
        return [m.ami for m in res] if isinstance(res, list) else res.ami

    # -- lifecycle ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
                if self._stopping:
                    return
            except LoginFailed as e:
                log.error("AMI login to %s:%s as user %r failed: %s", self.host, self.port,
                          self.username, e)
            except (OSError, ConnectionError, TimeoutError) as e:
                log.warning("AMI %s:%s: %s", self.host, self.port, why(e))
            except Exception:
                log.exception("AMI %s:%s: session failed", self.host, self.port)
            wait = self._backoff.next_wait()
            log.info("AMI %s:%s: reconnecting in %.2fs", self.host, self.port, wait)
            await asyncio.sleep(wait)

    async def _session(self) -> None:
        """Connect, log in, set filters, call on_up, then ping until the link dies.

        Returns normally only after a session that was up ended.
        """
        loop = asyncio.get_running_loop()
        transport, proto = await _in_time(
            loop.create_connection(lambda: AmiProtocol(self._on_event), self.host, self.port),
            self._connect_timeout, "TCP connection")
        self._protocol = proto
        try:
            await _in_time(proto.banner, self._connect_timeout, "AMI banner")
            reply = await self.send_action(
                {"Action": "Login", "Username": self.username, "Secret": self._secret,
                 "Events": self._events_mask},
                self._connect_timeout,
            )
            if reply.get("Response") != "Success":
                raise LoginFailed(reply.get("Message", "login refused"))
            self.allowed = await self._list_commands()
            await self._set_filters()
            self._up = True
            self._backoff.link_up()
            log.info("AMI %s:%s: logged in as %r", self.host, self.port, self.username)
            await self._on_up()
            await self._keepalive(proto)
        finally:
            self._protocol = None
            transport.abort()
            if self._up:
                self._up = False
                self._on_down()

    async def _list_commands(self) -> frozenset[str] | None:
        """The actions this user may send: ``ListCommands`` lists exactly those
        (``action_listcommands`` in main/manager.c; every user may send it), one header each."""
        reply = await self.send_action({"Action": "ListCommands"}, self._connect_timeout)
        if reply.get("Response") != "Success":
            return None
        return frozenset(k for k in reply if k not in ("Response", "ActionID", "Message"))

    async def _set_filters(self) -> None:
        if not self._filters:
            return
        refused: list[str] = []
        if self.allowed is not None and "Filter" not in self.allowed:
            refused = list(self._filters)
        else:
            for name in self._filters:
                reply = await self.send_action(
                    {"Action": "Filter", "Operation": "Add",
                     "MatchCriteria": f"action(exclude),name({name})", "Filter": ""}
                )
                if reply.get("Response") != "Success":
                    refused.append(name)
        if refused and not self._filters_refusal_logged:
            self._filters_refusal_logged = True
            log.warning("AMI %s:%s: user %r may not send Filter (needs the write class system): "
                        "%s not filtered at the source; manager.conf's eventfilter lines can drop "
                        "them", self.host, self.port, self.username, ", ".join(refused))

    async def _keepalive(self, proto: AmiProtocol) -> None:
        """Ping every ``ping_interval``; no reply within ``ping_timeout`` means a dead link."""
        while True:
            done, _ = await asyncio.wait({proto.lost}, timeout=self._ping_interval)
            if done:
                if not self._stopping:
                    log.warning("AMI %s:%s: connection lost", self.host, self.port)
                return
            try:
                await self._request({"Action": "Ping"}, self._ping_timeout)
            except ConnectionError:
                log.warning("AMI %s:%s: connection lost", self.host, self.port)
                return
            except TimeoutError:
                log.warning("AMI %s:%s: no reply to Ping within %.1fs, reconnecting", self.host,
                            self.port, self._ping_timeout)
                return
