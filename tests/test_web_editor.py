"""The IVR flow editor in a real headless Chromium: an admin edits a menu option, sees the check
error on the node, fixes it, simulates with the keypad, publishes after the diff, and then a
simulated call through the Asterisk simulator takes the new path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from playwright.async_api import expect
from test_api_rig import api_rig  # noqa: F401  (fixture)
from test_e2e_asterisk import call_id
from test_web_console import browser, log_in, pytestmark  # noqa: F401  (fixture, skip without chromium)

from ccserver.ivr.store import Actor, FlowStore
from ccserver.sim.asterisk import CallerScript

ROOT = Path(__file__).resolve().parents[1]


async def test_admin_edits_publishes_and_a_call_takes_the_new_path(api_rig, browser):  # noqa: F811
    store = FlowStore(api_rig.server.api.api.pool)
    admin = Actor("admin", "admin")
    await store.create_draft("main", yaml.safe_load((ROOT / "ivr_flows" / "main.yaml").read_text()), admin)
    await store.check("main", 1, admin)
    await store.publish("main", 1, "*", admin)

    page, errors = await log_in(browser, api_rig.base, "admin")
    await page.wait_for_url("**/console")
    await page.click("#link-flows")
    await page.wait_for_url("**/flows")
    await expect(page.locator("#version-status")).to_have_text("published")
    menu = page.locator('#graph g.node[data-node="main_menu"]')
    await expect(menu).to_be_visible()
    await expect(page.locator('#graph path.edge[data-from="main_menu"][data-to="to_support"]')).to_have_count(1)

    # a typo in option 1: saved as draft 2, the check error is drawn on the menu node
    await menu.click()
    await page.fill('#node-form input[name="options.1"]', "to_suport")
    await page.click("#btn-save-node")
    await expect(page.locator("#version-status")).to_have_text("draft")
    await expect(menu).to_have_class("node has-problem selected")
    await expect(page.locator('#problems li[data-node="main_menu"]')).to_have_text(
        "nodes.main_menu.options.1: unknown node 'to_suport'")
    await page.click("#btn-publish")
    await expect(page.locator("#message")).to_have_text("fix the problems before publishing")
    assert [r["version"] for r in await api_rig.rows("SELECT version FROM ivr_publications")] == [1]

    # fixed: option 1 now goes to the priority queue
    await page.fill('#node-form input[name="options.1"]', "to_support_priority")
    await page.click("#btn-save-node")
    await expect(page.locator("#problems li")).to_have_text(["no problems"])
    await expect(menu).not_to_have_class("node has-problem selected")
    await expect(page.locator('#graph path.edge[data-from="main_menu"][data-to="to_support_priority"]')
                 ).to_have_count(1)

    # the keypad simulation takes the new path before anything is published
    await page.click('#keypad button[data-digit="1"]')
    await page.click("#btn-simulate")
    await expect(page.locator("#sim-path li")).to_have_text(
        ["greeting", "main_menu", "main_menu:1", "to_support_priority"])
    await expect(page.locator("#sim-ending")).to_have_text("queue → queue support, priority 1")

    await page.click("#btn-publish")
    dialog = page.locator("#publish-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#publish-against")).to_have_text("replaces main@1 on *; changes:")
    await expect(page.locator("#publish-diff li")).to_have_text(
        ['nodes.main_menu.options.1: "to_support" → "to_support_priority"'])
    await page.click("#btn-confirm-publish")
    await expect(page.locator("#message")).to_have_text("published main@2 on *")
    await expect(page.locator("#version-status")).to_have_text("published")
    assert errors == []

    # the running server picks the new version up for new calls
    flows = api_rig.server.flows
    await api_rig.until(lambda: flows.for_did("support").version == 2, what="version 2 live")
    call = api_rig.sim.place_call(CallerScript(caller="+15550004444", digits=["1"], talk_time=0.5))
    assert await call.wait(20) == "answered"
    cid = call_id(call)
    for _ in range(100):
        rows = await api_rig.rows("SELECT ivr_path FROM calls WHERE call_id = $1", cid)
        if rows:
            break
        await asyncio.sleep(0.1)
    assert rows, f"no CDR for {cid}"
    assert list(rows[0]["ivr_path"])[:4] == ["greeting", "main_menu", "main_menu:1", "to_support_priority"]
