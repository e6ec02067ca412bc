"""Whether a call is recorded: the queue's policy, overridden per DID. Pure."""

from __future__ import annotations

from ccserver.config import Config, QueueConfig, RecordingPolicy


def recording_policy(config: Config, queue: QueueConfig | None, did: str) -> RecordingPolicy:
    """The policy for a call to ``did`` answered in ``queue`` (a DID override wins)."""
    override = config.recording.did_policies.get(did)
    if override is not None:
        return override
    if queue is None:
        return "none"
    if queue.recording is not None:
        return queue.recording
    return "all" if queue.record else "none"
