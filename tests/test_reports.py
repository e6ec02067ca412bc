"""Daily / weekly / monthly reports against real Postgres: hand-made calls and agent state changes
around a DST change (Europe/Paris, 2025-03-30: a 23-hour day), a week boundary (Monday 2025-03-31)
and a month boundary (2025-04-01), with exact figures in the site's zone and in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ccserver.config import QueueConfig
from ccserver.db.migrate import migrate, migrations_dir
from ccserver.db.pool import open_pool
from ccserver.reports.period import MAX_DAYS, InvalidReport, ReportRange, report_range
from ccserver.reports.queries import agent_report, queue_report

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


#: (call id, queue, entered the queue, seconds waited, outcome, agent, talk, hold, wrap-up)
CALLS = [
    # Saturday 2025-03-29 (CET): answered in 10 s, answered in 30 s, short abandon, voicemail
    ("c1", "support", paris(2025, 3, 29, 10, 0, 0), 10, "answered", "1001", 100, 20, 30),
    ("c2", "support", paris(2025, 3, 29, 11, 0, 0), 30, "answered", "1001", 200, 0, 10),
    ("c3", "support", paris(2025, 3, 29, 12, 0, 0), 5, "abandoned", None, 0, 0, 0),
    ("c6", "support", paris(2025, 3, 29, 13, 0, 0), 120, "voicemail", None, 0, 0, 0),
    # ends Monday 2025-03-31 00:30 CEST = Sunday 22:30 UTC: another day, week (and UTC week)
    ("c4", "support", paris(2025, 3, 31, 0, 29, 0), 60, "abandoned", None, 0, 0, 0),
    # ends Tuesday 2025-04-01 00:30 CEST = 2025-03-31 22:30 UTC: April in Paris, March in UTC
    ("c5", "support", paris(2025, 4, 1, 0, 28, 0), 20, "answered", "1002", 50, 10, 0),
    ("c7", "sales", paris(2025, 3, 29, 15, 0, 0), 4, "answered", "1003", 60, 0, 0),
]

#: agent -> [(local time, state)]: 1001 works Saturday 09:00-18:00; 1002 is logged in from
#: Saturday 22:00 CET to Monday 02:00 CEST across the DST change, with no change on Sunday
STATES = {
    "1001": [(paris(2025, 3, 29, 9, 0, 0), "ready"), (paris(2025, 3, 29, 10, 0, 0), "offered"),
             (paris(2025, 3, 29, 10, 0, 10), "on_call"), (paris(2025, 3, 29, 10, 2, 10), "wrap_up"),
             (paris(2025, 3, 29, 10, 2, 40), "ready"), (paris(2025, 3, 29, 11, 0, 20), "offered"),
             (paris(2025, 3, 29, 11, 0, 30), "on_call"), (paris(2025, 3, 29, 11, 3, 50), "wrap_up"),
             (paris(2025, 3, 29, 11, 4, 0), "ready"), (paris(2025, 3, 29, 12, 0, 0), "paused"),
             (paris(2025, 3, 29, 13, 0, 0), "ready"), (paris(2025, 3, 29, 18, 0, 0), "logged_out")],
    "1002": [(paris(2025, 3, 29, 22, 0, 0), "ready"), (paris(2025, 3, 31, 2, 0, 0), "logged_out")],
}


async def insert_rows(pool) -> None:
    for call_id, queue, entered, wait, outcome, agent, talk, hold, wrapup in CALLS:
        answered = entered + timedelta(seconds=wait) if outcome == "answered" else None
        ended = (answered + timedelta(seconds=talk + hold)) if answered else entered + timedelta(seconds=wait)
        await pool.execute(
            "INSERT INTO calls (call_id, node, channel, did, caller, arrived_at, ivr_ended_at, enqueued_at, "
            "answered_at, ended_at, queue, agent_id, talk_seconds, hold_seconds, wrapup_seconds, disposition, "
            "hangup_cause, hangup_by) VALUES ($1, 'pbx1', 'PJSIP/x', '100', '+15550001111', $2, $2, $2, $3, $4, "
            "$5, $6, $7, $8, $9, $10, 'normal_clearing', 'caller')",
            call_id, entered, answered, ended, queue, agent, talk, hold, wrapup, outcome)
    # a call that never reached a queue counts nowhere
    await pool.execute(
        "INSERT INTO calls (call_id, node, channel, did, caller, arrived_at, ended_at, disposition, hangup_cause, "
        "hangup_by) VALUES ('ivr', 'pbx1', 'PJSIP/x', '100', '+15550001111', $1, $1, 'ivr_hangup', "
        "'normal_clearing', 'caller')", paris(2025, 3, 29, 10, 0, 0))
    for agent, changes in STATES.items():
        previous = "logged_out"
        for i, (at, state) in enumerate(changes):
            await pool.execute("INSERT INTO agent_state_changes (change_id, agent_id, state, previous, at) "
                               "VALUES ($1, $2, $3, $4, $5)", f"{agent}-{i}", agent, state, previous, at)
            previous = state


@pytest.fixture
async def pool(db_dsn):
    pool = await open_pool(db_dsn, 1, 2)
    await migrate(pool, migrations_dir())
    await insert_rows(pool)
    yield pool
    await pool.close()


def rng(period: str, first: str, last: str) -> ReportRange:
    return report_range(period, first, last)


CONFIGURED = [QueueConfig(name="support"), QueueConfig(name="sales", service_level_seconds=30)]


async def queues(pool, tz: str, period: str, first: str, last: str, only=None, configured=CONFIGURED) -> dict:
    rows = await queue_report(pool, tz, rng(period, first, last), configured, only)
    return {(r.period_start.isoformat(), r.queue): r.model_dump(exclude={"period_start", "queue"}) for r in rows}


async def agents(pool, tz: str, period: str, first: str, last: str, only=None, known=("1001", "1002", "1003")):
    rows = await agent_report(pool, tz, rng(period, first, last), NOW, only, known)
    return {(r.period_start.isoformat(), r.agent_id): r.model_dump(exclude={"period_start", "agent_id"})
            for r in rows}


def q(offered, answered, within, abandoned, short, other, sl, rate, asa, aht, threshold=20, grace=0.0) -> dict:
    return dict(service_level_seconds=threshold, abandon_grace_seconds=grace, offered=offered, answered=answered,
                answered_within_threshold=within, abandoned=abandoned, short_abandoned=short,
                other=other, service_level=sl, abandon_rate=rate, asa_seconds=asa, aht_seconds=aht)


SATURDAY = q(4, 2, 1, 1, 0, 1, 0.3333, 0.3333, 20.0, 180.0)


async def test_queues_by_local_day_week_and_month(pool):
    assert await queues(pool, "Europe/Paris", "day", "2025-03-29", "2025-04-01", only={"support"}) == {
        ("2025-03-29", "support"): SATURDAY,
        # with no abandon grace every abandon counts against the service level, c3 after 5 s too
        ("2025-03-31", "support"): q(1, 0, 0, 1, 0, 0, 0.0, 1.0, None, None),
        ("2025-04-01", "support"): q(1, 1, 1, 0, 0, 0, 1.0, 0.0, 20.0, 60.0),  # 20 s is within 20 s
    }
    assert await queues(pool, "Europe/Paris", "week", "2025-03-29", "2025-04-01", only={"support"}) == {
        ("2025-03-24", "support"): SATURDAY,
        ("2025-03-31", "support"): q(2, 1, 1, 1, 0, 0, 0.5, 0.5, 20.0, 60.0),
    }
    assert await queues(pool, "Europe/Paris", "month", "2025-03-01", "2025-04-30") == {
        ("2025-03-01", "sales"): q(1, 1, 1, 0, 0, 0, 1.0, 0.0, 4.0, 60.0, threshold=30),
        ("2025-03-01", "support"): q(5, 2, 1, 2, 0, 1, 0.25, 0.5, 20.0, 180.0),
        ("2025-04-01", "support"): q(1, 1, 1, 0, 0, 0, 1.0, 0.0, 20.0, 60.0),
    }


async def test_abandons_within_the_grace_are_short_and_in_no_ratio(pool):
    graced = [QueueConfig(name="support", abandon_grace_seconds=10)]
    got = await queues(pool, "Europe/Paris", "day", "2025-03-29", "2025-03-31", {"support"}, graced)
    assert got == {
        # c3 hung up after 5 s: short; service level 1 of (2 answered + 0 abandoned)
        ("2025-03-29", "support"): q(4, 2, 1, 0, 1, 1, 0.5, 0.0, 20.0, 180.0, grace=10.0),
        ("2025-03-31", "support"): q(1, 0, 0, 1, 0, 0, 0.0, 1.0, None, None, grace=10.0),
    }


async def test_the_same_calls_in_utc(pool):
    assert await queues(pool, "UTC", "month", "2025-03-01", "2025-04-30", only={"support"}) == {
        ("2025-03-01", "support"): q(6, 3, 2, 2, 0, 1, 0.4, 0.4, 20.0, 140.0),
    }
    got = await queues(pool, "UTC", "week", "2025-03-29", "2025-04-01", only={"support"})
    assert {k: (v["offered"], v["abandoned"]) for k, v in got.items()} == {
        ("2025-03-24", "support"): (5, 2), ("2025-03-31", "support"): (1, 0)}


async def test_range_is_widened_to_whole_periods_and_bounds_the_calls(pool):
    # asked for Sunday only: the week from Monday 24 to Sunday 30 is counted whole
    assert set(await queues(pool, "Europe/Paris", "week", "2025-03-30", "2025-03-30")) == {
        ("2025-03-24", "support"), ("2025-03-24", "sales")}
    # a day with no call has no row; c4 ended at 00:30 on the 31st, not on the 30th
    assert await queues(pool, "Europe/Paris", "day", "2025-03-30", "2025-03-30") == {}
    # a queue's threshold not in the configuration: the default one
    rows = await queue_report(pool, "Europe/Paris", rng("day", "2025-03-29", "2025-03-29"), [], {"sales"})
    assert [(r.queue, r.service_level_seconds, r.answered_within_threshold) for r in rows] == [("sales", 20, 1)]


ALICE_SATURDAY = dict(answered=2, talk_seconds=300.0, hold_seconds=20.0, wrapup_seconds=40.0, aht_seconds=180.0,
                      logged_in_seconds=32400.0, paused_seconds=3600.0, available_seconds=28440.0,
                      busy_seconds=360.0, occupancy=0.0125)


def idle(logged_in: float) -> dict:
    return dict(answered=0, talk_seconds=0.0, hold_seconds=0.0, wrapup_seconds=0.0, aht_seconds=None,
                logged_in_seconds=logged_in, paused_seconds=0.0, available_seconds=logged_in, busy_seconds=0.0,
                occupancy=0.0)


BOB_CALL = dict(answered=1, talk_seconds=50.0, hold_seconds=10.0, wrapup_seconds=0.0, aht_seconds=60.0,
                logged_in_seconds=0.0, paused_seconds=0.0, available_seconds=0.0, busy_seconds=0.0, occupancy=None)


async def test_agents_by_local_day_across_the_dst_change(pool):
    assert await agents(pool, "Europe/Paris", "day", "2025-03-29", "2025-04-01", only={"1001", "1002"}) == {
        ("2025-03-29", "1001"): ALICE_SATURDAY,
        ("2025-03-29", "1002"): idle(2 * 3600),
        ("2025-03-30", "1002"): idle(23 * 3600),  # the day clocks went forward has 23 hours
        ("2025-03-31", "1002"): idle(2 * 3600),
        ("2025-04-01", "1002"): BOB_CALL,  # calls without time logged in still count
    }
    # the same in UTC: 1002 logged in 21:00-24:00 UTC on the 29th, all of the 30th, until 00:00 UTC
    got = await agents(pool, "UTC", "day", "2025-03-29", "2025-04-01", only={"1002"})
    assert {k: v["logged_in_seconds"] for k, v in got.items()} == {
        ("2025-03-29", "1002"): 3 * 3600.0, ("2025-03-30", "1002"): 24 * 3600.0, ("2025-03-31", "1002"): 0.0}
    assert got[("2025-03-31", "1002")]["answered"] == 1


async def test_an_agent_logged_in_all_along_is_found_from_their_last_change(pool):
    # no state change on Sunday 30: 1002's state comes from Saturday's
    assert await agents(pool, "Europe/Paris", "day", "2025-03-30", "2025-03-30") == {
        ("2025-03-30", "1002"): idle(23 * 3600)}
    # unless nobody said 1002 exists (neither configured nor limited to)
    assert await agents(pool, "Europe/Paris", "day", "2025-03-30", "2025-03-30", known=()) == {}
    # weekly and monthly sums
    week = await agents(pool, "Europe/Paris", "week", "2025-03-29", "2025-04-01", only={"1002"})
    assert {k: v["logged_in_seconds"] for k, v in week.items()} == {
        ("2025-03-24", "1002"): 25 * 3600.0, ("2025-03-31", "1002"): 2 * 3600.0}
    month = await agents(pool, "Europe/Paris", "month", "2025-03-15", "2025-04-15")
    assert {k: (v["answered"], v["logged_in_seconds"]) for k, v in month.items()} == {
        ("2025-03-01", "1001"): (2, 32400.0), ("2025-03-01", "1002"): (0, 27 * 3600.0),
        ("2025-03-01", "1003"): (1, 0.0), ("2025-04-01", "1002"): (1, 0.0)}


async def test_state_time_stops_now(pool):
    rows = await agent_report(pool, "Europe/Paris", rng("day", "2025-03-29", "2025-03-29"),
                              paris(2025, 3, 29, 23, 30, 0), {"1002"}, ())
    assert [(r.agent_id, r.logged_in_seconds) for r in rows] == [("1002", 5400.0)]


@pytest.mark.parametrize(("args", "field", "reason"), [
    (("year", "2025-01-01", "2025-01-02"), "period", "must be one of day, week, month"),
    (("day", None, "2025-01-02"), "from", "required (a date, YYYY-MM-DD)"),
    (("day", "2025-01-01", ""), "to", "required (a date, YYYY-MM-DD)"),
    (("day", "2025-01-01T00:00", "2025-01-02"), "from", "must be a date, YYYY-MM-DD"),
    (("day", "2025-02-30", "2025-03-02"), "from", "not a calendar date"),
    (("day", "2025-01-02", "2025-01-01"), "to", "must not be before from"),
    (("month", "2025-01-01", "2026-02-05"), "to", f"the range may cover at most {MAX_DAYS} days"),
])
def test_bad_parameters_name_the_field(args, field, reason):
    with pytest.raises(InvalidReport) as e:
        report_range(*args)
    assert (e.value.field, e.value.reason) == (field, reason)


def test_ranges_widen_to_whole_periods():
    assert report_range(None, "2025-01-01", "2025-01-01") == ReportRange("day", date(2025, 1, 1), date(2025, 1, 2))
    assert report_range("week", "2025-01-01", "2025-01-01") == ReportRange(
        "week", date(2024, 12, 30), date(2025, 1, 6))
    assert report_range("month", "2024-12-15", "2024-12-15") == ReportRange(
        "month", date(2024, 12, 1), date(2025, 1, 1))
    # the longest range asked for is accepted
    last = date(2025, 1, 1) + timedelta(days=MAX_DAYS - 1)
    assert report_range("day", "2025-01-01", last.isoformat()).end == last + timedelta(days=1)
