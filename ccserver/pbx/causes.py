"""Hang-up causes and failed-leg reasons of every PBX kind in ccserver's one vocabulary.

Asterisk reports Q.850 cause codes in ``Hangup`` (``Cause: 16``) and the outcome of ``Dial`` in
``DialEnd`` (``DialStatus: NOANSWER``); FreeSWITCH reports the Q.850 *names* of the same codes
(``Hangup-Cause: NORMAL_CLEARING``, ``-ERR NO_ANSWER`` from originate). Both go through the one
code table below, so a CDR's cause means the same thing whichever node carried the call. The
core only knows the names in ``core/events.py``.
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


#: FreeSWITCH cause names (switch_channel_cause_to_str) to their Q.850 codes; names that are
#: not Q.850 (FreeSWITCH's own 5xx/6xx causes) map to codes with the same meaning.
FS_CAUSE_CODES: dict[str, int] = {
    "UNSPECIFIED": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "RESOURCE_UNAVAILABLE": 47,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "ORIGINATOR_CANCEL": 16,  # FreeSWITCH 487: the calling side gave up, a normal end
    "USER_NOT_REGISTERED": 20,  # FreeSWITCH 606: the agent's phone is not registered
    "LOSE_RACE": 16,  # FreeSWITCH 502: another leg of the same originate won
    "ALLOTTED_TIMEOUT": 19,  # FreeSWITCH 602: originate_timeout expired
    "PROGRESS_TIMEOUT": 19,  # FreeSWITCH 607
}

#: Originate failures (``-ERR USER_BUSY``) whose leg outcome is not simply the cause's meaning.
_FS_LEG_FAILURES: dict[str, LegFailure] = {
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "PROGRESS_TIMEOUT": "no_answer",
    "USER_BUSY": "busy",
    "ORIGINATOR_CANCEL": "cancelled",
    "LOSE_RACE": "cancelled",
    "CALL_REJECTED": "rejected",
    "SUBSCRIBER_ABSENT": "unavailable",
    "USER_NOT_REGISTERED": "unavailable",
    "DESTINATION_OUT_OF_ORDER": "unavailable",
    "NO_ROUTE_DESTINATION": "unavailable",
    "UNALLOCATED_NUMBER": "unavailable",
    "NORMAL_CIRCUIT_CONGESTION": "unavailable",
    "NORMAL_TEMPORARY_FAILURE": "unavailable",
    "REQUESTED_CHAN_UNAVAIL": "unavailable",
}


def hangup_cause(code: int) -> HangupCause:
    """Map a Q.850 cause code to :data:`HangupCause`; codes we do not name are ``"unknown"``."""
    return _CAUSES.get(code, "unknown")


def leg_failure(dial_status: str) -> LegFailure:
    """Map a failed ``DialStatus`` (anything but ANSWER) to :data:`LegFailure`.

    An unknown status is an ``"error"``: the leg did not connect and we cannot say why.
    """
    return _DIAL_FAILURES.get(dial_status.strip().upper(), "error")


def fs_hangup_cause(name: str) -> HangupCause:
    """Map a FreeSWITCH cause name (``NORMAL_CLEARING``) to :data:`HangupCause`.

    Goes through the Q.850 code, so it agrees with :func:`hangup_cause` for Asterisk.
    """
    code = FS_CAUSE_CODES.get(name.strip().upper())
    return "unknown" if code is None else hangup_cause(code)


def fs_leg_failure(name: str) -> LegFailure:
    """Map the cause of a failed originate (``USER_BUSY``) to :data:`LegFailure`."""
    return _FS_LEG_FAILURES.get(name.strip().upper(), "error")
