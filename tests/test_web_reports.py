"""The reports page in a real headless Chromium (Debian's, driven by Playwright): a supervisor opens
it from the console, picks a range and sees their queue's and agent's figures; the CSV link gives
the same rows; an agent cannot open the page."""

from __future__ import annotations

from playwright.async_api import expect

from test_api_rig import api_rig  # noqa: F401  (fixture)
from test_reports_api import rig  # noqa: F401  (fixture)
from test_web_console import browser, log_in  # noqa: F401  (fixtures)
from test_web_console import pytestmark as chromium_needed

pytestmark = chromium_needed


async def test_supervisor_reads_queue_and_agent_reports(rig, browser):  # noqa: F811
    page, errors = await log_in(browser, rig.base, "sup_a")
    await page.wait_for_url("**/console")
    await page.click("a[href='/reports']")
    await page.wait_for_url("**/reports")
    await page.fill("#r-from", "2025-03-29")
    await page.fill("#r-to", "2025-04-01")
    await page.select_option("#r-period", "day")
    await page.click("#btn-show")
    rows = page.locator("#report tbody tr")
    await expect(rows).to_have_count(3)
    # only team A's queue; Saturday: 4 offered, 2 answered, 1 abandoned (none short), 1 to voicemail
    await expect(rows.nth(0).locator("td")).to_have_text(
        ["2025-03-29", "support", "4", "2", "1 (0)", "1", "33% / 20s", "33%", "20s", "3:00"])
    await expect(rows.nth(1).locator("td")).to_have_text(
        ["2025-03-31", "support", "1", "0", "1 (0)", "0", "0% / 20s", "100%", "–", "–"])
    assert page.url.endswith("/reports?kind=queues&name=&period=day&from=2025-03-29&to=2025-04-01")

    csv_href = await page.get_attribute("#csv-link", "href")
    assert csv_href == "/api/v1/reports/queues?period=day&from=2025-03-29&to=2025-04-01&format=csv"
    csv = await page.request.get(csv_href)
    assert csv.status == 200
    assert (await csv.text()).splitlines()[1] == "2025-03-29,support,20,0.0,4,2,1,1,0,1,0.3333,0.3333,20.0,180.0"

    await page.select_option("#r-kind", "agents")
    await page.select_option("#r-period", "week")
    await page.click("#btn-show")
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0).locator("td")).to_have_text(
        ["2025-03-24", "1001", "2", "5:00", "20s", "40s", "3:00", "9:00:00", "1:00:00", "7:54:00", "6:00", "1%"])
    # a name outside the teams: the API's refusal is shown
    await page.fill("#r-name", "1002")
    await page.click("#btn-show")
    await expect(page.locator("#report-error")).to_contain_text("agent '1002' is not in your teams")
    await expect(page.locator("#csv-link")).to_be_hidden()
    assert errors == []


async def test_an_agent_cannot_open_the_reports_page(rig, browser):  # noqa: F811
    page, errors = await log_in(browser, rig.base, "agent1")
    await page.wait_for_url("**/agent")
    resp = await page.goto("/reports")
    assert resp.status == 403
    assert errors == []
