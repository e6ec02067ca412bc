"""``ccserver users create-admin``: the first administrator, with a password typed in or piped."""

from __future__ import annotations

import getpass
import re
import sys

from ccserver.api.models import NAME
from ccserver.api.store import Conflict, Store
from ccserver.config import Config
from ccserver.db.migrate import migrate, migrations_dir
from ccserver.db.pool import open_pool, resolve_dsn

MIN_PASSWORD = 12


def read_password(from_stdin: bool) -> str:
    """The new password: one line from stdin, or typed twice at a prompt (never echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New admin password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


async def create_admin(config: Config, username: str, password: str) -> int:
    """Create an admin user (applying pending migrations first); returns the process exit code."""
    if not re.fullmatch(NAME, username):
        print(f"ccserver: username: must match {NAME}", file=sys.stderr)
        return 2
    if len(password) < MIN_PASSWORD:
        print(f"ccserver: password: must be at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        await migrate(pool, migrations_dir())
        user = await Store(pool).create_user(username, password, "admin", display_name=username)
        await Store(pool).audit(None, "user.create", str(user.id), {"username": username, "role": "admin"},
                                "cli", "ok", username="(cli)")
    except Conflict as e:
        print(f"ccserver: username: already taken ({e})", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(f"created admin {username!r} (id {user.id})")
    return 0
