"""IVR flow model, loader, library, engine and runner, over a scripted MediaSession."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ccserver.core.events import IvrFinished
from ccserver.ivr.engine import MAX_STEPS, run_flow
from ccserver.ivr.flow import Flow, FlowError, load_flow, parse_flow
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.media import CallerHungUp
from ccserver.ivr.runner import serve_ivr

FLOWS_DIR = Path(__file__).resolve().parents[1] / "ivr_flows"


def clock() -> float:
    return 1000.0


class FakeSession:
    """A MediaSession that answers from scripts and records what the engine asked for.

    ``plays`` / ``collects`` give the digits returned by successive play / collect calls
    ("" once exhausted); ``hang_up_at`` makes the n-th media call (1-based) raise CallerHungUp.
    """

    call_id = "pbx1:1795481499.35"
    node = "pbx1"
    channel = "PJSIP/carrier-0000000f"
    caller = "+15551230000"
    did = "5551000"
    language = "en"

    def __init__(self, plays=(), collects=(), hang_up_at: int | None = None, on_collect=None):
        self.plays = list(plays)
        self.collects = list(collects)
        self.hang_up_at = hang_up_at
        self.on_collect = on_collect
        self.calls: list[str] = []

    def _step(self, call: str) -> None:
        self.calls.append(call)
        if self.hang_up_at is not None and len(self.calls) >= self.hang_up_at:
            raise CallerHungUp(self.call_id)

    async def answer(self) -> None:
        self._step("answer")

    async def play(self, prompt: str, interruptible: bool = True) -> str:
        self._step(f"play {prompt}{' *' if interruptible else ''}")
        return self.plays.pop(0) if self.plays else ""

    async def collect(self, prompt: str, max_digits: int, timeout: float, terminator: str = "#",
                      inter_digit_timeout: float | None = None) -> str:
        self._step(f"collect {prompt} {max_digits} {timeout:g}")
        if self.on_collect:
            self.on_collect()
        return self.collects.pop(0) if self.collects else ""

    async def set_variable(self, name: str, value: str) -> None:
        self._step(f"set {name}={value}")


@pytest.fixture
def main_flow() -> Flow:
    return load_flow(FLOWS_DIR / "main.yaml")


def _flow(**nodes) -> Flow:
    return parse_flow({"name": "t", "start": next(iter(nodes)), "nodes": nodes})


# --- flow model and loader ---------------------------------------------------------------


def test_main_yaml_loads(main_flow: Flow) -> None:
    assert main_flow.name == "main" and main_flow.start == "greeting"
    menu = main_flow.nodes["main_menu"]
    assert menu.type == "menu" and set(menu.options) == {"1", "2"}
    assert {n.queue for n in main_flow.nodes.values() if n.type == "queue"} == {"support"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["nodes"]["main_menu"]["options"].update({"3": "x"}),
         "nodes.main_menu.options.3: unknown node 'x'"),
        (lambda d: d.update(start="nowhere"), "start: unknown node 'nowhere'"),
        (lambda d: d["nodes"]["greeting"].update(next="gone"), "nodes.greeting.next: unknown node 'gone'"),
        (lambda d: d["nodes"]["main_menu"].update(on_exhausted="gone"),
         "nodes.main_menu.on_exhausted: unknown node 'gone'"),
        (lambda d: d["nodes"]["main_menu"]["options"].update({"12": "to_support"}),
         "nodes.main_menu.options.12: '12' is not one DTMF digit"),
        (lambda d: d["nodes"]["main_menu"]["options"].update({"A": "to_support"}),
         "nodes.main_menu.options.A: 'A' is not one DTMF digit"),
        (lambda d: d["nodes"]["main_menu"].update(retries=3), "nodes.main_menu.retries: Extra inputs"),
        (lambda d: d["nodes"]["greeting"].update(type="speak"), "nodes.greeting: unknown or missing node type"),
        (lambda d: d["nodes"]["greeting"].update(prompts=["hello world"]), "nodes.greeting.prompts.0: "),
        (lambda d: d["nodes"]["to_support"].update(priority=101),
         "nodes.to_support.priority: Input should be less than or equal to 100"),
    ],
)
def test_loader_errors_name_the_field(tmp_path: Path, change, problem: str) -> None:
    data = yaml.safe_load((FLOWS_DIR / "main.yaml").read_text())
    change(data)
    path = tmp_path / "main.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(FlowError) as exc:
        load_flow(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_loader_reports_every_graph_problem() -> None:
    with pytest.raises(FlowError) as exc:
        parse_flow({"name": "t", "start": "a", "nodes": {
            "a": {"type": "menu", "prompt": "beep", "options": {"1": "x", "#": "y"}, "on_exhausted": "a"},
        }})
    assert exc.value.problems == ["nodes.a.options.1: unknown node 'x'", "nodes.a.options.#: unknown node 'y'"]


def test_loader_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(FlowError, match=r"bad\.yaml: line 2, column 1: invalid YAML"):
        load_flow(path)


# --- library ------------------------------------------------------------------------------


def test_library_routes_exact_did_then_star(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text((FLOWS_DIR / "main.yaml").read_text())
    (tmp_path / "sales.yaml").write_text(
        "name: sales\nstart: q\nnodes:\n  q: {type: queue, queue: sales}\n"
    )
    lib = FlowLibrary(tmp_path, {"5552000": "sales", "*": "main"})
    assert lib.for_did("5552000").name == "sales"
    assert lib.for_did("5551000").name == "main"
    with pytest.raises(KeyError):
        FlowLibrary(tmp_path, {"5552000": "sales"}).for_did("5551000")


def test_library_broken_flow_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        "name: main\nstart: m\nnodes:\n  m: {type: menu, prompt: beep, options: {'1': x}, on_exhausted: m}\n"
    )
    with pytest.raises(FlowError) as exc:
        FlowLibrary(tmp_path, {"*": "main"})
    assert str(exc.value) == f"{tmp_path / 'main.yaml'}: nodes.m.options.1: unknown node 'x'"


def test_library_rejects_name_mismatch_and_unknown_route(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("name: main\nstart: h\nnodes:\n  h: {type: hangup}\n")
    with pytest.raises(FlowError, match=r"other\.yaml: name: 'main' differs"):
        FlowLibrary(tmp_path, {})
    (tmp_path / "other.yaml").write_text("name: other\nstart: h\nnodes:\n  h: {type: hangup}\n")
    with pytest.raises(FlowError, match=r"ivr\.routes\.\*: unknown flow 'main'"):
        FlowLibrary(tmp_path, {"*": "main"})


# --- engine -------------------------------------------------------------------------------


async def test_digit_1_goes_to_support(main_flow: Flow) -> None:
    s = FakeSession(collects=["1"])
    out = await run_flow(main_flow, s, clock)
    assert out.queue == "support" and out.priority == 0 and not out.hung_up
    assert out.path == ("greeting", "main_menu", "main_menu:1", "to_support")
    assert out.digits == "1" and out.variables == {"CC_QUEUE": "support"}
    assert s.calls == ["answer", "play hello-world *", "collect demo-instruct 1 5", "set CC_QUEUE=support"]


async def test_digit_2_plays_then_queues_with_priority(main_flow: Flow) -> None:
    s = FakeSession(collects=["2"])
    out = await run_flow(main_flow, s, clock)
    assert (out.queue, out.priority) == ("support", 1)
    assert out.path[-3:] == ("main_menu:2", "priority_notice", "to_support_priority")
    assert "play one-moment-please" in s.calls


async def test_invalid_digit_then_valid(main_flow: Flow) -> None:
    s = FakeSession(collects=["9", "1"])
    out = await run_flow(main_flow, s, clock)
    assert out.path == ("greeting", "main_menu", "main_menu:9", "main_menu:1", "to_support")
    assert out.digits == "91" and out.queue == "support"
    assert s.calls[2:5] == ["collect demo-instruct 1 5", "play invalid *", "collect demo-instruct 1 5"]


async def test_timeouts_exhausted_still_reach_a_queue(main_flow: Flow) -> None:
    s = FakeSession()  # every collect times out
    out = await run_flow(main_flow, s, clock)
    assert out.path == (
        "greeting", "main_menu", "main_menu:timeout", "main_menu:timeout", "main_menu:timeout",
        "no_choice", "to_support",
    )
    # the timeout prompt plays only before another attempt, not after the last one
    assert s.calls.count("play vm-sorry *") == 2
    assert out.queue == "support" and out.digits == ""


#: a menu whose exhausted retries leave by what the last attempt was
EXITS = {
    "m": {"type": "menu", "prompt": "demo-instruct", "options": {"1": "q"}, "max_retries": 1,
          "on_invalid": "wrong", "on_timeout": "silent"},
    "q": {"type": "queue", "queue": "support"},
    "wrong": {"type": "hangup", "prompt": "invalid"},
    "silent": {"type": "queue", "queue": "operator"},
}


@pytest.mark.parametrize(
    ("collects", "path"),
    [
        (["9", "8"], ("m", "m:9", "m:8", "wrong")),
        ([], ("m", "m:timeout", "m:timeout", "silent")),
        (["9", ""], ("m", "m:9", "m:timeout", "silent")),  # the last attempt decides
        (["", "9"], ("m", "m:timeout", "m:9", "wrong")),
        (["9", "1"], ("m", "m:9", "m:1", "q")),
    ],
)
async def test_exhausted_menu_leaves_by_its_invalid_or_timeout_exit(collects, path) -> None:
    out = await run_flow(_flow(**EXITS), FakeSession(collects=collects), clock)
    assert out.path == path


async def test_an_unset_menu_exit_falls_back_to_on_exhausted() -> None:
    nodes = {**EXITS, "m": {**EXITS["m"], "on_exhausted": "q"}}
    del nodes["m"]["on_invalid"]
    flow = _flow(**nodes)
    assert (await run_flow(flow, FakeSession(collects=["9", "8"]), clock)).path[-1] == "q"
    assert (await run_flow(flow, FakeSession(), clock)).path[-1] == "silent"


def test_menu_exits_survive_json_and_yaml_round_trips() -> None:
    flow = _flow(**EXITS)
    document = flow.model_dump(mode="json", exclude_none=True)
    assert document["nodes"]["m"]["on_invalid"] == "wrong" and "on_exhausted" not in document["nodes"]["m"]
    assert parse_flow(json.loads(json.dumps(document))) == flow
    assert parse_flow(yaml.safe_load(yaml.safe_dump(document))) == flow


async def test_digit_during_greeting_answers_the_menu(main_flow: Flow) -> None:
    s = FakeSession(plays=["2"])
    out = await run_flow(main_flow, s, clock)
    assert not any(c.startswith("collect") for c in s.calls)
    assert out.path[:3] == ("greeting", "main_menu", "main_menu:2") and out.priority == 1


async def test_digit_during_retry_prompt_is_the_next_answer(main_flow: Flow) -> None:
    s = FakeSession(collects=["7"], plays=["", "1"])  # greeting plays through; "invalid" interrupted by 1
    out = await run_flow(main_flow, s, clock)
    assert out.path[2:] == ("main_menu:7", "main_menu:1", "to_support")
    assert [c for c in s.calls if c.startswith("collect")] == ["collect demo-instruct 1 5"]


@pytest.mark.parametrize(
    ("hang_up_at", "path"),
    [
        (1, ()),  # during ANSWER
        (2, ("greeting",)),
        (3, ("greeting", "main_menu")),
        (4, ("greeting", "main_menu", "main_menu:1", "to_support")),  # during SET VARIABLE
    ],
)
async def test_hang_up_anywhere_ends_cleanly(main_flow: Flow, hang_up_at: int, path) -> None:
    s = FakeSession(collects=["1"], hang_up_at=hang_up_at)
    out = await run_flow(main_flow, s, clock)
    assert out.hung_up and out.queue is None and out.path == path
    assert out.variables == {}


async def test_hangup_node_ends_without_queue() -> None:
    flow = _flow(bye={"type": "play", "prompts": ["vm-goodbye"], "next": "end"}, end={"type": "hangup"})
    out = await run_flow(flow, FakeSession(), clock)
    assert (out.queue, out.hung_up, out.path) == (None, False, ("bye", "end"))


async def test_loop_without_input_is_cut() -> None:
    flow = _flow(a={"type": "play", "prompts": ["beep"], "next": "b"},
                 b={"type": "play", "prompts": ["beep"], "next": "a"})
    out = await run_flow(flow, FakeSession(), clock)
    assert out.queue is None and not out.hung_up and len(out.path) == MAX_STEPS


# --- runner -------------------------------------------------------------------------------


class StubLibrary:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.lookups = 0

    overrides: frozenset[str] = frozenset()

    def for_did(self, did: str) -> Flow:
        self.lookups += 1
        return self.flow

    def snapshot(self) -> dict[str, Flow]:
        return {self.flow.name: self.flow}


async def test_serve_ivr_pushes_ivr_finished(main_flow: Flow) -> None:
    events: list = []
    await serve_ivr(FakeSession(collects=["1"]), StubLibrary(main_flow), events.append, clock)
    assert events == [IvrFinished(
        call_id="pbx1:1795481499.35", node="pbx1", channel="PJSIP/carrier-0000000f",
        caller="+15551230000", did="5551000", queue="support",
        path=("greeting", "main_menu", "main_menu:1", "to_support"),
        variables={"CC_QUEUE": "support", "ivr_version": "main@1", "ivr_digits": "1",
                   "ivr_timings": "0,0,0,0"},
        priority=0, at=1000.0,
    )]


async def test_serve_ivr_hung_up_still_reports_the_path(main_flow: Flow) -> None:
    events: list = []
    out = await serve_ivr(FakeSession(hang_up_at=3), StubLibrary(main_flow), events.append, clock)
    assert out.hung_up
    [ev] = events
    assert ev.queue is None and ev.path == ("greeting", "main_menu")


async def test_call_finishes_on_the_flow_it_started_with(main_flow: Flow) -> None:
    lib = StubLibrary(main_flow)
    replacement = _flow(h={"type": "hangup"})
    s = FakeSession(collects=["1"], on_collect=lambda: setattr(lib, "flow", replacement))
    out = await serve_ivr(s, lib, [].append, clock)
    assert out.queue == "support" and lib.lookups == 1


async def test_serve_ivr_without_route(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list = []
    s = FakeSession()
    await serve_ivr(s, FlowLibrary(tmp_path, {}), events.append, clock)
    assert s.calls == [] and events[0].queue is None and events[0].path == ()
    assert "no IVR route for DID '5551000'" in caplog.text


# --- sensitive input ----------------------------------------------------------------------


def _pin_flow(sensitive: bool = True) -> Flow:
    return _flow(
        hello={"type": "play", "prompts": ["hello-world"], "next": "pin"},
        pin={"type": "collect", "prompt": "enter-pin", "variable": "pin", "min_digits": 4, "max_digits": 4,
             "pattern": "[0-9]{4}", "sensitive": sensitive, "next": "check", "on_exhausted": "bye"},
        check={"type": "branch", "by": "variable", "variable": "pin",
               "cases": [{"equals": "1234", "next": "vip"}], "default": "bye"},
        vip={"type": "queue", "queue": "vip"},
        bye={"type": "hangup"},
    )


async def test_a_sensitive_collect_is_branched_on_but_masked_everywhere_it_leaves_the_ivr() -> None:
    # "1" typed over the greeting, "234" at the PIN prompt: the greeting's digit is part of the PIN
    s = FakeSession(plays=["1"], collects=["234"])
    out = await run_flow(_pin_flow(), s, clock)
    assert out.queue == "vip" and "check:0" in out.path  # the branch saw the real PIN
    assert out.digits == "****" and out.variables["pin"] == "****"
    assert not any("1234" in c or c.startswith("set pin") for c in s.calls)  # never on the PBX channel
    sink: list = []
    s_again = FakeSession(plays=["1"], collects=["234"])
    await serve_ivr(s_again, StubLibrary(_pin_flow()), sink.append, clock)
    event = sink[0]
    assert isinstance(event, IvrFinished) and "1234" not in repr(event)  # what reaches CDR and screen pop
    assert event.variables["pin"] == "****" and event.variables["ivr_digits"] == "****"
    assert s_again.calls[-1] == "set CC_QUEUE=vip"


async def test_a_plain_collect_keeps_its_value() -> None:
    s = FakeSession(plays=["1"], collects=["234"])
    out = await run_flow(_pin_flow(sensitive=False), s, clock)
    assert out.digits == "1234" and out.variables["pin"] == "1234" and "set pin=1234" in s.calls


async def test_a_step_the_pbx_refuses_ends_the_ivr_with_its_path_still_reported(caplog) -> None:
    class Refusing(FakeSession):
        async def set_variable(self, name: str, value: str) -> None:
            raise ValueError("AGI argument contains a line break")  # what quote_arg raises

    flow = _flow(hello={"type": "play", "prompts": ["hello-world"], "next": "pick"},
                 pick={"type": "set", "queue": "support", "next": "q"}, q={"type": "queue"})
    sink: list = []
    outcome = await serve_ivr(Refusing(), StubLibrary(flow), sink.append, clock)
    assert (outcome.ending, outcome.queue, outcome.path) == ("error", None, ("hello", "pick", "q"))
    (event,) = sink
    assert isinstance(event, IvrFinished) and event.path == ("hello", "pick", "q") and event.queue is None
    assert "flow t failed at q" in caplog.text
