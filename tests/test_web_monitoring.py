"""The supervisor console shows, live, who is monitoring whom (real headless Chromium)."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from test_supervision_api import PASSWORD, login, people

pytest_plugins = ["media_rig"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")


@pytest.mark.parametrize("media_rig", ["asterisk"], indirect=True)
async def test_console_lists_who_monitors_whom_and_forgets_ended_sessions(media_rig):
    rig = await media_rig(policy="none")
    ids = await people(rig)
    admin, ah = await login(rig, "admin")
    sup, h = await login(rig, "sup_a")
    async with admin, sup:
        async with admin.put(f"/api/v1/users/{ids['sup_a']}/devices", headers=ah,
                             json={"devices": {rig.node: rig.supervisor_device}}) as r:
            assert r.status == 200, await r.text()
        _call, _cid, agent_id = await rig.connected_call(talk_time=30.0)
        base = f"http://127.0.0.1:{rig.server.api.port}"
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await (await browser.new_context(base_url=base)).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto("/login")
                await page.fill("#username", "sup_a")
                await page.fill("#password", PASSWORD)
                await page.click("#login-button")
                await page.wait_for_url("**/console")
                spies = page.locator("#spies li")
                await expect(spies).to_have_count(0)

                async with sup.post("/api/v1/supervision/sessions", headers=h, json={"agent_id": agent_id}) as r:
                    assert r.status == 201, await r.text()
                    session = await r.json()
                await expect(spies).to_have_count(1, timeout=10_000)
                await expect(spies.first).to_contain_text("sup_a listens to")
                await expect(spies.first).to_contain_text(agent_id)

                async with sup.patch(f"/api/v1/supervision/sessions/{session['id']}", headers=h,
                                     json={"mode": "whisper"}) as r:
                    assert r.status == 200
                await expect(spies.first).to_contain_text("whisper", timeout=10_000)

                async with sup.delete(f"/api/v1/supervision/sessions/{session['id']}", headers=h) as r:
                    assert r.status == 200
                await expect(spies).to_have_count(0, timeout=10_000)
                assert errors == []
            finally:
                await browser.close()
