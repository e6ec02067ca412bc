"""A recording whose stop the PBX never reported is closed by its call's CDR row (both PBX kinds):
the call ended while the PBX link was down and the resync ended it, also when ccserver stops
while the agent still wraps it up. Closed means end, size and checksum: it can be played and purged."""

from __future__ import annotations

import hashlib

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)


async def end_call_while_link_is_down(rig) -> str:
    """A recorded call whose caller hangs up while the link is frozen; returns its id once the
    resync has ended it."""
    call, cid, _agent = await rig.connected_call(talk_time=1.5)
    await rig.until_rows("SELECT 1 FROM recordings WHERE call_id = $1", cid)
    rig.freeze_pbx_link(True)
    assert await call.wait(15) == "answered"  # hung up; the stop and the hang-up never reach ccserver
    adapter = rig.server.adapters[rig.node]
    await rig.until(lambda: not adapter.connected, timeout=10, what="the ping deadline")
    rig.freeze_pbx_link(False)
    await rig.until(lambda: cid not in rig.server.center.calls, timeout=15, what="the resync ending the call")
    return cid


async def assert_closed_at_the_calls_end(rig, cid: str) -> None:
    rows = await rig.until_rows("SELECT * FROM recordings WHERE call_id = $1 AND ended_at IS NOT NULL", cid)
    assert rows, "the recording was never closed"
    row = rows[0]
    data = (rig.root / row["file"]).read_bytes()
    assert row["size_bytes"] == len(data) > 44
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    [cdr] = await rig.until_rows("SELECT ended_at FROM calls WHERE call_id = $1", cid)
    assert row["ended_at"] == cdr["ended_at"]  # when the call ended, not when it was noticed
    assert row["duration_seconds"] > 0


async def test_call_ended_during_a_link_outage_closes_its_recording(media_rig):
    rig = await media_rig(policy="all")
    cid = await end_call_while_link_is_down(rig)
    await assert_closed_at_the_calls_end(rig, cid)


async def test_shutdown_during_the_wrap_up_closes_the_recording(media_rig):
    rig = await media_rig(policy="all", wrapup_seconds=600)
    cid = await end_call_while_link_is_down(rig)
    center = rig.server.center
    await rig.until(lambda: any(a.state == "wrap_up" for a in center.agents.values()),
                    what="the agent wrapping up")
    # the agent wraps up: no CDR row yet, so the recording is still open
    assert not await rig.rows("SELECT 1 FROM calls WHERE call_id = $1", cid)
    assert (await rig.rows("SELECT ended_at FROM recordings WHERE call_id = $1", cid))[0]["ended_at"] is None
    await rig.server.stop()  # the wrap-up is cut short: the CDR row is written, the recording closed
    await assert_closed_at_the_calls_end(rig, cid)
