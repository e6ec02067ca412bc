"""The IVR flow editor in a real headless Chromium: an admin edits a menu option, sees the check
error on the node, fixes it, simulates with the keypad, publishes after the diff, and then a
simulated call through the Asterisk simulator takes the new path."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import yaml
from playwright.async_api import expect
from test_api_rig import api_rig  # noqa: F401  (fixture)
from test_e2e_asterisk import call_id
from test_web_console import browser, log_in, pytestmark  # noqa: F401  (fixture, skip without chromium)

from ccserver.ivr.store import Actor, FlowStore
from ccserver.sim.asterisk import CallerScript

ROOT = Path(__file__).resolve().parents[1]


async def published_main(api_rig, browser):
    """ivr_flows/main.yaml published for every DID, and an admin logged in: (page, errors)."""
    store = FlowStore(api_rig.server.api.api.pool)
    admin = Actor("admin", "admin")
    await store.create_draft("main", yaml.safe_load((ROOT / "ivr_flows" / "main.yaml").read_text()), admin)
    await store.check("main", 1, admin)
    await store.publish("main", 1, "*", admin)
    return await log_in(browser, api_rig.base, "admin")


async def test_admin_edits_publishes_and_a_call_takes_the_new_path(api_rig, browser):  # noqa: F811
    page, errors = await published_main(api_rig, browser)
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


async def test_admin_adds_a_node_and_an_option_to_it_publishes_and_simulates_it(api_rig, browser):  # noqa: F811
    page, errors = await published_main(api_rig, browser)
    store, admin = FlowStore(api_rig.server.api.api.pool), Actor("admin", "admin")
    await page.wait_for_url("**/console")
    await page.goto("/flows")
    await expect(page.locator("#version-status")).to_have_text("published")

    # a new play node shows its type's fields; the required ones, left empty, are flagged by the checks
    await page.select_option("#new-node-type", "play")
    await page.fill("#new-node-id", "extra")
    await page.click("#btn-add-node")
    await expect(page.locator("#node-title")).to_have_text("extra")
    await expect(page.locator("#node-form .required")).to_have_count(2)  # prompts, next
    await expect(page.locator('#node-form input[name="interruptible"]')).not_to_be_checked()  # its default
    await page.click("#btn-save-node")
    await expect(page.locator("#version-status")).to_have_text("draft")
    await expect(page.locator('#problems li[data-node="extra"]')).to_have_text(
        ["nodes.extra.prompts: Field required", "nodes.extra.next: Field required"])
    await expect(page.locator('#node-form [data-field="next"]')).to_have_class("field-row required has-problem")
    # deleted again: the draft is clean
    await page.click("#btn-delete-node")
    await expect(page.locator("#problems li")).to_have_text(["no problems"])
    await expect(page.locator('#graph g.node[data-node="extra"]')).to_have_count(0)

    # a queue node for sales: its optional queue field added from the type's field list
    await page.select_option("#new-node-type", "queue")
    await page.fill("#new-node-id", "to_sales")
    await page.click("#btn-add-node")
    await page.select_option("#add-field-name", "queue")
    await page.click("#btn-add-field")
    await page.fill('#node-form input[name="queue"]', "sales")
    await page.click("#btn-save-node")
    await expect(page.locator('#problems li[data-node="to_sales"]')).to_have_text(
        ["nodes.to_sales: unreachable from the start node 'greeting'"])

    # menu option 3 and the new timeout exit lead to it: the checks pass, both edges are drawn
    await page.click('#graph g.node[data-node="main_menu"]')
    await page.fill('#node-form input[name="options.+key"]', "3")
    await page.fill('#node-form input[name="options.+value"]', "to_sales")
    await page.select_option("#add-field-name", "on_timeout")
    await page.click("#btn-add-field")
    await page.fill('#node-form input[name="on_timeout"]', "to_sales")
    await page.click("#btn-save-node")
    await expect(page.locator("#problems li")).to_have_text(["no problems"])
    await expect(page.locator('#graph path.edge[data-from="main_menu"][data-to="to_sales"]')).to_have_count(2)

    await page.click("#btn-publish")
    await expect(page.locator("#publish-against")).to_have_text("replaces main@1 on *; changes:")
    await expect(page.locator("#publish-diff li")).to_have_text([
        'nodes.main_menu.options.3: "to_sales"', 'nodes.main_menu.on_timeout: "to_sales"',
        re.compile(r'^nodes\.to_sales: \{.*"queue":"sales".*\}$'),
    ])
    await page.click("#btn-confirm-publish")
    await expect(page.locator("#message")).to_have_text("published main@2 on *")

    await page.click('#keypad button[data-digit="3"]')
    await page.click("#btn-simulate")
    await expect(page.locator("#sim-path li")).to_have_text(["greeting", "main_menu", "main_menu:3", "to_sales"])
    await expect(page.locator("#sim-ending")).to_have_text("queue → queue sales, priority 0")

    # deleting the node leaves the references to it as check problems on the menu
    await page.click('#graph g.node[data-node="to_sales"]')
    await page.click("#btn-delete-node")
    await expect(page.locator("#version-status")).to_have_text("draft")
    await expect(page.locator('#problems li[data-node="main_menu"]')).to_have_text([
        "nodes.main_menu.options.3: unknown node 'to_sales'", "nodes.main_menu.on_timeout: unknown node 'to_sales'",
    ])

    # another flow published on the same DID: the dialog names both and lists what changes
    await store.create_draft("closed", {"name": "closed", "start": "bye", "nodes": {
        "bye": {"type": "hangup", "prompt": "goodbye"}}}, admin)
    await store.check("closed", 1, admin)
    await page.reload()
    await page.select_option("#flow-select", "closed")
    await expect(page.locator("#version-status")).to_have_text("checked")
    await page.click("#btn-publish")
    await expect(page.locator("#publish-against")).to_have_text("DID *: flow main@2 → closed@1; changes:")
    diff = page.locator("#publish-diff li")
    await expect(diff.filter(has_text="name: ")).to_have_text('name: "main" → "closed"')
    await expect(diff.filter(has_text="nodes.greeting: ")).to_have_count(1)
    await expect(diff.filter(has_text="nodes.bye: ")).to_have_text('nodes.bye: {"type":"hangup","prompt":"goodbye"}')
    await page.click("#btn-cancel-publish")
    assert errors == []
