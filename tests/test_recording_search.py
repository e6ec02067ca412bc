"""Finding a call by the caller's number however it was written, by date, by call id, in scope;
and the search uses its indexes (migration 0006), also with a generic (prepared) plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ccserver.db.migrate import migrate, migrations_dir
from ccserver.db.pool import open_pool
from ccserver.recording.store import CallSearch, RecordingStore, caller_suffix, search_sql

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
#: call id -> (caller as the PBX delivered it, agent, queue), one a minute from T0
CALLS = {
    "pbx1:intl": ("+33612345678", "1001", "support"),
    "pbx1:spaced": ("06 12 34 56 78", "1002", "support"),
    "pbx1:other": ("+33699999999", "1001", "sales"),
    "pbx1:ext": ("1001", "1002", "sales"),
    "pbx1:longer": ("+1 555 0001001", "1001", "support"),
    "pbx1:anon": ("anonymous", None, "support"),
}


@pytest.mark.parametrize(("typed", "suffix"), [
    ("0612345678", "612345678"),          # national: the trunk 0 goes
    ("+33 6 12 34 56 78", "33612345678"),  # separators go
    ("0033612345678", "33612345678"),      # international 00 prefix
    ("tel:06-12-34-56-78", "612345678"),
    ("123456", "123456"),                  # 6 digits: enough
    ("12345", None),                       # fewer: exact match
    ("0012345", None),                     # leading zeros do not count
    ("anonymous", None),
    ("", None),
])
def test_which_queries_match_as_a_suffix(typed, suffix):
    assert caller_suffix(typed) == suffix


@pytest.fixture
async def store(db_dsn):
    pool = await open_pool(db_dsn, 1, 2)
    await migrate(pool, migrations_dir())
    for i, (call_id, (caller, agent, queue)) in enumerate(CALLS.items()):
        at = T0 + timedelta(minutes=i)
        await pool.execute(
            "INSERT INTO calls (call_id, node, channel, did, caller, arrived_at, ended_at, queue, agent_id, "
            "disposition, hangup_cause, hangup_by) VALUES ($1, 'pbx1', 'PJSIP/x', '8005550100', $2, $3, $4, "
            "$5, $6, 'answered', 'normal_clearing', 'caller')",
            call_id, caller, at, at + timedelta(seconds=30), queue, agent)
    yield RecordingStore(pool)
    await pool.close()


async def found(store: RecordingStore, **filters) -> set[str]:
    return {c.call_id for c in await store.search(CallSearch(**filters))}


async def test_caller_digits_match_as_a_suffix_and_short_queries_exactly(store):
    both = {"pbx1:intl", "pbx1:spaced"}
    assert await found(store, caller="0612345678") == both
    assert await found(store, caller="06.12.34.56.78") == both
    assert await found(store, caller="612345678") == both
    assert await found(store, caller="+33612345678") == {"pbx1:intl"}  # longer than "06 12 ..." holds
    assert await found(store, caller="061234567") == set()  # the digits must end the number
    # under 6 digits: exactly as typed, so an extension does not find every number ending in it
    assert await found(store, caller="1001") == {"pbx1:ext"}
    assert await found(store, caller="45678") == set()
    assert await found(store, caller="anonymous") == {"pbx1:anon"}
    # with the other filters and the supervisor's scope
    assert await found(store, caller="0612345678", agent_id="1002") == {"pbx1:spaced"}
    assert await found(store, caller="0612345678", agents=frozenset({"1001"}), queues=frozenset()) == {
        "pbx1:intl"}


async def test_dates_call_id_and_scope(store):
    assert await found(store, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)) == {
        "pbx1:other", "pbx1:ext"}
    newest = await store.search(CallSearch(limit=2))
    assert [c.call_id for c in newest] == ["pbx1:anon", "pbx1:longer"]
    [detail] = await store.search(CallSearch(call_id="pbx1:intl"))
    assert (detail.caller, detail.did, detail.hangup_by, detail.ivr_path) == (
        "+33612345678", "8005550100", "caller", ())
    # a supervisor of team sales (agent 1002's calls and queue sales) does not see pbx1:intl
    assert await found(store, call_id="pbx1:intl", agents=frozenset({"1002"}), queues=frozenset({"sales"})) == set()
    assert await found(store, agents=frozenset({"1002"}), queues=frozenset({"sales"})) == {
        "pbx1:spaced", "pbx1:other", "pbx1:ext"}


def _literal(value) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("plan", ["force_custom_plan", "force_generic_plan"])
async def test_searches_use_their_indexes(store, plan):
    async with store.pool.acquire() as conn:
        # a handful of rows: forbid sequential scans so the plan shows which index can serve; a
        # generic plan (what a prepared statement may settle on) knows no values, only the shape
        await conn.execute(f"SET enable_seqscan = off; SET plan_cache_mode = {plan}")
        for i, (q, index) in enumerate(((CallSearch(caller="0612345678"), "calls_caller_digits_reversed"),
                                        (CallSearch(caller="1001"), "calls_caller"),
                                        (CallSearch(since=T0, until=T0 + timedelta(days=1)), "calls_arrived_at"))):
            sql, args = search_sql(q)
            await conn.execute(f"PREPARE search_{i} AS {sql}")
            rows = await conn.fetch(f"EXPLAIN EXECUTE search_{i}({', '.join(_literal(a) for a in args)})")
            plan_text = "\n".join(r[0] for r in rows)
            assert f" {index} " in plan_text, (q, plan_text)
