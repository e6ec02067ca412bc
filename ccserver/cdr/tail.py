"""``ccserver cdr tail``: print the latest call records and follow new ones."""

from __future__ import annotations

import asyncio
from datetime import datetime

from ccserver.config import Config
from ccserver.db.pool import open_pool, resolve_dsn

_COLUMNS = ("call_id, ended_at, end_estimated, node, did, caller, queue, agent_id, disposition, hangup_cause, "
            "hangup_by, talk_seconds")
HEADER = f"{'ended':20} {'call id':24} {'caller':16} {'queue':10} {'agent':8} {'disposition':12} {'cause':16} {'by':7} talk"


def format_row(r) -> str:
    ended = r["ended_at"].astimezone().strftime("%Y-%m-%d %H:%M:%S") if isinstance(r["ended_at"], datetime) else ""
    if r["end_estimated"]:  # the call ended while the PBX link was down: the link-down time
        ended = "~" + ended
    return (
        f"{ended:20} {r['call_id']:24} {r['caller'] or '':16} {r['queue'] or '-':10} {r['agent_id'] or '-':8} "
        f"{r['disposition']:12} {r['hangup_cause']:16} {r['hangup_by']:7} {float(r['talk_seconds']):.1f}s"
    )


async def run_tail(config: Config, n: int = 10, follow: bool = True, poll: float = 1.0) -> int:
    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        rows = await pool.fetch(
            f"SELECT {_COLUMNS}, inserted_at FROM calls ORDER BY inserted_at DESC, call_id DESC LIMIT $1", n
        )
        print(HEADER, flush=True)
        for r in reversed(rows):
            print(format_row(r), flush=True)
        last = max((r["inserted_at"] for r in rows), default=None)
        seen = {r["call_id"] for r in rows if r["inserted_at"] == last}
        while follow:
            await asyncio.sleep(poll)
            new = await pool.fetch(
                f"SELECT {_COLUMNS}, inserted_at FROM calls WHERE $1::timestamptz IS NULL OR inserted_at >= $1 "
                "ORDER BY inserted_at, call_id",
                last,
            )
            for r in new:
                if r["call_id"] in seen:
                    continue
                print(format_row(r), flush=True)
                if r["inserted_at"] != last:
                    last, seen = r["inserted_at"], set()
                seen.add(r["call_id"])
    finally:
        await pool.close()
    return 0
