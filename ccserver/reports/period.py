"""The period and date range of a report: validated, then widened to whole periods (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
#: the longest range a report may ask for, from its first to its last day
MAX_DAYS = 400

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidReport(ValueError):
    """A report parameter is wrong: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def period_start(day: date, period: Period) -> date:
    """The first day of the period holding ``day`` (weeks start on Monday, as Postgres's date_trunc)."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, period: Period) -> date:
    """The first day of the period after the one starting on ``start``."""
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReportRange:
    """Local calendar days ``[start, end)``: whole periods covering the days asked for."""

    period: Period
    start: date
    end: date


def _day(raw: str | None, field: str) -> date:
    if raw is None or raw == "":
        raise InvalidReport(field, "required (a date, YYYY-MM-DD)")
    if not _DATE.match(raw):
        raise InvalidReport(field, "must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidReport(field, "not a calendar date") from None


def report_range(period: str | None, first: str | None, last: str | None) -> ReportRange:
    """The range of a report from its query parameters: ``period`` (default day), ``from`` and
    ``to`` (both included, at most :data:`MAX_DAYS` days), widened to whole periods so the
    first and last rows count a full day, week or month."""
    period = period or "day"
    if period not in PERIODS:
        raise InvalidReport("period", f"must be one of {', '.join(PERIODS)}")
    start, stop = _day(first, "from"), _day(last, "to")
    if stop < start:
        raise InvalidReport("to", "must not be before from")
    if (stop - start).days + 1 > MAX_DAYS:
        raise InvalidReport("to", f"the range may cover at most {MAX_DAYS} days")
    return ReportRange(period, period_start(start, period), next_period(period_start(stop, period), period))
