"""Recordings through the simulated Asterisk and FreeSWITCH: files, rows, pauses, refusals."""

from __future__ import annotations

import hashlib
import json

import pytest

from rig import SYSTEM_GRANTED
from test_supervision_api import login, people

from ccserver.pbx.facts import FREESWITCH_VARIABLE, decode_facts
from ccserver.recording.service import RecordingRefused

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)


async def recording_row(rig, call_id: str, closed: bool = True):
    sql = "SELECT * FROM recordings WHERE call_id = $1" + (" AND sha256 IS NOT NULL" if closed else "")
    rows = await rig.until_rows(sql, call_id)
    assert rows, f"no {'closed ' if closed else ''}recording row for {call_id}"
    return rows[0]


async def test_answered_call_is_recorded_with_size_and_checksum(media_rig):
    rig = await media_rig(policy="all")
    call, cid, agent = await rig.connected_call(talk_time=0.8)
    assert await call.wait(15) == "answered"
    row = await recording_row(rig, cid)
    path = rig.root / row["file"]
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and row["size_bytes"] == len(data) > 44
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert (row["node"], row["agent_id"], row["queue"]) == (rig.node, agent, "support")
    assert 0.3 <= float(row["duration_seconds"]) <= 3.0
    # the name comes from ids only: nothing of the caller's number in it
    assert "15551230000" not in row["file"] and "/" not in row["file"]
    cdr = await rig.until_rows("SELECT recording FROM calls WHERE call_id = $1", cid)
    assert cdr[0]["recording"] == row["file"]  # one form: the name under the recording root


@pytest.mark.parametrize("media_rig", ["freeswitch"], indirect=True)
async def test_a_uuid_record_the_switch_refuses_leaves_no_file_and_says_failed(media_rig):
    rig = await media_rig(policy="all")
    rig.sim.recording_writable = False  # the switch cannot open the file; ccserver's root is fine
    call, cid, _agent = await rig.connected_call(talk_time=3.0)
    uuid = rig.server.center.calls[cid].channel
    await rig.until(lambda: rig.server.center.calls[cid].recording_failure is not None,
                    what="the refusal reaches the core")
    await people(rig)
    agent, _h = await login(rig, "agent1")
    async with agent:
        async with agent.get(f"/api/v1/calls/{cid}/recording") as r:
            live = await r.json()
    assert (live["state"], live["recording_id"]) == ("failed", None)
    assert "Cannot record session" in live["reason"]
    assert any(rig.node in a and "do not start" in a for a in rig.server.alerts())
    # what a restarted ccserver would read back names no file either
    kept = [c.split(None, 4)[4] for c in rig.sim.received
            if c.startswith(f"api uuid_setvar {uuid} {FREESWITCH_VARIABLE} ")]
    assert decode_facts(kept[-1]).recording is None
    assert await call.wait(15) == "answered"
    cdr = await rig.until_rows("SELECT recording FROM calls WHERE call_id = $1", cid)
    assert cdr[0]["recording"] is None
    assert not await rig.rows("SELECT * FROM recordings")


async def test_a_recording_the_pbx_left_unreadable_is_alerted_on_the_console(media_rig):
    rig = await media_rig(policy="all")
    call, cid, _agent = await rig.connected_call(talk_time=1.0)
    name = rig.server.center.calls[cid].recording
    (rig.root / name).mkdir()  # the PBX cannot write its file there: a folder is in the way
    assert await call.wait(15) == "answered"
    await rig.until(lambda: any(name in a for a in rig.server.alerts()), what="the alert")
    (alert,) = [a for a in rig.server.alerts() if name in a]
    assert rig.node in alert and "no readable file" in alert
    (row,) = await rig.until_rows("SELECT * FROM recordings WHERE ended_at IS NOT NULL")
    assert (row["file"], row["size_bytes"], row["sha256"]) == (name, None, None)


async def test_pause_and_resume_store_the_span(media_rig):
    rig = await media_rig(policy="all")
    _call, cid, _agent = await rig.connected_call(talk_time=30.0)
    await recording_row(rig, cid, closed=False)
    rec, clock = rig.server.recorder, rig.server.clock
    # the spans are timed by the clock the recorder stores them with
    recording_seen = clock()
    await rig.until(lambda: clock() >= recording_seen + 0.2, what="0.2 s of recording")
    await rec.set_paused(cid, True)
    paused = clock()
    with pytest.raises(RecordingRefused) as e:
        await rec.set_paused(cid, True)
    assert e.value.status == 409 and "already paused" in e.value.reason
    await rig.until(lambda: clock() >= paused + 0.3, what="0.3 s paused")
    await rec.set_paused(cid, False)
    row = await recording_row(rig, cid, closed=False)
    [(start, end)] = [tuple(s) for s in json.loads(row["paused_spans"])]
    assert 0.1 <= start < end and 0.2 <= end - start <= 1.5
    if rig.kind == "asterisk":
        mutes = [(m["Channel"], m["Direction"], m["State"]) for m in rig.sim.received
                 if m.get("Action") == "MixMonitorMute"]
        caller = rig.server.center.calls[cid].channel
        assert mutes == [(caller, "both", "1"), (caller, "both", "0")]
    else:
        uuid = rig.server.center.calls[cid].channel
        path = f"{rig.root}/{row['file']}"
        assert [c for c in rig.sim.received if " mask " in c or " unmask " in c] == [
            f"api uuid_record {uuid} mask {path}", f"api uuid_record {uuid} unmask {path}"]


async def test_unwritable_storage_root_records_nothing(media_rig, tmp_path):
    root = tmp_path / "not-a-folder"  # unwritable as a folder whoever runs the tests (even root)
    root.write_text("")
    rig = await media_rig(policy="all", root=root)
    call, cid, _agent = await rig.connected_call(talk_time=0.3)
    assert await call.wait(15) == "answered"
    assert not await rig.rows("SELECT * FROM recordings")
    cdr = await rig.until_rows("SELECT recording FROM calls WHERE call_id = $1", cid)
    assert cdr[0]["recording"] is None
    # the refusal reached the recorder: a standing alert for the node, naming the reason
    (alert,) = rig.server.alerts()
    assert rig.node in alert and "not a folder" in alert and cid in alert
    if rig.kind == "asterisk":
        assert not [m for m in rig.sim.received if m.get("Action") == "MixMonitor"
                    or m.get("Variable") == "CC_RECORD_FILE"]
    else:
        assert not [c for c in rig.sim.received if "uuid_record" in c]
    with pytest.raises(RecordingRefused):  # nothing runs, so nothing to pause
        await rig.server.recorder.set_paused(cid, True)


async def test_on_demand_policy_records_only_when_asked(media_rig):
    rig = await media_rig(policy="on_demand", ami_write=SYSTEM_GRANTED)
    _call, cid, _agent = await rig.connected_call(talk_time=30.0)
    file = await rig.server.recorder.start_on_demand(cid)
    with pytest.raises(RecordingRefused) as e:
        await rig.server.recorder.start_on_demand(cid)
    assert e.value.status == 409 and "already recorded" in e.value.reason
    row = await recording_row(rig, cid, closed=False)
    assert row["file"] == file
    # the connection itself started none: ours is the only recording and the only start sent
    # (a policy start would have gone out at the answer, before ours on the same link)
    assert len(await rig.rows("SELECT * FROM recordings")) == 1
    if rig.kind == "asterisk":
        assert len([m for m in rig.sim.received if m.get("Action") == "MixMonitor"]) == 1
    else:
        assert len([c for c in rig.sim.received if "uuid_record" in c and " start " in c]) == 1
