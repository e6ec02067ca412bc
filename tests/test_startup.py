"""Start-up: the site is checked before anything runs; an unreachable Postgres is waited for."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from pgproxy import PgProxy
from rig import free_port

from ccserver.app import Server
from ccserver.config import Config, ConfigError
from ccserver.hardware import NodeConfig

ROOT = Path(__file__).resolve().parents[1]


def with_password(dsn: str) -> tuple[str, str]:
    """``dsn`` with a password in it (the one it has, else one trust auth ignores) and that password."""
    p = urlsplit(dsn)
    password = p.password or "pw-never-logged-7f3a"
    netloc = f"{p.username or 'postgres'}:{password}@{p.netloc.rpartition('@')[2]}"
    return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment)), password


def demo_config(tmp_path: Path, dsn: str, **extra) -> Config:
    return Config.model_validate({
        "server": {"agi_port": 0, "state_dir": tmp_path / "state"},
        "database": {"dsn": dsn},
        "ivr": {"flows_dir": ROOT / "ivr_flows"},
        "simulator": {"enabled": "on", "calls_per_minute": 0.01, "agents": 1},
        "api": {"enabled": False},
        **extra,
    })


async def test_site_checks_run_before_the_database_and_the_listeners(tmp_path, monkeypatch):
    monkeypatch.delenv("CCSERVER_TEST_AMI_SECRET", raising=False)
    node = NodeConfig(name="pbx1", kind="asterisk", host="127.0.0.1", ami_user="cc",
                      ami_secret_env="CCSERVER_TEST_AMI_SECRET")
    agent = {"id": "1", "name": "A", "node": "pbx2", "device": "PJSIP/1", "queues": ["support"]}
    config = demo_config(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/none",
                         simulator={"enabled": "off"}, agents=[agent])
    server = Server(config, [node])
    # Postgres is not there: were the checks after the pool, start() would wait for it forever
    async with asyncio.timeout(5):
        with pytest.raises(ConfigError) as err:
            await server.start()
    assert "hardware node 'pbx1': ami_secret_env: environment variable CCSERVER_TEST_AMI_SECRET is not set" \
        in str(err.value)
    assert "agents[0].node: 'pbx2' is not a PBX node" in str(err.value)
    assert (server.fastagi, server.writer, server.simulator) == (None, None, None)


async def test_start_waits_for_postgres_then_comes_up(db_dsn, tmp_path, caplog):
    dsn, password = with_password(db_dsn)
    proxy = PgProxy(dsn)
    proxy.port = free_port()  # nothing listens there until proxy.start()
    server = Server(demo_config(tmp_path, proxy.dsn), [])
    caplog.set_level(logging.INFO, logger="ccserver.db.pool")
    starting = asyncio.create_task(server.start())
    try:
        async with asyncio.timeout(10):
            while not any("unreachable" in r.getMessage() for r in caplog.records):
                assert not starting.done(), starting.exception()
                await asyncio.sleep(0.05)
        assert (server.writer, server.fastagi) == (None, None)  # nothing runs without the database
        await proxy.start()
        async with asyncio.timeout(20):
            await starting
        assert await server._pool.fetchval("SELECT count(*) FROM schema_migrations") > 0
        assert server.fastagi is not None and server.simulator is not None
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await server.stop()
        await proxy.close()
    first = next(r for r in caplog.records if "unreachable" in r.getMessage())
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert f"Postgres at 127.0.0.1:{proxy.port} is unreachable (" in first.getMessage()
    assert "retrying in 1 s" in first.getMessage()
    assert any(r.getMessage() == f"Postgres at 127.0.0.1:{proxy.port} is reachable" for r in caplog.records)
    assert password not in caplog.text


async def test_ccserver_run_says_one_line_while_postgres_is_away_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCSERVER_")}
    env |= {"CCSERVER_DATABASE__DSN": f"postgresql://cc:pw-not-in-the-log@127.0.0.1:{port}/cc",
            "CCSERVER_SERVER__STATE_DIR": str(tmp_path / "state"), "CCSERVER_API__ENABLED": "false",
            "CCSERVER_SERVER__AGI_PORT": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccserver", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("unreachable" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "ccserver run ended: " + "".join(lines)
                lines.append(line)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "".join(lines) + rest
    assert code == 0, text
    assert f"Postgres at 127.0.0.1:{port} is unreachable" in text
    assert "Traceback" not in text and "pw-not-in-the-log" not in text
