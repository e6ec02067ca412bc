"""Expected wait per caller, for IVR announcements and the wallboard."""

from __future__ import annotations

from dataclasses import dataclass

#: weight of the newest handled call in the moving average of handle times
HANDLE_TIME_WEIGHT = 0.2


@dataclass(slots=True)
class HandleTime:
    """Exponential moving average of a queue's handle time (talk + wrap-up), in seconds."""

    seconds: float

    def add(self, handled_seconds: float) -> None:
        """Fold in one handled call."""
        self.seconds += HANDLE_TIME_WEIGHT * (max(0.0, handled_seconds) - self.seconds)


def expected_wait(position: int, ready: int, serving: int, handle_seconds: float) -> float | None:
    """Seconds until the caller at ``position`` (1 = next) reaches an agent.

    The first ``ready`` callers go at once; the rest wait for the ``serving`` agents (ready,
    ringing, talking or wrapping up) to free up, one handle time per round. None when nobody
    serves the queue: no honest number exists.
    """
    if position <= ready:
        return 0.0
    if serving <= 0:
        return None
    return (position - ready) / serving * handle_seconds
