"""Asterisk hang-up causes and Dial statuses in ccserver's vocabulary (pure functions).

Asterisk reports Q.850 cause codes in ``Hangup`` (``Cause: 16``) and the outcome of ``Dial`` in
``DialEnd`` (``DialStatus: NOANSWER``). The core only knows the names in ``core/events.py``.
"""

from __future__ import annotations

from ccserver.core.events import HangupCause, LegFailure

_CAUSES: dict[int, HangupCause] = {
    0: "unknown",  # Asterisk's AST_CAUSE_NOTDEFINED, e.g. a caller gone during AGI
    1: "unallocated_number",
    2: "unavailable",  # no route to the transit network
    3: "unavailable",  # no route to destination
    16: "normal_clearing",
    17: "user_busy",
    18: "no_user_response",
    19: "no_answer",
    20: "unavailable",  # subscriber absent
    21: "call_rejected",
    22: "unallocated_number",  # number changed
    27: "unavailable",  # destination out of order
    28: "unallocated_number",  # invalid number format
    31: "normal_clearing",  # normal, unspecified
    34: "network_failure",  # no circuit/channel available
    38: "network_failure",  # network out of order
    41: "network_failure",  # temporary failure
    42: "network_failure",  # switching equipment congestion
    44: "network_failure",  # requested channel not available
    47: "network_failure",  # resource unavailable
    102: "network_failure",  # recovery on timer expiry
}

_DIAL_FAILURES: dict[str, LegFailure] = {
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CHANUNAVAIL": "unavailable",
    "CONGESTION": "unavailable",  # the network could not reach the device
    "CANCEL": "cancelled",  # the caller left (or ccserver stopped the ring)
    "DONTCALL": "rejected",
    "TORTURE": "rejected",
    "INVALIDARGS": "error",
}


def hangup_cause(code: int) -> HangupCause:
    """Map a Q.850 cause code to :data:`HangupCause`; codes we do not name are ``"unknown"``."""
    return _CAUSES.get(code, "unknown")


def leg_failure(dial_status: str) -> LegFailure:
    """Map a failed ``DialStatus`` (anything but ANSWER) to :data:`LegFailure`.

    An unknown status is an ``"error"``: the leg did not connect and we cannot say why.
    """
    return _DIAL_FAILURES.get(dial_status.strip().upper(), "error")
