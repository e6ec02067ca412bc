"""End to end through the simulated Asterisk: an escalation step sends the waiting caller to
voicemail (AMI Setvar + Redirect) and the CDR row in Postgres says so."""

from __future__ import annotations

import pytest
from rig import free_port
from test_e2e_asterisk import NODE, ROOT, SECRET_ENV, Rig, call_id

from ccserver.app import Server
from ccserver.config import Config, load_config
from ccserver.hardware import NodeConfig
from ccserver.sim.asterisk import CallerScript, SimulatedAsterisk


@pytest.fixture
async def rig(db_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "e2e-secret-value")
    agi_port = free_port()
    # nobody serves the queue (its one agent never logs in): the caller waits until the
    # voicemail step
    sim = SimulatedAsterisk(node=NODE, agi_host="127.0.0.1", agi_port=agi_port, agents=[],
                            ami_secret="e2e-secret-value")
    ami_port = await sim.start()
    config = Config.model_validate({
        **load_config(environ={}).model_dump(),
        "server": {"agi_host": "127.0.0.1", "agi_port": agi_port, "state_dir": tmp_path / "state"},
        "database": {"dsn": db_dsn},
        "ivr": {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}},
        "queues": [{"name": "support", "voicemail_box": "1234",
                    "escalation": [{"after_seconds": 1.0, "overflow": "voicemail"}]}],
        "agents": [{"id": "1001", "name": "Away", "node": NODE, "device": "PJSIP/1001",
                    "queues": ["support"], "auto_login": False}],
        "simulator": {"enabled": "off"},
        "api": {"port": 0},
    })
    node = NodeConfig(name=NODE, kind="asterisk", host="127.0.0.1", ami_port=ami_port,
                      ami_user="ccserver", ami_secret_env=SECRET_ENV, ping_interval=1.0,
                      ping_timeout=1.0)
    server = Server(config, [node])
    await server.start()
    rig = Rig(server, sim, db_dsn)
    try:
        await rig.until(lambda: rig.adapter.connected, what="PBX login")
        yield rig
    finally:
        await server.stop()
        await sim.stop()


async def test_waiting_caller_overflows_to_voicemail_with_a_cdr_row(rig):
    call = rig.sim.place_call(CallerScript(caller="+15551230000", did="support", digits=["1"],
                                           patience=30.0))
    await call.wait(15)
    # the sim has no voicemail application: it hangs up a channel sent to a context it lacks
    assert call.variables.get("CC_VOICEMAIL_BOX") == "1234"
    row = await rig.cdr(call_id(call))
    assert (row["disposition"], row["queue"]) == ("voicemail", "support")
    assert row["enqueued_at"] is not None and (row["ended_at"] - row["enqueued_at"]).total_seconds() < 10
