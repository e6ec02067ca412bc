"""A call's kept facts (:class:`~ccserver.core.facts.CallFacts`) as one channel variable value.

Both PBX kinds store it the same way: ``key=value`` pairs joined by ``;``, every value
percent-encoded down to ``[A-Za-z0-9._~-]`` (lists: items encoded, then joined by ``,``), e.g.
``did=5000;arrived=1795481744.48;queue=support;path=greeting,main_menu%3A1``. Nothing in it is
special to either switch's command line: FreeSWITCH's ``uuid_setvar`` splits its arguments on
spaces and strips ``'`` quotes and ``\\`` escapes (``switch_separate_string``,
``src/switch_utils.c``). Asterisk's ``Status`` action reads a requested variable into a
512-byte buffer (``valbuf`` in ``generate_status``, ``main/manager.c``) and an AMI action line
may be at most 1024 bytes (``inbuf`` of ``struct mansession_session``): :data:`MAX_LENGTH`
keeps the value within both, dropping the end of a very long IVR path first.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from ccserver.core.facts import CallFacts

#: the variable's name on an Asterisk channel (dialplan style) and on a FreeSWITCH one
ASTERISK_VARIABLE = "CC_CALL_FACTS"
FREESWITCH_VARIABLE = "cc_call_facts"
#: longest value written (Asterisk's Status returns at most 511 bytes of it)
MAX_LENGTH = 500

_TIMES = {"arrived": "arrived_at", "ivr_end": "ivr_ended_at", "enqueued": "enqueued_at",
          "offered": "offered_at", "answered": "answered_at"}
_TEXTS = {"did": "did", "queue": "queue", "lang": "language", "agent": "agent_id",
          "rec": "recording"}


class FactsError(ValueError):
    """A stored value that is not kept facts (someone else's variable, or cut short)."""


def _q(text: str) -> str:
    return quote(text, safe="")


def encode_facts(facts: CallFacts) -> str:
    """The variable's value for ``facts`` (at most :data:`MAX_LENGTH` characters)."""
    pairs = [f"{key}={_q(str(value))}" for key, attr in (_TEXTS | _TIMES).items()
             if (value := getattr(facts, attr)) not in (None, "")]
    if facts.priority:
        pairs.append(f"prio={facts.priority}")
    if facts.skills:
        pairs.append("skills=" + ",".join(f"{_q(name)}:{level}" for name, level in facts.skills))
    text = ";".join(pairs)
    path = [_q(step) for step in facts.ivr_path]
    while path and len(text) + len(",".join(path)) + 6 > MAX_LENGTH:
        path.pop()  # the start of the path (how the caller came in) matters most
    return f"{text};path={','.join(path)}" if path else text


def decode_facts(text: str) -> CallFacts:
    """The facts of a value :func:`encode_facts` wrote; :class:`FactsError` for anything else."""
    fields: dict[str, object] = {}
    try:
        for pair in text.split(";"):
            key, sep, value = pair.partition("=")
            if not sep:
                raise FactsError(f"{pair[:40]!r} is not key=value")
            if key in _TIMES:
                fields[_TIMES[key]] = float(value)
            elif key in _TEXTS:
                fields[_TEXTS[key]] = unquote(value)
            elif key == "prio":
                fields["priority"] = int(value)
            elif key == "skills":
                fields["skills"] = tuple((unquote(name), int(level)) for name, _, level in
                                         (item.rpartition(":") for item in value.split(",")))
            elif key == "path":
                fields["ivr_path"] = tuple(unquote(step) for step in value.split(","))
    except ValueError as e:
        raise FactsError(f"kept call facts: {e}") from None
    if "arrived_at" not in fields:
        raise FactsError("kept call facts: no arrival time")
    fields.setdefault("did", "")
    return CallFacts(**fields)  # type: ignore[arg-type]
