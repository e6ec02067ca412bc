"""Glue between a PBX media session, the flow library and the core's event sink."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ccserver.core.events import CallbackRequest, IvrFinished
from ccserver.ivr.engine import Estimator, IvrOutcome, run_flow
from ccserver.ivr.flow import Flow
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.media import MediaSession
from ccserver.ivr.prompts import MissingPrompts
from ccserver.pbx.base import EventSink

log = logging.getLogger(__name__)


def cdr_variables(outcome: IvrOutcome) -> dict[str, str]:
    """The flow's variables plus what the CDR keeps about the IVR run itself: the flow version
    (``ivr_version``), the digits (``ivr_digits``) and the timings of the path entries
    (``ivr_timings``, seconds, comma-separated, one per entry of the path)."""
    out = dict(outcome.variables)
    if outcome.version:
        out["ivr_version"] = outcome.version
    if outcome.digits:
        out["ivr_digits"] = outcome.digits
    if outcome.timings:
        out["ivr_timings"] = ",".join(f"{t:g}" for t in outcome.timings)
    return out


def callback_request(outcome: IvrOutcome) -> CallbackRequest | None:
    """The callback a flow's ``callback`` node asked for (number and queue), if it ended there."""
    number, queue = outcome.variables.get("CC_CALLBACK", ""), outcome.variables.get("CC_CALLBACK_QUEUE", "")
    if outcome.ending != "callback" or not number or not queue:
        return None
    return CallbackRequest(number, queue)


async def serve_ivr(
    session: MediaSession, library: FlowLibrary, sink: EventSink, clock: Callable[[], float],
    estimate: Estimator | None = None,
    may_record: Callable[[str, Flow], bool] | None = None,
    missing: MissingPrompts | None = None,
) -> IvrOutcome:
    """Run the flow routed for the session's DID and report the end with one ``IvrFinished``.

    Exactly one ``IvrFinished`` is pushed per session, also when the caller hung up during the
    IVR (then ``queue=None``): that is how the path reaches the call record. The call's end is
    still reported by the PBX's own hang-up event, which may reach the core before or after
    this one. With no flow for the DID, the path is empty and ``queue`` is None, so the
    dialplan hangs up. The flows are taken from the library once, at the start: a publish
    during the call does not change what the call runs. ``estimate`` feeds queue announcements.
    ``may_record(did, flow)`` says whether the call can be recorded: the flow's recording notice
    plays only then (always, when not given). Prompts the PBX could not open go to ``missing``.
    """
    flow: Flow | None
    try:
        flow = library.for_did(session.did)
    except KeyError as err:
        log.error("IVR %s: %s", session.call_id, err.args[0])
        flow = None
        outcome = IvrOutcome(None, 0, (), "", {}, hung_up=False)
    else:
        notice = may_record(session.did, flow) if may_record is not None else True
        outcome = await run_flow(flow, session, clock, flows=library.snapshot(), overrides=library.overrides,
                                 estimate=estimate, recording_notice=notice, missing=missing)
    sink(
        IvrFinished(
            call_id=session.call_id,
            node=session.node,
            channel=session.channel,
            caller=session.caller,
            did=session.did,
            queue=outcome.queue,
            path=outcome.path,
            variables=cdr_variables(outcome),
            priority=outcome.priority if outcome.priority_chosen else None,
            at=clock(),
            skills=outcome.skills,
            language=outcome.language if outcome.language_chosen else "",
            caller_hung_up=outcome.hung_up,
            callback=callback_request(outcome),
            recording=flow.recording if flow is not None else None,
            # only FreeSWITCH's connect reply says when the channel was created
            arrived_at=getattr(session, "created_at", None),
        )
    )
    return outcome
