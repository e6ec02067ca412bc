"""The engine on every node type, through the simulator and a session that hangs up anywhere."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ccserver.core.events import IvrFinished
from ccserver.ivr.engine import run_flow
from ccserver.ivr.flow import Flow, parse_flow
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.media import CallerHungUp
from ccserver.ivr.runner import serve_ivr
from ccserver.ivr.simulate import (
    PromptPlayed,
    ScriptedSession,
    SimulationInputError,
    simulate,
)

ROOT = Path(__file__).resolve().parents[1]
PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> float:
    return datetime(*args, tzinfo=PARIS).timestamp()


TUESDAY_11 = paris(2026, 11, 24, 11, 0)


@pytest.fixture(scope="module")
def lib() -> FlowLibrary:
    return FlowLibrary(ROOT / "ivr_flows", {"*": "main", "5551234": "hours"})


@pytest.fixture(scope="module")
def hours(lib: FlowLibrary) -> Flow:
    return lib.snapshot()["hours"]


async def _sim(lib: FlowLibrary, hours: Flow, digits: str = "", at: float = TUESDAY_11, caller: str = "+33140",
               **kw):
    return await simulate(hours, digits=digits, at=at, caller=caller, did="5551234", flows=lib.snapshot(), **kw)


async def test_open_english_account_then_queue_with_requirements(lib, hours) -> None:
    sim = await _sim(lib, hours, "11234567#1")
    o = sim.outcome
    assert o.path == (
        "check_hours", "check_hours:open", "vip_check", "vip_check:default", "language_menu", "language_menu:1",
        "english", "account", "account:ok", "main_options", "main_options:1", "to_queue",
    )
    assert (o.queue, o.ending, o.language, o.skills) == ("support", "queue", "en", (("english", 50),))
    assert o.variables == {"account": "1234567", "CC_ANNOUNCE": "position,wait", "CC_QUEUE": "support"}
    assert o.digits == "112345671" and sim.unused_digits == ""  # the terminator ends input, is not kept
    assert sim.prompts[0] == PromptPlayed("sound", "this-call-may-be-recorded", "en")  # the recording notice first
    assert [p.value for p in sim.prompts[1:]] == [
        "press-1-english-2-french", "enter-account-number", "press-1-agent-2-callback-3-sales",
    ]


async def test_french_vip_gets_french_prompts_priority_and_skills(lib, hours) -> None:
    sim = await _sim(lib, hours, "2123456781", caller="+33612345678")
    o = sim.outcome
    assert "vip_check:0" in o.path and "vip" in o.path
    assert (o.language, o.language_chosen, o.priority) == ("fr", True, 50)
    assert o.skills == (("french", 50), ("vip", 1))
    assert o.variables["segment"] == "vip" and o.variables["account"] == "12345678"
    assert [p.value for p in sim.prompts][-2:] == ["entrez-numero-compte", "tapez-1-agent-2-rappel-3-ventes"]
    assert "language fr" in sim.actions


async def test_collect_validates_length_and_retries(lib, hours) -> None:
    sim = await _sim(lib, hours, "112#1234567#1")
    assert "account:invalid" in sim.outcome.path and "account:ok" in sim.outcome.path
    assert [p.value for p in sim.prompts].count("invalid") == 1
    sim = await _sim(lib, hours, "1")  # silence at the account prompt: 3 timeouts, then on
    assert sim.outcome.path.count("account:timeout") == 3 and sim.outcome.queue == "support"


@pytest.mark.parametrize(
    ("at", "result", "ending"),
    [
        (paris(2026, 11, 24, 8, 29), "closed", "voicemail"),
        (paris(2026, 11, 24, 8, 30), "open", "queue"),
        (paris(2026, 11, 23, 12, 45), "closed", "voicemail"),  # Monday lunch break
        (paris(2026, 11, 28, 11, 0), "closed", "voicemail"),  # Saturday
        (paris(2026, 12, 25, 11, 0), "holiday", "voicemail"),  # Christmas is a Friday
        # 16:30 UTC is 17:30 in Paris (open until 18:00); 17:30 UTC is 18:30 there (closed)
        (datetime(2026, 11, 24, 16, 30, tzinfo=ZoneInfo("UTC")).timestamp(), "open", "queue"),
        (datetime(2026, 11, 24, 17, 30, tzinfo=ZoneInfo("UTC")).timestamp(), "closed", "voicemail"),
    ],
)
async def test_schedule_in_its_time_zone(lib, hours, at: float, result: str, ending: str) -> None:
    sim = await _sim(lib, hours, "11234567#1", at=at)
    assert sim.outcome.path[1] == f"check_hours:{result}" and sim.outcome.ending == ending


async def test_voicemail_records_after_the_prompt(lib, hours) -> None:
    sim = await _sim(lib, hours, at=paris(2026, 11, 28, 11, 0))
    assert sim.outcome.variables["CC_VOICEMAIL"] == "support"
    assert sim.actions[-1] == "record voicemail/support/simulation"
    assert sim.prompts[-1].value == "vm-intro"


async def test_override_wins_over_hours_and_plays_tts(lib, hours) -> None:
    sim = await _sim(lib, hours, overrides={"emergency"}, language="fr")
    assert sim.outcome.path == ("check_hours", "check_hours:override:emergency", "emergency_notice", "bye")
    assert sim.prompts[1] == PromptPlayed("tts", "Nous sommes fermés en raison d'une urgence.", "fr")
    assert sim.prompts[-1].value == "goodbye" and sim.outcome.ending == "hangup"


async def test_callback_transfer_and_goto(lib, hours) -> None:
    sim = await _sim(lib, hours, "11234567#2", caller="+33140")
    assert sim.outcome.ending == "callback"
    assert sim.outcome.variables["CC_CALLBACK"] == "+33140" and sim.outcome.variables["CC_CALLBACK_QUEUE"] == "support"
    assert sim.outcome.queue is None
    sim = await _sim(lib, hours, "11234567#3")
    assert sim.outcome.ending == "transfer" and sim.actions[-1] == "transfer did:sales"
    sim = await _sim(lib, hours, "11234567#02")
    assert sim.outcome.path[-6:] == ("main_flow", "main/greeting", "main/main_menu", "main/main_menu:2",
                                     "main/priority_notice", "main/to_support_priority")
    assert sim.outcome.queue == "support" and sim.outcome.priority == 1
    assert sim.outcome.version == "hours@1"


async def test_repeat_loop_is_cut_by_max_visits(lib, hours) -> None:
    sim = await _sim(lib, hours, "9999")
    path = sim.outcome.path
    assert path.count("language_menu_repeat") == 3 and "language_menu_repeat:max_visits" in path
    assert path[path.index("language_menu_repeat:max_visits") + 1] == "english"


@pytest.mark.parametrize(("digits", "ending", "prompts"), [
    ("98", ("menu:8", "wrong"), ["demo-instruct", "invalid", "demo-instruct", "goodbye"]),
    ("", ("menu:timeout", "silent"), ["demo-instruct", "vm-sorry", "demo-instruct"]),
])
async def test_simulation_follows_the_menu_exit_of_the_last_failure(digits: str, ending, prompts) -> None:
    flow = parse_flow({"name": "t", "start": "menu", "nodes": {
        "menu": {"type": "menu", "prompt": "demo-instruct", "options": {"1": "silent"}, "max_retries": 1,
                 "invalid_prompt": "invalid", "timeout_prompt": "vm-sorry",
                 "on_invalid": "wrong", "on_timeout": "silent"},
        "wrong": {"type": "hangup", "prompt": "goodbye"},
        "silent": {"type": "queue", "queue": "support"},
    }})
    sim = await simulate(flow, digits=digits, at=0)
    assert sim.outcome.path[-2:] == ending
    assert [p.value for p in sim.prompts] == prompts


async def test_simulation_refuses_bad_digits(hours) -> None:
    with pytest.raises(SimulationInputError, match="digits: 'A' are not DTMF digits"):
        await simulate(hours, digits="1A", at=0)
    with pytest.raises(SimulationInputError, match="digits: 201 digits, at most 200"):
        await simulate(hours, digits="1" * 201, at=0)


class HangingSession(ScriptedSession):
    """The scripted caller, who hangs up at the n-th media operation."""

    def __init__(self, digits: str, hang_up_at: int) -> None:
        super().__init__(digits, "+33140", "5551234", "en")
        self.ops = 0
        self.hang_up_at = hang_up_at

    def _tick(self) -> None:
        self.ops += 1
        if self.ops >= self.hang_up_at:
            raise CallerHungUp(self.call_id)

    async def answer(self):
        self._tick()
        return await super().answer()

    async def play(self, prompt, interruptible=True):
        self._tick()
        return await super().play(prompt, interruptible)

    async def speak(self, text, language, interruptible=True):
        self._tick()
        return await super().speak(text, language, interruptible)

    async def collect(self, prompt, max_digits, timeout, terminator="#", inter_digit_timeout=None):
        self._tick()
        return await super().collect(prompt, max_digits, timeout, terminator, inter_digit_timeout)

    async def set_variable(self, name, value):
        self._tick()
        return await super().set_variable(name, value)

    async def set_language(self, language):
        self._tick()
        return await super().set_language(language)

    async def record(self, name, max_seconds):
        self._tick()
        return await super().record(name, max_seconds)

    async def transfer(self, destination):
        self._tick()
        return await super().transfer(destination)


@pytest.mark.parametrize("digits", ["11234567#1", "212#123456782", "11234567#3"])
async def test_hang_up_anywhere_ends_cleanly(lib, hours, digits: str) -> None:
    full = await _sim(lib, hours, digits)
    ops = len(full.prompts) + len(full.actions)
    for n in range(1, ops + 1):
        session = HangingSession(digits, n)
        out = await run_flow(hours, session, lambda: TUESDAY_11, flows=lib.snapshot())
        assert out.hung_up and out.ending == "hung_up" and out.queue is None
        assert out.path == full.outcome.path[: len(out.path)]  # a prefix of the full path
        assert len(out.timings) == len(out.path)


async def test_serve_ivr_reports_requirements_and_cdr_variables(lib) -> None:
    times = iter(range(100, 200))
    events: list[IvrFinished] = []
    session = ScriptedSession("2123456781", "+33612345678", "5551234", "en")
    lib.set_overrides(())
    # Tuesday 11:00 in Paris for the schedule; the clock also times the path entries
    start = TUESDAY_11
    out = await serve_ivr(session, lib, events.append, lambda: start + next(times) / 10)
    [ev] = events
    assert ev.queue == "support" and ev.language == "fr" and ev.priority == 50
    assert ev.skills == (("french", 50), ("vip", 1))
    assert ev.variables["ivr_version"] == "hours@1" and ev.variables["segment"] == "vip"
    timings = [float(t) for t in ev.variables["ivr_timings"].split(",")]
    assert len(timings) == len(out.path) and timings == sorted(timings) and timings[-1] > timings[0]


async def test_a_call_keeps_its_versions_when_a_flow_is_published_mid_call(lib) -> None:
    own = FlowLibrary(ROOT / "ivr_flows", {"*": "hours"})
    replacement = parse_flow({"name": "main", "version": 2, "start": "h", "nodes": {"h": {"type": "hangup"}}})

    class PublishingSession(ScriptedSession):
        async def collect(self, prompt, max_digits, timeout, terminator="#", inter_digit_timeout=None):
            own.publish(replacement)  # an admin publishes main@2 while this call is in the IVR
            return await super().collect(prompt, max_digits, timeout, terminator, inter_digit_timeout)

    session = PublishingSession("11234567#01", "+33140", "5551234", "en")
    out = await serve_ivr(session, own, [].append, lambda: TUESDAY_11)
    assert "main/main_menu:1" in out.path and out.queue == "support"  # main@1, not the new hang-up
    assert own.snapshot()["main"].version == 2
