"""Flow versions in a real Postgres: drafts, checks, publish per DID, rollback, audit, import/export."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import yaml

from ccserver.db.migrate import migrate
from ccserver.db.pool import open_pool
from ccserver.ivr.source import read_flow_file
from ccserver.ivr.store import (
    Actor,
    FlowCheckFailed,
    FlowNotFound,
    FlowPermissionError,
    FlowStore,
    FlowStoreError,
)

ROOT = Path(__file__).resolve().parents[1]
ADMIN = Actor("alice", "admin")
SUPERVISOR = Actor("sam", "supervisor")
MAIN = yaml.safe_load((ROOT / "ivr_flows" / "main.yaml").read_text())


@pytest.fixture
async def store(db_dsn: str):
    pool = await open_pool(db_dsn, 1, 4)
    await migrate(pool)
    yield FlowStore(pool)
    await pool.close()


def _with_option(doc: dict, digit: str, target: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["nodes"]["main_menu"]["options"][digit] = target
    return doc


async def _published(store: FlowStore, flow: str = "main") -> FlowStore:
    await store.create_draft(flow, MAIN, ADMIN)
    await store.check(flow, 1, ADMIN)
    await store.publish(flow, 1, "*", ADMIN)
    return store


async def _audit(store: FlowStore) -> list[asyncpg.Record]:
    return await store.pool.fetch("SELECT * FROM audit_log WHERE action LIKE 'ivr.%' ORDER BY id")


async def test_draft_check_publish_records_who_when_and_diff(store: FlowStore) -> None:
    v1 = await store.create_draft("main", MAIN, ADMIN)
    assert (v1.version, v1.status, v1.problems, v1.created_by) == (1, "draft", (), "alice")
    result = await store.check("main", 1, ADMIN)
    assert result.ok and (await store.get("main", 1)).status == "checked"
    pub = await store.publish("main", 1, "*", ADMIN)
    assert (pub.did, pub.flow, pub.version, pub.published_by) == ("*", "main", 1, "alice")
    assert (await store.get("main", 1)).status == "published"
    rows = await _audit(store)
    assert [(r["action"], r["username"], r["target"], r["outcome"]) for r in rows] == [
        ("ivr.flow.create_draft", "alice", "main@1", "ok"),
        ("ivr.flow.check", "alice", "main@1", "ok"),
        ("ivr.flow.publish", "alice", "main@1", "ok"),
    ]
    assert all(isinstance(r["at"], datetime) for r in rows)
    assert {"path": "start", "new": "greeting"} in json.loads(rows[0]["detail"])["diff"]


async def test_failing_draft_is_saved_but_never_published(store: FlowStore) -> None:
    await _published(store)
    broken = _with_option(MAIN, "3", "nowhere")
    v2 = await store.create_draft("main", broken, SUPERVISOR)
    assert v2.status == "draft" and v2.problems == ("nodes.main_menu.options.3: unknown node 'nowhere'",)
    result = await store.check("main", 2, ADMIN)
    assert not result.ok and (await store.get("main", 2)).status == "draft"
    with pytest.raises(FlowCheckFailed, match="main@2 is a draft; check it first") as exc:
        await store.publish("main", 2, "*", ADMIN)
    assert exc.value.problems == ("nodes.main_menu.options.3: unknown node 'nowhere'",)
    [pub] = await store.publications()
    assert (pub.flow, pub.version) == ("main", 1)


async def test_publish_needs_admin_and_the_refusal_is_audited(store: FlowStore) -> None:
    await store.create_draft("main", MAIN, SUPERVISOR)
    await store.check("main", 1, SUPERVISOR)
    with pytest.raises(FlowPermissionError, match="role: ivr.flow.publish needs the admin role"):
        await store.publish("main", 1, "*", SUPERVISOR)
    assert await store.publications() == []
    last = (await _audit(store))[-1]
    assert (last["action"], last["username"], last["outcome"]) == ("ivr.flow.publish", "sam", "denied")


async def test_update_draft_diff_and_new_path_after_publish(store: FlowStore) -> None:
    await _published(store)
    v2 = await store.create_draft("main", _with_option(MAIN, "3", "nowhere"), ADMIN)
    fixed = _with_option(MAIN, "3", "no_choice")
    v2 = await store.update_draft("main", 2, fixed, ADMIN)
    assert v2.problems == () and v2.status == "draft"
    assert [c.to_json() for c in await store.diff("main", 1, 2)] == [
        {"path": "nodes.main_menu.options.3", "new": "no_choice"},
    ]
    update_row = (await _audit(store))[-1]
    assert json.loads(update_row["detail"])["diff"] == [
        {"path": "nodes.main_menu.options.3", "old": "nowhere", "new": "no_choice"},
    ]
    await store.check("main", 2, ADMIN)
    await store.publish("main", 2, "*", ADMIN)
    at = datetime(2026, 11, 27, 10, tzinfo=UTC).timestamp()
    sim = await store.simulate("main", 2, digits="3", at=at, caller="+331", did="5551000")
    assert sim.outcome.path[:4] == ("greeting", "main_menu", "main_menu:3", "no_choice")
    old = await store.simulate("main", 1, digits="3", at=at)
    assert "main_menu:3" in old.outcome.path and "no_choice" in old.outcome.path  # exhausted, not chosen
    with pytest.raises(FlowStoreError, match="version: main@2 is published; published versions are never edited"):
        await store.update_draft("main", 2, fixed, ADMIN)


async def test_rollback_returns_the_previous_version(store: FlowStore) -> None:
    await _published(store)
    await store.create_draft("main", _with_option(MAIN, "3", "no_choice"), ADMIN)
    await store.check("main", 2, ADMIN)
    await store.publish("main", 2, "*", ADMIN)
    with pytest.raises(FlowPermissionError):
        await store.rollback("*", SUPERVISOR)
    pub = await store.rollback("*", ADMIN)
    assert (pub.flow, pub.version) == ("main", 1)
    assert [v.status for v in await store.versions("main")] == ["published", "rolled_back"]
    with pytest.raises(FlowNotFound, match="did: '\\*' has no earlier version to roll back to"):
        await store.rollback("*", ADMIN)
    by_did, by_name = await store.published_flows()
    assert by_did["*"].version == 1 and by_name["main"].version == 1 and list(by_did) == ["*"]
    last = (await _audit(store))[-1]
    assert last["action"] == "ivr.flow.rollback" and json.loads(last["detail"])["from"] == "main@2"


async def test_publish_per_did_is_atomic_under_concurrent_readers(store: FlowStore) -> None:
    await _published(store)
    for n in range(2, 6):
        await store.create_draft("main", _with_option(MAIN, "3", "no_choice") if n % 2 else MAIN, ADMIN)
        await store.check("main", n, ADMIN)
    stop = asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def reader() -> None:
        while not stop.is_set():
            rows = await store.pool.fetch("SELECT count(*) AS n, max(version) AS v FROM ivr_publications WHERE did = '*'")
            seen.append((rows[0]["n"], rows[0]["v"]))
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    await asyncio.gather(*(store.publish("main", n, "*", ADMIN) for n in range(2, 6)))
    stop.set()
    await task
    assert seen and all(n == 1 for n, _ in seen)  # always exactly one published version
    history = await store.pool.fetch("SELECT version FROM ivr_publication_history WHERE did = '*' ORDER BY id")
    [pub] = await store.publications()
    assert len(history) == 5 and pub.version == history[-1]["version"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.create_draft("9bad", MAIN, ADMIN), "flow: '9bad' is not a flow name"),
        (lambda s: s.create_draft("main", ["not", "a", "flow"], ADMIN), "document: must be a mapping"),
        (lambda s: s.create_draft("main", {"x": "y" * 300_000}, ADMIN), "document: 300009 bytes is over"),
        (lambda s: s.publish("main", 1, "bad did", ADMIN), "did: 'bad did' is not a DID"),
        (lambda s: s.publish("main", 9, "*", ADMIN), "flow 'main' has no version 9"),
        (lambda s: s.set_override("bad name", True, ADMIN), "name: 'bad name' is not an override name"),
        (lambda s: s.simulate("main", 1, digits="12x", at=0), "digits: 'x' are not DTMF digits"),
    ],
)
async def test_bad_requests_change_nothing(store: FlowStore, call, message: str) -> None:
    await _published(store)
    before = await store.pool.fetch("SELECT * FROM ivr_flow_versions ORDER BY version")
    audit_before = len(await _audit(store))
    with pytest.raises(ValueError if "digits" in message else FlowStoreError, match=message.replace("(", r"\(")):
        await call(store)
    assert await store.pool.fetch("SELECT * FROM ivr_flow_versions ORDER BY version") == before
    assert len(await _audit(store)) == audit_before
    [pub] = await store.publications()
    assert (pub.flow, pub.version) == ("main", 1)


async def test_overrides_steer_the_schedule(store: FlowStore) -> None:
    hours = read_flow_file(ROOT / "ivr_flows" / "hours.yaml")
    await _published(store)
    await store.create_draft("hours", hours, ADMIN)
    assert (await store.check("hours", 1, ADMIN)).ok
    open_time = datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp()  # a Tuesday, 11:00 in Paris
    sim = await store.simulate("hours", 1, digits="1", at=open_time)
    assert sim.outcome.path[1] == "check_hours:open"
    with pytest.raises(FlowPermissionError):
        await store.set_override("emergency", True, SUPERVISOR)
    await store.set_override("emergency", True, ADMIN)
    assert await store.active_overrides() == {"emergency"}
    sim = await store.simulate("hours", 1, digits="1", at=open_time)
    assert sim.outcome.path[:3] == ("check_hours", "check_hours:override:emergency", "emergency_notice")
    assert sim.outcome.ending == "hangup"
    await store.set_override("emergency", False, ADMIN)
    assert await store.active_overrides() == frozenset()


async def test_import_export_round_trip(store: FlowStore, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "main.yaml").write_bytes((ROOT / "ivr_flows" / "main.yaml").read_bytes())
    (src / "hours.yaml").write_bytes((ROOT / "ivr_flows" / "hours.yaml").read_bytes())
    (src / "bomb.yaml").write_bytes(b"a: &a [x]\nb: [*a, *a]\n")
    results = await store.import_dir(src, ADMIN)
    by_file = {Path(f).name: (v.version if v else None, p) for f, v, p in results}
    assert by_file["bomb.yaml"] == (None, ("line 1, column 4: YAML anchors (&a) are not allowed",))
    assert by_file["main.yaml"] == (1, ())
    assert by_file["hours.yaml"] == (1, ("nodes.main_flow.flow: unknown flow 'main'",))  # main not published yet
    again = await store.import_dir(src, ADMIN)
    assert [v.version for _, v, _ in again if v] == [1, 1]  # unchanged: no new versions
    out = tmp_path / "out"
    written = await store.export_dir(out)
    assert sorted(p.name for p in written) == ["hours.yaml", "main.yaml"]
    exported = yaml.safe_load((out / "main.yaml").read_text())
    assert exported == MAIN


async def test_server_library_follows_publish_and_overrides(store: FlowStore) -> None:
    from ccserver.ivr.library import FlowLibrary
    from ccserver.ivr.sync import sync_once

    library = FlowLibrary(ROOT / "ivr_flows", {"*": "main"})
    started_on = library.snapshot()
    await _published(store)
    await store.create_draft("main", _with_option(MAIN, "3", "no_choice"), ADMIN)
    await store.check("main", 2, ADMIN)
    await store.publish("main", 2, "5550001", ADMIN)
    await store.set_override("emergency", True, ADMIN)
    await sync_once(library, store)
    assert library.for_did("5550001").version == 2 and "3" in library.for_did("5550001").nodes["main_menu"].options
    assert library.for_did("other").version == 1 and library.snapshot()["main"].version == 1  # '*' has v1
    assert library.overrides == {"emergency"}
    assert started_on["main"].version == 1 and "3" not in started_on["main"].nodes["main_menu"].options
    with pytest.raises(FlowNotFound, match="did: '5550001' has no earlier version"):
        await store.rollback("5550001", ADMIN)  # each DID has its own history


def _to_queue(doc: dict, queue: str) -> dict:
    doc = copy.deepcopy(doc)
    for node in doc["nodes"].values():
        if node.get("type") == "queue":
            node["queue"] = queue
    return doc


async def test_sync_reports_published_versions_the_configuration_no_longer_serves(store, caplog) -> None:
    from ccserver.ivr.checks import SiteNames
    from ccserver.ivr.library import FlowLibrary
    from ccserver.ivr.sync import follow_store

    # published when "sales" was still configured (this store checks no site names)
    await store.create_draft("main", _to_queue(MAIN, "sales"), ADMIN)
    await store.check("main", 1, ADMIN)
    await store.publish("main", 1, "5550001", ADMIN)
    site = SiteNames(queues=frozenset({"support"}), skills=frozenset(), languages=None)
    library = FlowLibrary(ROOT / "ivr_flows", {"*": "main"}, site)
    assert library.site_problems == ()  # the files serve the site
    caplog.set_level(logging.INFO, logger="ccserver.ivr.sync")
    syncs = 0
    published_flows = store.published_flows

    async def counted():  # the real query, counted: each sync reads the published flows once
        nonlocal syncs
        syncs += 1
        return await published_flows()

    store.published_flows = counted
    follower = asyncio.create_task(follow_store(library, store, interval=0.01))
    try:
        async with asyncio.timeout(10):
            while not library.site_problems:
                await asyncio.sleep(0.01)
        queue_nodes = [n for n, node in MAIN["nodes"].items() if node.get("type") == "queue"]
        assert library.site_problems == tuple(
            f"IVR flow 'main' version 1: nodes.{n}.queue: queue 'sales' is not configured" for n in queue_nodes)
        assert library.for_did("5550001").version == 1  # reported, still running: never unpublished
        seen = syncs
        async with asyncio.timeout(10):  # many syncs, one report each
            while syncs < seen + 5:
                await asyncio.sleep(0.01)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage().partition(";")[0] for r in errors] == [f"published {p}" for p in library.site_problems]

        await store.create_draft("main", MAIN, ADMIN)
        await store.check("main", 2, ADMIN)
        await store.publish("main", 2, "5550001", ADMIN)
        async with asyncio.timeout(10):
            while library.site_problems or not any(
                    r.getMessage().startswith("fixed: ") for r in caplog.records):
                await asyncio.sleep(0.01)
        seen = syncs
        async with asyncio.timeout(10):  # and more syncs, reporting the fix only once
            while syncs < seen + 5:
                await asyncio.sleep(0.01)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == len(queue_nodes)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("fixed: ")] == [
        f"fixed: IVR flow 'main' version 1: nodes.{n}.queue: queue 'sales' is not configured" for n in queue_nodes]

