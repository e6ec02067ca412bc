"""The API test rig (a real Server + simulated Asterisk + Postgres + HTTP on a free port), and
the tests of the server's operational endpoints: /healthz, /readyz, /metrics, /openapi.json.

Other ``test_api_*`` / ``test_web_*`` modules import the ``api_rig`` fixture from here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from rig import RigBase

from ccserver.app import Server
from ccserver.config import AgentConfig, Config, load_config
from ccserver.hardware import NodeConfig
from ccserver.sim.asterisk import SimAgent, SimulatedAsterisk

ROOT = Path(__file__).resolve().parents[1]
NODE = "pbx1"
SECRET_ENV = "CCSERVER_TEST_AMI_SECRET"
DEVICES = ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003"]
PASSWORD = "correct horse battery staple"


class ApiRig(RigBase):
    """A running server with users: admin, sup_a (team A: agent 1001, queue support),
    sup_b (team B: agents 1002, 1003, queue sales), agent1 (-> 1001), agent2 (-> 1002)."""

    def __init__(self, server: Server, sim: SimulatedAsterisk, dsn: str):
        self.server, self.sim, self.dsn = server, sim, dsn
        self.base = f"http://127.0.0.1:{server.api.port}"
        self.user_ids: dict[str, int] = {}

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: keep cookies for an IP address host (aiohttp drops them otherwise).
        return aiohttp.ClientSession(self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, username: str) -> tuple[aiohttp.ClientSession, str]:
        """A client logged in as ``username`` and its CSRF token."""
        s = self.client()
        async with s.post("/api/v1/login", json={"username": username, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            return s, (await r.json())["csrf_token"]

    async def token(self, username: str) -> str:
        """A bearer token for ``username``."""
        s, csrf = await self.login(username)
        async with s:
            async with s.post("/api/v1/tokens", json={"label": "test"}, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 201, await r.text()
                return (await r.json())["token"]


async def _build(db_dsn: str, tmp_path: Path, agi_port: int) -> tuple[Server, SimulatedAsterisk]:
    sim = SimulatedAsterisk(node=NODE, agi_host="127.0.0.1", agi_port=agi_port,
                            agents=[SimAgent(d, answer_delay=0.5) for d in DEVICES], ami_secret="api-secret-value")
    ami_port = await sim.start()
    base = load_config(environ={})
    config = Config.model_validate({
        **base.model_dump(),
        "server": {"agi_host": "127.0.0.1", "agi_port": agi_port, "state_dir": tmp_path / "state"},
        "database": {"dsn": db_dsn},
        "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
        "acd": {"ring_timeout": 3, "skills": ["english"],
                "pause_reasons": ["break", "lunch", "meeting", "training", "coaching"]},
        "queues": [{"name": "support", "wrapup_seconds": 1.0, "service_level_seconds": 20,
                    "escalation": [{"after_seconds": 600, "any": True}]},
                   {"name": "sales", "wrapup_seconds": 1.0}],
        "agents": [
            AgentConfig(id="1001", name="Alice", node=NODE, device=DEVICES[0], queues=["support"],
                        skills={"english": 80}).model_dump(),
            AgentConfig(id="1002", name="Bob", node=NODE, device=DEVICES[1], queues=["sales"]).model_dump(),
            AgentConfig(id="1003", name="Carol", node=NODE, device=DEVICES[2], queues=["sales"],
                        auto_login=False).model_dump(),
        ],
        "simulator": {"enabled": "off"},
        "api": {"port": 0, "tick_seconds": 0.3, "login_failures": 3, "max_body_bytes": 4096},
    })
    node = NodeConfig(name=NODE, kind="asterisk", host="127.0.0.1", ami_port=ami_port, ami_user="ccserver",
                      ami_secret_env=SECRET_ENV, ping_interval=1.0, ping_timeout=1.0)
    return Server(config, [node]), sim


@pytest.fixture
async def api_rig(db_dsn, tmp_path, monkeypatch, unused_tcp_port_factory):
    monkeypatch.setenv(SECRET_ENV, "api-secret-value")
    for attempt in range(3):
        server, sim = await _build(db_dsn, tmp_path, unused_tcp_port_factory())
        try:
            await server.start()
            break
        except OSError:  # the free port was taken meanwhile by another process: pick another
            await server.stop()
            await sim.stop()
            if attempt == 2:
                raise
    rig = ApiRig(server, sim, db_dsn)
    try:
        await rig.until(lambda: server.adapters[NODE].connected, what="AMI login")
        store = server.api.api.store
        for name, role, agent in [("admin", "admin", None), ("sup_a", "supervisor", None),
                                  ("sup_b", "supervisor", None), ("agent1", "agent", "1001"),
                                  ("agent2", "agent", "1002")]:
            rig.user_ids[name] = (await store.create_user(name, PASSWORD, role, name.title(), agent)).id
        team_a, team_b = await store.create_team("A"), await store.create_team("B")
        await store.set_team_members(team_a.id, ["1001"], ["support"], [rig.user_ids["sup_a"]])
        await store.set_team_members(team_b.id, ["1002", "1003"], ["sales"], [rig.user_ids["sup_b"]])
        yield rig
    finally:
        await server.stop()
        await sim.stop()


async def test_health_ready_and_metrics(api_rig):
    async with api_rig.client() as s:
        async with s.get("/healthz") as r:
            assert r.status == 200
        async with s.get("/readyz") as r:
            assert r.status == 200 and "ready" in await r.text()
        async with s.get("/metrics") as r:
            text = await r.text()
            assert r.status == 200 and r.content_type == "text/plain"
    assert 'ccserver_node_up{node="pbx1"} 1' in text
    assert 'ccserver_queue_waiting{queue="support"} 0' in text
    assert "ccserver_cdr_spool_depth 0" in text
    assert 'ccserver_agents{state="ready"} 2' in text
    assert "# TYPE ccserver_routing_decision_seconds histogram" in text


async def test_readyz_fails_when_the_database_is_away(api_rig):
    await api_rig.server.api.api.pool.close()
    async with api_rig.client() as s, s.get("/readyz") as r:
        assert r.status == 503 and "database" in await r.text()


async def test_openapi_document_matches_the_real_routes(api_rig):
    async with api_rig.client() as s, s.get("/openapi.json") as r:
        doc = await r.json()
    app = api_rig.server.api._runner.app
    real = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None:
            continue
        if path.startswith("/api/") or path in ("/metrics", "/healthz", "/readyz"):
            real.add((route.method.lower(), path))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == real
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for resp in op["responses"].values():
                for content in resp.get("content", {}).values():
                    ref = content["schema"].get("$ref") or content["schema"].get("items", {}).get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], (path, ref)


def _decisions_counted(text: str) -> int:
    (line,) = [x for x in text.splitlines() if x.startswith("ccserver_routing_decision_seconds_count ")]
    return int(line.split()[1])


async def test_ticks_and_agent_actions_are_timed_as_routing_decisions(api_rig):
    server = api_rig.server
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}
    async with api_rig.client() as s:
        async with s.get("/metrics") as r:
            before = _decisions_counted(await r.text())
        # an idle server: no PBX event, but the timer ticks (wrap-ups, escalations) decide too
        await api_rig.until(lambda: sum(server.decision_latency.counts) >= before + 3, what="timed ticks")
        (tick,) = [t for t in server._tasks if t.get_name() == "ccserver-tick"]
        tick.cancel()  # from here only the agent actions below reach the core
        await asyncio.gather(tick, return_exceptions=True)
        async with s.get("/metrics") as r:
            before = _decisions_counted(await r.text())
        async with s.post("/api/v1/agents/1001/pause", headers=admin, json={"reason": "coaching"}) as r:
            assert r.status == 200
        async with s.post("/api/v1/agents/1001/ready", headers=admin) as r:
            assert r.status == 200
        async with s.get("/metrics") as r:
            assert _decisions_counted(await r.text()) == before + 2
