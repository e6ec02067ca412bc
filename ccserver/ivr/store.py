"""Flow versions in Postgres: drafts, checks, publish per DID, rollback, overrides, audit.

The service layer the admin API and the CLI call. A version moves draft -> checked ->
published (-> rolled_back); only drafts and checked versions are edited, and an edit makes the
version a draft again. A draft that fails the static checks is saved with its problems; a
publish re-runs the checks and refuses any problem. Switching a DID to a version is one row
update in one transaction, so a call gets either the old or the new version, never a mix.
Every change writes one ``audit_log`` row (who, when, the diff) in the same transaction;
refused publishes / rollbacks by non-admins are audited as ``denied``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
import yaml

from ccserver.ivr.checks import CheckResult, SiteNames, check_data, check_goto_cycles
from ccserver.ivr.diff import Change, diff_documents
from ccserver.ivr.flow import Flow, FlowError, parse_flow
from ccserver.ivr.simulate import Simulation, simulate
from ccserver.ivr.source import MAX_BYTES, read_flow_file

Status = Literal["draft", "checked", "published", "rolled_back"]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DID = re.compile(r"^([A-Za-z0-9_+#-]{1,64}|\*)$")
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class FlowStoreError(Exception):
    """A request cannot be done; the message names the field and the reason. Nothing changed."""


class FlowNotFound(FlowStoreError):
    """No such flow, version or publication."""


class FlowPermissionError(FlowStoreError):
    """The actor's role may not do this (publish, rollback and overrides need ``admin``)."""


class FlowCheckFailed(FlowStoreError):
    """The version has problems; ``problems`` lists them all."""

    def __init__(self, message: str, problems: tuple[str, ...]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: the username and role the audit log records (``user_id`` when a user row exists)."""

    username: str
    role: Literal["admin", "supervisor", "agent"]
    user_id: int | None = None
    remote: str = ""


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """One stored version of a flow, with the problems found when it was last saved or checked."""

    flow: str
    version: int
    status: Status
    document: dict[str, Any]
    problems: tuple[str, ...]
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Publication:
    """Which version new calls to ``did`` get."""

    did: str
    flow: str
    version: int
    published_by: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """A flow in the list: its newest version and status, and the DIDs it is published on."""

    flow: str
    latest_version: int
    latest_status: Status
    published: tuple[tuple[str, int], ...]


class FlowStore:
    """The IVR flow service over an asyncpg pool (migration 0003 applied).

    With ``site`` (the running configuration's names), saving, checking and publishing also
    check that the queues, skills and languages a version names are served there.
    """

    def __init__(self, pool: asyncpg.Pool, site: SiteNames | None = None) -> None:
        self.pool = pool
        self.site = site

    # ---- reading ----------------------------------------------------------------------------

    async def list_flows(self) -> list[FlowSummary]:
        """Every flow, by name."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (flow) flow, version, status FROM ivr_flow_versions ORDER BY flow, version DESC"
        )
        pubs = await self.pool.fetch("SELECT did, flow, version FROM ivr_publications ORDER BY did")
        return [
            FlowSummary(r["flow"], r["version"], r["status"],
                        tuple((p["did"], p["version"]) for p in pubs if p["flow"] == r["flow"]))
            for r in rows
        ]

    async def versions(self, flow: str) -> list[FlowVersion]:
        """All versions of ``flow``, oldest first."""
        rows = await self.pool.fetch("SELECT * FROM ivr_flow_versions WHERE flow = $1 ORDER BY version", flow)
        return [_version(r) for r in rows]

    async def get(self, flow: str, version: int) -> FlowVersion:
        """One version; :class:`FlowNotFound` if absent."""
        row = await self.pool.fetchrow(
            "SELECT * FROM ivr_flow_versions WHERE flow = $1 AND version = $2", flow, version
        )
        if row is None:
            raise FlowNotFound(f"flow {flow!r} has no version {version}")
        return _version(row)

    async def publications(self) -> list[Publication]:
        """Every DID's published version."""
        rows = await self.pool.fetch("SELECT * FROM ivr_publications ORDER BY did")
        return [Publication(r["did"], r["flow"], r["version"], r["published_by"], r["published_at"]) for r in rows]

    async def diff(self, flow: str, old: int, new: int, old_flow: str | None = None) -> list[Change]:
        """Field-level changes from version ``old`` to version ``new`` of ``flow``; with
        ``old_flow``, ``old`` is that flow's version (what a DID running it would see change)."""
        a, b = await self.get(old_flow or flow, old), await self.get(flow, new)
        return diff_documents(_without_version(a.document), _without_version(b.document))

    # ---- editing ----------------------------------------------------------------------------

    async def create_draft(self, flow: str, document: Any, actor: Actor) -> FlowVersion:
        """Save ``document`` as the next version of ``flow`` (a new flow if there is none yet).

        The document's ``name`` and ``version`` are set by the store. Problems are stored, not
        refused: a broken draft can be saved and fixed later.
        """
        _check_name(flow)
        doc = _document(document)
        async with self.pool.acquire() as conn, conn.transaction():
            # one writer per flow at a time: version numbers stay dense and unique
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ivr_flow:' || $1))", flow)
            previous = await conn.fetchrow(
                "SELECT version, document FROM ivr_flow_versions WHERE flow = $1 ORDER BY version DESC LIMIT 1",
                flow,
            )
            version = previous["version"] + 1 if previous else 1
            doc = {**doc, "name": flow, "version": version}
            result = check_data(doc, await _known_flows(conn, flow), self.site)
            row = await conn.fetchrow(
                "INSERT INTO ivr_flow_versions (flow, version, status, document, problems, created_by, updated_by) "
                "VALUES ($1, $2, 'draft', $3::jsonb, $4::jsonb, $5, $5) RETURNING *",
                flow, version, json.dumps(doc), json.dumps(list(result.problems)), actor.username,
            )
            base = _without_version(json.loads(previous["document"])) if previous else {}
            await _audit(conn, actor, "ivr.flow.create_draft", f"{flow}@{version}",
                         {"diff": [c.to_json() for c in diff_documents(base, _without_version(doc))],
                          "problems": list(result.problems)})
        return _version(row)

    async def update_draft(self, flow: str, version: int, document: Any, actor: Actor) -> FlowVersion:
        """Replace a draft's (or checked version's) document; it becomes a draft again."""
        doc = _document(document)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await _lock_version(conn, flow, version)
            if row["status"] not in ("draft", "checked"):
                raise FlowStoreError(
                    f"version: {flow}@{version} is {row['status']}; published versions are never edited, "
                    "create a new draft"
                )
            doc = {**doc, "name": flow, "version": version}
            result = check_data(doc, await _known_flows(conn, flow), self.site)
            new = await conn.fetchrow(
                "UPDATE ivr_flow_versions SET document = $3::jsonb, problems = $4::jsonb, status = 'draft', "
                "updated_by = $5, updated_at = clock_timestamp() WHERE flow = $1 AND version = $2 RETURNING *",
                flow, version, json.dumps(doc), json.dumps(list(result.problems)), actor.username,
            )
            changes = diff_documents(json.loads(row["document"]), doc)
            await _audit(conn, actor, "ivr.flow.update_draft", f"{flow}@{version}",
                         {"diff": [c.to_json() for c in changes], "problems": list(result.problems)})
        return _version(new)

    async def check(self, flow: str, version: int, actor: Actor) -> CheckResult:
        """Run the static checks; a draft without problems becomes ``checked``."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await _lock_version(conn, flow, version)
            result = check_data(json.loads(row["document"]), await _known_flows(conn, flow), self.site)
            status = row["status"]
            if status in ("draft", "checked"):
                status = "checked" if result.ok else "draft"
            await conn.execute(
                "UPDATE ivr_flow_versions SET problems = $3::jsonb, status = $4 WHERE flow = $1 AND version = $2",
                flow, version, json.dumps(list(result.problems)), status,
            )
            await _audit(conn, actor, "ivr.flow.check", f"{flow}@{version}",
                         {"status": status, "problems": list(result.problems)})
        return result

    # ---- publishing -------------------------------------------------------------------------

    async def publish(self, flow: str, version: int, did: str, actor: Actor) -> Publication:
        """Make ``flow@version`` answer ``did`` (``*`` = every DID without its own flow).

        Needs the admin role and a checked version that still passes the checks (they are run
        again: a ``goto`` target may have changed). Otherwise nothing changes.
        """
        if not _DID.match(did):
            raise FlowStoreError(f"did: {did!r} is not a DID (letters, digits, _ + # -, or '*')")
        await self._require_admin(actor, "ivr.flow.publish", f"{flow}@{version}", {"did": did})
        async with self.pool.acquire() as conn, conn.transaction():
            row = await _lock_version(conn, flow, version)
            if row["status"] == "draft":
                raise FlowCheckFailed(
                    f"version: {flow}@{version} is a draft; check it first",
                    tuple(json.loads(row["problems"])),
                )
            document = json.loads(row["document"])
            result = check_data(document, await _known_flows(conn, flow), self.site)
            if not result.ok:
                raise FlowCheckFailed(f"version: {flow}@{version} fails the checks", result.problems)
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ivr_did:' || $1))", did)
            current = await conn.fetchrow("SELECT flow, version FROM ivr_publications WHERE did = $1", did)
            await _check_goto_cycles(conn, result.flow)
            pub = await conn.fetchrow(
                "INSERT INTO ivr_publications (did, flow, version, published_by) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (did) DO UPDATE SET flow = $2, version = $3, published_by = $4, "
                "published_at = clock_timestamp() RETURNING *",
                did, flow, version, actor.username,
            )
            await conn.execute(
                "INSERT INTO ivr_publication_history (did, flow, version, action, by_user) "
                "VALUES ($1, $2, $3, 'publish', $4)", did, flow, version, actor.username,
            )
            await conn.execute(
                "UPDATE ivr_flow_versions SET status = 'published' WHERE flow = $1 AND version = $2", flow, version
            )
            before = await _document_of(conn, current)
            await _audit(conn, actor, "ivr.flow.publish", f"{flow}@{version}", {
                "did": did,
                "previous": f"{current['flow']}@{current['version']}" if current else None,
                "diff": [c.to_json() for c in diff_documents(_without_version(before), _without_version(document))],
            })
        return Publication(pub["did"], pub["flow"], pub["version"], pub["published_by"], pub["published_at"])

    async def rollback(self, did: str, actor: Actor) -> Publication:
        """Give ``did`` back the version it had before the current one; the current one is
        marked ``rolled_back``. Needs the admin role."""
        await self._require_admin(actor, "ivr.flow.rollback", did, {"did": did})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ivr_did:' || $1))", did)
            current = await conn.fetchrow("SELECT flow, version FROM ivr_publications WHERE did = $1", did)
            if current is None:
                raise FlowNotFound(f"did: nothing is published on {did!r}")
            # the latest earlier publication that was not itself rolled back
            previous = await conn.fetchrow(
                "SELECT h.flow, h.version FROM ivr_publication_history h JOIN ivr_flow_versions v "
                "USING (flow, version) WHERE h.did = $1 AND (h.flow, h.version) <> ($2, $3) "
                "AND v.status <> 'rolled_back' ORDER BY h.id DESC LIMIT 1",
                did, current["flow"], current["version"],
            )
            if previous is None:
                raise FlowNotFound(f"did: {did!r} has no earlier version to roll back to")
            pub = await conn.fetchrow(
                "UPDATE ivr_publications SET flow = $2, version = $3, published_by = $4, "
                "published_at = clock_timestamp() WHERE did = $1 RETURNING *",
                did, previous["flow"], previous["version"], actor.username,
            )
            await conn.execute(
                "INSERT INTO ivr_publication_history (did, flow, version, action, by_user) "
                "VALUES ($1, $2, $3, 'rollback', $4)", did, previous["flow"], previous["version"], actor.username,
            )
            await conn.execute(
                "UPDATE ivr_flow_versions SET status = 'rolled_back' WHERE flow = $1 AND version = $2 "
                "AND NOT EXISTS (SELECT 1 FROM ivr_publications WHERE flow = $1 AND version = $2)",
                current["flow"], current["version"],
            )
            await conn.execute(
                "UPDATE ivr_flow_versions SET status = 'published' WHERE flow = $1 AND version = $2",
                previous["flow"], previous["version"],
            )
            before, after = await _document_of(conn, current), await _document_of(conn, previous)
            await _audit(conn, actor, "ivr.flow.rollback", f"{previous['flow']}@{previous['version']}", {
                "did": did,
                "from": f"{current['flow']}@{current['version']}",
                "diff": [c.to_json() for c in diff_documents(_without_version(before), _without_version(after))],
            })
        return Publication(pub["did"], pub["flow"], pub["version"], pub["published_by"], pub["published_at"])

    async def published_flows(self) -> tuple[dict[str, Flow], dict[str, Flow]]:
        """What the server runs: the flow version per DID, and per flow name the version a
        ``goto`` or a configured route gets (the one on ``*``, else the latest published)."""
        rows = await self.pool.fetch(
            "SELECT p.did, v.flow, v.version, v.document FROM ivr_publications p "
            "JOIN ivr_flow_versions v USING (flow, version) ORDER BY p.did = '*', p.published_at"
        )
        parsed = {(r["flow"], r["version"]): r["document"] for r in rows}
        flows = {key: parse_flow(json.loads(doc)) for key, doc in parsed.items()}
        by_did = {r["did"]: flows[(r["flow"], r["version"])] for r in rows}
        by_name = {r["flow"]: flows[(r["flow"], r["version"])] for r in rows}  # '*' rows come last: they win
        return by_did, by_name

    # ---- overrides --------------------------------------------------------------------------

    async def set_override(self, name: str, active: bool, actor: Actor) -> None:
        """Switch a schedule override (e.g. ``emergency``) on or off for new calls. Admin only."""
        if not _OVERRIDE.match(name):
            raise FlowStoreError(f"name: {name!r} is not an override name (letters, digits, _)")
        await self._require_admin(actor, "ivr.override.set", name, {"active": active})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO ivr_overrides (name, active, set_by) VALUES ($1, $2, $3) ON CONFLICT (name) "
                "DO UPDATE SET active = $2, set_by = $3, set_at = clock_timestamp()",
                name, active, actor.username,
            )
            await _audit(conn, actor, "ivr.override.set", name, {"active": active})

    async def active_overrides(self) -> frozenset[str]:
        """The overrides switched on now."""
        rows = await self.pool.fetch("SELECT name FROM ivr_overrides WHERE active")
        return frozenset(r["name"] for r in rows)

    # ---- simulate, import, export -----------------------------------------------------------

    async def simulate(self, flow: str, version: int, *, digits: str, at: float, caller: str = "",
                       did: str = "", overrides: frozenset[str] | None = None) -> Simulation:
        """Run a stored version (schema-valid; checks need not pass) with no call."""
        stored = await self.get(flow, version)
        result = check_data(stored.document)
        if result.flow is None:
            raise FlowCheckFailed(f"version: {flow}@{version} cannot run", result.problems)
        _, by_name = await self.published_flows()
        if overrides is None:
            overrides = await self.active_overrides()
        return await simulate(result.flow, digits=digits, at=at, caller=caller, did=did,
                              flows=by_name, overrides=overrides)

    async def import_dir(self, directory: Path, actor: Actor) -> list[tuple[str, FlowVersion | None, tuple[str, ...]]]:
        """Store each ``*.yaml`` of ``directory`` as a new draft of the flow named by its file.

        Returns ``(file, version or None, problems)`` per file: a file that cannot even be
        read as a document (bad YAML, duplicate keys, too big, not UTF-8) is not stored; one
        with check problems is stored as a draft with its problems. A file equal to the flow's
        newest version stores nothing new.
        """
        out: list[tuple[str, FlowVersion | None, tuple[str, ...]]] = []
        for path in sorted(directory.glob("*.yaml")):
            try:
                document = read_flow_file(path)
            except FlowError as err:
                out.append((str(path), None, tuple(err.problems)))
                continue
            if not _NAME.match(path.stem) or not isinstance(document, dict):
                out.append((str(path), None, ("(file): not a flow (a mapping in a file named <flow>.yaml)",)))
                continue
            latest = await self.versions(path.stem)
            if latest and _without_version(latest[-1].document) == _without_version(
                {**document, "name": path.stem}
            ):
                out.append((str(path), latest[-1], latest[-1].problems))
                continue
            stored = await self.create_draft(path.stem, document, actor)
            out.append((str(path), stored, stored.problems))
        return out

    async def export_dir(self, directory: Path) -> list[Path]:
        """Write each flow's published version (else its newest) to ``<directory>/<flow>.yaml``."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (v.flow) v.flow, v.document FROM ivr_flow_versions v "
            "ORDER BY v.flow, (v.status = 'published') DESC, v.version DESC"
        )
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for r in rows:
            path = directory / f"{r['flow']}.yaml"
            path.write_text(yaml.safe_dump(json.loads(r["document"]), sort_keys=False, allow_unicode=True),
                            encoding="utf-8")
            written.append(path)
        return written

    async def _require_admin(self, actor: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        if actor.role == "admin":
            return
        async with self.pool.acquire() as conn:
            await _audit(conn, actor, action, target, detail, outcome="denied")
        raise FlowPermissionError(f"role: {action} needs the admin role ({actor.username} is {actor.role})")


def _check_name(flow: str) -> None:
    if not _NAME.match(flow):
        raise FlowStoreError(f"flow: {flow!r} is not a flow name (a letter, then letters, digits, _ -; at most 64)")


def _document(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise FlowStoreError(f"document: must be a mapping (a flow), not {type(document).__name__}")
    try:
        encoded = json.dumps(document)
    except (TypeError, ValueError) as err:
        raise FlowStoreError(f"document: not representable as JSON: {err}") from None
    if len(encoded) > MAX_BYTES:
        raise FlowStoreError(f"document: {len(encoded)} bytes is over the {MAX_BYTES}-byte limit")
    return json.loads(encoded)


def _without_version(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "version"}


def _version(row: asyncpg.Record) -> FlowVersion:
    return FlowVersion(
        row["flow"], row["version"], row["status"], json.loads(row["document"]),
        tuple(json.loads(row["problems"])), row["created_by"], row["created_at"],
        row["updated_by"], row["updated_at"],
    )


async def _lock_version(conn: asyncpg.Connection, flow: str, version: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM ivr_flow_versions WHERE flow = $1 AND version = $2 FOR UPDATE", flow, version
    )
    if row is None:
        raise FlowNotFound(f"flow {flow!r} has no version {version}")
    return row


async def _known_flows(conn: asyncpg.Connection, flow: str) -> set[str]:
    """Flows a ``goto`` may name: those published somewhere, and the flow itself."""
    rows = await conn.fetch("SELECT DISTINCT flow FROM ivr_publications")
    return {r["flow"] for r in rows} | {flow}


async def _document_of(conn: asyncpg.Connection, ref: asyncpg.Record | None) -> dict[str, Any]:
    if ref is None:
        return {}
    raw = await conn.fetchval(
        "SELECT document FROM ivr_flow_versions WHERE flow = $1 AND version = $2", ref["flow"], ref["version"]
    )
    return json.loads(raw)


async def _check_goto_cycles(conn: asyncpg.Connection, flow: Flow | None) -> None:
    assert flow is not None
    rows = await conn.fetch(
        "SELECT v.flow, v.document FROM ivr_publications p JOIN ivr_flow_versions v USING (flow, version) "
        "WHERE v.flow <> $1", flow.name,
    )
    flows = {r["flow"]: parse_flow(json.loads(r["document"])) for r in rows}
    flows[flow.name] = flow
    problems = check_goto_cycles(flows)
    if problems:
        raise FlowCheckFailed(f"version: {flow.name}@{flow.version} would make flows call each other forever",
                              tuple(problems))


async def _audit(conn: asyncpg.Connection, actor: Actor, action: str, target: str, detail: dict[str, Any],
                 outcome: Literal["ok", "denied", "failed"] = "ok") -> None:
    await conn.execute(
        "INSERT INTO audit_log (user_id, username, action, target, detail, remote, outcome) "
        "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
        actor.user_id, actor.username, action, target, json.dumps(detail, default=str), actor.remote, outcome,
    )
