"""Whether a call is recorded: the queue's policy, overridden per DID. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ccserver.config import Config, QueueConfig, RecordingPolicy

if TYPE_CHECKING:
    from ccserver.ivr.flow import Flow


def recording_policy(
    config: Config, queue: QueueConfig | None, did: str, flow: RecordingPolicy | None = None
) -> RecordingPolicy:
    """The policy for a call to ``did`` answered in ``queue``.

    A DID override (site configuration) wins, then the IVR flow's own policy, then the queue's.
    """
    override = config.recording.did_policies.get(did)
    if override is not None:
        return override
    if flow is not None:
        return flow
    if queue is None:
        return "none"
    if queue.recording is not None:
        return queue.recording
    return "all" if queue.record else "none"


def on_demand_possible(config: Config, flows: Iterable[Flow]) -> bool:
    """Whether any call of the site may be recorded on demand (a queue's, a DID's or a flow's
    policy says so): only then does a node that cannot start a recording mid-call matter."""
    policies = {q.recording for q in config.queues} | set(config.recording.did_policies.values())
    return "on_demand" in policies | {f.recording for f in flows}


def may_be_recorded(config: Config, did: str, queues: set[str], flow: RecordingPolicy | None = None) -> bool:
    """Whether a call to ``did`` that can end in any of ``queues`` may be recorded.

    The IVR plays a flow's recording notice only then: a notice on calls that are never
    recorded misinforms the caller.
    """
    return any(recording_policy(config, config.queue(q), did, flow) != "none" for q in queues or {""})
