"""The IVR flow admin API: handlers over :class:`~ccserver.ivr.store.FlowStore`, and their bodies.

Who may do what: staff (admins and supervisors) read flows, versions, diffs and publications
and run simulations; only admins write (drafts, checks, publish, rollback, overrides). The
routes are declared in :data:`ccserver.api.routes.ROUTES`. Every change is written to the audit
log by the store itself, in the same transaction as the change and with its diff, so these
routes are marked ``self_audited``; a refused request is audited by the route wrapper.

Flow documents in request bodies are read again from the raw bytes with the IVR's strict
reader (:func:`~ccserver.ivr.source.parse_flow_bytes`): JSON parsers keep the last of two
duplicate keys silently, which would drop a menu option without a word.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccserver.api.server import ApiError
from ccserver.ivr.checks import SiteNames
from ccserver.ivr.flow import FlowError
from ccserver.ivr.node_types import FieldKind, node_types
from ccserver.ivr.simulate import MAX_DIGITS, SimulationInputError
from ccserver.ivr.source import MAX_BYTES, parse_flow_bytes
from ccserver.ivr.store import (
    Actor,
    FlowCheckFailed,
    FlowNotFound,
    FlowPermissionError,
    FlowStore,
    FlowStoreError,
    FlowVersion,
    Publication,
)

if TYPE_CHECKING:
    from ccserver.api.routes import Ctx


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowDraftIn(_Body):
    """A flow document: as JSON in ``document``, or as YAML text in ``yaml`` (exactly one).

    ``name`` and ``version`` inside the document are set by the server.
    """

    document: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=MAX_BYTES)

    @model_validator(mode="after")
    def _one_source(self) -> FlowDraftIn:
        if (self.document is None) == (self.yaml is None):
            raise ValueError("give exactly one of document (JSON) and yaml (text)")
        return self


class PublishIn(_Body):
    #: the DID new calls to which get this version; ``*`` = every DID without its own flow
    did: str = Field(min_length=1, max_length=64)


class OverrideIn(_Body):
    active: bool


class SimulateIn(_Body):
    """A call that never happened: the caller presses ``digits`` (one per menu, as many as a
    collect takes), at time ``at`` (default now), from ``caller`` to ``did``."""

    digits: str = Field("", max_length=MAX_DIGITS)
    at: datetime | None = None
    caller: str = Field("", max_length=64)
    did: str = Field("", max_length=64)
    #: schedule overrides to assume on (default: those switched on now)
    overrides: list[str] | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _zoned(self) -> SimulateIn:
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("at: must include a time zone")
        return self


class ProblemOut(BaseModel):
    """One static-check problem: ``field`` is its path (``nodes.<id>...``), ``node`` the node it
    concerns (``None`` for flow-level problems)."""

    field: str
    node: str | None
    reason: str


class FlowSummaryOut(BaseModel):
    flow: str
    latest_version: int
    latest_status: str
    #: (DID, version) pairs
    published: list[tuple[str, int]]


class FlowVersionOut(BaseModel):
    flow: str
    version: int
    status: Literal["draft", "checked", "published", "rolled_back"]
    document: dict[str, Any]
    problems: list[ProblemOut]
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class CheckOut(BaseModel):
    ok: bool
    problems: list[ProblemOut]


class PublicationOut(BaseModel):
    did: str
    flow: str
    version: int
    published_by: str
    published_at: datetime


class ChangeOut(BaseModel):
    path: str
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class DiffOut(BaseModel):
    flow: str
    #: the flow of version ``old`` (``flow`` unless another was asked for)
    old_flow: str
    old: int
    new: int
    changes: list[ChangeOut]


class PromptOut(BaseModel):
    kind: str
    value: str
    language: str


class SimulationOut(BaseModel):
    #: node ids and decisions in order (see IvrOutcome.path)
    path: list[str]
    prompts: list[PromptOut]
    #: PBX actions in order: ``set X=Y``, ``language L``, ``transfer D``, ``record F``
    actions: list[str]
    ending: str
    queue: str | None
    priority: int
    variables: dict[str, str]
    unused_digits: str


class OverrideOut(BaseModel):
    name: str
    active: bool


class NodeFieldOut(BaseModel):
    """One field of a node type: how the editor shows it, and its value when left out."""

    name: str
    required: bool
    kind: FieldKind
    #: the value when the field is left out (``null``: none)
    default: Any = None
    #: the only values a ``string`` field may take (empty: any)
    choices: list[str]
    #: a ``map``'s values: their kind
    item_kind: FieldKind | None


class NodeTypeOut(BaseModel):
    """A node type the flows may use, and its fields: what the editor offers to add."""

    type: str
    description: str
    fields: list[NodeFieldOut]


def problem_out(problem: str) -> ProblemOut:
    """``"nodes.menu.options.3: unknown node 'x'"`` -> field, node and reason."""
    field, sep, reason = problem.partition(": ")
    if not sep:
        field, reason = "(flow)", problem
    parts = field.split(".")
    node = parts[1] if len(parts) > 1 and parts[0] == "nodes" else None
    return ProblemOut(field=field, node=node, reason=reason)


def _version_out(v: FlowVersion) -> FlowVersionOut:
    return FlowVersionOut(flow=v.flow, version=v.version, status=v.status, document=v.document,
                          problems=[problem_out(p) for p in v.problems], created_by=v.created_by,
                          created_at=v.created_at, updated_by=v.updated_by, updated_at=v.updated_at)


def _publication_out(p: Publication) -> PublicationOut:
    return PublicationOut(did=p.did, flow=p.flow, version=p.version, published_by=p.published_by,
                          published_at=p.published_at)


def _store(ctx: Ctx) -> FlowStore:
    # drafts, checks and publishes are held to the queues, skills and languages the server runs with
    return FlowStore(ctx.api.pool, SiteNames.of(ctx.api.source.config()))


def _actor(ctx: Ctx) -> Actor:
    assert ctx.user is not None
    return Actor(ctx.user.username, ctx.user.role, ctx.user.id, ctx.request.remote or "")


def _version_param(ctx: Ctx) -> int:
    from ccserver.api.routes import _int

    return _int(ctx.request.match_info["version"], "version")


def _refused(err: FlowStoreError) -> ApiError:
    """The HTTP form of a store refusal (nothing was changed)."""
    if isinstance(err, FlowNotFound):
        return ApiError(404, str(err))
    if isinstance(err, FlowPermissionError):
        return ApiError(403, str(err))
    if isinstance(err, FlowCheckFailed):
        return ApiError(409, str(err), [p.model_dump() for p in map(problem_out, err.problems)])
    problem = problem_out(str(err))
    # "version: ... is published" is about the state, every other refusal about a field's value
    status = 409 if problem.field == "version" else 422
    return ApiError(status, str(err), [{"field": problem.field, "reason": problem.reason}])


async def _document(ctx: Ctx) -> dict[str, Any]:
    body: FlowDraftIn = ctx.body
    prefix = "yaml." if body.yaml is not None else ""
    try:
        if body.yaml is not None:
            document = parse_flow_bytes(body.yaml.encode("utf-8"), "yaml")
        else:
            # the same bytes again through the strict reader, only to refuse what JSON lets through
            # (duplicate keys, deep nesting); the values are JSON's (YAML 1.1 reads 1e5 as text)
            parse_flow_bytes(await ctx.request.read(), "body")
            document = body.document
    except FlowError as err:
        raise ApiError(422, "invalid flow document",
                       [{"field": prefix + p.field, "reason": p.reason} for p in map(problem_out, err.problems)]
                       ) from None
    if not isinstance(document, dict):
        raise ApiError(422, "invalid flow document",
                       [{"field": "yaml", "reason": f"must be a mapping (a flow), not {type(document).__name__}"}])
    return document


# ---- handlers ---------------------------------------------------------------------------------


async def list_flows(ctx: Ctx) -> list[FlowSummaryOut]:
    return [FlowSummaryOut(flow=s.flow, latest_version=s.latest_version, latest_status=s.latest_status,
                           published=list(s.published)) for s in await _store(ctx).list_flows()]


async def list_versions(ctx: Ctx) -> list[FlowVersionOut]:
    versions = await _store(ctx).versions(ctx.request.match_info["flow"])
    if not versions:
        raise ApiError(404, f"no flow {ctx.request.match_info['flow']!r}")
    return [_version_out(v) for v in versions]


async def get_version(ctx: Ctx) -> FlowVersionOut:
    try:
        return _version_out(await _store(ctx).get(ctx.request.match_info["flow"], _version_param(ctx)))
    except FlowStoreError as err:
        raise _refused(err) from None


async def create_draft(ctx: Ctx) -> FlowVersionOut:
    document = await _document(ctx)
    try:
        stored = await _store(ctx).create_draft(ctx.request.match_info["flow"], document, _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return _version_out(stored)


async def update_draft(ctx: Ctx) -> FlowVersionOut:
    document = await _document(ctx)
    try:
        stored = await _store(ctx).update_draft(ctx.request.match_info["flow"], _version_param(ctx), document,
                                                _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return _version_out(stored)


async def check_version(ctx: Ctx) -> CheckOut:
    try:
        result = await _store(ctx).check(ctx.request.match_info["flow"], _version_param(ctx), _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return CheckOut(ok=result.ok, problems=[problem_out(p) for p in result.problems])


async def publish(ctx: Ctx) -> PublicationOut:
    body: PublishIn = ctx.body
    try:
        pub = await _store(ctx).publish(ctx.request.match_info["flow"], _version_param(ctx), body.did, _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return _publication_out(pub)


async def rollback(ctx: Ctx) -> PublicationOut:
    try:
        pub = await _store(ctx).rollback(ctx.request.match_info["did"], _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return _publication_out(pub)


async def list_publications(ctx: Ctx) -> list[PublicationOut]:
    return [_publication_out(p) for p in await _store(ctx).publications()]


async def diff_versions(ctx: Ctx) -> DiffOut:
    from ccserver.api.routes import _int

    q, flow = ctx.request.query, ctx.request.match_info["flow"]
    missing = [{"field": n, "reason": "required"} for n in ("old", "new") if n not in q]
    if missing:
        raise ApiError(422, "invalid query", missing)
    old, new = _int(q["old"], "old"), _int(q["new"], "new")
    old_flow = q.get("old_flow") or flow
    try:
        changes = await _store(ctx).diff(flow, old, new, old_flow)
    except FlowStoreError as err:
        raise _refused(err) from None
    return DiffOut(flow=flow, old_flow=old_flow, old=old, new=new, changes=[
        ChangeOut(path=c.path, kind="added" if c.added else "removed" if c.removed else "changed",
                  old=c.old, new=c.new) for c in changes
    ])


async def simulate(ctx: Ctx) -> SimulationOut:
    body: SimulateIn = ctx.body
    at = body.at.timestamp() if body.at is not None else ctx.api.source.clock()
    try:
        sim = await _store(ctx).simulate(
            ctx.request.match_info["flow"], _version_param(ctx), digits=body.digits, at=at, caller=body.caller,
            did=body.did, overrides=None if body.overrides is None else frozenset(body.overrides),
        )
    except SimulationInputError as err:
        problem = problem_out(str(err))
        raise ApiError(422, "invalid simulation", [{"field": problem.field, "reason": problem.reason}]) from None
    except FlowStoreError as err:
        raise _refused(err) from None
    o = sim.outcome
    return SimulationOut(path=list(o.path), prompts=[PromptOut(kind=p.kind, value=p.value, language=p.language)
                                                     for p in sim.prompts],
                         actions=list(sim.actions), ending=o.ending, queue=o.queue, priority=o.priority,
                         variables=dict(o.variables), unused_digits=sim.unused_digits)


async def list_node_types(ctx: Ctx) -> list[NodeTypeOut]:
    return [NodeTypeOut(type=t.type, description=t.description, fields=[
        NodeFieldOut(name=f.name, required=f.required, kind=f.kind, default=f.default, choices=list(f.choices),
                     item_kind=f.item_kind) for f in t.fields
    ]) for t in node_types()]


async def list_overrides(ctx: Ctx) -> list[OverrideOut]:
    return [OverrideOut(name=n, active=True) for n in sorted(await _store(ctx).active_overrides())]


async def set_override(ctx: Ctx) -> OverrideOut:
    body: OverrideIn = ctx.body
    name = ctx.request.match_info["name"]
    try:
        await _store(ctx).set_override(name, body.active, _actor(ctx))
    except FlowStoreError as err:
        raise _refused(err) from None
    return OverrideOut(name=name, active=body.active)
