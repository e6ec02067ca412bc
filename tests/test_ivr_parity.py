"""The IVR's media actions behave the same on both PBX kinds, end to end through a Server and
each simulator: language switch, TTS, voicemail recording, transfer to an external number (the
dialplan's transfer context) and to another DID of ours (whose flow then runs on the same call)."""

from __future__ import annotations

import json
import re

import pytest
from test_e2e_asterisk import call_id, make_rig  # noqa: F401  (fixture)

from ccserver.ivr.store import Actor, FlowStore
from ccserver.sim.asterisk import CallerScript

DID = "4000"
FLOW = {
    "name": "parity",
    "start": "french",
    "languages": ["en", "fr"],
    "nodes": {
        "french": {"type": "set", "language": "fr", "next": "hello"},
        "hello": {"type": "play", "prompts": [{"tts": {"en": "Hello", "fr": "Bonjour"}}], "next": "menu"},
        "menu": {"type": "menu", "prompt": "press-1", "options": {"1": "away", "2": "vm", "3": "hop", "4": "line"},
                 "on_exhausted": "vm"},
        "away": {"type": "transfer", "destination": "+15559990000"},
        "vm": {"type": "voicemail", "mailbox": "support", "max_seconds": 30},
        "hop": {"type": "transfer", "destination": "did:support"},
        "line": {"type": "queue", "queue": "support", "announce_position": True, "announce_wait": True},
    },
}
BOTH = pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)


async def _rig_with_flow(make_rig):  # noqa: F811
    rig = await make_rig()
    store, admin = FlowStore(rig.server.api.api.pool), Actor("admin", "admin")
    await store.create_draft("parity", FLOW, admin)
    assert (await store.check("parity", 1, admin)).ok
    await store.publish("parity", 1, DID, admin)
    await rig.until(lambda: rig.server.flows.for_did(DID).name == "parity", what="flow published")
    return rig


def _spoke(kind: str, call) -> bool:
    expected = ("Flite", "Bonjour") if kind == "asterisk" else ("speak", "flite|kal|Bonjour")
    return expected in call.applications


@BOTH
async def test_tts_and_transfer_to_an_external_number(make_rig, request):  # noqa: F811
    kind = request.node.callspec.params["make_rig"]
    rig = await _rig_with_flow(make_rig)
    call = rig.sim.place_call(CallerScript(caller="+15550001111", did=DID, digits=["1"], talk_time=0.3))
    assert await call.wait(15) == "transferred"
    assert call.transferred_to == "+15559990000"
    assert _spoke(kind, call), call.applications
    row = await rig.cdr(call_id(call))
    assert list(row["ivr_path"]) == ["french", "hello", "menu", "menu:1", "away"]
    assert row["disposition"] == "ivr_completed"
    assert json.loads(row["variables"])["CC_TRANSFER"] == "+15559990000"
    if kind == "asterisk":
        assert call.variables["CHANNEL(language)"] == "fr"
    else:
        assert call.variables["default_language"] == "fr"
        assert call.variables["sound_prefix"] == "${sounds_dir}/fr"


@BOTH
async def test_voicemail_records_the_caller(make_rig, request):  # noqa: F811
    kind = request.node.callspec.params["make_rig"]
    rig = await _rig_with_flow(make_rig)
    call = rig.sim.place_call(CallerScript(caller="+15550002222", did=DID, digits=["2"]))
    assert await call.wait(15) == "no_queue"
    cid = call_id(call)
    row = await rig.cdr(cid)
    variables = json.loads(row["variables"])
    name = "voicemail/support/" + re.sub(r"[^A-Za-z0-9_-]", "_", cid)
    assert variables["CC_VOICEMAIL_FILE"] == f"{name}.wav"
    recorded = ("Record", f"{name}.wav") if kind == "asterisk" else ("record", "${recordings_dir}/" + f"{name}.wav 30")
    assert recorded in call.applications


@BOTH
async def test_transfer_to_another_did_runs_its_flow_on_the_same_call(make_rig):  # noqa: F811
    rig = await _rig_with_flow(make_rig)
    # "3" hops to DID support (routed to the main flow), where "1" queues the caller for an agent
    call = rig.sim.place_call(CallerScript(caller="+15550003333", did=DID, digits=["3", "1"], talk_time=0.3))
    assert await call.wait(20) == "answered"
    row = await rig.cdr(call_id(call))
    assert list(row["ivr_path"])[:8] == ["french", "hello", "menu", "menu:3", "hop",
                                         "greeting", "main_menu", "main_menu:1"]
    assert row["disposition"] == "answered" and row["queue"] == "support"


@BOTH
async def test_queue_position_is_announced_from_the_live_queue(make_rig, request):  # noqa: F811
    kind = request.node.callspec.params["make_rig"]
    rig = await _rig_with_flow(make_rig)
    call = rig.sim.place_call(CallerScript(caller="+15550004444", did=DID, digits=["4"], talk_time=0.3))
    assert await call.wait(20) == "answered"
    # agents are ready: first in line, no wait worth announcing
    said = ("SayNumber", "1") if kind == "asterisk" else ("say", "fr number pronounced 1")
    assert said in call.applications
    variables = json.loads((await rig.cdr(call_id(call)))["variables"])
    assert variables["CC_POSITION"] == "1" and "CC_EXPECTED_WAIT" not in variables
