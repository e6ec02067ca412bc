"""The pages in a real headless Chromium (Debian's, driven by Playwright): a supervisor watches a
simulated call wait in the queue and be answered, with the numbers moving; an agent cannot open
the console; the agent page shows the caller's data."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from playwright.async_api import async_playwright, expect

from ccserver.core.events import IvrFinished
from ccserver.ivr.store import Actor, FlowStore
from ccserver.sim.asterisk import CallerScript
from test_api_rig import PASSWORD, api_rig  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")


@pytest.fixture
async def browser():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def log_in(browser, base: str, username: str, **context_options):
    page = await (await browser.new_context(base_url=base, **context_options)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    return page, errors


async def test_supervisor_watches_a_call_wait_and_get_answered(api_rig, browser):
    page, errors = await log_in(browser, api_rig.base, "sup_a")
    await page.wait_for_url("**/console")
    agent_row = page.locator('#agents tr[data-agent="1001"]')
    await expect(agent_row).to_contain_text("ready")
    queue_row = page.locator('#queues tr[data-queue="support"]')
    await expect(queue_row.locator("td").nth(1)).to_have_text("0")
    aht = queue_row.locator("td").nth(7)
    await expect(aht).to_have_text("–")  # no call handled yet

    now = api_rig.server.clock()
    api_rig.server._dispatch(api_rig.server.center.pause("1001", "lunch", now))
    await expect(agent_row).to_contain_text("lunch")

    call = api_rig.sim.place_call(CallerScript(caller="+15550002222", digits=["1"], talk_time=1.0))
    waiting = page.locator("#waiting tbody tr")
    await expect(waiting).to_have_count(1, timeout=10_000)
    await expect(waiting.first).to_contain_text("+15550002222")
    cells = waiting.first.locator("td")
    # first in line, no estimate (the only agent is paused), no escalation step yet
    await expect(cells.nth(1)).to_have_text("1")
    await expect(cells.nth(4)).to_have_text("–")
    await expect(cells.nth(6)).to_have_text("0")
    await expect(queue_row.locator("td").nth(1)).to_have_text("1")

    api_rig.server._dispatch(api_rig.server.center.ready("1001", api_rig.server.clock()))
    await expect(agent_row).to_contain_text("on call", timeout=10_000)
    await expect(waiting).to_have_count(0)
    assert await call.wait(15) == "answered"
    # answered within the threshold: service level 100 %, one answered, none abandoned
    await expect(queue_row.locator("td").nth(3)).to_have_text("100% / 20s", timeout=10_000)
    await expect(queue_row.locator("td").nth(6)).to_have_text("1")
    await expect(queue_row.locator("td").nth(5)).to_have_text("0%")
    await expect(page.locator("#alerts li")).to_have_count(0)
    # the handle time counts once the 1 s wrap-up is over: about 1 s of talk plus the wrap-up
    await expect(aht).to_have_text(re.compile(r"^0:0[2-5]$"), timeout=10_000)

    wall = await page.context.new_page()
    await wall.goto("/wallboard")
    await expect(wall.locator('section[data-queue="support"] .sl .value')).to_have_text("100%")
    await expect(wall.locator('section[data-queue="support"] .aht .value')).to_have_text(await aht.inner_text())

    await api_rig.sim.stop()  # the PBX node goes away: both screens raise the alert
    await expect(page.locator("#alerts li")).to_have_text(["PBX node pbx1 is down"], timeout=10_000)
    await expect(wall.locator("#alerts li")).to_have_text(["PBX node pbx1 is down"])
    assert errors == []


async def test_agent_cannot_open_the_console_and_sees_the_screen_pop(api_rig, browser):
    page, errors = await log_in(browser, api_rig.base, "agent1")
    await page.wait_for_url("**/agent")
    resp = await page.goto("/console")
    assert resp.status == 403
    resp = await page.goto("/wallboard")
    assert resp.status == 403
    await page.goto("/agent")
    await expect(page.locator("#agent-state")).to_have_text("ready")
    # the choices are the configured acd.pause_reasons ("coaching" is one of the rig's)
    await expect(page.locator("#pause-reason option")).to_have_text(
        ["break", "lunch", "meeting", "training", "coaching"])
    await page.select_option("#pause-reason", "coaching")
    await page.click("#btn-pause")
    await expect(page.locator("#agent-state")).to_have_text("paused")
    assert api_rig.server.center.agents["1001"].reason == "coaching"

    call = api_rig.sim.place_call(CallerScript(caller="+15550003333", digits=["1"], talk_time=3.0))
    await page.click("#btn-ready")
    await expect(page.locator("#screen-pop")).to_be_visible(timeout=10_000)
    await expect(page.locator("#pop-caller")).to_have_text("+15550003333")
    await expect(page.locator("#pop-path")).to_contain_text("main_menu")
    assert await call.wait(15) == "answered"
    await expect(page.locator("#agent-state")).to_have_text("wrap up", timeout=10_000)
    await page.click("#btn-wrapup")
    await expect(page.locator("#agent-state")).to_have_text("ready")
    assert errors == []


async def test_unauthenticated_pages_redirect_to_login(api_rig, browser):
    page = await (await browser.new_context(base_url=api_rig.base)).new_page()
    await page.goto("/console")
    assert page.url.endswith("/login?next=/console")
    await page.fill("#username", "sup_a")
    await page.fill("#password", "wrong password")
    await page.click("#login-button")
    await expect(page.locator("#login-error")).to_contain_text("wrong user name or password")


async def test_a_caller_the_acd_cannot_route_as_asked_is_an_alert(api_rig, browser):
    server = api_rig.server
    now = server.clock()
    server._dispatch(server.center.pause("1001", "lunch", now))  # nobody takes the caller meanwhile
    page, errors = await log_in(browser, api_rig.base, "sup_a")
    await page.wait_for_url("**/console")
    await expect(page.locator("#alerts li")).to_have_count(0)
    # the IVR asked for a skill nobody configured: the caller is still queued (without it), and
    # the supervisor sees why
    server.on_event(IvrFinished("pbx1:77.1", "pbx1", "PJSIP/carrier-77", "+15550007777", "support",
                                "support", ("greeting",), skills=(("klingon", 50),), at=now))
    alert = page.locator("#alerts li")
    await expect(alert).to_have_count(1, timeout=10_000)
    await expect(alert).to_contain_text("+15550007777")
    await expect(alert).to_contain_text("unknown skill 'klingon'")
    wall = await page.context.new_page()
    await wall.goto("/wallboard")
    await expect(wall.locator('section[data-queue="support"] ol.next li')).to_have_text(
        [re.compile(r"#1 \+15550007777 waited \d+s, expected –")], timeout=10_000)
    await expect(wall.locator("#alerts li")).to_contain_text(["unknown skill 'klingon'"])
    assert errors == []


async def test_a_caller_who_hangs_up_within_the_grace_is_a_short_abandon_not_an_abandon(api_rig, browser):
    server = api_rig.server
    # the operator gives support a 30 s grace (the pages read the configuration the server runs with)
    server.config = server.config.model_copy(update={"queues": [
        q.model_copy(update={"abandon_grace_seconds": 30.0}) if q.name == "support" else q
        for q in server.config.queues]})
    server._dispatch(server.center.pause("1001", "lunch", server.clock()))  # nobody answers
    page, errors = await log_in(browser, api_rig.base, "sup_a")
    await page.wait_for_url("**/console")
    cells = page.locator('#queues tr[data-queue="support"] td')
    await expect(cells.nth(8)).to_have_text("0")

    call = api_rig.sim.place_call(CallerScript(caller="+15550004444", digits=["1"], patience=0.5))
    assert await call.wait(15) == "abandoned"
    await expect(cells.nth(8)).to_have_text("1", timeout=10_000)
    # in neither ratio: no abandon rate, no service level, and no handle time
    await expect(cells.nth(5)).to_have_text("–")
    await expect(cells.nth(3)).to_have_text("– / 20s")
    await expect(cells.nth(7)).to_have_text("–")
    assert errors == []


async def test_a_published_flow_naming_a_dropped_queue_is_an_alert_on_both_screens(api_rig, browser):
    doc = yaml.safe_load((api_rig.server.config.ivr.flows_dir / "main.yaml").read_text())
    doc["nodes"]["to_support"]["queue"] = "billing"  # a queue of an older configuration
    store, admin = FlowStore(api_rig.server._pool), Actor("admin", "admin")  # no site: no name checks
    await store.create_draft("main", doc, admin)
    await store.check("main", 1, admin)
    page, errors = await log_in(browser, api_rig.base, "sup_a")
    await page.wait_for_url("**/console")
    await expect(page.locator("#alerts li")).to_have_count(0)
    await store.publish("main", 1, "*", admin)
    text = "IVR flow 'main' version 1: nodes.to_support.queue: queue 'billing' is not configured"
    await expect(page.locator("#alerts li")).to_have_text([text], timeout=10_000)
    wall = await page.context.new_page()
    await wall.goto("/wallboard")
    await expect(wall.locator("#alerts li")).to_have_text([text])
    assert errors == []
