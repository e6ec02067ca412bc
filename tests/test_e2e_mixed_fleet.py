"""One ACD over a mixed fleet: an Asterisk node and a FreeSWITCH node live at once, sharing agents.

Both simulators are real TCP peers (AMI + FastAGI, ESL inbound + outbound socket). The two
agents' phones are reachable from both nodes (``AgentConfig.devices``), so the one core offers
either node's calls to either agent.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from playwright.async_api import expect
from rig import free_port
from test_api_rig import PASSWORD
from test_web_console import CHROMIUM, browser, log_in  # noqa: F401  (fixture)

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


@dataclass
class Fleet:
    server: Server
    ast: SimulatedAsterisk
    fs: SimulatedFreeSwitch
    dsn: str

    async def admin_get(self, path: str):
        """GET ``path`` of the API as the admin user."""
        base = f"http://127.0.0.1:{self.server.api.port}"
        async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post("/api/v1/login", json={"username": "admin", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
            async with s.get(path) as r:
                assert r.status == 200, await r.text()
                return await r.json()


@pytest.fixture
async def fleet(db_dsn, tmp_path, monkeypatch):
    """ast1 + fs1 sharing agents 1001 and 1002 (PJSIP/100N on ast1, user/100N on fs1); agent
    1003 has a phone on ast1 only and starts logged out; an admin user for the API."""
    monkeypatch.setenv(SECRET_ENV, "mixed-secret")
    agi_port, esl_out = free_port(), free_port()
    ast = SimulatedAsterisk(node="ast1", agi_host="127.0.0.1", agi_port=agi_port,
                            agents=[SimAgent(f"PJSIP/{ext}", answer_delay=0.2)
                                    for ext in ("1001", "1002", "1003")],
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
        ] + [{"id": "1003", "name": "Agent 1003", "node": "ast1", "device": "PJSIP/1003",
              "queues": ["support"], "auto_login": False}],
        "simulator": {"enabled": "off"},
        "api": {"port": 0, "tick_seconds": 0.3},
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
        await server.api.api.store.create_user("admin", PASSWORD, "admin", "Admin", None)
        yield Fleet(server, ast, fs, db_dsn)
    finally:
        await server.stop()
        await ast.stop()
        await fs.stop()


async def test_one_acd_serves_an_asterisk_and_a_freeswitch_node(fleet):
    server, ast, fs, db_dsn = fleet.server, fleet.ast, fleet.fs, fleet.dsn
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


async def test_the_agents_api_shows_every_phone_of_an_agent_and_the_one_the_call_uses(fleet):
    server, center = fleet.server, fleet.server.center
    server._dispatch(center.pause("1002", "lunch", server.clock()))
    on_fs = fleet.fs.place_call(CallerScript(caller="+15550000003", digits=["1"], talk_time=30))
    call_id = f"fs1:{on_fs.uniqueid}"
    await until(lambda: call_id in center.calls and center.calls[call_id].state == "connected",
                what="the FreeSWITCH call connected")
    agents = {a["id"]: a for a in await fleet.admin_get("/api/v1/agents")}
    talking = agents["1001"]
    assert talking["state"] == "on_call" and talking["call_id"] == call_id
    assert talking["devices"] == [{"node": "ast1", "device": "PJSIP/1001"},
                                  {"node": "fs1", "device": "user/1001"}]
    # talking on FreeSWITCH through user/1001, not on its home node's PJSIP/1001
    assert talking["device_in_use"] == {"node": "fs1", "device": "user/1001"}
    assert agents["1002"]["device_in_use"] is None
    assert agents["1003"]["devices"] == [{"node": "ast1", "device": "PJSIP/1003"}]
    single = await fleet.admin_get("/api/v1/agents/1001")
    assert single["device_in_use"] == {"node": "fs1", "device": "user/1001"}


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
async def test_the_console_shows_the_phone_a_mixed_fleet_agent_talks_on(fleet, browser):
    server, center = fleet.server, fleet.server.center
    server._dispatch(center.pause("1002", "lunch", server.clock()))
    page, errors = await log_in(browser, f"http://127.0.0.1:{server.api.port}", "admin")
    await page.wait_for_url("**/console")
    phones = page.locator('#agents tr[data-agent="1001"] td').nth(6)
    await expect(phones).to_have_text("ast1 PJSIP/1001, fs1 user/1001")
    on_fs = fleet.fs.place_call(CallerScript(caller="+15550000005", digits=["1"], talk_time=30))
    await expect(phones).to_have_text("ast1 PJSIP/1001, fs1 user/1001 (in use)", timeout=10_000)
    assert on_fs.uniqueid and errors == []


def only_1003_ready(fleet) -> None:
    """1001 and 1002 paused, 1003 ready: ready, but with no phone on fs1."""
    server, center = fleet.server, fleet.server.center
    now = server.clock()
    for agent in ("1001", "1002"):
        server._dispatch(center.pause(agent, "lunch", now))
    server._dispatch(center.login("1003", now))


async def test_a_caller_whose_node_no_ready_agent_can_reach_is_told_why(fleet):
    server, center = fleet.server, fleet.server.center
    only_1003_ready(fleet)
    on_fs = fleet.fs.place_call(CallerScript(caller="+15550000004", digits=["1"], patience=30))
    call_id = f"fs1:{on_fs.uniqueid}"
    await until(lambda: call_id in center.calls and center.calls[call_id].state == "queued",
                what="the FreeSWITCH caller queued")

    def waiting(queues):
        support = next(q for q in queues if q["name"] == "support")
        return next(w for w in support["waiting"] if w["call_id"] == call_id)

    entry = waiting(await fleet.admin_get("/api/v1/queues"))
    assert entry["routing_note"] is not None
    assert "no ready agent" in entry["routing_note"] and "'fs1'" in entry["routing_note"]
    assert "1003" in entry["routing_note"]
    # an agent who can be rung from fs1 is ready again: the caller is served, no note is left
    server._dispatch(center.ready("1001", server.clock()))
    await until(lambda: call_id in center.calls and center.calls[call_id].state == "connected",
                what="the caller connected to 1001")


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
async def test_the_console_says_why_a_caller_no_ready_agent_can_reach_waits(fleet, browser):
    server = fleet.server
    only_1003_ready(fleet)
    page, errors = await log_in(browser, f"http://127.0.0.1:{server.api.port}", "admin")
    await page.wait_for_url("**/console")
    fleet.fs.place_call(CallerScript(caller="+15550000006", digits=["1"], patience=30))
    alert = page.locator("#alerts li")
    await expect(alert).to_have_count(1, timeout=10_000)
    await expect(alert).to_contain_text("+15550000006")
    await expect(alert).to_contain_text("no ready agent can be rung from node 'fs1'")
    assert errors == []


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
async def rendered_box(locator, timeout: float = 10.0) -> dict:
    """The element's box once it is rendered: the console redraws its lists at every live
    update, so between two draws the element may be briefly gone (``bounding_box`` is None)."""
    async with asyncio.timeout(timeout):
        while (box := await locator.bounding_box()) is None:
            await asyncio.sleep(0.05)
    return box


async def test_a_phone_sized_console_shows_the_agents_phones_and_why_a_caller_waits(fleet, browser):
    server = fleet.server
    only_1003_ready(fleet)
    width = 375
    page, errors = await log_in(browser, f"http://127.0.0.1:{server.api.port}", "admin",
                                viewport={"width": width, "height": 740})
    await page.wait_for_url("**/console")
    fleet.fs.place_call(CallerScript(caller="+15550000007", digits=["1"], patience=30))
    alert = page.locator("#alerts li")
    await expect(alert).to_contain_text("no ready agent can be rung from node 'fs1'", timeout=10_000)
    phones = page.locator('#agents tr[data-agent="1001"] td').nth(6)
    await expect(phones).to_have_text("ast1 PJSIP/1001, fs1 user/1001")
    # on the screen, not beyond its right edge: the page does not scroll sideways
    for shown in (alert, phones):
        box = await rendered_box(shown)
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    # each cell says which column it is
    assert await phones.get_attribute("data-label") == "Phones"
    assert errors == []
