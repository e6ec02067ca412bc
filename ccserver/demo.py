"""Demo mode: what the simulated callers do, and the simulated agents' side of the desk.

Used only when ``ccserver run`` starts the built-in simulator (no PBX node configured).
"""

from __future__ import annotations

import random

from ccserver.cdr.record import AgentStateChange
from ccserver.config import SimulatorConfig
from ccserver.sim.asterisk import CallerScript, SimAgent

#: what demo callers press at the menu: mostly option 1, some option 2, some mistakes / silence
_DIGIT_CHOICES: list[tuple[float, list[str]]] = [
    (0.55, ["1"]),
    (0.25, ["2"]),
    (0.10, ["7", "1"]),  # invalid, then a valid choice
    (0.10, ["", "1"]),  # timeout, then a valid choice
]


def make_caller_script(sc: SimulatorConfig, agents: list[SimAgent]):
    """A ``make_script(rng)`` for ``run_traffic``: varied callers, some of them impatient."""

    def make(rng: random.Random) -> CallerScript:
        r, acc, digits = rng.random(), 0.0, ["1"]
        for p, choice in _DIGIT_CHOICES:
            acc += p
            if r < acc:
                digits = choice
                break
        if agents and rng.random() < sc.no_answer_ratio:
            rng.choice(agents).next_answers.append(False)
        return CallerScript(
            caller=f"+1555{rng.randrange(10**7):07d}",
            caller_name="Demo Caller",
            did="support",
            digits=digits,
            patience=rng.uniform(0.5, 1.5) * sc.patience,
            hangup_during_ivr_after=rng.uniform(1, 4) if rng.random() < 0.05 else None,
            talk_time=rng.uniform(0.5, 1.5) * sc.talk_time,
            hangup_side="caller" if rng.random() < 0.7 else "agent",
        )

    return make


class DemoDesk:
    """Simulated agents come back from a ring-no-answer pause after ``back_after`` seconds.

    Fed with the agent state changes the core decides; tells which agents to make ready.
    """

    def __init__(self, agent_ids: set[str], pause_reason: str, back_after: float = 10.0):
        self._agents = agent_ids
        self._reason = pause_reason
        self._back_after = back_after
        self._paused: dict[str, float] = {}

    def observe(self, change: AgentStateChange) -> None:
        if change.agent_id not in self._agents:
            return
        if change.state == "paused" and change.reason == self._reason:
            self._paused[change.agent_id] = change.at
        else:
            self._paused.pop(change.agent_id, None)

    def due(self, now: float) -> list[str]:
        back = [a for a, since in self._paused.items() if now - since >= self._back_after]
        for a in back:
            del self._paused[a]
        return back
