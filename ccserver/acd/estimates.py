"""Expected wait per caller, for IVR announcements and the wallboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: weight of the newest handled call in the moving average of handle times
HANDLE_TIME_WEIGHT = 0.2
#: agent states that serve a queue (they take its callers now or once free)
SERVING = frozenset({"ready", "offered", "on_call", "wrap_up"})


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


class QueueWaits:
    """Expected waits in one queue at one moment, each counting only the members who could
    take that caller. ``able(requirements, node)`` is their mask over the members (see
    :class:`ccserver.acd.eligibility.Eligibility`); counts are kept per requirement set and
    node, of which a site has few."""

    def __init__(self, able: Callable[[tuple[tuple[str, int], ...], str | None], np.ndarray],
                 states: Sequence[str], handle_seconds: float) -> None:
        self._able = able
        self._ready = np.fromiter((s == "ready" for s in states), np.bool_, len(states))
        self._serving = np.fromiter((s in SERVING for s in states), np.bool_, len(states))
        # nobody ready (callers wait) or nobody serving at all: no mask needed
        self._any_ready, self._any_serving = bool(self._ready.any()), bool(self._serving.any())
        self._handle = handle_seconds
        self._counts: dict[tuple, tuple[int, int]] = {}

    def wait(self, requirements: tuple[tuple[str, int], ...], node: str | None,
             position: int) -> float | None:
        """:func:`expected_wait` at ``position`` for a caller with these requirements on
        ``node`` (None: any node)."""
        ready, serving = self._count(requirements, node)
        return expected_wait(position, ready, serving, self._handle)

    def ready(self, requirements: tuple[tuple[str, int], ...], node: str | None) -> int:
        """How many members who could take such a caller on ``node`` (None: any node) are
        ready now."""
        return self._count(requirements, node)[0]

    def _count(self, requirements: tuple[tuple[str, int], ...],
               node: str | None) -> tuple[int, int]:
        """(ready, serving) members able to take such a caller."""
        key = (requirements, node)
        counts = self._counts.get(key)
        if counts is None:
            able = self._able(requirements, node) if self._any_serving else None
            counts = self._counts[key] = (
                int(np.count_nonzero(able & self._ready)) if self._any_ready else 0,
                int(np.count_nonzero(able & self._serving)) if self._any_serving else 0,
            )
        return counts
