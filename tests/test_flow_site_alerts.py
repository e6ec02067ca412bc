"""A published IVR flow that names a queue the configuration no longer serves reaches staff as a
console alert (the live stream), and keeps running."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from test_api_live import next_matching
from test_api_rig import api_rig  # noqa: F401  (fixture)

from ccserver.ivr.store import Actor, FlowStore

MAIN = yaml.safe_load((Path(__file__).resolve().parents[1] / "ivr_flows" / "main.yaml").read_text())


async def test_a_published_flow_naming_a_dropped_queue_is_a_live_alert_for_staff(api_rig):
    doc = copy.deepcopy(MAIN)
    doc["nodes"]["to_support"]["queue"] = "billing"  # a queue of an older configuration
    store, admin = FlowStore(api_rig.server._pool), Actor("admin", "admin")  # no site: no name checks
    await store.create_draft("main", doc, admin)
    await store.check("main", 1, admin)
    sup, _ = await api_rig.login("sup_a")
    agent, _ = await api_rig.login("agent1")
    async with sup, agent:
        ws = await sup.ws_connect("/api/v1/live")
        ws_agent = await agent.ws_connect("/api/v1/live")
        assert (await ws.receive_json(timeout=5))["alerts"] == []
        await store.publish("main", 1, "*", admin)
        msg = await next_matching(ws, lambda m: m.get("alerts"))
        assert msg["alerts"] == ["IVR flow 'main' version 1: nodes.to_support.queue: queue 'billing' is not configured"]
        assert api_rig.server.flows.for_did("5550100").version == 1  # still what callers get
        fresh = await sup.ws_connect("/api/v1/live")
        assert (await fresh.receive_json(timeout=5))["alerts"] == msg["alerts"]
        assert (await ws_agent.receive_json(timeout=5))["alerts"] == []  # agents are not told
        for w in (ws, fresh, ws_agent):
            await w.close()
