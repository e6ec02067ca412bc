"""The REST routes: one table (:data:`ROUTES`) that both the server and the OpenAPI document use."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel

from ccserver.api import flows as fl
from ccserver.api import models as m
from ccserver.api import recordings as rc
from ccserver.api import reports as rp
from ccserver.api import supervision as sv
from ccserver.api import transfer as tr
from ccserver.api.passwords import DUMMY_HASH, verify_password
from ccserver.api.server import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Api,
    ApiError,
    body_model,
    csrf_token,
    error_response,
    query_time,
    remote_of,
)
from ccserver.api.store import Conflict, User
from ccserver.api.views import Scope, agent_out, call_out, queue_out

log = logging.getLogger(__name__)


@dataclass
class Ctx:
    """One authorized request."""

    api: Api
    request: web.Request
    user: User | None
    session: str | None
    body: BaseModel | None
    #: filled by handlers for the audit row
    target: str = ""
    detail: dict = field(default_factory=dict)

    def scope(self) -> Scope:
        assert self.user is not None
        return Scope(self.user, self.api.source.config(), self.api.source.center())


@dataclass(frozen=True)
class Query:
    """A documented query parameter."""

    name: str
    type: str  # "string" | "integer"
    description: str
    format: str | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  #: also the audit action and the OpenAPI operationId
    summary: str
    handler: Callable[[Ctx], Awaitable[object]]
    #: who may call; None = anyone (no authentication)
    roles: frozenset[str] | None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False
    query: tuple[Query, ...] = ()
    status: int = 200
    #: the handler's service writes its own audit row (with the diff) for a success
    self_audited: bool = False

    @property
    def changes_state(self) -> bool:
        return self.method != "GET"


ALL = frozenset({"admin", "supervisor", "agent"})
STAFF = frozenset({"admin", "supervisor"})
ADMIN = frozenset({"admin"})


def wrap(api: Api, route: Route):
    """The aiohttp handler for ``route``: authenticate, CSRF, role, body, handler, audit."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(api, request, None, None, None, target=",".join(request.match_info.values()))
        if route.roles is not None:
            who = await api.authenticate(request)
            if who is None:
                if route.changes_state:
                    await _audit(ctx, route, "denied", {"status": 401})
                return error_response(401, "authentication required (missing, expired, revoked or invalid "
                                           "session or token)", **{"WWW-Authenticate": "Bearer"})
            ctx.user, ctx.session = who
        try:
            if route.roles is not None and route.changes_state and ctx.session is not None:
                sent = request.headers.get(CSRF_HEADER, "")
                # bytes: compare_digest refuses non-ASCII str, and a forged header must be a 403
                if not hmac.compare_digest(sent.encode(), csrf_token(ctx.session).encode()):
                    raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
            if route.roles is not None and ctx.user.role not in route.roles:
                raise ApiError(403, f"role {ctx.user.role!r} may not {route.summary.lower()}")
            if route.body is not None:
                if request.content_type != "application/json":
                    raise ApiError(415, "the body must be application/json")
                ctx.body = body_model(await request.read(), route.body)
            result = await route.handler(ctx)
        except ApiError as e:
            if route.changes_state:
                outcome = "denied" if e.status in (401, 403, 429) else "failed"
                await _audit(ctx, route, outcome, {"status": e.status, "error": e.message})
            raise
        except web.HTTPException as e:
            if route.changes_state:
                await _audit(ctx, route, "failed", {"status": e.status})
            raise
        except Exception:
            # a bug or a lost database: the attempt is still on record (when the log can be written)
            if route.changes_state:
                try:
                    await _audit(ctx, route, "failed", {"status": 500, "error": "internal error"})
                except Exception:
                    log.exception("audit of the failed %s could not be written", route.name)
            raise
        if route.changes_state and route.name != "login" and not route.self_audited:
            await _audit(ctx, route, "ok", ctx.detail)
        if isinstance(result, web.StreamResponse):
            return result
        if route.many:
            return web.json_response([r.model_dump(mode="json") for r in result], status=route.status)
        return web.json_response(result.model_dump(mode="json"), status=route.status)

    return handler


async def _audit(ctx: Ctx, route: Route, outcome: str, detail: dict) -> None:
    username = getattr(ctx.body, "username", None) if route.name == "login" else None
    await ctx.api.store.audit(ctx.user, route.name, ctx.target, detail, remote_of(ctx.request), outcome,
                              username=username)


def _user_out(u: User) -> m.UserOut:
    return m.UserOut(id=u.id, username=u.username, display_name=u.display_name, role=u.role,
                     agent_id=u.agent_id, disabled=u.disabled)


# ---- session ----------------------------------------------------------------------------------


async def login(ctx: Ctx) -> web.Response:
    body: m.LoginRequest = ctx.body
    api, now = ctx.api, ctx.api.source.clock()
    keys = (f"ip:{remote_of(ctx.request)}", f"user:{body.username.lower()}")
    wait = max(api.login_limiter.retry_after(k, now) for k in keys)
    if wait > 0:
        await _audit(ctx, ROUTE_BY_NAME["login"], "denied", {"reason": "rate limited"})
        return error_response(429, "too many failed log-ins; try again later", **{"Retry-After": str(int(wait) + 1)})
    # Count this attempt as a failure before the first await: attempts sent together then see
    # each other, and at most the limit of them get to try a password.
    for k in keys:
        api.login_limiter.fail(k, now)
    try:
        found = await api.store.credentials(body.username)
        # scrypt takes ~50 ms of CPU: in a thread, so the event loop keeps serving calls
        ok = await asyncio.to_thread(verify_password, body.password, found[1] if found else DUMMY_HASH)
    except BaseException:
        for k in keys:
            api.login_limiter.release(k, now)  # not decided: not a failure
        raise
    if not found or not ok or found[0].disabled:
        await _audit(ctx, ROUTE_BY_NAME["login"], "denied", {"reason": "bad credentials"})
        return error_response(401, "wrong user name or password")
    user = found[0]
    for k in keys:
        api.login_limiter.clear(k)
    _, token, expires = await api.store.issue(user.id, "session", timedelta(hours=api.settings.session_hours))
    ctx.user = user
    await _audit(ctx, ROUTE_BY_NAME["login"], "ok", {})
    resp = web.json_response(m.Me(user=_user_out(user), csrf_token=csrf_token(token)).model_dump(mode="json"))
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=api.settings.cookie_secure,
                    path="/", max_age=api.settings.session_hours * 3600)
    return resp


async def logout(ctx: Ctx) -> web.Response:
    found = await ctx.api.store.resolve(ctx.session, "session") if ctx.session else None
    if found is None:
        raise ApiError(400, "log out ends a browser session; revoke bearer tokens with DELETE /api/v1/tokens/{id}")
    await ctx.api.store.revoke(found[0])
    resp = web.json_response(m.Ok().model_dump())
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def me(ctx: Ctx) -> m.Me:
    return m.Me(user=_user_out(ctx.user), csrf_token=csrf_token(ctx.session) if ctx.session else None)


async def create_token(ctx: Ctx) -> m.TokenOut:
    body: m.TokenRequest = ctx.body
    token_id, token, expires = await ctx.api.store.issue(ctx.user.id, "token", timedelta(days=body.days), body.label)
    ctx.detail = {"token_id": token_id, "label": body.label}
    return m.TokenOut(id=token_id, token=token, expires_at=expires)


async def list_tokens(ctx: Ctx) -> list[m.TokenInfoOut]:
    raw = ctx.request.query.get("user_id")
    user_id = ctx.user.id if raw is None else _int(raw, "user_id")
    if user_id != ctx.user.id:
        if ctx.user.role != "admin":
            raise ApiError(403, "only an admin may list another user's tokens")
        if await ctx.api.store.user(user_id) is None:
            raise ApiError(404, f"no user {user_id}")
    return [m.TokenInfoOut(id=t.id, label=t.label, created_at=t.created_at, expires_at=t.expires_at)
            for t in await ctx.api.store.tokens(user_id)]


async def revoke_token(ctx: Ctx) -> m.Ok:
    token_id = _int(ctx.request.match_info["token_id"], "token_id")
    owner = None if ctx.user.role == "admin" else ctx.user.id
    if not await ctx.api.store.revoke(token_id, owner):
        raise ApiError(404, f"no live token {token_id} of yours")
    return m.Ok()


# ---- agents -----------------------------------------------------------------------------------


def _center(ctx: Ctx):
    center = ctx.api.source.center()
    if center is None:
        raise ApiError(503, "the contact center is starting")
    return center


async def list_agents(ctx: Ctx) -> list[m.AgentOut]:
    center, scope = _center(ctx), ctx.scope()
    cfg = ctx.api.source.config()
    return [agent_out(a, cfg, ctx.api.agent_since.get(a.agent_id), center)
            for i, a in sorted(center.agents.items())
            if i in scope.agents]


def _agent_in_scope(ctx: Ctx) -> str:
    agent_id = ctx.request.match_info["agent_id"]
    center = _center(ctx)
    if agent_id not in center.agents:
        raise ApiError(404, f"no agent {agent_id!r}")
    if agent_id not in ctx.scope().agents:
        raise ApiError(403, f"agent {agent_id!r} is not in your teams")
    return agent_id


async def get_agent(ctx: Ctx) -> m.AgentOut:
    agent_id = _agent_in_scope(ctx)
    center = _center(ctx)
    return agent_out(center.agents[agent_id], ctx.api.source.config(), ctx.api.agent_since.get(agent_id),
                     center)


async def pause_reasons(ctx: Ctx) -> m.PauseReasonsOut:
    return m.PauseReasonsOut(reasons=list(ctx.api.source.config().acd.pause_reasons))


def _pause_reason(ctx: Ctx, field_name: str) -> str | None:
    """The body's pause reason if it is one of ``acd.pause_reasons`` (the reasons ccserver sets
    itself, such as "no answer", are not: they must stay the system's), else a 422."""
    reason = getattr(ctx.body, field_name)
    allowed = ctx.api.source.config().acd.pause_reasons
    if reason is not None and reason not in allowed:
        raise ApiError(422, "invalid body", [{"field": field_name, "reason": f"{reason!r} is not one of the "
                                              f"pause reasons (acd.pause_reasons): {allowed}"}])
    return reason


def _agent_action(action: str) -> Callable[[Ctx], Awaitable[m.AgentOut]]:
    async def act(ctx: Ctx) -> m.AgentOut:
        agent_id = _agent_in_scope(ctx)
        center, src = _center(ctx), ctx.api.source
        agent = center.agents[agent_id]
        before = agent.state
        now = src.clock()
        if action == "wrapup_done" and before != "wrap_up":
            raise ApiError(409, f"agent {agent_id!r} is {before}, not in wrap-up")
        if action == "login":
            paused_reason = _pause_reason(ctx, "paused_reason")
            decisions = src.decide(lambda: center.login(agent_id, now, paused_reason))
        elif action == "logout":
            decisions = src.decide(lambda: center.logout(agent_id, now))
        elif action == "pause":
            reason = _pause_reason(ctx, "reason")
            decisions = src.decide(lambda: center.pause(agent_id, reason, now))
        else:  # ready, wrapup_done
            decisions = src.decide(lambda: center.ready(agent_id, now))
        ctx.detail = {"from": before, "to": agent.state}
        if not any(getattr(d, "agent_id", None) == agent_id and hasattr(d, "previous") for d in decisions):
            raise ApiError(409, f"agent {agent_id!r} cannot {action.replace('_', ' ')} while {before}")
        return agent_out(agent, src.config(), ctx.api.agent_since.get(agent_id), center)

    act.__name__ = f"agent_{action}"
    return act


# ---- queues and calls -------------------------------------------------------------------------


async def list_queues(ctx: Ctx) -> list[m.QueueOut]:
    center, scope, cfg = _center(ctx), ctx.scope(), ctx.api.source.config()
    now = ctx.api.source.clock()
    snaps = center.queue_snapshots(now)
    return [queue_out(snaps[q.name], cfg, ctx.api.kpis, now) for q in cfg.queues if q.name in scope.queues]


async def get_queue(ctx: Ctx) -> m.QueueOut:
    name, cfg = ctx.request.match_info["queue"], ctx.api.source.config()
    center = _center(ctx)
    if cfg.queue(name) is None:
        raise ApiError(404, f"no queue {name!r}")
    if name not in ctx.scope().queues:
        raise ApiError(403, f"queue {name!r} is not one of your teams'")
    now = ctx.api.source.clock()
    return queue_out(center.queue_snapshot(name, now), cfg, ctx.api.kpis, now)


async def list_calls(ctx: Ctx) -> list[m.CallOut]:
    center, scope = _center(ctx), ctx.scope()
    return [call_out(c) for c in center.calls.values() if scope.sees_call(c)]


async def get_call(ctx: Ctx) -> m.CallOut:
    call = _center(ctx).calls.get(ctx.request.match_info["call_id"])
    # Out of scope looks like unknown: call ids are not for guessing.
    if call is None or not ctx.scope().sees_call(call):
        raise ApiError(404, "no such live call")
    return call_out(call)


# ---- administration ---------------------------------------------------------------------------


async def list_users(ctx: Ctx) -> list[m.UserOut]:
    return [_user_out(u) for u in await ctx.api.store.users()]


def _known_agents(ctx: Ctx) -> set[str]:
    """Agent ids of the configuration, and the simulator's when it brings its own (demo)."""
    return {a.id for a in ctx.api.source.config().agents} | set(_center(ctx).agents)


def _check_agent_link(ctx: Ctx, role: str, agent_id: str | None) -> None:
    """An agent user is linked to exactly one known agent; an admin or supervisor to none."""
    if role == "agent" and agent_id is None:
        reason = "a user with role 'agent' must be linked to an agent"
    elif role != "agent" and agent_id is not None:
        reason = f"only a user with role 'agent' is linked to an agent, not role {role!r}"
    elif agent_id is not None and agent_id not in _known_agents(ctx):
        reason = f"unknown agent {agent_id!r} (not in the configuration)"
    else:
        return
    raise ApiError(422, "invalid user", [{"field": "agent_id", "reason": reason}])


async def create_user(ctx: Ctx) -> m.UserOut:
    body: m.UserCreate = ctx.body
    _check_agent_link(ctx, body.role, body.agent_id)
    try:
        user = await ctx.api.store.create_user(body.username, body.password, body.role, body.display_name,
                                               body.agent_id)
    except Conflict as e:
        raise ApiError(409, str(e)) from None
    ctx.target, ctx.detail = str(user.id), {"username": user.username, "role": user.role}
    return _user_out(user)


async def update_user(ctx: Ctx) -> m.UserOut:
    body: m.UserUpdate = ctx.body
    given = body.model_fields_set
    errors = [{"field": f, "reason": "may not be null"} for f in ("disabled", "display_name", "role")
              if f in given and getattr(body, f) is None]
    if not given:
        errors.append({"field": "(body)", "reason": "name at least one field to change"})
    if errors:
        raise ApiError(422, "invalid body", errors)
    user_id = _int(ctx.request.match_info["user_id"], "user_id")
    user = await ctx.api.store.user(user_id)
    if user is None:
        raise ApiError(404, f"no user {user_id}")
    role = body.role if "role" in given else user.role
    agent_id = body.agent_id if "agent_id" in given else user.agent_id
    if user_id == ctx.user.id and (body.disabled or role != user.role):
        raise ApiError(409, "you cannot disable yourself or change your own role")
    if {"role", "agent_id"} & given:
        _check_agent_link(ctx, role, agent_id)
    try:
        updated = await ctx.api.store.update_user(
            user_id, disabled=user.disabled if body.disabled is None else body.disabled,
            display_name=user.display_name if body.display_name is None else body.display_name,
            role=role, agent_id=agent_id)
    except Conflict as e:
        raise ApiError(409, str(e)) from None
    if updated is None:
        raise ApiError(404, f"no user {user_id}")
    ctx.detail = body.model_dump(exclude_unset=True)
    return _user_out(updated)


async def reset_password(ctx: Ctx) -> m.Ok:
    user_id = _int(ctx.request.match_info["user_id"], "user_id")
    revoked = await ctx.api.store.set_password(user_id, ctx.body.password)
    if revoked is None:
        raise ApiError(404, f"no user {user_id}")
    ctx.detail = {"revoked_sessions_and_tokens": revoked}  # never the password
    return m.Ok()


def _team_out(t) -> m.TeamOut:
    return m.TeamOut(id=t.id, name=t.name, agents=list(t.agents), queues=list(t.queues),
                     supervisors=list(t.supervisors))


async def list_teams(ctx: Ctx) -> list[m.TeamOut]:
    return [_team_out(t) for t in await ctx.api.store.teams()]


async def create_team(ctx: Ctx) -> m.TeamOut:
    try:
        team = await ctx.api.store.create_team(ctx.body.name)
    except Conflict as e:
        raise ApiError(409, str(e)) from None
    ctx.target, ctx.detail = str(team.id), {"name": team.name}
    return _team_out(team)


async def set_team_members(ctx: Ctx) -> m.TeamOut:
    body: m.TeamMembers = ctx.body
    team_id = _int(ctx.request.match_info["team_id"], "team_id")
    cfg = ctx.api.source.config()
    known_agents = _known_agents(ctx)
    errors = [{"field": f"agents.{i}", "reason": f"unknown agent {a!r}"}
              for i, a in enumerate(body.agents) if a not in known_agents]
    errors += [{"field": f"queues.{i}", "reason": f"unknown queue {q!r}"}
               for i, q in enumerate(body.queues) if cfg.queue(q) is None]
    users = {u.id: u for u in await ctx.api.store.users()}
    errors += [{"field": f"supervisors.{i}", "reason": f"user {s} is not a supervisor"}
               for i, s in enumerate(body.supervisors) if s not in users or users[s].role != "supervisor"]
    if errors:
        raise ApiError(422, "invalid team members", errors)
    team = await ctx.api.store.set_team_members(team_id, sorted(set(body.agents)), sorted(set(body.queues)),
                                                sorted(set(body.supervisors)))
    if team is None:
        raise ApiError(404, f"no team {team_id}")
    ctx.detail = body.model_dump()
    return _team_out(team)


async def list_skills(ctx: Ctx) -> list[m.SkillOut]:
    """``acd.skills``, what routing reads (skills change with the configuration, not here), with
    the queues and agents in the caller's scope that use each."""
    cfg, scope = ctx.api.source.config(), ctx.scope()
    required = {q.name: set(q.skills).union(*(st.skills or () for st in q.escalation))
                for q in cfg.queues if q.name in scope.queues}
    agents = [a for a in cfg.agents if a.id in scope.agents]
    return [m.SkillOut(name=s, queues=[q for q, names in required.items() if s in names],
                       agents={a.id: a.skills[s] for a in agents if s in a.skills})
            for s in cfg.acd.skills]


async def audit_log(ctx: Ctx) -> list[m.AuditOut]:
    q = ctx.request.query
    limit = _int(q.get("limit", "100"), "limit")
    if not 1 <= limit <= 1000:
        raise ApiError(422, "invalid query", [{"field": "limit", "reason": "must be between 1 and 1000"}])
    rows = await ctx.api.store.audit_rows(
        username=q.get("user"), action=q.get("action"), since=query_time(q.get("since"), "since"),
        until=query_time(q.get("until"), "until"), limit=limit,
    )
    return [m.AuditOut(id=r["id"], at=r["at"], username=r["username"], action=r["action"], target=r["target"],
                       detail=json.loads(r["detail"]), remote=r["remote"], outcome=r["outcome"])
            for r in rows]


def _int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid parameter", [{"field": name, "reason": "must be an integer"}]) from None
    if not -(2**31) <= value < 2**31:
        raise ApiError(422, "invalid parameter", [{"field": name, "reason": "out of range"}])
    return value




V1 = "/api/v1"
_REPORT_QUERY = (
    Query("period", "string", "day (default), week (from Monday) or month, in reports.timezone"),
    Query("from", "string", "first day (YYYY-MM-DD, required), widened to the start of its period", "date"),
    Query("to", "string", "last day (YYYY-MM-DD, required, at most 400 days after from), widened to the end "
                          "of its period", "date"),
    Query("format", "string", "json (default) or csv (also: Accept: text/csv)"),
)
ROUTES: tuple[Route, ...] = (
    Route("POST", f"{V1}/login", "login", "Log in (sets the session cookie)", login, None, m.LoginRequest, m.Me),
    Route("POST", f"{V1}/logout", "logout", "Log out (ends the session)", logout, ALL, None, m.Ok),
    Route("GET", f"{V1}/me", "me", "Who am I", me, ALL, None, m.Me),
    Route("POST", f"{V1}/tokens", "token.create", "Create a bearer token", create_token, ALL, m.TokenRequest,
          m.TokenOut, status=201),
    Route("GET", f"{V1}/tokens", "tokens.list", "List live bearer tokens (never their secret)", list_tokens,
          ALL, None, m.TokenInfoOut, many=True,
          query=(Query("user_id", "integer", "whose tokens (admins only; default: yours)"),)),
    Route("DELETE", f"{V1}/tokens/{{token_id}}", "token.revoke", "Revoke a bearer token", revoke_token, ALL,
          None, m.Ok),
    Route("GET", f"{V1}/pause-reasons", "pause_reasons.list", "List the reasons an agent may pause with",
          pause_reasons, ALL, None, m.PauseReasonsOut),
    Route("GET", f"{V1}/agents", "agents.list", "List agents", list_agents, ALL, None, m.AgentOut, many=True),
    Route("GET", f"{V1}/agents/{{agent_id}}", "agent.get", "Get an agent", get_agent, ALL, None, m.AgentOut),
    Route("POST", f"{V1}/agents/{{agent_id}}/login", "agent.login", "Log an agent in", _agent_action("login"),
          ALL, m.AgentLoginRequest, m.AgentOut),
    Route("POST", f"{V1}/agents/{{agent_id}}/logout", "agent.logout", "Log an agent out",
          _agent_action("logout"), ALL, None, m.AgentOut),
    Route("POST", f"{V1}/agents/{{agent_id}}/ready", "agent.ready", "Make an agent ready",
          _agent_action("ready"), ALL, None, m.AgentOut),
    Route("POST", f"{V1}/agents/{{agent_id}}/pause", "agent.pause", "Pause an agent with a reason",
          _agent_action("pause"), ALL, m.PauseRequest, m.AgentOut),
    Route("POST", f"{V1}/agents/{{agent_id}}/wrapup-done", "agent.wrapup_done", "End an agent's wrap-up",
          _agent_action("wrapup_done"), ALL, None, m.AgentOut),
    Route("GET", f"{V1}/queues", "queues.list", "List queues with live state", list_queues, ALL, None,
          m.QueueOut, many=True),
    Route("GET", f"{V1}/queues/{{queue}}", "queue.get", "Get a queue", get_queue, ALL, None, m.QueueOut),
    Route("GET", f"{V1}/calls", "calls.list", "List live calls", list_calls, ALL, None, m.CallOut, many=True),
    Route("GET", f"{V1}/calls/{{call_id}}", "call.get", "Get a live call", get_call, ALL, None, m.CallOut),
    Route("POST", f"{V1}/calls/{{call_id}}/transfer", "call.transfer",
          "Transfer a waiting or connected call to an external number", tr.transfer_call, STAFF,
          tr.TransferIn, tr.TransferOut),
    Route("GET", f"{V1}/users", "users.list", "List users", list_users, ADMIN, None, m.UserOut, many=True),
    Route("POST", f"{V1}/users", "user.create", "Create a user", create_user, ADMIN, m.UserCreate, m.UserOut,
          status=201),
    Route("PATCH", f"{V1}/users/{{user_id}}", "user.update",
          "Change a user (disabled, display name, role, linked agent)", update_user, ADMIN, m.UserUpdate,
          m.UserOut),
    Route("PUT", f"{V1}/users/{{user_id}}/password", "user.password_reset",
          "Reset a user's password (ends their sessions and tokens)", reset_password, ADMIN, m.PasswordReset,
          m.Ok),
    Route("GET", f"{V1}/teams", "teams.list", "List teams", list_teams, STAFF, None, m.TeamOut, many=True),
    Route("POST", f"{V1}/teams", "team.create", "Create a team", create_team, ADMIN, m.TeamCreate, m.TeamOut,
          status=201),
    Route("PUT", f"{V1}/teams/{{team_id}}/members", "team.members", "Set a team's members", set_team_members,
          ADMIN, m.TeamMembers, m.TeamOut),
    Route("GET", f"{V1}/skills", "skills.list", "List the configured skills (acd.skills) and who uses them",
          list_skills, STAFF, None, m.SkillOut, many=True),
    Route("GET", f"{V1}/audit", "audit.list", "Read the audit log", audit_log, ADMIN, None, m.AuditOut,
          many=True, query=(
              Query("user", "string", "only this user name"),
              Query("action", "string", "only this action, e.g. agent.pause"),
              Query("since", "string", "from this time (ISO 8601 with zone)", "date-time"),
              Query("until", "string", "before this time (ISO 8601 with zone)", "date-time"),
              Query("limit", "integer", "at most this many rows, newest first (1..1000, default 100)"),
          )),
    # IVR flows (ccserver.api.flows): staff read and simulate, admins change
    Route("GET", f"{V1}/flows", "flows.list", "List IVR flows", fl.list_flows, STAFF, None, fl.FlowSummaryOut,
          many=True),
    Route("GET", f"{V1}/flows/{{flow}}/versions", "flow.versions", "List a flow's versions", fl.list_versions,
          STAFF, None, fl.FlowVersionOut, many=True),
    Route("POST", f"{V1}/flows/{{flow}}/versions", "ivr.flow.create_draft", "Create a draft flow version",
          fl.create_draft, ADMIN, fl.FlowDraftIn, fl.FlowVersionOut, status=201, self_audited=True),
    Route("GET", f"{V1}/flows/{{flow}}/versions/{{version}}", "flow.get", "Get a flow version", fl.get_version,
          STAFF, None, fl.FlowVersionOut),
    Route("PUT", f"{V1}/flows/{{flow}}/versions/{{version}}", "ivr.flow.update_draft", "Update a draft flow version",
          fl.update_draft, ADMIN, fl.FlowDraftIn, fl.FlowVersionOut, self_audited=True),
    Route("POST", f"{V1}/flows/{{flow}}/versions/{{version}}/check", "ivr.flow.check",
          "Run the static checks on a flow version", fl.check_version, ADMIN, None, fl.CheckOut,
          self_audited=True),
    Route("POST", f"{V1}/flows/{{flow}}/versions/{{version}}/publish", "ivr.flow.publish",
          "Publish a checked flow version on a DID", fl.publish, ADMIN, fl.PublishIn, fl.PublicationOut,
          self_audited=True),
    Route("POST", f"{V1}/flows/{{flow}}/versions/{{version}}/simulate", "flow.simulate",
          "Simulate a call through a flow version", fl.simulate, STAFF, fl.SimulateIn, fl.SimulationOut),
    Route("GET", f"{V1}/flows/{{flow}}/diff", "flow.diff", "Diff two versions of a flow", fl.diff_versions, STAFF,
          None, fl.DiffOut, query=(Query("old", "integer", "the older version (required)"),
                                   Query("new", "integer", "the newer version (required)"),
                                   Query("old_flow", "string", "the flow of the older version (default: this "
                                                               "one), e.g. the flow a DID runs now"))),
    Route("GET", f"{V1}/flow-publications", "flow_publications.list", "List which flow version answers each DID",
          fl.list_publications, STAFF, None, fl.PublicationOut, many=True),
    Route("POST", f"{V1}/flow-publications/{{did}}/rollback", "ivr.flow.rollback",
          "Roll a DID back to its previous flow version", fl.rollback, ADMIN, None, fl.PublicationOut,
          self_audited=True),
    Route("GET", f"{V1}/flow-node-types", "flow_node_types.list", "List the IVR node types and their fields",
          fl.list_node_types, STAFF, None, fl.NodeTypeOut, many=True),
    Route("GET", f"{V1}/flow-overrides", "flow_overrides.list", "List the schedule overrides switched on",
          fl.list_overrides, STAFF, None, fl.OverrideOut, many=True),
    Route("PUT", f"{V1}/flow-overrides/{{name}}", "ivr.override.set", "Switch a schedule override on or off",
          fl.set_override, ADMIN, fl.OverrideIn, fl.OverrideOut, self_audited=True),
    # supervision (ccserver.api.supervision): listen / whisper / barge, audited
    Route("GET", f"{V1}/supervision/sessions", "spy.list", "List who is monitored by whom", sv.list_sessions,
          STAFF, None, sv.SpySessionOut, many=True),
    Route("POST", f"{V1}/supervision/sessions", "spy.start", "Monitor an agent's call from your phone",
          sv.start_session, STAFF, sv.SpyStartIn, sv.SpySessionOut, status=201),
    Route("PATCH", f"{V1}/supervision/sessions/{{session_id}}", "spy.mode", "Switch a spy session's mode",
          sv.change_mode, STAFF, sv.SpyModeIn, sv.SpySessionOut),
    Route("DELETE", f"{V1}/supervision/sessions/{{session_id}}", "spy.stop", "Stop a spy session",
          sv.stop_session, STAFF, None, sv.SpySessionOut),
    Route("GET", f"{V1}/users/{{user_id}}/devices", "user.devices", "Get a user's phones per node",
          sv.get_devices, STAFF, None, sv.DevicesOut),
    Route("PUT", f"{V1}/users/{{user_id}}/devices", "user.set_devices", "Set a user's phones per node",
          sv.set_devices, ADMIN, sv.DevicesIn, sv.DevicesOut),
    # recordings (ccserver.api.recordings): search, play (Range), download, pause / resume
    Route("GET", f"{V1}/recordings/calls", "recordings.search", "Search finished calls and their recordings",
          rc.search_calls, STAFF, None, rc.FoundCallOut, many=True, query=(
              Query("caller", "string", "the caller's number: with 6 digits or more (leading zeros "
                    "aside) the end of the caller's digits, e.g. 0612345678 finds +33612345678; else exactly"),
              Query("did", "string", "the number dialled"),
              Query("queue", "string", "the queue"),
              Query("agent", "string", "the agent id"),
              Query("call_id", "string", "one call (its detail)"),
              Query("since", "string", "arrived at or after (ISO 8601 with zone)", "date-time"),
              Query("until", "string", "arrived before (ISO 8601 with zone)", "date-time"),
              Query("limit", "integer", "at most this many calls, newest first (1..1000, default 100)"),
          )),
    Route("GET", f"{V1}/recordings/{{recording_id}}", "recording.get", "Get a recording", rc.get_recording,
          STAFF, None, rc.RecordingOut),
    Route("GET", f"{V1}/recordings/{{recording_id}}/audio", "recording.play",
          "Play a recording (WAV, HTTP Range supported)", rc.file_response("play"), STAFF),
    Route("GET", f"{V1}/recordings/{{recording_id}}/download", "recording.download", "Download a recording",
          rc.file_response("download"), STAFF),
    Route("GET", f"{V1}/calls/{{call_id}}/recording", "recording.live", "Whether a live call is recorded",
          rc.live_recording, ALL, None, rc.LiveRecordingOut),
    Route("POST", f"{V1}/calls/{{call_id}}/recording/pause", "recording.pause",
          "Pause a live call's recording (e.g. card numbers)", rc.recording_action("pause"), ALL, None,
          rc.RecordingStateOut),
    Route("POST", f"{V1}/calls/{{call_id}}/recording/resume", "recording.resume",
          "Resume a live call's recording", rc.recording_action("resume"), ALL, None, rc.RecordingStateOut),
    Route("POST", f"{V1}/calls/{{call_id}}/recording/start", "recording.start",
          "Start recording a live call (on-demand policy)", rc.recording_action("start"), ALL, None,
          rc.RecordingStateOut),
    # reports (ccserver.api.reports): per period and queue / agent, JSON or CSV
    Route("GET", f"{V1}/reports/queues", "reports.queues", "Report queue KPIs per day, week or month",
          rp.queue_report, STAFF, None, rp.QueueReportRow, many=True, query=_REPORT_QUERY + (
              Query("queue", "string", "only this queue (default: every queue you may see)"),)),
    Route("GET", f"{V1}/reports/agents", "reports.agents", "Report agent KPIs per day, week or month",
          rp.agent_report, ALL, None, rp.AgentReportRow, many=True, query=_REPORT_QUERY + (
              Query("agent", "string", "only this agent id (default: every agent you may see; an agent: "
                                       "themselves)"),)),
)
ROUTE_BY_NAME = {r.name: r for r in ROUTES}
