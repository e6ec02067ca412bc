"""The report routes over HTTP on the real server: figures in the configured time zone, CSV,
who sees which rows, and parameter errors naming the field."""

from __future__ import annotations

import asyncpg
import pytest

from ccserver.config import ReportsConfig
from test_api_rig import api_rig  # noqa: F401  (fixture)
from test_reports import insert_rows


@pytest.fixture
async def rig(api_rig):  # noqa: F811
    api_rig.server.config = api_rig.server.config.model_copy(
        update={"reports": ReportsConfig(timezone="Europe/Paris")})
    conn = await asyncpg.connect(api_rig.dsn)
    try:
        await insert_rows(conn)
    finally:
        await conn.close()
    return api_rig


async def get(rig, user: str | None, path: str, **headers: str):
    if user is not None:
        headers["Authorization"] = f"Bearer {await rig.token(user)}"
    async with rig.client() as s, s.get(path, headers=headers) as r:
        body = await (r.json() if r.content_type == "application/json" else r.text())
        return r.status, body, r.headers


MARCH = "period=day&from=2025-03-29&to=2025-04-01"


async def test_queue_report_in_the_site_zone_as_json_and_csv(rig):
    status, rows, _ = await get(rig, "admin", f"/api/v1/reports/queues?{MARCH}&queue=support")
    assert status == 200
    assert [(r["period_start"], r["offered"], r["answered"], r["abandoned"], r["service_level"], r["asa_seconds"],
             r["aht_seconds"]) for r in rows] == [
        ("2025-03-29", 4, 2, 1, 0.3333, 20.0, 180.0),
        ("2025-03-31", 1, 0, 1, 0.0, None, None),  # 00:30 in Paris, still the 30th in UTC
        ("2025-04-01", 1, 1, 0, 1.0, 20.0, 60.0),
    ]
    csv_lines = [
        "period_start,queue,service_level_seconds,abandon_grace_seconds,offered,answered,"
        "answered_within_threshold,abandoned,short_abandoned,other,service_level,abandon_rate,asa_seconds,"
        "aht_seconds",
        "2025-03-01,sales,20,0.0,1,1,1,0,0,0,1.0,0.0,4.0,60.0",
        "2025-03-01,support,20,0.0,5,2,1,2,0,1,0.25,0.5,20.0,180.0",
        "2025-04-01,support,20,0.0,1,1,1,0,0,0,1.0,0.0,20.0,60.0",
    ]
    month = "period=month&from=2025-03-01&to=2025-04-30"
    for query, headers in ((f"{month}&format=csv", {}), (month, {"Accept": "text/csv"})):
        status, text, h = await get(rig, "admin", f"/api/v1/reports/queues?{query}", **headers)
        assert status == 200 and h["Content-Type"] == "text/csv; charset=utf-8"
        assert h["Content-Disposition"] == 'attachment; filename="queues-month-2025-03-01-2025-04-30.csv"'
        assert text.split("\r\n") == [*csv_lines, ""]
    # format wins over Accept
    status, rows, _ = await get(rig, "admin", f"/api/v1/reports/queues?{month}&format=json", Accept="text/csv")
    assert status == 200 and len(rows) == 3


async def test_agent_report_counts_the_23_hour_day(rig):
    status, rows, _ = await get(rig, "admin", f"/api/v1/reports/agents?{MARCH}")
    assert status == 200
    assert [(r["period_start"], r["agent_id"], r["answered"], r["logged_in_seconds"], r["occupancy"])
            for r in rows] == [
        ("2025-03-29", "1001", 2, 32400.0, 0.0125),
        ("2025-03-29", "1002", 0, 7200.0, 0.0),
        ("2025-03-29", "1003", 1, 0.0, None),
        ("2025-03-30", "1002", 0, 82800.0, 0.0),
        ("2025-03-31", "1002", 0, 7200.0, 0.0),
        ("2025-04-01", "1002", 1, 0.0, None),
    ]


async def keys(rig, user: str, kind: str, extra: str = "") -> tuple[int, set]:
    status, rows, _ = await get(rig, user, f"/api/v1/reports/{kind}?{MARCH}{extra}")
    if status != 200:
        return status, rows["error"]
    return status, {r.get("queue") or r.get("agent_id") for r in rows}


async def test_each_role_sees_its_own_rows(rig):
    # sup_a: team A (agent 1001, queue support); sup_b: team B (1002, 1003, sales)
    assert await keys(rig, "sup_a", "queues") == (200, {"support"})
    assert await keys(rig, "sup_b", "queues") == (200, {"sales"})
    assert await keys(rig, "sup_a", "queues", "&queue=sales") == (403, "queue 'sales' is not one of your teams'")
    assert await keys(rig, "sup_a", "agents") == (200, {"1001"})
    # 1002's support call counts in their agent row for their own supervisor
    assert await keys(rig, "sup_b", "agents") == (200, {"1002", "1003"})
    assert await keys(rig, "sup_b", "agents", "&agent=1001") == (403, "agent '1001' is not in your teams")
    assert await keys(rig, "admin", "agents", "&agent=1003") == (200, {"1003"})
    # an agent: their own row, never a colleague's nor a queue's
    assert await keys(rig, "agent1", "agents") == (200, {"1001"})
    assert await keys(rig, "agent1", "agents", "&agent=1001") == (200, {"1001"})
    assert await keys(rig, "agent1", "agents", "&agent=1002") == (403, "an agent sees only their own figures")
    status, _ = await keys(rig, "agent1", "queues")
    assert status == 403
    status, _, _ = await get(rig, None, f"/api/v1/reports/queues?{MARCH}")
    assert status == 401


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("period=hour&from=2025-03-01&to=2025-03-02", "period", "must be one of day, week, month"),
    ("to=2025-03-02", "from", "required (a date, YYYY-MM-DD)"),
    ("from=2025-03-01&to=03/02/2025", "to", "must be a date, YYYY-MM-DD"),
    ("from=2025-03-02&to=2025-03-01", "to", "must not be before from"),
    ("from=2024-01-01&to=2025-03-01", "to", "the range may cover at most 400 days"),
    ("from=2025-03-01&to=2025-03-02&format=xlsx", "format", "must be one of json, csv"),
    ("from=2025-03-01&to=2025-03-02&queue=a%27b", "queue", "must match ^[A-Za-z0-9_-]{1,64}$"),
])
async def test_bad_parameters_are_422_naming_the_field(rig, query, field, reason):
    status, body, _ = await get(rig, "admin", f"/api/v1/reports/queues?{query}")
    assert status == 422
    assert body["fields"] == [{"field": field, "reason": reason}]
