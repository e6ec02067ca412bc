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
    env = run_env(tmp_path, CCSERVER_DATABASE__DSN=f"postgresql://cc:pw-not-in-the-log@127.0.0.1:{port}/cc")
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


def run_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a ``ccserver run`` in ``tmp_path``: no inherited CCSERVER_ settings,
    no HTTP API, a free FastAGI port; ``overrides`` are further CCSERVER_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCSERVER_")}
    return env | {"CCSERVER_SERVER__STATE_DIR": str(tmp_path / "state"), "CCSERVER_API__ENABLED": "false",
                  "CCSERVER_SERVER__AGI_PORT": "0", "CCSERVER_IVR__FLOWS_DIR": str(ROOT / "ivr_flows"),
                  **overrides}


async def ccserver_fails(tmp_path: Path, env: dict[str, str], *args: str,
                         command: tuple[str, ...] = ("run", "--duration", "30"),
                         stdin: bytes = b"") -> tuple[int, str]:
    """Run ``ccserver [args] command`` until it exits by itself; its exit code and standard error."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccserver", *args, *command, cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(60):
            _, err_bytes = await proc.communicate(stdin)
            err, code = err_bytes.decode(), proc.returncode
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in err, err
    return code, err


async def test_ccserver_run_names_a_configuration_error_found_at_start(tmp_path, db_dsn):
    (tmp_path / "site.toml").write_text(
        '[[agents]]\nid = "1"\nname = "A"\nnode = "nowhere"\ndevice = "PJSIP/1"\nqueues = ["support"]\n')
    code, err = await ccserver_fails(
        tmp_path, run_env(tmp_path, CCSERVER_DATABASE__DSN=db_dsn), "--config", "site.toml")
    assert code == 2
    assert err.startswith("ccserver: configuration error: agents[0].node: 'nowhere' is not a PBX node"), err


async def test_ccserver_run_lists_the_problems_of_broken_flows_before_connecting(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    for path in (ROOT / "ivr_flows").glob("*.yaml"):
        (flows / path.name).write_bytes(path.read_bytes())
    (flows / "main.yaml").write_text((flows / "main.yaml").read_text() + "\nbroken: [\n")
    # no Postgres listens there: the flows must be checked before the database is waited for
    env = run_env(tmp_path, CCSERVER_IVR__FLOWS_DIR=str(flows),
                  CCSERVER_DATABASE__DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/cc")
    code, err = await ccserver_fails(tmp_path, env)
    assert code == 1
    assert err.startswith(f"ccserver: cannot start: IVR flows are invalid:\n  {flows / 'main.yaml'}: line "), err
    assert "invalid YAML" in err and "unreachable" not in err


REFUSALS = [
    ("postgres", "ccs_no_such_database", 'database "ccs_no_such_database" does not exist'),
    ("ccs_no_such_role", "postgres", 'role "ccs_no_such_role" does not exist'),
]


@pytest.mark.parametrize(("user", "database", "cause"), REFUSALS)
async def test_ccserver_run_says_why_postgres_refused_it(tmp_path, pg_dsn, user, database, cause):
    server = urlsplit(pg_dsn).netloc.rpartition("@")[2]
    dsn = f"postgresql://{user}:pw-not-in-the-output@{server}/{database}"
    code, err = await ccserver_fails(tmp_path, run_env(tmp_path, CCSERVER_DATABASE__DSN=dsn))
    assert code == 1
    assert f"ccserver: cannot start: Postgres at {server} refused the connection: {cause}\n" in err, err
    assert "pw-not-in-the-output" not in err


#: the commands that use Postgres once and exit (they never wait for it, unlike ``run``)
ONE_SHOT_COMMANDS = [
    ("migrate",), ("migrate", "--status"), ("cdr", "tail", "--no-follow"),
    ("users", "create-admin", "root-admin", "--password-stdin"),
    ("flows", "import", str(ROOT / "ivr_flows"), "--user", "ops"), ("flows", "export", "exported"),
    ("recordings", "purge", "--older-than-days", "30"),
]


@pytest.mark.parametrize("command", ONE_SHOT_COMMANDS, ids=" ".join)
async def test_one_shot_commands_say_in_one_line_why_postgres_is_not_there(tmp_path, pg_dsn, command):
    port = free_port()  # nothing listens there
    env = run_env(tmp_path, CCSERVER_DATABASE__DSN=f"postgresql://cc:pw-not-in-the-output@127.0.0.1:{port}/cc")
    code, err = await ccserver_fails(tmp_path, env, command=command, stdin=b"a long enough secret\n")
    assert code == 1
    assert err.startswith(f"ccserver: Postgres at 127.0.0.1:{port} is unreachable (ConnectionRefusedError"), err
    assert err.count("\n") == 1 and "pw-not-in-the-output" not in err, err

    server = urlsplit(pg_dsn).netloc.rpartition("@")[2]
    for user, database, cause in REFUSALS:
        env = run_env(tmp_path, CCSERVER_DATABASE__DSN=f"postgresql://{user}:pw-not-in-the-output@{server}/{database}")
        code, err = await ccserver_fails(tmp_path, env, command=command, stdin=b"a long enough secret\n")
        assert (code, err) == (1, f"ccserver: Postgres at {server} refused the connection: {cause}\n")
