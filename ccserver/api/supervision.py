"""Supervision over HTTP: start / switch / stop spy sessions, list them, set supervisors' phones.

Every state change goes to the audit log through the route table (who, whom, mode, session);
what the PBX reports (a session's end, a switch the supervisor made with their phone's keys) is
audited by :mod:`ccserver.supervision.service`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ccserver.api.server import ApiError
from ccserver.supervision.sessions import SpyRefused, SpySession, Supervisor
from ccserver.supervision.store import DEVICE_PATTERN, DeviceStore

if TYPE_CHECKING:
    from ccserver.api.routes import Ctx

_SESSION_ID = re.compile(r"^[0-9a-f]{8,32}$")


class SpyStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    mode: Literal["listen", "whisper", "barge"] = "listen"


class SpyModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["listen", "whisper", "barge"]


class SpySessionOut(BaseModel):
    id: str
    supervisor: str
    agent_id: str
    call_id: str
    node: str
    mode: str
    started_at: float
    active: bool


class DevicesIn(BaseModel):
    """A user's phone per PBX node (dial strings as each node's dialplan takes them)."""

    model_config = ConfigDict(extra="forbid")
    devices: dict[str, str] = Field(max_length=64)


class DevicesOut(BaseModel):
    user_id: int
    devices: dict[str, str]


def session_out(s: SpySession) -> SpySessionOut:
    return SpySessionOut(id=s.id, supervisor=s.username, agent_id=s.agent_id, call_id=s.call_id, node=s.node,
                         mode=s.mode, started_at=s.started_at, active=s.active)


def _desk(ctx: Ctx):
    desk = ctx.api.source.supervision
    if desk is None:
        raise ApiError(503, "supervision is not running")
    return desk


async def _supervisor(ctx: Ctx) -> Supervisor:
    u = ctx.user
    devices = await DeviceStore(ctx.api.pool).devices(u.id)
    return Supervisor(u.id, u.username, u.role, u.team_agents, devices)


def _refused(e: SpyRefused) -> ApiError:
    return ApiError(e.status, e.reason, [{"field": e.field, "reason": e.reason}])


def _session_param(ctx: Ctx) -> str:
    session_id = ctx.request.match_info["session_id"]
    if not _SESSION_ID.match(session_id):
        raise ApiError(404, f"no spy session {session_id[:40]!r}")
    return session_id


async def list_sessions(ctx: Ctx) -> list[SpySessionOut]:
    """Who is monitored by whom (admins: all; supervisors: their teams' agents)."""
    desk, u = _desk(ctx), ctx.user
    return [session_out(s) for s in desk.sessions.sessions.values()
            if u.role == "admin" or s.agent_id in u.team_agents or s.user_id == u.id]


async def start_session(ctx: Ctx) -> SpySessionOut:
    body: SpyStartIn = ctx.body
    ctx.target = body.agent_id
    try:
        s = await _desk(ctx).start(await _supervisor(ctx), body.agent_id, body.mode)
    except SpyRefused as e:
        raise _refused(e) from None
    ctx.detail = {"session": s.id, "agent_id": s.agent_id, "call_id": s.call_id, "mode": s.mode}
    return session_out(s)


async def change_mode(ctx: Ctx) -> SpySessionOut:
    session_id = _session_param(ctx)
    try:
        before = _desk(ctx).sessions.get(session_id, await _supervisor(ctx)).mode
        s = await _desk(ctx).change(await _supervisor(ctx), session_id, ctx.body.mode)
    except SpyRefused as e:
        raise _refused(e) from None
    ctx.detail = {"session": s.id, "agent_id": s.agent_id, "from": before, "to": s.mode}
    return session_out(s)


async def stop_session(ctx: Ctx) -> SpySessionOut:
    session_id = _session_param(ctx)
    try:
        s = await _desk(ctx).stop(await _supervisor(ctx), session_id)
    except SpyRefused as e:
        raise _refused(e) from None
    ctx.detail = {"session": s.id, "agent_id": s.agent_id, "call_id": s.call_id}
    return session_out(s)


def _user_param(ctx: Ctx) -> int:
    raw = ctx.request.match_info["user_id"]
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(422, "invalid parameter", [{"field": "user_id", "reason": "must be a positive integer"}])
    return int(raw)


async def get_devices(ctx: Ctx) -> DevicesOut:
    user_id = _user_param(ctx)
    if ctx.user.role != "admin" and user_id != ctx.user.id:
        raise ApiError(403, "only admins may read another user's phones")
    return DevicesOut(user_id=user_id, devices=await DeviceStore(ctx.api.pool).devices(user_id))


async def set_devices(ctx: Ctx) -> DevicesOut:
    user_id = _user_param(ctx)
    body: DevicesIn = ctx.body
    bad = [{"field": f"devices.{n[:40]}", "reason": "node names are letters, digits, _ and - (1-32)"}
           for n in body.devices if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", n)]
    bad += [{"field": f"devices.{n}", "reason": "not a dial string (letters, digits and / @ . _ : + -)"}
            for n, d in body.devices.items() if not DEVICE_PATTERN.match(d)]
    if bad:
        raise ApiError(422, "invalid devices", bad)
    if await ctx.api.store.user(user_id) is None:
        raise ApiError(404, f"no user {user_id}")
    await DeviceStore(ctx.api.pool).set_devices(user_id, body.devices)
    ctx.detail = {"devices": body.devices}
    return DevicesOut(user_id=user_id, devices=body.devices)
