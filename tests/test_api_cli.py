"""``ccserver users create-admin``: the first admin, password from stdin, never a default."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from ccserver.api.passwords import verify_password


async def create_admin(db_dsn: str, cwd, username: str, stdin: bytes) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCSERVER_")}
    env["CCSERVER_DATABASE__DSN"] = db_dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccserver", "users", "create-admin", username, "--password-stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=env, cwd=cwd,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode()


async def users(db_dsn: str):
    conn = await asyncpg.connect(db_dsn)
    try:
        return await conn.fetch("SELECT username, role, password_hash FROM users")
    finally:
        await conn.close()


async def test_create_admin_from_stdin(db_dsn, tmp_path):
    code, out = await create_admin(db_dsn, tmp_path, "root-admin", b"a long enough secret\n")
    assert code == 0, out
    (row,) = await users(db_dsn)
    assert (row["username"], row["role"]) == ("root-admin", "admin")
    assert "a long enough secret" not in row["password_hash"] + out
    assert verify_password("a long enough secret", row["password_hash"])
    code, out = await create_admin(db_dsn, tmp_path, "root-admin", b"another long secret\n")
    assert code == 1 and "username: already taken" in out


async def test_create_admin_refuses_short_passwords_and_bad_names(db_dsn, tmp_path):
    code, out = await create_admin(db_dsn, tmp_path, "admin", b"short\n")
    assert code == 2 and "password: must be at least 12 characters" in out
    code, out = await create_admin(db_dsn, tmp_path, "bad name", b"a long enough secret\n")
    assert code == 2 and "username: must match" in out
    code, out = await create_admin(db_dsn, tmp_path, "admin", b"")
    assert code == 2
    conn = await asyncpg.connect(db_dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('users') IS NOT NULL")
        assert not exists or await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()
