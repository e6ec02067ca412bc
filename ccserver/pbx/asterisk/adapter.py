"""The Asterisk PBX adapter: AMI events in, PBX-neutral commands out (see pbx/base.py).

Glue only: :class:`AmiConnection` keeps the session up, :class:`AmiNormalizer` turns events
into domain events, and this class maps commands onto AMI actions for ccserver's dialplan
(``dialplans/asterisk/extensions.conf``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from posixpath import normpath

from ccserver.core.commands import Command, HangupCall, RingAgent, StartRecording, StopRecording
from ccserver.core.events import AgentLegFailed, NodeConnectionChanged
from ccserver.hardware import NodeConfig
from ccserver.pbx.asterisk.ami_client import AmiConnection
from ccserver.pbx.asterisk.ami_codec import Message
from ccserver.pbx.asterisk.normalize import AmiNormalizer
from ccserver.pbx.base import CommandFailed, EventSink

log = logging.getLogger(__name__)

#: AMI event classes of everything AmiNormalizer reads (the Privilege: of Newchannel, Newstate,
#: DialBegin/End, Hold, MixMonitor*, Hangup* is "call"; DTMFEnd is "dtmf").
EVENTS_MASK = "call,dtmf"
CONNECT_CONTEXT = "ccserver-connect"


class AsteriskAdapter:
    """A :class:`~ccserver.pbx.base.PbxAdapter` for one Asterisk node."""

    def __init__(
        self,
        node: NodeConfig,
        sink: EventSink,
        secret: str,
        clock: Callable[[], float] = time.time,
    ):
        self.node = node.name
        self._recording_root = node.recording_root.rstrip("/")
        self._sink = sink
        self._clock = clock
        self.normalizer = AmiNormalizer(node.name, set(node.inbound_contexts))
        self._conn = AmiConnection(
            node.host, node.ami_port, node.ami_user, secret, EVENTS_MASK,
            on_event=self._on_event, on_up=self._on_up, on_down=self._on_down,
            ping_interval=node.ping_interval, ping_timeout=node.ping_timeout,
        )
        self._ids = itertools.count(1)
        #: while a CoreShowChannels runs: its ActionID and the items received so far
        self._resync_id: str | None = None
        self._resync_items: list[Message] = []

    def __repr__(self) -> str:
        return f"AsteriskAdapter({self.node!r})"

    @property
    def connected(self) -> bool:
        return self._conn.connected

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background; return at once."""
        await self._conn.start()

    async def stop(self) -> None:
        await self._conn.stop()

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, msg: Message) -> None:
        if self._resync_id is not None and msg.get("ActionID") == self._resync_id:
            # Applied right at CoreShowChannelsComplete, in stream order: events before it are
            # older than the snapshot, events after it continue from it.
            if msg.get("Event") == "CoreShowChannel":
                self._resync_items.append(msg)
            elif msg.get("Event") == "CoreShowChannelsComplete":
                items, self._resync_id, self._resync_items = self._resync_items, None, []
                self._sink(self.normalizer.resync_from(items, self._clock()))
            return
        for event in self.normalizer.feed(msg, self._clock()):
            self._sink(event)

    async def _on_up(self) -> None:
        self._sink(NodeConnectionChanged(self.node, True, self._clock()))
        self._resync_id = f"ccserver-resync-{next(self._ids)}"
        self._resync_items = []
        replies = await self._conn.send_list_action(
            {"Action": "CoreShowChannels", "ActionID": self._resync_id}
        )
        if replies[0].get("Response") != "Success":
            self._resync_id = None
            raise CommandFailed(f"CoreShowChannels on {self.node}: {replies[0].get('Message')}")

    def _on_down(self) -> None:
        self._resync_id = None
        self._sink(NodeConnectionChanged(self.node, False, self._clock()))

    # -- commands ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> None:
        """Carry out ``command``; raise :class:`CommandFailed` if Asterisk refuses it."""
        if command.node != self.node:
            raise CommandFailed(f"command for node {command.node!r} sent to {self.node!r}")
        if isinstance(command, RingAgent):
            await self._ring(command)
        elif isinstance(command, HangupCall):
            await self._act({"Action": "Hangup", "Channel": command.channel,
                             "Cause": str(command.cause)})
        elif isinstance(command, StartRecording):
            await self._record(command)
        elif isinstance(command, StopRecording):
            await self._act({"Action": "StopMixMonitor", "Channel": command.channel})
        else:
            raise CommandFailed(f"unsupported command {type(command).__name__}")

    async def _ring(self, cmd: RingAgent) -> None:
        # The dialplan's [ccserver-connect] dials ${CC_AGENT_DEVICE} for ${CC_RING_TIMEOUT}s.
        try:
            await self._setvar(cmd.channel, "CC_AGENT_DEVICE", cmd.device)
            await self._setvar(cmd.channel, "CC_RING_TIMEOUT", str(cmd.timeout))
            await self._act({"Action": "Redirect", "Channel": cmd.channel,
                             "Context": CONNECT_CONTEXT, "Exten": "s", "Priority": "1"})
        except CommandFailed:
            # Nothing will ring, so no DialEnd will come: tell the core the leg failed.
            self._sink(AgentLegFailed(cmd.call_id, cmd.device, "error", self._clock()))
            raise

    async def _setvar(self, channel: str, name: str, value: str) -> None:
        await self._act({"Action": "Setvar", "Channel": channel, "Variable": name,
                         "Value": value})

    async def _record(self, cmd: StartRecording) -> None:
        name = normpath(cmd.file)
        if name.startswith(("/", "..")) or not name or name == ".":
            raise CommandFailed(f"recording file {cmd.file!r} must stay under the node's root")
        file = f"{self._recording_root}/{name}"
        self.normalizer.expect_recording(cmd.channel, file)  # MixMonitorStart has no file name
        try:
            await self._act({"Action": "MixMonitor", "Channel": cmd.channel, "File": file,
                             "Options": "b"})
        except CommandFailed:
            self.normalizer.expect_recording(cmd.channel, None)
            raise

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str = "",
        caller_id: str | None = None,
        timeout: float = 30.0,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Originate ``channel`` to a dialplan place or an application (``Async: true``).

        Returns once Asterisk reports the outcome (``OriginateResponse``); raises
        :class:`CommandFailed` if it was refused or the channel could not be reached.
        """
        action: dict[str, str | Sequence[str]] = {
            "Action": "Originate", "Channel": channel, "Async": "true",
            "Timeout": str(int(timeout * 1000)),
        }
        if application is not None:
            action |= {"Application": application, "Data": data}
        elif context is not None and exten is not None:
            action |= {"Context": context, "Exten": exten, "Priority": str(priority)}
        else:
            raise CommandFailed("originate needs an application or a context and exten")
        if caller_id is not None:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        try:
            replies = await self._conn.send_list_action(action, timeout=timeout + 10.0)
        except (ConnectionError, TimeoutError, ValueError) as e:
            raise CommandFailed(f"Originate {channel}: {e or type(e).__name__}") from e
        for reply in replies:
            if reply.get("Response") not in (None, "Success"):
                raise CommandFailed(f"Originate {channel}: "
                                    f"{reply.get('Message') or reply.get('Reason', 'failed')}")

    async def _act(self, action: dict[str, str]) -> Message:
        try:
            reply = await self._conn.send_action(action)
        except (ConnectionError, TimeoutError, ValueError) as e:
            why = e or type(e).__name__
            raise CommandFailed(f"{action['Action']} on {self.node}: {why}") from e
        if reply.get("Response") != "Success":
            raise CommandFailed(reply.get("Message") or f"{action['Action']} refused")
        return reply
