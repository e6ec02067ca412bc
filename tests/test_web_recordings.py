"""The recordings page and the agent's recording buttons in a real headless Chromium (Debian's,
driven by Playwright): a supervisor finds a call by the number the customer gave, opens it, the
player loads the recording over Range requests, the download is the file; other teams see
nothing; an agent pauses and resumes the recording of their call."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from playwright.async_api import expect

from test_supervision_api import people
from test_web_console import browser  # noqa: F401  (fixture)
from test_web_console import log_in as console_log_in
from test_web_console import pytestmark as chromium_needed

pytest_plugins = ["media_rig"]

pytestmark = [chromium_needed, pytest.mark.parametrize("media_rig", ["asterisk"], indirect=True)]


async def log_in(browser, rig, username: str):
    page, errors = await console_log_in(browser, f"http://127.0.0.1:{rig.server.api.port}", username,
                                        accept_downloads=True)
    await page.wait_for_url("**/agent" if username.startswith("agent") else "**/console")
    return page, errors


async def test_supervisor_finds_opens_plays_and_downloads_a_recording(media_rig, browser):
    rig = await media_rig(policy="all")
    await people(rig)
    calls = {}
    for caller in ("+33612345678", "+15550009999"):
        call, cid, _agent = await rig.connected_call(talk_time=1.5, caller=caller)
        assert await call.wait(15) == "answered"
        calls[caller] = cid
    cid = calls["+33612345678"]
    [rec] = await rig.until_rows("SELECT * FROM recordings WHERE call_id = $1 AND sha256 IS NOT NULL", cid)
    await rig.until_rows("SELECT 1 FROM calls WHERE call_id = $1", calls["+15550009999"])

    page, errors = await log_in(browser, rig, "sup_a")
    audio_statuses: list[int] = []
    audio_url = f"/api/v1/recordings/{rec['id']}/audio"
    page.on("response", lambda r: r.url.endswith(audio_url) and audio_statuses.append(r.status))
    await page.click("a[href='/recordings']")
    await page.wait_for_url("**/recordings")
    # the customer gives their number the national way, with spaces
    await page.fill("#q-caller", "06 12 34 56 78")
    await page.click("#btn-search")
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-call", cid)
    cells = rows.first.locator("td")
    await expect(cells.nth(1)).to_have_text("+33612345678")
    await expect(cells.nth(3)).to_have_text("support")
    await expect(cells.nth(6)).to_have_text("answered")
    await expect(cells.nth(7)).to_have_text("yes")

    await rows.first.click()
    detail = page.locator("#call-detail")
    await expect(detail).to_be_visible()
    await expect(page.locator("#detail-id")).to_have_text(cid)
    await expect(page.locator("#detail-fields")).to_contain_text("+33612345678")
    await expect(page.locator("#detail-path")).not_to_have_text("–")
    await expect(detail.locator(f".recording[data-recording='{rec['id']}']")).to_contain_text(rec["sha256"])
    await expect(detail.locator(".recording")).to_contain_text("never")  # no paused span
    # the player loads the WAV through the audited, Range-served audio URL
    await page.wait_for_function("() => { const a = document.querySelector('#call-detail audio');"
                                 " return a && a.readyState >= 1 && a.duration > 0; }")
    duration = await page.eval_on_selector("#call-detail audio", "a => a.duration")
    assert abs(duration - float(rec["duration_seconds"])) < 1.0
    await page.eval_on_selector("#call-detail audio", "a => { a.currentTime = a.duration / 2; }")
    assert 206 in audio_statuses, audio_statuses

    async with page.expect_download() as info:
        await detail.locator("a", has_text="Download").click()
    download = await info.value
    body = Path(await download.path()).read_bytes()
    assert hashlib.sha256(body).hexdigest() == rec["sha256"] and download.suggested_filename.endswith(".wav")

    # the address keeps the search and the open call: a reload (or a colleague) gets both back
    await page.reload()
    await expect(page.locator("#q-caller")).to_have_value("06 12 34 56 78")
    await expect(page.locator("#detail-id")).to_have_text(cid)
    assert errors == []
    # each opening of the player is a playback in the audit log (Chromium fetched this small file
    # whole, from byte 0, each time); the download is there once
    plays = await rig.rows("SELECT detail->>'range' AS range FROM audit_log WHERE action = 'recording.play'")
    assert plays and {p["range"] for p in plays} <= {"", "bytes=0-"}  # (a reload may still be fetching)
    assert len(await rig.rows("SELECT 1 FROM audit_log WHERE action = 'recording.download'")) == 1

    # a supervisor of another team finds nothing; an agent cannot open the page
    other, errors = await log_in(browser, rig, "sup_b")
    await other.goto("/recordings")
    await other.fill("#q-caller", "0612345678")
    await other.click("#btn-search")
    await expect(other.locator("#search-status")).to_have_text("No calls found.")
    await expect(other.locator("#results tbody tr")).to_have_count(0)
    assert errors == []
    agent, _ = await log_in(browser, rig, "agent1")
    assert (await agent.goto("/recordings")).status == 403


async def test_agent_pauses_and_resumes_the_recording_of_their_call(media_rig, browser):
    rig = await media_rig(policy="all")
    await people(rig)
    server = rig.server
    server._dispatch(server.center.pause("1002", "lunch", server.clock()))  # the call goes to 1001
    page, errors = await log_in(browser, rig, "agent1")
    controls = page.locator("#recording-controls")
    await expect(page.locator("#agent-state")).to_have_text("ready")
    await expect(controls).to_be_hidden()

    _call, cid, agent_id = await rig.connected_call(talk_time=60.0)
    assert agent_id == "1001"
    state = page.locator("#recording-state")
    await expect(state).to_have_text("Recording", timeout=10_000)
    await expect(page.locator("#btn-rec-start")).to_be_hidden()
    await page.click("#btn-rec-pause")
    await expect(state).to_have_text("Recording paused")
    await expect(page.locator("#btn-rec-pause")).to_be_hidden()
    await page.click("#btn-rec-resume")
    await expect(state).to_have_text("Recording")
    [row] = await rig.rows("SELECT paused_spans, paused_since FROM recordings WHERE call_id = $1", cid)
    assert row["paused_since"] is None and row["paused_spans"].count("[") == 2  # one span: [[from, to]]
    assert errors == []


async def test_a_call_that_ended_while_the_pbx_link_was_down_shows_its_end_as_estimated(media_rig, browser):
    rig = await media_rig(policy="none")
    await people(rig)
    call, cid, _agent = await rig.connected_call(talk_time=1.0, caller="+33612345670")
    adapter = rig.server.adapters[rig.node]
    rig.freeze_pbx_link(True)  # the hang-up happens while ccserver cannot see it
    assert await call.wait(15) == "answered"
    await rig.until(lambda: not adapter.connected, timeout=10, what="ping deadline")
    rig.freeze_pbx_link(False)
    assert await rig.until_rows("SELECT 1 FROM calls WHERE call_id = $1 AND end_estimated", cid, timeout=20)

    page, errors = await log_in(browser, rig, "sup_a")
    await page.goto("/recordings")
    await page.fill("#q-caller", "0612345670")
    await page.click("#btn-search")
    await page.locator(f"#results tbody tr[data-call='{cid}']").click()
    await expect(page.locator("#detail-fields")).to_contain_text("(estimated: the PBX link was down)")
    assert errors == []
