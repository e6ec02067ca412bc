"""Live queue KPIs: service level, ASA, abandon rate, longest wait, agents by state.

Pure: fed with :class:`CallRecord` rows as calls end (:meth:`KpiWindow.observe`) and the core's
:class:`QueueSnapshot` for what is live now; the time is always passed in. Figures cover the
calls that ended within the last ``window_seconds`` (a rolling window), so the numbers move
with the room instead of being diluted by the whole day.

Service level = calls answered within the queue's threshold / (answered + abandoned), the
common "80/20" definition; callers who hung up before the threshold count against it too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ccserver.cdr.record import CallRecord
from ccserver.core.center import QueueSnapshot


@dataclass(frozen=True, slots=True)
class _Outcome:
    ended_at: float
    queue: str
    answered: bool
    wait_seconds: float


@dataclass(frozen=True, slots=True)
class QueueKpis:
    """One queue's live figures. Ratios are None while no call ended in the window."""

    queue: str
    service_level_seconds: int
    #: the share the queue is expected to reach within ``service_level_seconds``
    service_level_target: float
    service_level: float | None
    asa_seconds: float | None
    abandon_rate: float | None
    answered: int
    abandoned: int
    waiting: int
    longest_wait_seconds: float
    agents_ready: int
    agents_on_call: int
    agents_paused: int
    agents_wrap_up: int
    agents_offered: int

    @property
    def breached(self) -> bool:
        """True when the service level is known and below the queue's target."""
        return self.service_level is not None and self.service_level < self.service_level_target


class KpiWindow:
    """Queued calls that ended within the last ``window_seconds``, per queue."""

    def __init__(self, window_seconds: float = 3600.0) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.window_seconds = window_seconds
        #: per queue, in arrival order, so a queue's figures never scan the others' calls
        self._outcomes: dict[str, deque[_Outcome]] = {}

    def observe(self, record: CallRecord) -> None:
        """Count a finished call; only calls that waited in a queue matter here."""
        if record.queue is None or record.enqueued_at is None:
            return
        answered = record.disposition == "answered" and record.answered_at is not None
        if not answered and record.disposition != "abandoned":
            return
        end_of_wait = record.answered_at if answered else record.ended_at
        self._outcomes.setdefault(record.queue, deque()).append(
            _Outcome(record.ended_at, record.queue, answered, max(0.0, end_of_wait - record.enqueued_at))
        )

    def kpis(self, snapshot: QueueSnapshot, service_level_seconds: int, now: float,
             service_level_target: float = 0.8) -> QueueKpis:
        """The figures of ``snapshot``'s queue at ``now``."""
        outcomes = self._outcomes.get(snapshot.name, deque())
        # Records arrive roughly in end order (wrap-up can delay one); prune from the left only.
        while outcomes and outcomes[0].ended_at < now - self.window_seconds:
            outcomes.popleft()
        mine = [o for o in outcomes if o.ended_at <= now]
        answered = [o for o in mine if o.answered]
        abandoned = len(mine) - len(answered)
        within = sum(1 for o in answered if o.wait_seconds <= service_level_seconds)
        return QueueKpis(
            queue=snapshot.name,
            service_level_seconds=service_level_seconds,
            service_level_target=service_level_target,
            service_level=within / len(mine) if mine else None,
            asa_seconds=sum(o.wait_seconds for o in answered) / len(answered) if answered else None,
            abandon_rate=abandoned / len(mine) if mine else None,
            answered=len(answered),
            abandoned=abandoned,
            waiting=len(snapshot.waiting),
            longest_wait_seconds=max((w.wait_seconds for w in snapshot.waiting), default=0.0),
            agents_ready=snapshot.ready,
            agents_on_call=snapshot.on_call,
            agents_paused=snapshot.paused,
            agents_wrap_up=snapshot.wrap_up,
            agents_offered=snapshot.offered,
        )
