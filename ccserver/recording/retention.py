"""Retention: recordings (file and row) older than the configured age are deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ccserver.recording.files import UnsafePath, recording_path
from ccserver.recording.store import Recording, RecordingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Purged:
    """One recording past its retention: removed, or only listed (dry run)."""

    recording: Recording
    path: Path | None
    deleted: bool


async def purge(store: RecordingStore, roots: Mapping[str, Path], max_age: timedelta, now: datetime,
                dry_run: bool) -> list[Purged]:
    """Delete (or, dry run, list) finished recordings started more than ``max_age`` before ``now``.

    The file goes first, then the row, so a crash in between leaves a row to retry, never an
    orphan file. Rows of nodes not configured any more go with their row only.
    """
    out: list[Purged] = []
    for rec in await store.older_than(now - max_age):
        if rec.ended_at is None:
            continue  # still being written
        root = roots.get(rec.node)
        try:
            path = recording_path(root, rec.file) if root is not None else None
        except UnsafePath as e:
            log.error("recording %d: %s; row kept for inspection", rec.id, e)
            continue
        if not dry_run:
            if path is not None:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            await store.delete(rec.id)
        out.append(Purged(rec, path, not dry_run))
    return out


async def retention_loop(store: RecordingStore, roots: Mapping[str, Path], days: float,
                         interval: float, clock: Callable[[], float]) -> None:
    """Run :func:`purge` every ``interval`` seconds, forever (a failed run is logged and retried)."""
    while True:
        try:
            done = await purge(store, roots, timedelta(days=days),
                               datetime.fromtimestamp(clock(), UTC), dry_run=False)
            if done:
                log.info("retention: deleted %d recording(s) older than %g days", len(done), days)
        except Exception:
            log.exception("retention run failed; retrying in %.0fs", interval)
        await asyncio.sleep(interval)
