"""Glue between the PBX facts, the core's recording decisions and the ``recordings`` table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from ccserver.cdr.record import CallRecord
from ccserver.core.call import CallState
from ccserver.core.center import ContactCenter
from ccserver.core.commands import Command, MuteRecording
from ccserver.core.events import DomainEvent, RecordingFailed, RecordingStarted, RecordingStopped
from ccserver.recording.files import UnsafePath, recording_path, relative_name, root_problem
from ccserver.recording.store import RecordingStore, file_digest

log = logging.getLogger(__name__)


class RecordingRefused(Exception):
    """A recording request that cannot be carried out; nothing was changed."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Recorder:
    """Registers recordings, pauses / resumes them, refuses to start one it cannot store, and
    keeps an alert per node whose recordings fail to start (until one starts there again).

    ``roots`` maps each node to its recording root as this host sees it (the nodes write there:
    a shared folder, so size and checksum are those of the real file). The ``recording`` column
    of the CDR and the ``file`` of the ``recordings`` table are names relative to that root.
    """

    def __init__(self, store: RecordingStore, roots: Mapping[str, Path],
                 center: Callable[[], ContactCenter | None],
                 execute: Callable[[Command], Awaitable[None]], clock: Callable[[], float]) -> None:
        self.store, self.roots = store, dict(roots)
        self._center, self._execute, self._clock = center, execute, clock
        #: node -> why its last recording did not start
        self._failing: dict[str, str] = {}

    def problem(self, node: str) -> str | None:
        """Why no recording may be started on ``node`` now (its recording root must be a
        writable folder), or None."""
        root = self.roots.get(node)
        return f"node {node!r} has no recording root" if root is None else root_problem(root)

    def problems(self) -> tuple[str, ...]:
        """Console alerts: the nodes whose last recording failed to start, and why."""
        return tuple(f"recordings on node {node} do not start: {why}"
                     for node, why in sorted(self._failing.items()))

    async def on_event(self, event: DomainEvent | CallRecord) -> None:
        """Register starts and stops of recordings under a node's root (others are not ours).

        A call's CDR row closes what is still open of its recordings: the PBX's stop can be
        missing (the call ended while its link was down; Asterisk reports no MixMonitorStop when
        the channel hangs up), and a row left open could never be played nor purged. Fed in the
        order of the facts, so a stop the PBX did report is applied first.
        """
        if isinstance(event, CallRecord):
            for rec in await self.store.open_of_call(event.call_id):
                await self._close(rec.node, rec.file, event.ended_at)
            return
        if not isinstance(event, (RecordingStarted, RecordingFailed, RecordingStopped)):
            return
        node = event.call_id.partition(":")[0]
        if isinstance(event, RecordingFailed):
            log.error("call %s on node %s is not recorded: %s", event.call_id, node, event.reason)
            self._failing[node] = f"{event.reason} (call {event.call_id})"
            return
        root = self.roots.get(node)
        name = relative_name(root, event.file) if root is not None else None
        if name is None:
            return
        if isinstance(event, RecordingStarted):
            self._failing.pop(node, None)
            center = self._center()
            call = center.calls.get(event.call_id) if center else None
            await self.store.started(event.call_id, node, name, call.agent_id if call else None,
                                     call.queue if call else None, _at(event.at))
            return
        await self._close(node, name, event.at)

    async def _close(self, node: str, name: str, at: float) -> None:
        """Close the row of ``name`` with the file's size and checksum (None if unreadable)."""
        root = self.roots.get(node)
        size, digest = None, None
        if root is None:
            log.error("recording %s: node %r has no recording root any more; closed unread", name, node)
        else:
            try:
                size, digest = await asyncio.to_thread(file_digest, recording_path(root, name))
            except (OSError, UnsafePath) as e:
                log.error("recording %s on node %s: cannot read the closed file: %s", name, node, e)
                # reported started, yet nothing to read: Asterisk sends MixMonitorStart before its
                # thread creates the file (app_mixmonitor.c), so a file the PBX cannot write
                # shows only now. The console says so until a recording starts again.
                self._failing[node] = f"the PBX left no readable file {name} ({e})"
        await self.store.closed(node, name, _at(at), size, digest)

    async def set_paused(self, call_id: str, paused: bool) -> None:
        """Pause (card numbers) or resume the recording of a live call; the span is stored."""
        center = self._center()
        call = center.calls.get(call_id) if center else None
        if call is None or call.state is not CallState.CONNECTED:
            raise RecordingRefused(409, "call_id", f"call {call_id!r} is not a live connected call")
        rec = next((r for r in reversed(await self.store.of_call(call_id)) if r.ended_at is None), None)
        if rec is None:
            raise RecordingRefused(409, "call_id", f"call {call_id!r} is not being recorded")
        node, channel, file = call.node, call.channel, rec.file
        if rec.paused == paused:
            raise RecordingRefused(409, "call_id", f"the recording is already {'paused' if paused else 'running'}")
        await self._execute(MuteRecording(node, call_id, channel, file, paused))
        at = _at(self._clock())
        await (self.store.pause(node, file, at) if paused else self.store.resume(node, file, at))

    async def start_on_demand(self, call_id: str) -> str:
        """Start recording a live call whose policy is on demand; returns the file name."""
        center = self._center()
        if center is None:
            raise RecordingRefused(503, "call_id", "the contact center is starting")
        call = center.calls.get(call_id)
        if call is not None and call.node in self.roots:
            problem = root_problem(self.roots[call.node])
            if problem is not None:
                raise RecordingRefused(507, "node", problem)
        try:
            cmd = center.record_on_demand(call_id)
        except ValueError as e:
            raise RecordingRefused(409, "call_id", str(e)) from None
        # a refusal reaches the core through execute (RecordingFailed): another attempt may follow
        await self._execute(cmd)
        return cmd.file
