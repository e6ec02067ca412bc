"""A Server + simulated PBX rig for the recording and supervision tests (both PBX kinds).

Like the e2e rig of ``test_e2e_asterisk.py``, plus: a supervisor phone on the node, a recording
root in the test's temporary folder (the simulators write real WAV files there) and the queue's
recording policy of the test's choice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from rig import RigBase, free_port

from ccserver.app import Server
from ccserver.config import AgentConfig, Config, load_config
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig
from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk
from ccserver.sim.freeswitch import SimulatedFreeSwitch

ROOT = Path(__file__).resolve().parents[1]
NODE = "pbx1"
SECRET_ENV = "CCSERVER_TEST_MEDIA_SECRET"
AGENTS = ["1001", "1002"]
SUPERVISOR_EXT = "9000"


class MediaRig(RigBase):
    def __init__(self, kind: str, server: Server, sim, dsn: str, root: Path) -> None:
        self.kind, self.server, self.sim, self.dsn, self.root = kind, server, sim, dsn, root

    @property
    def node(self) -> str:
        return NODE

    def device(self, ext: str) -> str:
        return f"user/{ext}" if self.kind == "freeswitch" else f"PJSIP/{ext}"

    @property
    def supervisor_device(self) -> str:
        return self.device(SUPERVISOR_EXT)

    async def until_rows(self, sql: str, *args, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.rows(sql, *args)
            if rows or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)

    async def connected_call(self, talk_time: float = 30.0, caller: str = "+15551230000"):
        """Place a call; return (sim call, call id, agent id) once an agent is connected."""
        call = self.sim.place_call(CallerScript(caller=caller, did="support", digits=["1"],
                                                talk_time=talk_time))
        cid = f"{NODE}:{call.uniqueid}"
        calls = self.server.center.calls
        await self.until(lambda: cid in calls and calls[cid].state == "connected", what="connected")
        return call, cid, calls[cid].agent_id


@pytest.fixture(params=["asterisk", "freeswitch"])
async def media_rig(request, db_dsn, tmp_path, monkeypatch):
    kind = request.param
    started: list[MediaRig] = []
    monkeypatch.setenv(SECRET_ENV, "media-secret-value")

    async def make(policy: str = "all", root: Path | None = None, wrapup_seconds: float = 0.3,
                   ami_write: str | None = None, **recording) -> MediaRig:
        """``ami_write``: the simulated Asterisk user's write classes (default: the shipped
        manager.conf's ccserver user)."""
        agi_port, esl_port = free_port(), free_port()
        rec_root = root
        if rec_root is None:
            rec_root = tmp_path / "recordings"
            rec_root.mkdir(exist_ok=True)
        dev = (lambda e: f"user/{e}") if kind == "freeswitch" else (lambda e: f"PJSIP/{e}")
        phones = [SimAgent(dev(e), answer_delay=0.2) for e in [*AGENTS, SUPERVISOR_EXT]]
        if kind == "freeswitch":
            sim = SimulatedFreeSwitch(node=NODE, esl_password="media-secret-value",
                                      outbound_host="127.0.0.1", outbound_port=esl_port, agents=phones)
        else:
            sim = SimulatedAsterisk(node=NODE, agi_host="127.0.0.1", agi_port=agi_port, agents=phones,
                                    ami_secret="media-secret-value", ami_write=ami_write)
        pbx_port = await sim.start()
        base = load_config(environ={})
        config = Config.model_validate({
            **base.model_dump(),
            "server": {"agi_host": "127.0.0.1", "agi_port": agi_port, "state_dir": tmp_path / "state",
                       "esl_outbound_port": esl_port},
            "database": {"dsn": db_dsn},
            "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
            "acd": {"ring_timeout": 2},
            "queues": [{"name": "support", "wrapup_seconds": wrapup_seconds, "recording": policy}],
            "agents": [AgentConfig(id=e, name=e, node=NODE, device=dev(e), queues=["support"]).model_dump()
                       for e in AGENTS],
            "simulator": {"enabled": "off"},
            "api": {"port": 0},
            "recording": recording,
        })
        timing = {"ping_interval": 1.0, "ping_timeout": 1.0, "recording_root": str(rec_root)}
        if kind == "freeswitch":
            node = FreeSwitchNodeConfig(name=NODE, kind="freeswitch", host="127.0.0.1", esl_port=pbx_port,
                                        esl_password_env=SECRET_ENV, command_timeout=2.0, **timing)
        else:
            node = NodeConfig(name=NODE, kind="asterisk", host="127.0.0.1", ami_port=pbx_port,
                              ami_user="ccserver", ami_secret_env=SECRET_ENV, **timing)
        server = Server(config, [node])
        await server.start()
        rig = MediaRig(kind, server, sim, db_dsn, rec_root)
        started.append(rig)
        await rig.until(lambda: server.adapters[NODE].connected, what="PBX login")
        return rig

    yield make
    for rig in started:
        await rig.server.stop()
        await rig.sim.stop()
