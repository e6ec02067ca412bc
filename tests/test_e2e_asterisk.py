"""End to end through real sockets: a simulated PBX node <-protocol-> ccserver -> Postgres.

Each test runs twice, once per PBX kind: the simulated Asterisk (AMI + FastAGI) and the simulated
FreeSWITCH (ESL inbound + outbound socket). It starts a real ``Server`` (the one ``ccserver run``
uses) against a fresh database, with the simulator listed as a hardware node like a real PBX
would be, places calls, and checks the rows that end up in Postgres: the same rows for both kinds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pgproxy import PgProxy
from rig import RigBase, free_port

from ccserver.app import Server
from ccserver.config import AgentConfig, Config, load_config
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig
from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk
from ccserver.sim.freeswitch import SimulatedFreeSwitch

ROOT = Path(__file__).resolve().parents[1]
NODE = "pbx1"
SECRET_ENV = "CCSERVER_TEST_AMI_SECRET"
DEVICES = ["PJSIP/1001", "PJSIP/1002"]


class Rig(RigBase):
    """A server, its simulated PBX node and its database, wired as in production."""

    def __init__(self, server: Server, sim: SimulatedAsterisk | SimulatedFreeSwitch, dsn: str):
        self.server, self.sim, self.dsn = server, sim, dsn

    @property
    def adapter(self):
        return self.server.adapters[NODE]

    async def cdr(self, call_id: str, timeout: float = 10.0):
        """The call's row, once the writer has flushed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = await self.rows("SELECT * FROM calls WHERE call_id = $1", call_id)
            if rows:
                return rows[0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no CDR for {call_id} within {timeout}s")

    async def agent_states(self, agent_id: str) -> list[tuple[str, str, str | None]]:
        rows = await self.rows(
            "SELECT previous, state, reason FROM agent_state_changes WHERE agent_id = $1 ORDER BY at, change_id",
            agent_id,
        )
        return [(r["previous"], r["state"], r["reason"]) for r in rows]

    async def connected_call(self, script: CallerScript):
        """Place a call and wait until ccserver sees it connected to an agent."""
        call = self.sim.place_call(script)
        cid = call_id(call)
        calls = self.server.center.calls
        await self.until(lambda: cid in calls and calls[cid].state == "connected", what="connected")
        return call, cid


def call_id(call) -> str:
    return f"{NODE}:{call.uniqueid}"


def fs_device(device: str) -> str:
    """The FreeSWITCH dial string of the same phone: ``PJSIP/1001`` -> ``user/1001``."""
    return "user/" + device.rsplit("/", 1)[-1]


@pytest.fixture(params=["asterisk", "freeswitch"])
async def make_rig(request, db_dsn, tmp_path, monkeypatch):
    kind = request.param
    started: list[Rig] = []
    monkeypatch.setenv(SECRET_ENV, "e2e-secret-value")

    async def make(agents: list[SimAgent] | None = None, dsn: str | None = None, on_sim=None,
                   **node_overrides) -> Rig:
        """A started rig; ``on_sim(sim)`` is called with the running simulator before the server starts."""
        agi_port = free_port()
        esl_outbound_port = free_port()
        agents = agents if agents is not None else [SimAgent(d, answer_delay=0.2) for d in DEVICES]
        dev = fs_device if kind == "freeswitch" else (lambda d: d)
        if kind == "freeswitch":
            for a in agents:
                a.device = dev(a.device)
            sim = SimulatedFreeSwitch(
                node=NODE, esl_password="e2e-secret-value", outbound_host="127.0.0.1",
                outbound_port=esl_outbound_port, agents=agents,
            )
        else:
            sim = SimulatedAsterisk(
                node=NODE, agi_host="127.0.0.1", agi_port=agi_port, agents=agents,
                ami_secret="e2e-secret-value",
            )
        pbx_port = await sim.start()
        if on_sim is not None:
            on_sim(sim)
        base = load_config(environ={})
        config = Config.model_validate(
            {
                **base.model_dump(),
                "server": {"agi_host": "127.0.0.1", "agi_port": agi_port, "state_dir": tmp_path / "state",
                           "esl_outbound_port": esl_outbound_port},
                "database": {"dsn": dsn or db_dsn},
                "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
                "acd": {"ring_timeout": 2},
                "queues": [{"name": "support", "wrapup_seconds": 0.3}],
                "agents": [
                    AgentConfig(id=d.split("/")[1], name=d, node=NODE, device=dev(d), queues=["support"]).model_dump()
                    for d in DEVICES
                ],
                "simulator": {"enabled": "off"},
                "api": {"port": 0},
            }
        )
        timing = {"ping_interval": 1.0, "ping_timeout": 1.0, **node_overrides}
        if kind == "freeswitch":
            node = FreeSwitchNodeConfig(
                name=NODE, kind="freeswitch", host="127.0.0.1", esl_port=pbx_port,
                esl_password_env=SECRET_ENV, command_timeout=2.0, **timing,
            )
        else:
            node = NodeConfig(
                name=NODE, kind="asterisk", host="127.0.0.1", ami_port=pbx_port, ami_user="ccserver",
                ami_secret_env=SECRET_ENV, **timing,
            )
        server = Server(config, [node])
        await server.start()
        rig = Rig(server, sim, db_dsn)
        started.append(rig)
        await rig.until(lambda: rig.adapter.connected, what="PBX login")
        return rig

    yield make
    for rig in started:
        await rig.server.stop()
        await rig.sim.stop()


async def test_answered_call(make_rig):
    rig = await make_rig()
    call = rig.sim.place_call(CallerScript(caller="+15551230000", did="support", digits=["1"], talk_time=0.5))
    assert await call.wait(15) == "answered"
    row = await rig.cdr(call_id(call))
    assert row["disposition"] == "answered"
    assert (row["node"], row["did"], row["caller"], row["queue"]) == (NODE, "support", "+15551230000", "support")
    assert row["agent_id"] == "1001"  # both idle since start: deterministic tie -> lowest id
    assert row["hangup_cause"] == "normal_clearing" and row["hangup_by"] == "caller"
    assert list(row["ivr_path"])[:3] == ["greeting", "main_menu", "main_menu:1"]
    assert row["arrived_at"] <= row["ivr_ended_at"] <= row["enqueued_at"] <= row["offered_at"]
    assert row["offered_at"] <= row["answered_at"] <= row["ended_at"]
    assert 0.3 <= float(row["talk_seconds"]) <= 2.0
    assert 0.2 <= float(row["wrapup_seconds"]) <= 1.0
    states = await rig.agent_states("1001")
    assert [s for _, s, _ in states] == ["ready", "offered", "on_call", "wrap_up", "ready"]


async def test_agent_hangs_up(make_rig):
    rig = await make_rig()
    call = rig.sim.place_call(CallerScript(digits=["2"], talk_time=0.3, hangup_side="agent"))
    assert await call.wait(15) == "answered"
    row = await rig.cdr(call_id(call))
    assert row["hangup_by"] == "agent" and row["disposition"] == "answered"
    assert "main_menu:2" in row["ivr_path"]


async def test_abandoned_call(make_rig):
    rig = await make_rig()
    now = time.time()
    for agent_id in ("1001", "1002"):
        rig.server._dispatch(rig.server.center.pause(agent_id, "lunch", now))
    call = rig.sim.place_call(CallerScript(digits=["1"], patience=0.5))
    assert await call.wait(15) == "abandoned"
    row = await rig.cdr(call_id(call))
    assert row["disposition"] == "abandoned" and row["hangup_by"] == "caller"
    assert row["queue"] == "support" and row["agent_id"] is None and row["answered_at"] is None
    assert row["enqueued_at"] is not None and row["offered_at"] is None
    assert ("ready", "paused", "lunch") in await rig.agent_states("1002")


async def test_ring_no_answer_then_answered_by_another_agent(make_rig):
    rig = await make_rig([SimAgent("PJSIP/1001", answers=False), SimAgent("PJSIP/1002", answer_delay=0.2)])
    call = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.3))
    assert await call.wait(20) == "answered"
    row = await rig.cdr(call_id(call))
    assert row["disposition"] == "answered" and row["agent_id"] == "1002"
    assert row["ring_no_answer"] == 1
    assert float((row["answered_at"] - row["offered_at"]).total_seconds()) >= 2.0  # 1001 rang out first
    assert ("offered", "paused", "no answer") in await rig.agent_states("1001")
    assert rig.server.center.agents["1001"].state == "paused"


async def test_caller_hangs_up_during_ivr(make_rig):
    rig = await make_rig()
    call = rig.sim.place_call(CallerScript(digits=["1"], hangup_during_ivr_after=0.3))
    assert await call.wait(15) == "ivr_hangup"
    row = await rig.cdr(call_id(call))
    assert row["disposition"] == "ivr_hangup" and row["hangup_by"] == "caller"
    assert row["queue"] is None and row["enqueued_at"] is None
    assert list(row["ivr_path"])[:1] == ["greeting"]  # the path reached the CDR despite the race


async def test_a_call_whose_ivr_ends_while_the_server_is_still_starting_is_queued(make_rig, monkeypatch):
    """The IVR listeners start before the core (and a real PBX may send calls at once): an IVR that
    ends while the ACD kernel warms must still hand its caller to the queue."""
    import threading

    import ccserver.app as app_mod

    warming, gate, sims = threading.Event(), threading.Event(), []
    monkeypatch.setattr(app_mod, "warm_acd_kernel", lambda: (warming.set(), gate.wait(30)))
    starting = asyncio.create_task(make_rig(on_sim=sims.append))
    try:
        deadline = time.monotonic() + 20
        while not warming.is_set():
            assert time.monotonic() < deadline, "the server never reached the kernel warm-up"
            await asyncio.sleep(0.05)
        call = sims[0].place_call(CallerScript(digits=["1"], talk_time=0.3, patience=20))
        # the IVR (about 2 s) ends, and the caller waits on hold music, while the core does not
        # exist yet (the Asterisk simulator names channels by name, FreeSWITCH's by uuid)
        while getattr(sims[0].channels.get(call.channel) or sims[0].channels.get(call.uniqueid),
                      "application", "") not in ("MusicOnHold", "endless_playback"):
            assert time.monotonic() < deadline + 20, "the caller never reached the hold music"
            await asyncio.sleep(0.05)
    finally:
        gate.set()
    rig = await starting
    assert await call.wait(15) == "answered"
    row = await rig.cdr(call_id(call))
    assert row["queue"] == "support" and row["disposition"] == "answered"


async def test_ami_dropped_mid_call_then_resynced(make_rig):
    rig = await make_rig()
    call, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=3.0))
    center = rig.server.center
    await rig.drop_pbx_link()
    await rig.until(lambda: not rig.adapter.connected, what="disconnect noticed")
    await rig.until(lambda: rig.adapter.connected, timeout=10, what="reconnect")
    assert center.calls[cid].state == "connected"  # still known after the resync
    assert await call.wait(15) == "answered"
    row = await rig.cdr(cid)
    assert row["disposition"] == "answered" and row["hangup_cause"] == "normal_clearing"
    await rig.until(lambda: center.agents[row["agent_id"]].state == "ready", what="agent ready again")


async def test_call_ends_while_ami_is_half_open_then_resync_frees_the_agent(make_rig):
    rig = await make_rig()
    call, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=1.0))
    center = rig.server.center
    agent_id = center.calls[cid].agent_id
    rig.freeze_pbx_link(True)  # the TCP connection stays open; nothing comes through
    assert await call.wait(15) == "answered"  # the hang-up happens while ccserver cannot see it
    await rig.until(lambda: not rig.adapter.connected, timeout=10, what="ping deadline")
    assert center.agents[agent_id].state == "on_call"  # nothing told it otherwise yet
    rig.freeze_pbx_link(False)
    await rig.until(lambda: rig.adapter.connected, timeout=15, what="reconnect")
    await rig.until(lambda: center.agents[agent_id].state == "ready", what="agent freed by the resync")
    row = await rig.cdr(cid)
    assert row["disposition"] == "answered" and row["hangup_cause"] == "lost"
    assert row["agent_id"] == agent_id


async def test_calls_keep_flowing_while_postgres_is_down(make_rig, db_dsn):
    proxy = PgProxy(db_dsn)
    await proxy.start()
    try:
        rig = await make_rig(dsn=proxy.dsn)
        first = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.2))
        assert await first.wait(15) == "answered"
        await rig.cdr(call_id(first))
        await proxy.cut()
        during = [rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.2)) for _ in range(2)]
        during.append(rig.sim.place_call(CallerScript(digits=["1"], hangup_during_ivr_after=0.2)))
        for c in during:
            await c.wait(20)
        await rig.until(lambda: rig.server.writer.spool_depth >= 3, timeout=15, what="rows spooled")
        await proxy.restore()
        for c in during:
            await rig.cdr(call_id(c), timeout=15)
        await rig.until(lambda: rig.server.writer.spool_depth == 0, what="spool drained")
        ids = [call_id(c) for c in [first, *during]]
        rows = await rig.rows("SELECT call_id FROM calls")
        assert sorted(r["call_id"] for r in rows) == sorted(ids)  # each once, none lost
    finally:
        await proxy.close()
