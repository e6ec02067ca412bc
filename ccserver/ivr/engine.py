"""Walks one IVR flow over a live :class:`MediaSession` until a terminal node or a hang-up."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace

from ccserver.ivr.flow import (
    BranchNode,
    CallbackNode,
    CollectNode,
    ContinuingNode,
    Flow,
    GotoNode,
    HangupNode,
    MenuNode,
    PlayNode,
    PromptRef,
    QueueNode,
    ScheduleNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)
from ccserver.ivr.media import CallerHungUp, MediaSession
from ccserver.ivr.prompts import MissingPrompts

log = logging.getLogger(__name__)

#: what a callback may dial: a phone number, nothing a dialplan could interpret
CALLBACK_NUMBER = re.compile(r"\+?[0-9]{1,32}")

#: node visits per call before the engine gives up: the static checks refuse unbounded loops,
#: but a flow that was only parsed (not checked) must not hold a channel forever either
MAX_STEPS = 200
#: what GET DATA plays when the real prompt was spoken by TTS (a sound file is required)
SILENCE = "silence/1"
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_-]")
#: (queue, priority or None for the queue's default, skills) -> (position the caller would take,
#: 1 = next; expected wait in seconds or None when nobody serves), or None when the queue's state
#: is not known
Estimator = Callable[[str, int | None, tuple[tuple[str, int], ...]], tuple[int, float | None] | None]
#: the announcement's sounds (Asterisk core sounds, as app_queue plays them): "you are currently
#: caller number" N "waiting to speak to a representative"; "the estimated hold time is
#: currently" M "minutes"
POSITION_SOUNDS = ("queue-thereare", "queue-callswaiting")
WAIT_SOUNDS = ("queue-holdtime", "queue-minute", "queue-minutes")


@dataclass(frozen=True, slots=True)
class IvrOutcome:
    """How the IVR ended for one call.

    ``path`` lists node ids in the order entered (``"<flow>/<node>"`` inside a sub-flow), plus
    ``"<node>:<what>"`` for each decision: the digit given to a menu (valid or not) or
    ``timeout``, ``ok`` / ``invalid`` / ``timeout`` for a collect, the case index or
    ``default`` of a branch, the schedule's result, ``max_visits`` when a loop was cut.
    ``timings`` are the seconds since the IVR started at which each ``path`` entry was made.
    ``digits`` is every DTMF digit the caller pressed, in order, with those typed into a
    ``sensitive`` collect shown as ``*``. ``variables`` are the variables the flow set (they
    reach the CDR and the agent's screen pop); a sensitive one's value is ``*`` per digit. ``queue`` is set only when the flow handed
    the call to a queue and the channel still existed; ``hung_up`` means the session was lost
    first (the caller hung up or the PBX link broke). ``ending`` is the terminal node's type
    (``"hung_up"`` / ``"steps"`` / ``"missing_flow"`` / ``"error"`` otherwise); ``version`` is
    ``"<flow>@<version>"`` of the flow the call started on.
    """

    queue: str | None
    priority: int
    path: tuple[str, ...]
    digits: str
    variables: dict[str, str]
    hung_up: bool
    skills: tuple[tuple[str, int], ...] = ()
    language: str = ""
    timings: tuple[float, ...] = ()
    ending: str = ""
    version: str = ""
    #: a ``set`` node chose ``language`` (else it is the channel's or the flow's default)
    language_chosen: bool = False
    #: a node chose ``priority`` (else it is 0 here and the queue's default applies)
    priority_chosen: bool = False


@dataclass(slots=True)
class _Walk:
    session: MediaSession
    flow: Flow
    clock: Callable[[], float]
    started: float
    default_language: str
    path: list[str] = field(default_factory=list)
    timings: list[float] = field(default_factory=list)
    digits: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    visits: Counter[str] = field(default_factory=Counter)
    language: str = ""
    language_chosen: bool = False
    queue: str | None = None
    #: None until a node chooses one
    priority: int | None = None
    skills: dict[str, int] = field(default_factory=dict)
    #: a digit that interrupted a prompt, kept as the answer to the next menu or collect
    pending: str = ""
    #: variables collected by ``sensitive`` collects: branched on here, masked in the outcome
    masked: set[str] = field(default_factory=set)
    estimate: Estimator | None = None
    missing: MissingPrompts | None = None

    def mark(self, entry: str) -> None:
        self.path.append(entry)
        self.timings.append(round(self.clock() - self.started, 3))

    def outcome(self, ending: str, queue: str | None = None, hung_up: bool = False) -> IvrOutcome:
        variables = {k: "*" * len(v) if k in self.masked else v for k, v in self.variables.items()}
        return IvrOutcome(
            queue, (self.priority or 0) if queue else 0, tuple(self.path), self.digits, variables,
            hung_up, tuple(sorted(self.skills.items())), self.language, tuple(self.timings), ending,
            language_chosen=self.language_chosen, priority_chosen=self.priority is not None,
        )

    def report_missing(self, entry: str) -> None:
        """Report the prompts the PBX could not open while ``entry`` ran. Only sessions that can
        tell (FreeSWITCH's, Asterisk's FastAGI) keep a ``missing_prompts`` list; the report
        empties it."""
        missing = getattr(self.session, "missing_prompts", None)
        if not missing:
            return
        for prompt in dict.fromkeys(missing):
            if self.missing is not None:
                self.missing.report(self.session.node, entry, prompt, self.session.call_id)
            else:
                log.error("IVR %s: prompt %r of %s not found", self.session.call_id, prompt, entry)
        missing.clear()

    async def say(self, prompt: PromptRef, interruptible: bool) -> str:
        kind, value = prompt.resolve(self.language, self.default_language)
        if kind == "sound":
            digit = await self.session.play(value, interruptible)
        else:
            digit = await self.session.speak(value, self.language, interruptible)
        if digit:
            self.digits += digit
            self.pending = digit
        return digit

    async def ask(self, prompt: PromptRef, max_digits: int, timeout: float,
                  terminator: str = "#", inter_digit_timeout: float | None = None,
                  mask: bool = False) -> str:
        """Play ``prompt`` and read up to ``max_digits`` digits (a pending digit counts first).

        With ``mask`` the digits are noted in :attr:`digits` as ``*`` (a PIN, a card number).
        """
        first, self.pending = self.pending, ""
        if first and mask:  # typed over the previous prompt, so already noted in clear
            self.digits = self.digits[:-1] + "*"
        if not first:
            kind, value = prompt.resolve(self.language, self.default_language)
            if kind == "sound":
                got = await self._collect(value, max_digits, timeout, terminator, inter_digit_timeout)
                self._note(got, mask)
                return got
            first = await self.session.speak(value, self.language, True)
            self._note(first, mask)
            if not first:
                got = await self._collect(SILENCE, max_digits, timeout, terminator, inter_digit_timeout)
                self._note(got, mask)
                return got
        if first == terminator:
            return ""
        if max_digits == 1:
            return first
        rest = await self._collect(SILENCE, max_digits - 1, inter_digit_timeout or timeout, terminator,
                                   inter_digit_timeout)
        self._note(rest, mask)
        return first + rest

    def _note(self, digits: str, mask: bool) -> None:
        self.digits += "*" * len(digits) if mask else digits

    async def _collect(self, sound: str, max_digits: int, timeout: float, terminator: str,
                       inter_digit_timeout: float | None) -> str:
        if terminator == "#" and inter_digit_timeout is None:
            # the plain form every MediaSession has always had (a menu's one digit)
            return await self.session.collect(sound, max_digits, timeout)
        return await self.session.collect(sound, max_digits, timeout, terminator, inter_digit_timeout)

    async def set_var(self, name: str, value: str) -> None:
        await self.session.set_variable(name, value)
        self.variables[name] = value

    async def menu(self, entry: str, node: MenuNode) -> str:
        """Run the menu's attempts; return the id of the node to go to."""
        digit = ""
        for attempt in range(node.max_retries + 1):
            digit = await self.ask(node.prompt, 1, node.timeout)
            self.mark(f"{entry}:{digit or 'timeout'}")
            if digit in node.options:
                return node.options[digit]
            retry_prompt = node.invalid_prompt if digit else node.timeout_prompt
            if retry_prompt and attempt < node.max_retries:
                await self.say(retry_prompt, interruptible=True)
        return node.exhausted_exit(digit)

    async def collect(self, entry: str, node: CollectNode) -> str:
        """Run the collect's attempts; return the id of the node to go to."""
        for attempt in range(node.max_retries + 1):
            value = await self.ask(node.prompt, node.max_digits, node.timeout, node.terminator,
                                   node.inter_digit_timeout, mask=node.sensitive)
            valid = len(value) >= node.min_digits and (
                node.pattern is None or re.fullmatch(node.pattern, value) is not None
            )
            self.mark(f"{entry}:{'ok' if valid else 'invalid' if value else 'timeout'}")
            if valid:
                if node.sensitive:  # kept here only: never set on the PBX channel, masked in the outcome
                    self.variables[node.variable] = value
                    self.masked.add(node.variable)
                else:
                    self.masked.discard(node.variable)
                    await self.set_var(node.variable, value)
                return node.next
            if node.invalid_prompt and attempt < node.max_retries:
                await self.say(node.invalid_prompt, interruptible=True)
        return node.on_exhausted

    def branch(self, entry: str, node: BranchNode) -> str:
        if node.by == "variable":
            assert node.variable is not None
            value = self.variables.get(node.variable, "")
        elif node.by == "caller":
            value = self.session.caller
        elif node.by == "did":
            value = self.session.did
        else:
            value = self.language
        for i, case in enumerate(node.cases):
            if case.matches(value):
                self.mark(f"{entry}:{i}")
                return case.next
        self.mark(f"{entry}:default")
        return node.default

    async def apply_set(self, node: SetNode) -> None:
        if node.language is not None and node.language != self.language:
            await self.session.set_language(node.language)
            self.language = node.language
        self.language_chosen = self.language_chosen or node.language is not None
        if node.queue is not None:
            self.queue = node.queue
        if node.priority is not None:
            self.priority = node.priority
        self.skills.update(node.skills)
        for name, value in node.variables.items():
            await self.set_var(name, value)


async def run_flow(
    flow: Flow,
    session: MediaSession,
    clock: Callable[[], float],
    *,
    flows: Mapping[str, Flow] | None = None,
    overrides: Collection[str] = frozenset(),
    estimate: Estimator | None = None,
    recording_notice: bool = True,
    missing: MissingPrompts | None = None,
) -> IvrOutcome:
    """Run ``flow`` on ``session`` from its start node; never raises (a failure ends it with
    ``ending="error"``, the path so far kept).

    On a queue node the engine sets the channel variable ``CC_QUEUE`` (the dialplan's cue to
    move the caller to the wait music) and returns. Only the flows handed in are used
    (``flows`` for ``goto``): a library reload or a publish during the call does not change
    what this call runs. ``clock`` (epoch seconds) gives the schedules their time and the path
    its timings; ``overrides`` are the schedule overrides an admin has switched on.
    ``estimate`` gives a queue node's announcement its position and expected wait.
    ``recording_notice`` False skips the flow's recording notice (the call will not be recorded).
    The flow's language is set on the channel at the start when it is not the channel's already
    (the PBX then plays prompts from ``sounds/<language>/``). Prompts the PBX could not open go
    to ``missing``.
    """
    started = clock()
    language = flow.language if session.language not in flow.offered_languages() else session.language
    walk = _Walk(session, flow, clock, started, flow.language, language=language, estimate=estimate,
                 missing=missing)
    outcome: IvrOutcome | None = None
    current = flow
    try:
        await session.answer()
        if language and language != session.language:
            await session.set_language(language)
        if flow.recording_notice is not None and recording_notice:
            await walk.say(flow.recording_notice, interruptible=False)
            walk.report_missing("recording_notice")
        node_id = current.start
        for _ in range(MAX_STEPS):
            node = current.nodes[node_id]
            entry = node_id if current is flow else f"{current.name}/{node_id}"
            walk.mark(entry)
            walk.visits[entry] += 1
            if isinstance(node, ContinuingNode) and node.max_visits is not None and walk.visits[entry] > node.max_visits:
                walk.mark(f"{entry}:max_visits")
                assert node.on_max_visits is not None
                node_id = node.on_max_visits
                continue
            if isinstance(node, PlayNode):
                for prompt in node.prompts:
                    if await walk.say(prompt, node.interruptible):
                        break  # the caller answered early; skip the rest of the prompts
                node_id = node.next
            elif isinstance(node, MenuNode):
                node_id = await walk.menu(entry, node)
            elif isinstance(node, CollectNode):
                node_id = await walk.collect(entry, node)
            elif isinstance(node, BranchNode):
                node_id = walk.branch(entry, node)
            elif isinstance(node, ScheduleNode):
                result, node_id = node.decide(clock(), overrides)
                walk.mark(f"{entry}:{result}")
            elif isinstance(node, SetNode):
                await walk.apply_set(node)
                node_id = node.next
            elif isinstance(node, GotoNode):
                target = (flows or {}).get(node.flow)
                if target is None:
                    log.error("IVR %s: goto unknown flow %r; ending", session.call_id, node.flow)
                    outcome = walk.outcome("missing_flow")
                    break
                current, node_id = target, target.start
            else:
                outcome = await _finish(walk, node)
                walk.report_missing(entry)
                break
            walk.report_missing(entry)
        else:
            log.error("IVR %s: flow %s ran %d steps; giving up", session.call_id, flow.name, MAX_STEPS)
            outcome = walk.outcome("steps")
    except CallerHungUp:
        outcome = walk.outcome("hung_up", hung_up=True)
    except Exception:
        # A command the PBX refused, a bug: the call must still be reported (path, CDR), and
        # with no queue the dialplan ends it rather than leaving the caller in silence.
        log.exception("IVR %s: flow %s failed at %s", session.call_id, flow.name,
                      walk.path[-1] if walk.path else "start")
        outcome = walk.outcome("error")
    outcome = replace(outcome, version=f"{flow.name}@{flow.version}")
    log.info(
        "IVR %s: flow %s ended in %.1fs queue=%s ending=%s path=%s",
        session.call_id, outcome.version, clock() - started, outcome.queue, outcome.ending,
        ",".join(outcome.path),
    )
    return outcome


async def _announce(walk: _Walk, node: QueueNode, queue: str) -> None:
    """Tell the caller their place and expected wait before the hand-over. Said only when known:
    no estimator or an unknown queue says nothing; no agent serving the queue, or no wait at
    all, skips the wait. The figures reach the CDR as ``CC_POSITION`` / ``CC_EXPECTED_WAIT``."""
    if walk.estimate is None:
        return
    try:
        estimate = walk.estimate(queue, walk.priority, tuple(sorted(walk.skills.items())))
    except KeyError:
        estimate = None
    if estimate is None:
        log.warning("IVR %s: no estimate for queue %r; no announcement", walk.session.call_id, queue)
        return
    position, wait = estimate
    session = walk.session
    if node.announce_position:
        walk.variables["CC_POSITION"] = str(position)
        await session.play(POSITION_SOUNDS[0], False)
        await session.say_number(position)
        await session.play(POSITION_SOUNDS[1], False)
    if node.announce_wait and wait:
        minutes = max(1, round(wait / 60))
        walk.variables["CC_EXPECTED_WAIT"] = str(round(wait))
        await session.play(WAIT_SOUNDS[0], False)
        await session.say_number(minutes)
        await session.play(WAIT_SOUNDS[1] if minutes == 1 else WAIT_SOUNDS[2], False)


async def _finish(
    walk: _Walk, node: QueueNode | TransferNode | VoicemailNode | CallbackNode | HangupNode
) -> IvrOutcome:
    """Carry out a terminal node and describe the end."""
    session = walk.session
    if isinstance(node, QueueNode):
        queue = node.queue or walk.queue
        assert queue is not None, "checked: a queue node without a queue needs a set node before it"
        if node.priority is not None:
            walk.priority = node.priority
        announce = ",".join(n for n, on in (("position", node.announce_position), ("wait", node.announce_wait)) if on)
        if announce:
            await walk.set_var("CC_ANNOUNCE", announce)
            await _announce(walk, node, queue)
        await walk.set_var("CC_QUEUE", queue)
        return walk.outcome("queue", queue=queue)
    if isinstance(node, TransferNode):
        walk.variables["CC_TRANSFER"] = node.destination
        await session.transfer(node.destination)
        return walk.outcome("transfer")
    if isinstance(node, VoicemailNode):
        if node.prompt is not None:
            await walk.say(node.prompt, interruptible=False)
        walk.variables["CC_VOICEMAIL"] = node.mailbox
        name = f"voicemail/{node.mailbox}/{_FILE_SAFE.sub('_', session.call_id)}"
        walk.variables["CC_VOICEMAIL_FILE"] = await session.record(name, node.max_seconds)
        return walk.outcome("voicemail")
    if isinstance(node, CallbackNode):
        number = walk.variables.get(node.number_variable or "", "") or session.caller
        if not CALLBACK_NUMBER.fullmatch(number):
            # caller id is caller-controlled text: it must never reach a dialplan unchecked
            log.warning("IVR %s: callback refused, %r is not a phone number", session.call_id, number[:40])
            number = ""
        queue = node.queue or walk.queue or ""
        if node.prompt is not None:
            await walk.say(node.prompt, interruptible=False)
        await walk.set_var("CC_CALLBACK_QUEUE", queue)
        await walk.set_var("CC_CALLBACK", number)
        return walk.outcome("callback")
    if node.prompt is not None:
        await walk.say(node.prompt, interruptible=False)
    return walk.outcome("hangup")

