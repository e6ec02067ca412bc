"""Reports over HTTP: per queue and per agent, by day, week or month, as JSON or CSV.

Who sees what: an admin every queue and agent; a supervisor their teams' queues and agents (the
team rule of :class:`ccserver.api.views.Scope`, applied to history as the recordings search does);
an agent only their own agent report, never a queue's or a colleague's figures.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import BaseModel

from ccserver.api.server import ApiError
from ccserver.reports import queries
from ccserver.reports.models import AgentReportRow, QueueReportRow
from ccserver.reports.period import InvalidReport, ReportRange, report_range

if TYPE_CHECKING:
    from ccserver.api.routes import Ctx

_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AGENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FORMATS = ("json", "csv")


def _invalid(field: str, reason: str) -> ApiError:
    return ApiError(422, "invalid query", [{"field": field, "reason": reason}])


def _range(ctx: Ctx) -> ReportRange:
    q = ctx.request.query
    try:
        return report_range(q.get("period"), q.get("from"), q.get("to"))
    except InvalidReport as e:
        raise _invalid(e.field, e.reason) from None


def _name(ctx: Ctx, field: str, pattern: re.Pattern[str]) -> str | None:
    raw = ctx.request.query.get(field)
    if not raw:
        return None
    if not pattern.match(raw):
        raise _invalid(field, f"must match {pattern.pattern}")
    return raw


def _wants_csv(ctx: Ctx) -> bool:
    fmt = ctx.request.query.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise _invalid("format", f"must be one of {', '.join(_FORMATS)}")
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in ctx.request.headers.get("Accept", "")


def _csv(rows: Sequence[BaseModel], model: type[BaseModel], name: str) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = list(model.model_fields)
    writer.writerow(columns)
    for r in rows:
        values = r.model_dump(mode="json")
        writer.writerow(["" if values[c] is None else values[c] for c in columns])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _file_name(kind: str, ctx: Ctx, rng: ReportRange) -> str:
    q = ctx.request.query
    return f"{kind}-{rng.period}-{q['from']}-{q['to']}"


async def queue_report(ctx: Ctx) -> list[QueueReportRow] | web.Response:
    """Per queue and period: offered, answered, abandoned, service level, ASA, AHT."""
    rng, wants_csv = _range(ctx), _wants_csv(ctx)
    queue = _name(ctx, "queue", _QUEUE)
    allowed = None if ctx.user.role == "admin" else ctx.user.team_queues
    if queue is not None and allowed is not None and queue not in allowed:
        raise ApiError(403, f"queue {queue!r} is not one of your teams'")
    only = {queue} if queue is not None else allowed
    cfg = ctx.api.source.config()
    rows = await queries.queue_report(ctx.api.pool, cfg.reports.timezone, rng, cfg.queues, only)
    return _csv(rows, QueueReportRow, _file_name("queues", ctx, rng)) if wants_csv else rows


async def agent_report(ctx: Ctx) -> list[AgentReportRow] | web.Response:
    """Per agent and period: calls answered, handle times, time logged in, paused, available,
    busy, occupancy."""
    rng, wants_csv = _range(ctx), _wants_csv(ctx)
    agent = _name(ctx, "agent", _AGENT)
    user = ctx.user
    if user.role == "admin":
        allowed = None
    elif user.role == "supervisor":
        allowed = user.team_agents
    else:
        allowed = frozenset({user.agent_id}) if user.agent_id else frozenset()
    if agent is not None and allowed is not None and agent not in allowed:
        raise ApiError(403, "an agent sees only their own figures" if user.role == "agent"
                       else f"agent {agent!r} is not in your teams")
    only = {agent} if agent is not None else allowed
    src = ctx.api.source
    cfg, center = src.config(), src.center()
    known = {a.id for a in cfg.agents} | set(center.agents if center else ())
    rows = await queries.agent_report(ctx.api.pool, cfg.reports.timezone, rng,
                                      datetime.fromtimestamp(src.clock(), UTC), only, known)
    return _csv(rows, AgentReportRow, _file_name("agents", ctx, rng)) if wants_csv else rows
