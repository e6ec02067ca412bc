"""Live queue KPIs: service level, ASA, abandonment, AHT, longest wait, agents by state.

Pure: the time is always passed in. Each figure moves at the moment its fact happens, and
covers the facts of the last ``window_seconds`` (a rolling window), so the numbers move with the
room instead of being diluted by the whole day:

* an answer (:meth:`KpiWindow.answered`, when the agent picks up) counts for the service level,
  the ASA and the answered count at once, not when the call ends;
* an abandon counts when the caller hangs up (its call record is written at that moment);
* the handle time (talk + hold + wrap-up) counts when the agent finishes wrap-up, which is when
  the call record of an answered call is written (:meth:`KpiWindow.observe`).

A call record also counts the answer of a call whose answer moment was not seen (the server
restarted since, see :mod:`ccserver.stats.history`), at its ``answered_at``; a call is never
counted twice.

Service level = answered within the queue's threshold / (answered + abandoned + callers still
waiting beyond the threshold). A caller waiting longer than the threshold is already a miss,
so the figure drops while they wait, not only once they are answered or give up. Abandons
within the queue's ``abandon_grace_seconds`` of entering the queue (short abandons: a
wrong number, a caller who changed their mind) count in neither the service level nor the
abandon rate; with the default 0 every abandon counts. Calls that leave the queue otherwise
(voicemail, callback, transfer before an answer) count in none of the ratios.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ccserver.cdr.record import CallRecord
from ccserver.config import QueueConfig
from ccserver.core.center import QueueSnapshot


@dataclass(frozen=True, slots=True)
class QueueKpis:
    """One queue's live figures. Ratios and averages are None while nothing counts for them."""

    queue: str
    service_level_seconds: int
    #: the share the queue is expected to reach within ``service_level_seconds``
    service_level_target: float
    service_level: float | None
    asa_seconds: float | None
    abandon_rate: float | None
    #: average handle time (talk + hold + wrap-up) of the calls whose wrap-up ended in the window
    aht_seconds: float | None
    answered: int
    abandoned: int
    #: abandons within the queue's grace, left out of the service level and abandon rate
    short_abandoned: int
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


class _Series:
    """(time, value) facts of one queue, in time order; a late fact is inserted in place."""

    __slots__ = ("_facts",)

    def __init__(self) -> None:
        self._facts: list[tuple[float, float]] = []

    def add(self, at: float, value: float) -> None:
        if self._facts and at < self._facts[-1][0]:
            bisect.insort(self._facts, (at, value))
        else:
            self._facts.append((at, value))

    def between(self, start: float, end: float) -> list[float]:
        """Values of the facts in [start, end]; facts before ``start`` are forgotten."""
        drop = bisect.bisect_left(self._facts, (start, float("-inf")))
        del self._facts[:drop]
        return [v for at, v in self._facts if at <= end]


class KpiWindow:
    """The KPI facts of the last ``window_seconds``, per queue."""

    def __init__(self, window_seconds: float = 3600.0) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.window_seconds = window_seconds
        #: per queue: (answered at, seconds waited), (abandoned at, seconds waited) and
        #: (wrap-up ended at, handle seconds), so a queue's figures never scan the others' calls
        self._answers: dict[str, _Series] = {}
        self._abandons: dict[str, _Series] = {}
        self._handled: dict[str, _Series] = {}
        #: answers counted whose call record has not come yet: call id -> answered at
        #: (insertion order is answer order, which lets old entries be dropped from the front)
        self._open_answers: dict[str, float] = {}

    def answered(self, call_id: str, queue: str, enqueued_at: float, at: float) -> None:
        """A caller waiting in ``queue`` since ``enqueued_at`` was answered by an agent at ``at``."""
        if call_id in self._open_answers:
            return
        self._open_answers[call_id] = at
        self._series(self._answers, queue).add(at, max(0.0, at - enqueued_at))

    def observe(self, record: CallRecord) -> None:
        """A call record: an abandon, or the handle time of an answered call (and its answer
        if that was not counted at the moment). Only calls that waited in a queue matter."""
        if record.queue is None or record.enqueued_at is None:
            return
        if record.answered_at is not None:
            # after an answer: answered, or later lost / transferred out by a supervisor
            self.answered(record.call_id, record.queue, record.enqueued_at, record.answered_at)
            del self._open_answers[record.call_id]  # its record is the call's last fact
            handle = record.talk_seconds + record.hold_seconds + record.wrapup_seconds
            self._series(self._handled, record.queue).add(record.ended_at + record.wrapup_seconds, handle)
        elif record.disposition == "abandoned":
            self._series(self._abandons, record.queue).add(
                record.ended_at, max(0.0, record.ended_at - record.enqueued_at))

    def kpis(self, snapshot: QueueSnapshot, queue: QueueConfig, now: float) -> QueueKpis:
        """The figures of ``snapshot``'s queue (configured as ``queue``) at ``now``."""
        threshold = queue.service_level_seconds
        start = now - self.window_seconds
        self._forget_open_answers(start)
        name = snapshot.name
        waits = self._series(self._answers, name).between(start, now)
        abandon_waits = self._series(self._abandons, name).between(start, now)
        handles = self._series(self._handled, name).between(start, now)
        abandoned = sum(1 for w in abandon_waits if w >= queue.abandon_grace_seconds)
        late = sum(1 for w in snapshot.waiting if w.wait_seconds > threshold)
        outcomes = len(waits) + abandoned
        return QueueKpis(
            queue=name,
            service_level_seconds=threshold,
            service_level_target=queue.service_level_target,
            service_level=(sum(1 for w in waits if w <= threshold) / (outcomes + late)
                           if outcomes + late else None),
            asa_seconds=_mean(waits),
            abandon_rate=abandoned / outcomes if outcomes else None,
            aht_seconds=_mean(handles),
            answered=len(waits),
            abandoned=abandoned,
            short_abandoned=len(abandon_waits) - abandoned,
            waiting=len(snapshot.waiting),
            longest_wait_seconds=max((w.wait_seconds for w in snapshot.waiting), default=0.0),
            agents_ready=snapshot.ready,
            agents_on_call=snapshot.on_call,
            agents_paused=snapshot.paused,
            agents_wrap_up=snapshot.wrap_up,
            agents_offered=snapshot.offered,
        )

    def _series(self, by_queue: dict[str, _Series], queue: str) -> _Series:
        series = by_queue.get(queue)
        if series is None:
            series = by_queue[queue] = _Series()
        return series

    def _forget_open_answers(self, start: float) -> None:
        # a record that still comes counts its answer again, outside the window: no harm
        while self._open_answers:
            call_id, at = next(iter(self._open_answers.items()))
            if at >= start:
                return
            del self._open_answers[call_id]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
