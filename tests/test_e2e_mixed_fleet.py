"""One ACD over a mixed fleet: an Asterisk node and a FreeSWITCH node live at once, sharing agents.

Both simulators are real TCP peers (AMI + FastAGI, ESL inbound + outbound socket). The two
agents' phones are reachable from both nodes (``AgentConfig.devices``), so the one core offers
either node's calls to either agent.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
from rig import free_port

from ccserver.app import Server
from ccserver.config import Config, load_config
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig
from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk
from ccserver.sim.freeswitch import SimulatedFreeSwitch

ROOT = Path(__file__).resolve().parents[1]
SECRET_ENV = "CCSERVER_TEST_MIXED_SECRET"


async def until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def cdr(dsn: str, call_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)
        finally:
            await conn.close()
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no CDR for {call_id}")


async def test_one_acd_serves_an_asterisk_and_a_freeswitch_node(db_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "mixed-secret")
    agi_port, esl_out = free_port(), free_port()
    ast = SimulatedAsterisk(node="ast1", agi_host="127.0.0.1", agi_port=agi_port,
                            agents=[SimAgent("PJSIP/1001", answer_delay=0.2),
                                    SimAgent("PJSIP/1002", answer_delay=0.2)],
                            ami_secret="mixed-secret")
    fs = SimulatedFreeSwitch(node="fs1", esl_password="mixed-secret", outbound_host="127.0.0.1",
                             outbound_port=esl_out,
                             agents=[SimAgent("user/1001", answer_delay=0.2),
                                     SimAgent("user/1002", answer_delay=0.2)])
    ami_port, esl_port = await ast.start(), await fs.start()
    base = load_config(environ={})
    config = Config.model_validate({
        **base.model_dump(),
        "server": {"agi_host": "127.0.0.1", "agi_port": agi_port, "esl_outbound_port": esl_out,
                   "state_dir": tmp_path / "state"},
        "database": {"dsn": db_dsn},
        "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
        "acd": {"ring_timeout": 2},
        "queues": [{"name": "support", "wrapup_seconds": 0.3}],
        "agents": [
            {"id": ext, "name": f"Agent {ext}", "node": "ast1", "device": f"PJSIP/{ext}",
             "devices": {"fs1": f"user/{ext}"}, "queues": ["support"]}
            for ext in ("1001", "1002")
        ],
        "simulator": {"enabled": "off"},
        "api": {"port": 0},
    })
    nodes = [
        NodeConfig(name="ast1", kind="asterisk", host="127.0.0.1", ami_port=ami_port,
                   ami_user="ccserver", ami_secret_env=SECRET_ENV, ping_interval=1, ping_timeout=1),
        FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="127.0.0.1", esl_port=esl_port,
                             esl_password_env=SECRET_ENV, ping_interval=1, ping_timeout=1),
    ]
    server = Server(config, nodes)
    await server.start()
    try:
        await until(lambda: all(a.connected for a in server.adapters.values()), what="both logins")
        center = server.center
        on_ast = ast.place_call(CallerScript(caller="+15550000001", digits=["1"], talk_time=1.5))
        on_fs = fs.place_call(CallerScript(caller="+15550000002", digits=["1"], talk_time=1.5))
        ids = (f"ast1:{on_ast.uniqueid}", f"fs1:{on_fs.uniqueid}")
        await until(lambda: all(i in center.calls and center.calls[i].state == "connected"
                                for i in ids), what="both calls connected")
        agents = {center.calls[i].agent_id for i in ids}
        assert agents == {"1001", "1002"}  # each agent holds exactly one of the two calls
        assert all(center.agents[a].state == "on_call" for a in agents)
        assert await on_ast.wait(15) == "answered" and await on_fs.wait(15) == "answered"
        # each node dialled the agent by its own dial string for that agent
        assert on_ast.agent.startswith("PJSIP/") and on_fs.agent.startswith("user/")
        rows = [await cdr(db_dsn, i) for i in ids]
        assert [r["node"] for r in rows] == ["ast1", "fs1"]
        for r in rows:
            assert r["disposition"] == "answered" and r["queue"] == "support"
            assert (r["hangup_cause"], r["hangup_by"]) == ("normal_clearing", "caller")
            assert list(r["ivr_path"])[:3] == ["greeting", "main_menu", "main_menu:1"]
        assert {r["agent_id"] for r in rows} == {"1001", "1002"}
        await until(lambda: all(center.agents[a].state == "ready" for a in agents),
                    what="both agents ready after wrap-up")
    finally:
        await server.stop()
        await ast.stop()
        await fs.stop()
