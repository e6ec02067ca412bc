"""A call live across a ccserver restart keeps what ccserver knew of it, on both PBX kinds.

A server is stopped in the middle of a connected call, of a queued one or while the agent's phone
rings, and a new server (a new process's worth of state: a fresh core, adapters, API) starts
against the same simulated node and the same Postgres. It reads back what the first one kept on
the caller's channel (Asterisk: the ``Status`` action's requested variables; FreeSWITCH:
``uuid_getvar``), so the live API and the CDR written at the end keep the call's DID, queue,
enqueue time, IVR path, agent and answer time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from rig import RigBase, free_port

from ccserver.app import Server
from ccserver.config import Config, load_config
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig
from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk
from ccserver.sim.freeswitch import SimulatedFreeSwitch

ROOT = Path(__file__).resolve().parents[1]
SECRET_ENV = "CCSERVER_TEST_RESTART_SECRET"
SECRET = "restart-secret"
PASSWORD = "restart admin password"
DEVICE = {"asterisk": "PJSIP/1001", "freeswitch": "user/1001"}


@dataclass
class Site(RigBase):
    """One simulated node of ``kind`` and the way to start a ccserver against it."""

    kind: str
    sim: SimulatedAsterisk | SimulatedFreeSwitch
    dsn: str
    tmp_path: Path
    agi_port: int
    esl_out: int
    pbx_port: int = 0

    @property
    def node(self) -> str:
        return "pbx1" if self.kind == "asterisk" else "fs1"

    async def start_server(self, auto_login: bool, ring_timeout: int = 3) -> Server:
        base = load_config(environ={})
        config = Config.model_validate({
            **base.model_dump(),
            "server": {"agi_host": "127.0.0.1", "agi_port": self.agi_port,
                       "esl_outbound_port": self.esl_out, "state_dir": self.tmp_path / "state"},
            "database": {"dsn": self.dsn},
            "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
            "acd": {"ring_timeout": ring_timeout},
            "queues": [{"name": "support", "wrapup_seconds": 0.2}],
            "agents": [{"id": "1001", "name": "Alice", "node": self.node,
                        "device": DEVICE[self.kind], "queues": ["support"],
                        "auto_login": auto_login}],
            "simulator": {"enabled": "off"},
            "api": {"port": 0},
        })
        if self.kind == "asterisk":
            node = NodeConfig(name=self.node, kind="asterisk", host="127.0.0.1",
                              ami_port=self.pbx_port, ami_user="ccserver", ami_secret_env=SECRET_ENV,
                              ping_interval=1, ping_timeout=1)
        else:
            node = FreeSwitchNodeConfig(name=self.node, kind="freeswitch", host="127.0.0.1",
                                        esl_port=self.pbx_port, esl_password_env=SECRET_ENV,
                                        ping_interval=1, ping_timeout=1)
        server = Server(config, [node])
        await server.start()
        await self.until(lambda: server.adapters[self.node].connected, what="the PBX login")
        return server

    async def live_call(self, server: Server, call_id: str) -> dict:
        """The call as ``GET /api/v1/calls`` shows it to an admin."""
        base = f"http://127.0.0.1:{server.api.port}"
        async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post("/api/v1/login", json={"username": "admin", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
            async with s.get("/api/v1/calls") as r:
                assert r.status == 200, await r.text()
                calls = {c["call_id"]: c for c in await r.json()}
        assert call_id in calls, f"{call_id} not in the live API: {sorted(calls)}"
        return calls[call_id]

    async def ended(self, call, call_id: str, outcome: str):
        """The CDR row of ``call`` once it ended as ``outcome`` (the simulator's word for it)."""
        assert await call.wait(20) == outcome
        return await self.cdr(call_id)

    async def cdr(self, call_id: str, timeout: float = 10.0):
        """The call's CDR row, once the writer has stored it."""
        deadline = time.monotonic() + timeout
        while not (rows := await self.rows("SELECT * FROM calls WHERE call_id = $1", call_id)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no CDR for {call_id}")
            await asyncio.sleep(0.1)
        return rows[0]


@pytest.fixture(params=["asterisk", "freeswitch"])
async def site(request, db_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    agi_port, esl_out = free_port(), free_port()
    if request.param == "asterisk":
        sim = SimulatedAsterisk(node="pbx1", agi_host="127.0.0.1", agi_port=agi_port,
                                agents=[SimAgent("PJSIP/1001", answer_delay=0.2)], ami_secret=SECRET)
    else:
        sim = SimulatedFreeSwitch(node="fs1", esl_password=SECRET, outbound_host="127.0.0.1",
                                  outbound_port=esl_out, agents=[SimAgent("user/1001", answer_delay=0.2)])
    s = Site(request.param, sim, db_dsn, tmp_path, agi_port, esl_out)
    s.pbx_port = await sim.start()
    try:
        yield s
    finally:
        await sim.stop()


KEPT = ("did", "queue", "enqueued_at", "ivr_path", "agent_id", "answered_at")


async def call_until(site: Site, script: CallerScript, state: str, auto_login: bool,
                     ring_timeout: int = 3):
    """Start a ccserver, place a call and wait until it is in ``state``; stop that server (the
    call goes on) and return the call, its id and what the live API showed of it."""
    first = await site.start_server(auto_login, ring_timeout)
    try:
        await first.api.api.store.create_user("admin", PASSWORD, "admin", "Admin", None)
        call = site.sim.place_call(script)
        call_id = f"{site.node}:{call.uniqueid}"
        await site.until(lambda: call_id in first.center.calls
                         and first.center.calls[call_id].state == state, what=state)
        return call, call_id, await site.live_call(first, call_id)
    finally:
        await first.stop()


def assert_cdr_keeps(row, before: dict, ring_no_answer: int | None = None) -> None:
    """The CDR row of the answered call keeps what the first server knew of it (and counts
    ``ring_no_answer`` missed rings, when given)."""
    if ring_no_answer is not None:
        assert row["ring_no_answer"] == ring_no_answer
    assert (row["disposition"], row["did"], row["queue"], row["agent_id"]) == (
        "answered", "support", "support", "1001")
    assert list(row["ivr_path"]) == before["ivr_path"]
    assert row["enqueued_at"].timestamp() == pytest.approx(before["enqueued_at"], abs=1e-6)
    assert row["arrived_at"].timestamp() == pytest.approx(before["arrived_at"], abs=1e-6)


async def restarted_while_ringing(site: Site, script: CallerScript, auto_login: bool = True,
                                  ring_timeout: int = 3):
    """Place a call and restart ccserver while the agent's phone rings for it (the second server
    logs the agent in or not): the second server, the call, its id and what the first server
    showed of it. The second finds the call offered, the ring going on."""
    call, call_id, before = await call_until(site, script, "offered", True, ring_timeout)
    second = await site.start_server(auto_login, ring_timeout)
    try:
        await site.until(lambda: call_id in second.center.calls, what="the call adopted")
        assert second.center.calls[call_id].state == "offered"
    except BaseException:
        await second.stop()
        raise
    return second, call, call_id, before


async def test_a_call_connected_across_a_restart_keeps_its_facts(site):
    call, call_id, before = await call_until(
        site, CallerScript(caller="+15550001234", digits=["1"], talk_time=6), "connected", True)
    assert before["queue"] == "support" and before["agent_id"] == "1001"
    assert before["did"] == "support" and before["answered_at"] is not None

    second = await site.start_server(auto_login=True)
    try:
        await site.until(lambda: call_id in second.center.calls, what="the call adopted")
        during = await site.live_call(second, call_id)
        assert during["state"] == "connected"
        assert {k: during[k] for k in KEPT} == {k: before[k] for k in KEPT}
        assert during["arrived_at"] == pytest.approx(before["arrived_at"], abs=1e-6)
        # the agent is on that call, not offered another one
        assert second.center.agents["1001"].state == "on_call"
        row = await site.ended(call, call_id, "answered")
    finally:
        await second.stop()
    assert_cdr_keeps(row, before)
    assert row["answered_at"].timestamp() == pytest.approx(before["answered_at"], abs=1e-6)


async def test_a_caller_queued_across_a_restart_keeps_its_place_and_is_served(site):
    # nobody logged in to answer: the caller waits
    call, call_id, before = await call_until(
        site, CallerScript(caller="+15550005678", digits=["1"], patience=30, talk_time=0.5),
        "queued", False)

    second = await site.start_server(auto_login=False)
    try:
        await site.until(lambda: call_id in second.center.calls, what="the call adopted")
        during = await site.live_call(second, call_id)
        assert during["state"] == "queued"
        assert {k: during[k] for k in ("did", "queue", "enqueued_at", "ivr_path")} == {
            k: before[k] for k in ("did", "queue", "enqueued_at", "ivr_path")}
        snapshot = second.center.queue_snapshot("support", second.clock())
        assert [w.call_id for w in snapshot.waiting] == [call_id]
        second._dispatch(second.center.login("1001", second.clock()))
        row = await site.ended(call, call_id, "answered")
    finally:
        await second.stop()
    assert_cdr_keeps(row, before)
    assert row["answered_at"] is not None


async def test_a_caller_whose_agent_rings_across_a_restart_is_connected_when_the_agent_answers(site):
    site.sim.agents[DEVICE[site.kind]].answer_delay = 2.0
    second, call, call_id, before = await restarted_while_ringing(
        site, CallerScript(caller="+15550009999", digits=["1"], talk_time=2))
    try:
        # offered to the agent whose phone rings, not rung again
        assert second.center.calls[call_id].agent_id == "1001"
        row = await site.ended(call, call_id, "answered")
    finally:
        await second.stop()
    assert_cdr_keeps(row, before, ring_no_answer=0)


async def test_an_agent_ringing_across_a_restart_that_logs_them_out_still_gets_the_call(site):
    # the restarted ccserver does not log the agent in: its phone rang for the call all the same
    site.sim.agents[DEVICE[site.kind]].answer_delay = 2.0
    second, call, call_id, before = await restarted_while_ringing(
        site, CallerScript(caller="+15550006666", digits=["1"], talk_time=2), auto_login=False)
    try:
        assert second.center.agents["1001"].state == "offered"
        row = await site.ended(call, call_id, "answered")
    finally:
        await second.stop()
    assert_cdr_keeps(row, before, ring_no_answer=0)


async def test_an_agent_who_lets_the_phone_ring_across_a_restart_misses_that_call_once(site):
    site.sim.agents[DEVICE[site.kind]].answers = False
    second, call, call_id, _ = await restarted_while_ringing(
        site, CallerScript(caller="+15550007777", digits=["1"], patience=12), ring_timeout=6)
    try:
        # the ring the first server started ends unanswered and counts as the agent's miss
        await site.until(lambda: second.center.agents["1001"].state == "paused", timeout=15,
                         what="the agent paused for the missed ring")
        assert second.center.calls[call_id].state == "queued"
        assert call.agents_rung == [DEVICE[site.kind]]
        row = await site.ended(call, call_id, "abandoned")
    finally:
        await second.stop()
    assert (row["disposition"], row["ring_no_answer"], row["queue"]) == (
        "abandoned", 1, "support")


# FreeSWITCH only: Asterisk's Dial bridges the agent who answers by itself, while an originated
# leg waits parked for ccserver's uuid_bridge
@pytest.mark.parametrize("site", ["freeswitch"], indirect=True)
async def test_an_agent_who_answers_while_no_ccserver_runs_is_bridged_by_the_next_one(site):
    site.sim.agents[DEVICE[site.kind]].answer_delay = 2.0
    call, call_id, before = await call_until(
        site, CallerScript(caller="+15550008888", digits=["1"], talk_time=2), "offered", True,
        ring_timeout=8)

    def agent_leg():
        return next((ch for ch in site.sim.channels.values()
                     if ch.device == DEVICE[site.kind] and ch.answered), None)

    # the agent picks up while no ccserver runs: the originate's result goes to nobody
    await site.until(lambda: agent_leg() is not None, what="the agent answering")
    assert agent_leg().bridged_to is None
    second = await site.start_server(auto_login=True, ring_timeout=8)
    try:
        await site.until(lambda: second.center.agents["1001"].state == "on_call",
                         what="the agent connected to the caller")
        assert agent_leg().bridged_to is not None
        row = await site.ended(call, call_id, "answered")
    finally:
        await second.stop()
    assert_cdr_keeps(row, before, ring_no_answer=0)


async def test_a_caller_hanging_up_while_the_agent_rings_across_a_restart_ends_the_ring(site):
    site.sim.agents[DEVICE[site.kind]].answers = False
    second, call, call_id, _ = await restarted_while_ringing(
        site, CallerScript(caller="+15550005555", digits=["1"], patience=4), ring_timeout=10)
    try:
        assert await call.wait(20) == "abandoned"
        # the agent's phone stops ringing with the caller gone, and the agent is not blamed
        await site.until(lambda: all("/1001" not in ch.name for ch in site.sim.channels.values()),
                         what="the ring stopped")
        await site.until(lambda: second.center.agents["1001"].state == "ready", what="agent ready")
        row = await site.cdr(call_id)
    finally:
        await second.stop()
    assert (row["disposition"], row["hangup_by"], row["ring_no_answer"]) == (
        "abandoned", "caller", 0)
