"""Per-session AMI event filters (the ``Filter`` action), as in Asterisk 21+/22 ``manager.c``.

Two forms: the legacy regex (``Filter: Event: X``, ``!`` prefix = exclude) matched against the
whole event text, and ``MatchCriteria: action(..),name(..),header(..),method(..)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_ERROR = "Filter was formatted incorrectly.  Check the syntax of the filter given."
COMPILE_ERROR = "Filter did not compile.  Check the syntax of the filter given."
_METHODS = {"regex", "exact", "starts_with", "ends_with", "contains", "none"}
_CRITERION = re.compile(r"^(action|name|header|method)\((.*)\)$", re.IGNORECASE)


class FilterError(Exception):
    """The filter was refused; ``str(exc)`` is the AMI error message."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One include or exclude filter."""

    include: bool
    method: str
    pattern: str
    name: str | None = None
    header: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, event: str, headers: dict[str, str], text: str) -> bool:
        if self.name is not None and event != self.name:
            return False
        if self.header is not None:
            if self.header not in headers:
                return False
            subject = headers[self.header]
        else:
            subject = text
        if self.method == "none":
            return True
        if self.method == "regex":
            assert self.regex is not None
            return self.regex.search(subject) is not None
        if self.method == "exact":
            return subject == self.pattern
        if self.method == "starts_with":
            return subject.startswith(self.pattern)
        if self.method == "ends_with":
            return subject.endswith(self.pattern)
        return self.pattern in subject


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FilterError(COMPILE_ERROR) from exc


def parse_filter(match_criteria: str, pattern: str) -> EventFilter:
    """Build a filter from the action's ``MatchCriteria`` (may be empty) and ``Filter`` headers."""
    if not match_criteria:
        if pattern.startswith("!"):
            return EventFilter(False, "regex", pattern[1:], regex=_compile(pattern[1:]))
        return EventFilter(True, "regex", pattern, regex=_compile(pattern))
    include, method, name, header = True, "regex", None, None
    for part in match_criteria.split(","):
        m = _CRITERION.match(part.strip())
        if not m:
            raise FilterError(FORMAT_ERROR)
        key, value = m.group(1).lower(), m.group(2)
        if key == "action":
            if value.lower() not in ("include", "exclude"):
                raise FilterError(FORMAT_ERROR)
            include = value.lower() == "include"
        elif key == "method":
            if value.lower() not in _METHODS:
                raise FilterError(FORMAT_ERROR)
            method = value.lower()
        elif key == "name":
            name = value
        else:
            header = value
    regex = _compile(pattern) if method == "regex" else None
    return EventFilter(include, method, pattern, name, header, regex)


def should_send(includes: list[EventFilter], excludes: list[EventFilter], event: str,
                headers: dict[str, str], text: str) -> bool:
    """Asterisk's ``should_send_event``: includes first (implied exclude-all), then excludes."""
    if not includes and not excludes:
        return True
    if includes and not any(f.matches(event, headers, text) for f in includes):
        return False
    return not any(f.matches(event, headers, text) for f in excludes)
