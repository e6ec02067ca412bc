"""Transferring a live call over HTTP: supervisors (their teams' calls) and admins send a waiting
or connected caller to an external number; the route table audits every attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ccserver.api.server import ApiError
from ccserver.core.commands import TransferCall
from ccserver.pbx.base import CommandFailed

if TYPE_CHECKING:
    from ccserver.api.routes import Ctx


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: an external number: digits, optionally after ``+`` (checked by the core)
    destination: str = Field(min_length=1, max_length=40)


class TransferOut(BaseModel):
    call_id: str
    destination: str
    #: the queue the caller left and the agent who was talking to them, if any
    queue: str | None
    agent_id: str | None


async def transfer_call(ctx: Ctx) -> TransferOut:
    """Take the call out of ccserver (CDR ``transferred``) and have its PBX send it on."""
    source, body = ctx.api.source, ctx.body
    assert isinstance(body, TransferIn)
    call_id = ctx.request.match_info["call_id"]
    center = source.center()
    if center is None or source.run_command is None:
        raise ApiError(503, "the contact center is starting")
    call = center.calls.get(call_id)
    # Out of scope looks like unknown: call ids are not for guessing.
    if call is None or not ctx.scope().sees_call(call):
        raise ApiError(404, "no such live call")
    ctx.target = call_id
    queue, agent_id = call.queue, call.agent_id
    try:
        decisions = center.transfer(call_id, body.destination, source.clock())
    except ValueError as e:
        field, _, reason = str(e).partition(": ")
        status = 409 if field == "call_id" else 422
        raise ApiError(status, reason, [{"field": field, "reason": reason}]) from None
    (command,) = [d for d in decisions if isinstance(d, TransferCall)]
    source.dispatch([d for d in decisions if d is not command])
    ctx.detail = {"destination": body.destination, "queue": queue, "agent_id": agent_id}
    try:
        await source.run_command(command)
    except (CommandFailed, LookupError) as e:
        # ccserver has let the call go already (most often its channel was just gone)
        raise ApiError(502, f"the PBX refused the transfer: {e}") from None
    return TransferOut(call_id=call_id, destination=body.destination, queue=queue,
                       agent_id=agent_id)
