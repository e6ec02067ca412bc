"""Recordings over HTTP: find the call behind a complaint, play (with Range) and download its
recording, pause / resume / start recording a live call. Plays and downloads are audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from pydantic import BaseModel

from ccserver.api.server import ApiError, query_time, remote_of
from ccserver.pbx.base import CommandFailed
from ccserver.recording.files import UnsafePath, recording_path
from ccserver.recording.policy import recording_policy
from ccserver.recording.service import RecordingRefused
from ccserver.recording.store import CallSearch, Recording, RecordingStore

if TYPE_CHECKING:
    from ccserver.api.routes import Ctx
    from ccserver.core.call import Call


class RecordingOut(BaseModel):
    id: int
    call_id: str
    node: str
    agent_id: str | None
    queue: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str | None
    paused_spans: list[tuple[float, float]]
    paused: bool
    audio_url: str
    download_url: str


class FoundCallOut(BaseModel):
    """A finished call's CDR, with its recordings."""

    call_id: str
    node: str
    caller: str
    did: str
    queue: str | None
    agent_id: str | None
    arrived_at: datetime
    ivr_ended_at: datetime | None
    enqueued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime
    disposition: str
    hangup_cause: str
    hangup_by: str
    talk_seconds: float
    hold_seconds: float
    wrapup_seconds: float
    ring_no_answer: int
    ivr_path: list[str]
    variables: dict[str, str]
    recordings: list[RecordingOut]
    #: true when ``ended_at`` is an estimate: the call ended while the link to its PBX node was
    #: down, and ``ended_at`` is when the link went down
    end_estimated: bool = False


class RecordingStateOut(BaseModel):
    call_id: str
    action: str
    file: str | None = None


class LiveRecordingOut(BaseModel):
    """Whether a live call is recorded, and what its agent may do about it."""

    call_id: str
    #: the policy that applies to the call (all, none, on_demand)
    policy: str
    #: none: not recorded; starting: asked, not reported by the PBX yet; running; paused;
    #: failed: the PBX refused the start (``reason`` says why)
    state: Literal["none", "starting", "running", "paused", "failed"]
    recording_id: int | None = None
    reason: str | None = None


#: a seek in a recording its user played this recently is not audited again
PLAYBACK_AUDIT_WINDOW = timedelta(hours=1)


def recording_out(r: Recording) -> RecordingOut:
    base = f"/api/v1/recordings/{r.id}"
    return RecordingOut(id=r.id, call_id=r.call_id, node=r.node, agent_id=r.agent_id, queue=r.queue,
                        started_at=r.started_at, ended_at=r.ended_at, duration_seconds=r.duration_seconds,
                        size_bytes=r.size_bytes, sha256=r.sha256, paused_spans=list(r.paused_spans),
                        paused=r.paused, audio_url=f"{base}/audio", download_url=f"{base}/download")


def _query_text(ctx: Ctx, name: str) -> str | None:
    raw = ctx.request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > 64 or any(c in raw for c in "\r\n\0"):
        raise ApiError(422, "invalid query", [{"field": name, "reason": "at most 64 printable characters"}])
    return raw


def _query_time(ctx: Ctx, name: str) -> datetime | None:
    return query_time(_query_text(ctx, name), name)


def _limit(ctx: Ctx) -> int:
    raw = ctx.request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(422, "invalid query", [{"field": "limit", "reason": "an integer from 1 to 1000"}])
    return int(raw)


def _scope(ctx: Ctx) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    u = ctx.user
    return (None, None) if u.role == "admin" else (u.team_agents, u.team_queues)


async def search_calls(ctx: Ctx) -> list[FoundCallOut]:
    """Finished calls by caller number, DID, queue, agent, call id and arrival time, with recordings."""
    agents, queues = _scope(ctx)
    q = CallSearch(caller=_query_text(ctx, "caller"), did=_query_text(ctx, "did"),
                   queue=_query_text(ctx, "queue"), agent_id=_query_text(ctx, "agent"),
                   call_id=_query_text(ctx, "call_id"), since=_query_time(ctx, "since"),
                   until=_query_time(ctx, "until"), limit=_limit(ctx), agents=agents, queues=queues)
    found = await RecordingStore(ctx.api.pool).search(q)
    return [FoundCallOut(
        call_id=c.call_id, node=c.node, caller=c.caller, did=c.did, queue=c.queue, agent_id=c.agent_id,
        arrived_at=c.arrived_at, ivr_ended_at=c.ivr_ended_at, enqueued_at=c.enqueued_at,
        answered_at=c.answered_at, ended_at=c.ended_at, disposition=c.disposition, hangup_cause=c.hangup_cause,
        hangup_by=c.hangup_by, talk_seconds=c.talk_seconds, hold_seconds=c.hold_seconds,
        wrapup_seconds=c.wrapup_seconds, ring_no_answer=c.ring_no_answer, ivr_path=list(c.ivr_path),
        variables=c.variables, recordings=[recording_out(r) for r in c.recordings],
        end_estimated=c.end_estimated,
    ) for c in found]


async def _recording(ctx: Ctx) -> Recording:
    raw = ctx.request.match_info["recording_id"]
    # only digits reach the database; anything else (../, %2e%2e, ...) is not a recording
    rec = await RecordingStore(ctx.api.pool).get(int(raw)) if raw.isdigit() and len(raw) < 18 else None
    agents, queues = _scope(ctx)
    if rec is None or (agents is not None and rec.agent_id not in agents and rec.queue not in queues):
        raise ApiError(404, "no such recording")  # out of scope looks like unknown
    return rec


async def get_recording(ctx: Ctx) -> RecordingOut:
    return recording_out(await _recording(ctx))


def _seeks(request: web.Request) -> bool:
    """Whether the request asks for a part not starting at byte 0: a player seeking or buffering on."""
    try:
        start = request.http_range.start
    except ValueError:
        return False  # malformed: served whole
    return bool(start)


async def _audit_access(ctx: Ctx, rec: Recording, action: str) -> None:
    """Audit a download always, a playback once: its start (no Range, or from byte 0).

    A player fetches a recording in many Range requests as the user seeks; one row each would
    bury the log. A request that starts elsewhere is still audited unless this user's playback
    of the recording was audited within :data:`PLAYBACK_AUDIT_WINDOW`: skipping byte 0 must not
    make a copy unseen.
    """
    if action == "play" and _seeks(ctx.request) and await RecordingStore(ctx.api.pool).played_within(
            ctx.user.id, rec.id, PLAYBACK_AUDIT_WINDOW):
        return
    await ctx.api.store.audit(ctx.user, f"recording.{action}", str(rec.id),
                              {"call_id": rec.call_id, "range": ctx.request.headers.get("Range", "")},
                              remote_of(ctx.request), "ok")


def file_response(action: str):
    """A handler serving a recording file (``play`` inline, ``download`` as an attachment), audited."""
    async def serve(ctx: Ctx) -> web.StreamResponse:
        rec = await _recording(ctx)
        recorder = ctx.api.source.recorder
        root = recorder.roots.get(rec.node) if recorder is not None else None
        if rec.ended_at is None:
            raise ApiError(409, "the recording is still running")
        try:
            path = recording_path(root, rec.file) if root is not None else None
        except UnsafePath as e:
            raise ApiError(500, str(e)) from None
        if path is None or not path.is_file():
            raise ApiError(410, "the recording file is gone (deleted by retention or lost)")
        await _audit_access(ctx, rec, action)
        headers = {"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
        if action == "download":
            headers["Content-Disposition"] = f'attachment; filename="recording-{rec.id}.wav"'
        return web.FileResponse(path, headers=headers)

    serve.__name__ = f"recording_{action}"
    return serve


def _recorder(ctx: Ctx):
    recorder = ctx.api.source.recorder
    if recorder is None:
        raise ApiError(503, "recording is not running")
    return recorder


def _live_call_in_scope(ctx: Ctx) -> Call:
    call_id = ctx.request.match_info["call_id"]
    center = ctx.api.source.center()
    call = center.calls.get(call_id) if center is not None else None
    if call is None:
        raise ApiError(404, "no such live call")
    if not ctx.scope().sees_call(call):
        whose = "your call" if ctx.user.role == "agent" else "a call of your teams"
        raise ApiError(403, f"call {call_id!r} is not {whose}")
    return call


async def live_recording(ctx: Ctx) -> LiveRecordingOut:
    """Whether a live call in the user's scope is recorded (the agent page's recording buttons)."""
    call = _live_call_in_scope(ctx)
    config = ctx.api.source.config()
    policy = recording_policy(config, config.queue(call.queue or ""), call.did, call.flow_recording)
    if call.recording is None:
        if call.recording_failure is not None:
            return LiveRecordingOut(call_id=call.call_id, policy=policy, state="failed",
                                    reason=call.recording_failure)
        return LiveRecordingOut(call_id=call.call_id, policy=policy, state="none")
    rec = next(reversed(await RecordingStore(ctx.api.pool).open_of_call(call.call_id)), None)
    if rec is None:
        return LiveRecordingOut(call_id=call.call_id, policy=policy, state="starting")
    return LiveRecordingOut(call_id=call.call_id, policy=policy, state="paused" if rec.paused else "running",
                            recording_id=rec.id)


def recording_action(action: str):
    """A handler that starts, pauses or resumes the recording of a live call in the user's scope."""
    async def act(ctx: Ctx) -> RecordingStateOut:
        call_id = _live_call_in_scope(ctx).call_id
        try:
            if action == "start":
                file = await _recorder(ctx).start_on_demand(call_id)
                ctx.detail = {"file": file}
                return RecordingStateOut(call_id=call_id, action=action, file=file)
            await _recorder(ctx).set_paused(call_id, action == "pause")
        except RecordingRefused as e:
            raise ApiError(e.status, e.reason, [{"field": e.field, "reason": e.reason}]) from None
        except (CommandFailed, LookupError) as e:  # the PBX refused: nothing changed on our side
            raise ApiError(502, f"the PBX refused: {e}") from None
        return RecordingStateOut(call_id=call_id, action=action)

    act.__name__ = f"recording_{action}"
    return act
