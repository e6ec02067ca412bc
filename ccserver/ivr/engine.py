"""Walks one IVR flow over a live :class:`MediaSession` until a queue, a hang-up or the end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from ccserver.ivr.flow import Flow, HangupNode, MenuNode, PlayNode, QueueNode
from ccserver.ivr.media import CallerHungUp, MediaSession

log = logging.getLogger(__name__)

#: node visits per call before the engine gives up: a flow that loops without asking the
#: caller anything (play -> play -> ...) must not hold a channel forever
MAX_STEPS = 200


@dataclass(frozen=True, slots=True)
class IvrOutcome:
    """How the IVR ended for one call.

    ``path`` lists node ids in the order entered, plus ``"<menu>:<digit>"`` for each digit the
    caller gave a menu (valid or not) and ``"<menu>:timeout"`` for each unanswered attempt.
    ``digits`` is every DTMF digit the caller pressed, in order. ``variables`` are the channel
    variables the flow set. ``queue`` is set only when the flow handed the call to a queue and
    the channel still existed; ``hung_up`` means the session was lost first (the caller hung
    up or the PBX link broke).
    """

    queue: str | None
    priority: int
    path: tuple[str, ...]
    digits: str
    variables: dict[str, str]
    hung_up: bool


@dataclass(slots=True)
class _Walk:
    session: MediaSession
    path: list[str] = field(default_factory=list)
    digits: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    #: a digit that interrupted a prompt, kept as the answer to the next menu
    pending: str = ""

    def outcome(self, queue: str | None, priority: int, hung_up: bool) -> IvrOutcome:
        return IvrOutcome(queue, priority, tuple(self.path), self.digits, dict(self.variables), hung_up)

    async def play(self, prompt: str, interruptible: bool) -> str:
        digit = await self.session.play(prompt, interruptible)
        if digit:
            self.digits += digit
            self.pending = digit
        return digit

    async def menu(self, node_id: str, node: MenuNode) -> str:
        """Run the menu's attempts; return the id of the node to go to."""
        for attempt in range(node.max_retries + 1):
            digit, self.pending = self.pending, ""
            if not digit:
                digit = await self.session.collect(node.prompt, 1, node.timeout)
                self.digits += digit
            self.path.append(f"{node_id}:{digit or 'timeout'}")
            if digit in node.options:
                return node.options[digit]
            retry_prompt = node.invalid_prompt if digit else node.timeout_prompt
            if retry_prompt and attempt < node.max_retries:
                await self.play(retry_prompt, interruptible=True)
        return node.on_exhausted


async def run_flow(flow: Flow, session: MediaSession, clock: Callable[[], float]) -> IvrOutcome:
    """Run ``flow`` on ``session`` from its start node; never raises :class:`CallerHungUp`.

    On a queue node the engine sets the channel variable ``CC_QUEUE`` (the dialplan's cue to
    move the caller to the wait music) and returns. Only ``flow`` is used: a library reload
    during the call does not change what this call runs. ``clock`` times the run for the log.
    """
    started = clock()
    walk = _Walk(session)
    outcome: IvrOutcome | None = None
    try:
        await session.answer()
        node_id = flow.start
        for _ in range(MAX_STEPS):
            node = flow.nodes[node_id]
            walk.path.append(node_id)
            if isinstance(node, PlayNode):
                for prompt in node.prompts:
                    if await walk.play(prompt, node.interruptible):
                        break  # the caller answered early; skip the rest of the prompts
                node_id = node.next
            elif isinstance(node, MenuNode):
                node_id = await walk.menu(node_id, node)
            elif isinstance(node, QueueNode):
                await session.set_variable("CC_QUEUE", node.queue)
                walk.variables["CC_QUEUE"] = node.queue
                outcome = walk.outcome(node.queue, node.priority, hung_up=False)
                break
            else:
                assert isinstance(node, HangupNode)
                outcome = walk.outcome(None, 0, hung_up=False)
                break
        else:
            log.error("IVR %s: flow %s ran %d steps; giving up", session.call_id, flow.name, MAX_STEPS)
            outcome = walk.outcome(None, 0, hung_up=False)
    except CallerHungUp:
        outcome = walk.outcome(None, 0, hung_up=True)
    log.info(
        "IVR %s: flow %s v%d ended in %.1fs queue=%s hung_up=%s path=%s",
        session.call_id, flow.name, flow.version, clock() - started,
        outcome.queue, outcome.hung_up, ",".join(outcome.path),
    )
    return outcome
