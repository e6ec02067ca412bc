"""IVR flows as data: typed nodes joined by a ``next`` graph, validated with pydantic.

A flow is a dict of nodes keyed by id; each node names the node(s) that follow it. New node
kinds are added as new ``type`` values of the :data:`Node` union, so existing flows keep loading.
Every :class:`Flow` that exists has a valid schema and no dangling reference: all targets
point to existing nodes, the start node exists, menu keys are DTMF digits. Errors name the
field path, e.g. ``nodes.main_menu.options.3: unknown node 'x'``. The deeper graph checks
(reachability, termination, bounded loops, languages) live in :mod:`ccserver.ivr.checks`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

#: node ids and flow names: short, readable, safe in logs and CDR paths ("main_menu:1")
_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
#: an Asterisk / FreeSWITCH sound name: no spaces or quotes, which would break the AGI command line
_SOUND = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$")
_LANGUAGE = r"^[a-z]{2}(_[A-Za-z]{2})?$"
_LANGUAGE_RE = re.compile(_LANGUAGE)
#: a channel / CDR variable name: what AGI ``SET VARIABLE`` and ESL ``set`` both accept
_VARIABLE = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_QUEUE = r"^[A-Za-z0-9_-]{1,64}$"
#: TTS text is sent to the PBX on one command line; bounded and without line breaks
_MAX_TTS = 1000

NodeId = Annotated[str, Field(pattern=_ID)]
Language = Annotated[str, Field(pattern=_LANGUAGE)]
VariableName = Annotated[str, Field(pattern=_VARIABLE)]
QueueName = Annotated[str, Field(pattern=_QUEUE)]
#: a value set on the PBX channel: one line, no control characters (a line break would end the
#: AGI command or the ESL header it travels in)
ChannelValue = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]


@dataclass(frozen=True, slots=True)
class PromptRef:
    """What to play: a sound name (the PBX picks the language's file), per-language sound names,
    or text for the PBX's TTS engine (one text, or one per language).

    Exactly one of ``sound``, ``sounds``, ``tts`` is set; ``sounds`` / ``tts`` are
    ``((language, value), ...)``, ``tts`` with language ``""`` for text used in every language.
    """

    sound: str | None = None
    sounds: tuple[tuple[str, str], ...] = ()
    tts: tuple[tuple[str, str], ...] = ()

    def languages(self) -> frozenset[str] | None:
        """Languages this prompt covers; ``None`` when it covers every language."""
        if self.sound is not None:
            return None
        pairs = self.sounds or self.tts
        if any(lang == "" for lang, _ in pairs):
            return None
        return frozenset(lang for lang, _ in pairs)

    def resolve(self, language: str, default: str) -> tuple[Literal["sound", "tts"], str]:
        """``("sound", name)`` or ``("tts", text)`` for ``language`` (else the flow's ``default``)."""
        if self.sound is not None:
            return "sound", self.sound
        kind: Literal["sound", "tts"] = "sound" if self.sounds else "tts"
        table = dict(self.sounds or self.tts)
        for lang in (language, default, ""):
            if lang in table:
                return kind, table[lang]
        return kind, next(iter(table.values()))

    def to_data(self) -> Any:
        """The YAML / JSON form this prompt was written in."""
        if self.sound is not None:
            return self.sound
        if self.sounds:
            return {"sound": dict(self.sounds)}
        if len(self.tts) == 1 and self.tts[0][0] == "":
            return {"tts": self.tts[0][1]}
        return {"tts": dict(self.tts)}


def _sound_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SOUND.match(value):
        raise ValueError(
            f"{where}{value!r} is not a sound name (letters, digits, _ . / -, no spaces, at most 200)"
        )
    return value


def _tts_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}TTS text must be a non-empty string")
    if len(value) > _MAX_TTS or "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError(f"{where}TTS text must be one line of at most {_MAX_TTS} characters")
    return value


def _per_language(value: Any, check, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{what} must map languages to values, e.g. {{en: ..., fr: ...}}")
    out = []
    for lang, item in value.items():
        if not isinstance(lang, str) or not _LANGUAGE_RE.match(lang):
            raise ValueError(f"{what}: {lang!r} is not a language code like 'en' or 'pt_BR'")
        out.append((lang, check(item, f"{what}.{lang}: ")))
    return tuple(out)


def _parse_prompt(value: Any) -> PromptRef:
    if isinstance(value, PromptRef):
        return value
    if isinstance(value, str):
        return PromptRef(sound=_sound_name(value, ""))
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "sound":
            return PromptRef(sounds=_per_language(inner, _sound_name, "sound"))
        if key == "tts":
            if isinstance(inner, str):
                return PromptRef(tts=(("", _tts_text(inner, "")),))
            return PromptRef(tts=_per_language(inner, _tts_text, "tts"))
    raise ValueError(
        "a prompt is a sound name, {sound: {<language>: <name>}}, {tts: <text>} or "
        "{tts: {<language>: <text>}}"
    )


Prompt = Annotated[
    PromptRef, PlainValidator(_parse_prompt), PlainSerializer(lambda p: p.to_data()),
    WithJsonSchema({
        "description": "a sound name, {sound: {<language>: <name>}}, {tts: <text>} or {tts: {<language>: <text>}}",
        "anyOf": [{"type": "string"}, {"type": "object"}],
    }),
]


def _digit_key(key: Any) -> Any:
    # YAML reads an unquoted `1:` as the integer 1; a caller presses the same key either way
    return str(key) if isinstance(key, int) and not isinstance(key, bool) else key


def _one_digit(key: str) -> str:
    if len(key) != 1 or key not in "0123456789*#":
        raise ValueError(f"{key!r} is not one DTMF digit (0-9, *, #)")
    return key


Digit = Annotated[str, BeforeValidator(_digit_key), AfterValidator(_one_digit)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"{value!r} is not a valid regular expression: {err}") from None
    return value


Regex = Annotated[str, Field(max_length=200), AfterValidator(_regex)]


class FlowError(Exception):
    """A flow is invalid. ``problems`` lists ``"<field path>: <reason>"`` strings."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContinuingNode(_Strict):
    """Fields of every node that continues the flow.

    ``max_visits`` bounds a loop through this node: the visit after the ``max_visits``-th goes
    to ``on_max_visits`` instead (the static checks require one on every cycle).
    """

    max_visits: int | None = Field(None, ge=1, le=100)
    on_max_visits: NodeId | None = None

    @model_validator(mode="after")
    def _visits_pair(self) -> ContinuingNode:
        if (self.max_visits is None) != (self.on_max_visits is None):
            raise ValueError("max_visits and on_max_visits go together: set both or neither")
        return self


class PlayNode(ContinuingNode):
    """Play one or more prompts in order, then go to ``next``.

    With ``interruptible`` a DTMF digit stops the playback; the digit is kept as the answer to
    the next menu (callers who know the menu need not wait for the greeting to end).
    """

    type: Literal["play"]
    prompts: list[Prompt] = Field(min_length=1, max_length=50)
    interruptible: bool = False
    next: NodeId


class MenuNode(ContinuingNode):
    """Ask for one digit and branch on it.

    The caller gets ``1 + max_retries`` attempts. A wrong digit plays ``invalid_prompt``, no
    digit within ``timeout`` seconds plays ``timeout_prompt`` (each only when another attempt
    follows). After the last failed attempt the flow goes to ``on_invalid`` when that attempt
    was a wrong digit, to ``on_timeout`` when it was silence, and to ``on_exhausted`` when the
    matching one of those two is not set.
    """

    type: Literal["menu"]
    prompt: Prompt
    options: dict[Digit, NodeId] = Field(min_length=1)
    timeout: float = Field(5.0, gt=0, le=60)
    max_retries: int = Field(2, ge=0, le=10)
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    on_exhausted: NodeId | None = None
    on_invalid: NodeId | None = None
    on_timeout: NodeId | None = None

    @model_validator(mode="after")
    def _exits(self) -> MenuNode:
        both = self.on_invalid is not None and self.on_timeout is not None
        if self.on_exhausted is None and not both:
            raise ValueError("on_exhausted is required unless both on_invalid and on_timeout are set")
        if self.on_exhausted is not None and both:
            raise ValueError("on_exhausted is never used when both on_invalid and on_timeout are set: remove it")
        return self

    def exhausted_exit(self, last_digit: str) -> str:
        """Where the flow goes after the last failed attempt (``last_digit`` ``""``: no input)."""
        chosen = self.on_invalid if last_digit else self.on_timeout
        target = chosen or self.on_exhausted
        assert target is not None  # the validator requires a fallback for the unset exit
        return target


class CollectNode(ContinuingNode):
    """Collect several digits into ``variable`` (an account number, a PIN).

    Input ends at ``max_digits``, at the ``terminator`` (not kept), or after
    ``inter_digit_timeout`` seconds of silence; ``timeout`` waits for the first digit. Input
    shorter than ``min_digits`` or not matching ``pattern`` (whole input) is a failed attempt.
    ``sensitive`` (a PIN, a card number): the flow can still branch on the value, but it is
    never set on the PBX channel, and the CDR, the agent's screen pop and the IVR digits show
    it only as ``*``.
    """

    type: Literal["collect"]
    prompt: Prompt
    variable: VariableName
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(ge=1, le=32)
    terminator: Literal["#", "*", ""] = "#"
    timeout: float = Field(5.0, gt=0, le=60)
    inter_digit_timeout: float = Field(3.0, gt=0, le=30)
    pattern: Regex | None = None
    max_retries: int = Field(2, ge=0, le=10)
    invalid_prompt: Prompt | None = None
    sensitive: bool = False
    next: NodeId
    on_exhausted: NodeId

    @model_validator(mode="after")
    def _bounds(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) is above max_digits ({self.max_digits})")
        return self


class BranchCase(_Strict):
    """One case of a branch: exactly one of ``equals``, ``prefix``, ``pattern`` (whole value)."""

    equals: str | None = Field(None, max_length=200)
    prefix: str | None = Field(None, max_length=200)
    pattern: Regex | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one_test(self) -> BranchCase:
        if sum(x is not None for x in (self.equals, self.prefix, self.pattern)) != 1:
            raise ValueError("a case needs exactly one of equals, prefix, pattern")
        return self

    def matches(self, value: str) -> bool:
        """Whether ``value`` satisfies this case."""
        if self.equals is not None:
            return value == self.equals
        if self.prefix is not None:
            return value.startswith(self.prefix)
        assert self.pattern is not None
        return re.fullmatch(self.pattern, value) is not None


class BranchNode(ContinuingNode):
    """Go to the first case matching ``by``: a variable, the caller number, the DID or the language.

    (Named ``by``, not ``on``: YAML 1.1 reads an unquoted ``on:`` key as the boolean true.)
    """

    type: Literal["branch"]
    by: Literal["variable", "caller", "did", "language"]
    variable: VariableName | None = None
    cases: list[BranchCase] = Field(min_length=1, max_length=100)
    default: NodeId

    @model_validator(mode="after")
    def _variable_named(self) -> BranchNode:
        if (self.by == "variable") != (self.variable is not None):
            raise ValueError("variable is required with by: variable, and only then")
        return self


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a known time zone (e.g. 'Europe/Paris')") from None
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def _span(value: Any) -> str:
    m = _SPAN.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{value!r} is not an opening span like '08:30-17:00'")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{value!r} has an hour or minute out of range")
    if h1 * 60 + m1 >= h2 * 60 + m2:
        raise ValueError(f"{value!r} ends before it starts (a span past midnight is two spans)")
    return value


def span_minutes(span: str) -> tuple[int, int]:
    """``'08:30-17:00'`` -> ``(510, 1020)``: minutes since midnight (of a validated span)."""
    m = _SPAN.match(span)
    assert m is not None
    h1, m1, h2, m2 = map(int, m.groups())
    return h1 * 60 + m1, h2 * 60 + m2


class Holiday(_Strict):
    """A closed day in the calendar."""

    date: date
    name: str = Field(min_length=1, max_length=100)


class ScheduleNode(ContinuingNode):
    """Branch on the schedule: ``overrides`` (admin-flipped at run time, first active wins), then
    ``holiday``, then ``open`` / ``closed`` by the weekday's spans in ``timezone``."""

    type: Literal["schedule"]
    timezone: Annotated[str, AfterValidator(_zone)]
    hours: dict[Weekday, list[Annotated[str, AfterValidator(_span)]]] = Field(default_factory=dict)
    holidays: list[Holiday] = Field(default_factory=list, max_length=1000)
    overrides: dict[VariableName, NodeId] = Field(default_factory=dict)
    open: NodeId
    closed: NodeId
    holiday: NodeId | None = None

    def decide(self, at: float, active_overrides: Collection[str]) -> tuple[str, str]:
        """``(result, next node)`` at epoch time ``at``: ``override:<name>``, ``holiday``,
        ``open`` or ``closed``."""
        for name, target in self.overrides.items():
            if name in active_overrides:
                return f"override:{name}", target
        local = datetime.fromtimestamp(at, ZoneInfo(self.timezone))
        if any(h.date == local.date() for h in self.holidays):
            return "holiday", self.holiday or self.closed
        minute = local.hour * 60 + local.minute
        for span in self.hours.get(WEEKDAYS[local.weekday()], []):  # type: ignore[call-overload]
            start, end = span_minutes(span)
            if start <= minute < end:
                return "open", self.open
        return "closed", self.closed


class SetNode(ContinuingNode):
    """Set the call's routing requirements and custom variables (which reach the CDR)."""

    type: Literal["set"]
    language: Language | None = None
    queue: QueueName | None = None
    skills: dict[VariableName, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    priority: int | None = Field(None, ge=0, le=100)
    variables: dict[VariableName, ChannelValue] = Field(default_factory=dict)
    next: NodeId


class QueueNode(_Strict):
    """Hand the call to a ccserver queue; ends the IVR.

    ``queue`` / ``priority`` default to what a ``set`` node chose. ``announce_position`` /
    ``announce_wait`` ask the wait loop to tell the caller their place / expected wait.
    """

    type: Literal["queue"]
    queue: QueueName | None = None
    #: higher is served first
    priority: int | None = Field(None, ge=0, le=100)
    announce_position: bool = False
    announce_wait: bool = False


_DESTINATION = r"^(\+?[0-9*#]{1,32}|did:[A-Za-z0-9_+*#-]{1,64})$"


class TransferNode(_Strict):
    """Send the call to an external number (``+3314...``) or another DID (``did:sales``); ends the IVR."""

    type: Literal["transfer"]
    destination: Annotated[str, Field(pattern=_DESTINATION)]


class VoicemailNode(_Strict):
    """Record a message for ``mailbox`` after ``prompt``; ends the IVR."""

    type: Literal["voicemail"]
    mailbox: QueueName
    prompt: Prompt | None = None
    max_seconds: int = Field(120, ge=5, le=600)


class CallbackNode(_Strict):
    """Keep the caller's place in ``queue`` and call back when an agent frees up; ends the IVR.

    The number is the caller's, or the digits collected into ``number_variable``.
    """

    type: Literal["callback"]
    queue: QueueName | None = None
    number_variable: VariableName | None = None
    prompt: Prompt | None = None


class GotoNode(_Strict):
    """Continue in another flow (a sub-flow) from its start; the call ends where that flow ends."""

    type: Literal["goto"]
    flow: NodeId


class HangupNode(_Strict):
    """End the call (the dialplan hangs up once the IVR ends without a queue)."""

    type: Literal["hangup"]
    prompt: Prompt | None = None


AnyNode = (
    PlayNode | MenuNode | CollectNode | BranchNode | ScheduleNode | SetNode
    | QueueNode | TransferNode | VoicemailNode | CallbackNode | GotoNode | HangupNode
)
Node = Annotated[AnyNode, Field(discriminator="type")]
NODE_TYPES = frozenset({
    "play", "menu", "collect", "branch", "schedule", "set",
    "queue", "transfer", "voicemail", "callback", "goto", "hangup",
})
#: node types that end the flow (``goto`` ends it here and continues in another flow)
TERMINAL_TYPES = frozenset({"queue", "transfer", "voicemail", "callback", "goto", "hangup"})


def node_targets(node: AnyNode) -> dict[str, str]:
    """The node ids ``node`` can lead to, keyed by the field path inside the node."""
    out: dict[str, str] = {}
    if isinstance(node, (PlayNode, SetNode)):
        out["next"] = node.next
    elif isinstance(node, MenuNode):
        out = {f"options.{digit}": target for digit, target in node.options.items()}
        for name in ("on_exhausted", "on_invalid", "on_timeout"):
            if (target := getattr(node, name)) is not None:
                out[name] = target
    elif isinstance(node, CollectNode):
        out = {"next": node.next, "on_exhausted": node.on_exhausted}
    elif isinstance(node, BranchNode):
        out = {f"cases.{i}.next": case.next for i, case in enumerate(node.cases)}
        out["default"] = node.default
    elif isinstance(node, ScheduleNode):
        out = {f"overrides.{name}": target for name, target in node.overrides.items()}
        out["open"] = node.open
        out["closed"] = node.closed
        if node.holiday is not None:
            out["holiday"] = node.holiday
    if isinstance(node, ContinuingNode) and node.on_max_visits is not None:
        out["on_max_visits"] = node.on_max_visits
    return out


def node_prompts(node: AnyNode) -> dict[str, PromptRef]:
    """The prompts of ``node``, keyed by the field path inside the node."""
    out: dict[str, PromptRef] = {}
    if isinstance(node, PlayNode):
        out = {f"prompts.{i}": p for i, p in enumerate(node.prompts)}
    for name in ("prompt", "invalid_prompt", "timeout_prompt"):
        value = getattr(node, name, None)
        if isinstance(value, PromptRef):
            out[name] = value
    return out


class _GraphError(ValueError):
    """Carries the graph problems (with their field paths) out of pydantic's validation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Flow(_Strict):
    """One IVR flow: ``start`` is the first node; ``nodes`` maps node id to node.

    ``languages`` are the languages the flow offers (``language`` is the default and always
    one of them); ``recording_notice`` is played, not interruptible, before the first node.
    """

    name: NodeId
    version: int = Field(1, ge=1)
    description: str = Field("", max_length=2000)
    start: NodeId
    language: Language = "en"
    languages: list[Language] = Field(default_factory=list, max_length=20)
    recording_notice: Prompt | None = None
    #: recording policy for the calls this flow handles, overriding their queue's (a DID
    #: override in the site configuration still wins)
    recording: Literal["all", "none", "on_demand"] | None = None
    nodes: dict[NodeId, Node] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _check_graph(self) -> Flow:
        problems = []
        if self.start not in self.nodes:
            problems.append(f"start: unknown node {self.start!r}")
        for node_id, node in self.nodes.items():
            for field, target in node_targets(node).items():
                if target not in self.nodes:
                    problems.append(f"nodes.{node_id}.{field}: unknown node {target!r}")
        if problems:
            raise _GraphError(problems)
        return self

    def offered_languages(self) -> list[str]:
        """``languages``, with the default ``language`` first when it was not listed."""
        return self.languages if self.language in self.languages else [self.language, *self.languages]


def _problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        exc = e.get("ctx", {}).get("error")
        if isinstance(exc, _GraphError):
            out.extend(exc.problems)
            continue
        loc = [str(p) for p in e["loc"]]
        # pydantic puts the union tag in the path (nodes.<id>.menu.options); users never wrote it
        if len(loc) > 2 and loc[0] == "nodes" and loc[2] in NODE_TYPES:
            del loc[2]
        if loc and loc[-1] == "[key]":
            loc.pop()
        # per-item validators in a list of an Annotated type add a function name to the path
        loc = [p for p in loc if not p.startswith(("function-", "lax-or-strict"))]
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            msg = f"unknown or missing node type (one of: {', '.join(sorted(NODE_TYPES))})"
        elif isinstance(exc, ValueError):
            msg = str(exc)
        else:
            msg = e["msg"]
        out.append(f"{'.'.join(loc) or '(flow)'}: {msg}")
    return out


def parse_flow(data: Any, source: str = "") -> Flow:
    """Validate already-parsed flow data (from YAML, JSON or the editor); raise :class:`FlowError`."""
    try:
        return Flow.model_validate(data)
    except ValidationError as err:
        raise FlowError(_problems(err), source) from None


def load_flow(path: Path) -> Flow:
    """Load one flow file (safe YAML, see :mod:`ccserver.ivr.source`); schema and references only.

    :class:`FlowError` messages start with the file path.
    """
    from ccserver.ivr.source import read_flow_file

    return parse_flow(read_flow_file(path), str(path))


def queues_of(flow: Flow) -> set[str]:
    """Every queue a call can be handed to by this flow's own ``set`` and ``queue`` nodes."""
    return {
        node.queue
        for node in flow.nodes.values()
        if isinstance(node, (SetNode, QueueNode)) and node.queue is not None
    }
