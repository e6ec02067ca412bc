"""One row of a report: a period (its first local day) and a queue or an agent.

Ratios are 0..1 and None when their denominator is zero; averages are None with no call.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class QueueReportRow(BaseModel):
    """A queue's calls that ended in one period, after waiting in that queue."""

    period_start: date
    queue: str
    #: the queue's service-level threshold (configuration; the default for a queue no longer configured)
    service_level_seconds: int
    #: a caller who hangs up sooner after entering the queue is a short abandon (configuration)
    abandon_grace_seconds: float
    #: calls that entered the queue
    offered: int
    #: connected to an agent (whatever came after, e.g. a transfer)
    answered: int
    answered_within_threshold: int
    #: the caller hung up while waiting (or while an agent rang), after the abandon grace
    abandoned: int
    #: the caller hung up within the abandon grace (a wrong number, a change of mind): in no ratio
    short_abandoned: int
    #: left the queue otherwise: voicemail, callback, transferred while waiting, lost
    other: int
    #: answered within the threshold / (answered + abandoned)
    service_level: float | None
    #: abandoned / (answered + abandoned)
    abandon_rate: float | None
    #: mean wait from entering the queue to being answered
    asa_seconds: float | None
    #: mean talk + hold + wrap-up of the answered calls
    aht_seconds: float | None


class AgentReportRow(BaseModel):
    """An agent's calls that ended in one period, and their time in each state within it."""

    period_start: date
    agent_id: str
    #: calls the agent answered
    answered: int
    talk_seconds: float
    hold_seconds: float
    wrapup_seconds: float
    #: (talk + hold + wrap-up) / answered
    aht_seconds: float | None
    #: time in any state but logged out
    logged_in_seconds: float
    paused_seconds: float
    #: ready, or ringing with a call offered
    available_seconds: float
    #: on a call (holds included) or in wrap-up
    busy_seconds: float
    #: busy / (available + busy): the share of the time not paused spent handling calls
    occupancy: float | None
