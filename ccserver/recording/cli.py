"""``ccserver recordings purge [--dry-run]``: apply the retention now (or list what it would delete)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ccserver.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``recordings purge`` on the main parser's subcommands."""
    rec = sub.add_parser("recordings", help="manage call recordings",
                         description="Call recordings: retention.")
    rec_sub = rec.add_subparsers(dest="recordings_command", metavar="RECORDINGS_COMMAND")
    rec_sub.required = True
    purge = rec_sub.add_parser(
        "purge", help="delete recordings (files and rows) older than the retention age",
        description="Delete every finished recording started more than recording.retention_days ago "
        "(or --older-than-days), file first, then its row. With --dry-run, only list them.",
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    purge.add_argument("--older-than-days", type=float, metavar="DAYS",
                       help="override recording.retention_days for this run")


async def run_purge(config: Config, dry_run: bool, older_than_days: float | None) -> int:
    from ccserver.db.pool import open_pool, resolve_dsn
    from ccserver.hardware import load_nodes
    from ccserver.recording.retention import purge
    from ccserver.recording.store import RecordingStore

    days = older_than_days if older_than_days is not None else config.recording.retention_days
    if days is None or days <= 0:
        print("ccserver: recordings purge: no retention age: set recording.retention_days or pass "
              "--older-than-days (a positive number)", file=sys.stderr)
        return 2
    roots = {n.name: Path(n.recording_root) for n in load_nodes(config.hardware_dir)}
    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        done = await purge(RecordingStore(pool), roots, timedelta(days=days), datetime.now(UTC),
                           dry_run=dry_run)
    finally:
        await pool.close()
    verb = "would delete" if dry_run else "deleted"
    for p in done:
        print(f"{verb} recording {p.recording.id} call {p.recording.call_id} started "
              f"{p.recording.started_at.isoformat()} {p.path or '(node not configured: row only)'}")
    print(f"{verb} {len(done)} recording(s) older than {days:g} days")
    return 0
