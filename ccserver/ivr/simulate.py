"""Run a flow without a call: given digits, a time and a caller, return the path and the prompts.

The admin's "what would happen if" tool (API and editor keypad): the real engine walks the
flow over :class:`ScriptedSession`, a :class:`~ccserver.ivr.media.MediaSession` whose caller
presses the given digits, one per menu and as many as a collect takes, and then stays silent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ccserver.ivr.engine import SILENCE, IvrOutcome, run_flow
from ccserver.ivr.flow import Flow

#: the digits an admin may type into the simulator keypad
MAX_DIGITS = 200
_DTMF = frozenset("0123456789*#")


class SimulationInputError(ValueError):
    """A simulation request is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class PromptPlayed:
    """One prompt the caller would hear: ``kind`` is ``sound``, ``tts`` or ``number``; ``value``
    the file, the text or the number said."""

    kind: str
    value: str
    language: str


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a simulated call did: the engine's outcome, the prompts in order, and the PBX actions
    (``set X=Y``, ``transfer D``, ``record F``, ``language L``) in order."""

    outcome: IvrOutcome
    prompts: tuple[PromptPlayed, ...]
    actions: tuple[str, ...]
    unused_digits: str


@dataclass(slots=True)
class ScriptedSession:
    """A :class:`MediaSession` with no channel behind it; the caller's keypresses are ``digits``."""

    digits: str
    caller: str
    did: str
    language: str
    call_id: str = "simulation"
    node: str = "simulation"
    channel: str = "Simulated/0"
    prompts: list[PromptPlayed] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    async def answer(self) -> None:
        self.actions.append("answer")

    async def play(self, prompt: str, interruptible: bool = True) -> str:
        self.prompts.append(PromptPlayed("sound", prompt, self.language))
        return ""

    async def speak(self, text: str, language: str, interruptible: bool = True) -> str:
        self.prompts.append(PromptPlayed("tts", text, language))
        return ""

    async def collect(self, prompt: str, max_digits: int, timeout: float,
                      terminator: str = "#", inter_digit_timeout: float | None = None) -> str:
        if prompt != SILENCE:
            self.prompts.append(PromptPlayed("sound", prompt, self.language))
        taken = ""
        while self.digits and len(taken) < max_digits:
            digit, self.digits = self.digits[0], self.digits[1:]
            if digit == terminator:
                break
            taken += digit
        return taken

    async def set_variable(self, name: str, value: str) -> None:
        self.actions.append(f"set {name}={value}")

    async def set_language(self, language: str) -> None:
        self.language = language
        self.actions.append(f"language {language}")

    async def record(self, name: str, max_seconds: int) -> str:
        self.actions.append(f"record {name}")
        return name

    async def transfer(self, destination: str) -> None:
        self.actions.append(f"transfer {destination}")

    async def say_number(self, number: int) -> None:
        self.prompts.append(PromptPlayed("number", str(number), self.language))


async def simulate(
    flow: Flow,
    *,
    digits: str = "",
    at: float,
    caller: str = "",
    did: str = "",
    language: str = "",
    flows: Mapping[str, Flow] | None = None,
    overrides: Collection[str] = frozenset(),
) -> Simulation:
    """Run ``flow`` as a call from ``caller`` to ``did`` at epoch time ``at`` pressing ``digits``.

    Raises :class:`SimulationInputError` for digits that are not DTMF or too many.
    """
    if len(digits) > MAX_DIGITS:
        raise SimulationInputError(f"digits: {len(digits)} digits, at most {MAX_DIGITS}")
    bad = sorted(set(digits) - _DTMF)
    if bad:
        raise SimulationInputError(f"digits: {''.join(bad)!r} are not DTMF digits (0-9, *, #)")
    session = ScriptedSession(digits, caller, did, language or flow.language)
    outcome = await run_flow(flow, session, lambda: at, flows=flows, overrides=overrides)
    return Simulation(outcome, tuple(session.prompts), tuple(session.actions), session.digits)
