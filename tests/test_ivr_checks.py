"""Static checks of IVR flows: every malformed flow gets a precise message with the field path."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccserver.config import AcdConfig, AgentConfig, Config, QueueConfig
from ccserver.ivr.checks import SiteNames, check_bytes, check_data
from ccserver.ivr.flow import FlowError
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.source import MAX_BYTES, MAX_DEPTH

ROOT = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "name": "t",
    "start": "hello",
    "languages": ["en", "fr"],
    "nodes": {
        "hello": {"type": "play", "prompts": ["hello-world"], "next": "menu"},
        "menu": {"type": "menu", "prompt": "demo-instruct", "options": {"1": "sales", "2": "account"},
                 "on_exhausted": "bye"},
        "account": {"type": "collect", "prompt": "enter-account", "variable": "acct", "max_digits": 6,
                    "next": "route", "on_exhausted": "bye"},
        "route": {"type": "branch", "by": "variable", "variable": "acct",
                  "cases": [{"prefix": "9", "next": "sales"}], "default": "hours"},
        "hours": {"type": "schedule", "timezone": "Europe/Paris", "hours": {"mon": ["08:00-18:00"]},
                  "holidays": [{"date": "2026-12-25", "name": "Christmas"}], "open": "sales", "closed": "bye"},
        "sales": {"type": "queue", "queue": "sales"},
        "bye": {"type": "hangup"},
    },
}


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def _changed(change: Callable[[dict], Any]) -> bytes:
    data = copy.deepcopy(BASE)
    change(data)
    return _dump(data)


def _nodes(d: dict) -> dict:
    return d["nodes"]


BASE_YAML = _dump(BASE)

CASES: list[tuple[str, bytes, str]] = [
    # --- wrong types / schema
    ("start not a string", _changed(lambda d: d.update(start=5)), "start: Input should be a valid string"),
    ("nodes a list", _changed(lambda d: d.update(nodes=[1])), "nodes: Input should be a valid dictionary"),
    ("timeout a word", _changed(lambda d: _nodes(d)["menu"].update(timeout="soon")),
     "nodes.menu.timeout: Input should be a valid number"),
    ("negative retries", _changed(lambda d: _nodes(d)["menu"].update(max_retries=-1)),
     "nodes.menu.max_retries: Input should be greater than or equal to 0"),
    ("unknown field", _changed(lambda d: _nodes(d)["hello"].update(colour="red")),
     "nodes.hello.colour: Extra inputs are not permitted"),
    ("unknown node type", _changed(lambda d: _nodes(d)["hello"].update(type="dance")),
     "nodes.hello: unknown or missing node type"),
    ("bad node id", _changed(lambda d: _nodes(d).update({"9lives": {"type": "hangup"}})),
     "nodes.9lives: String should match pattern"),
    ("sound with space", _changed(lambda d: _nodes(d)["hello"].update(prompts=["hello world"])),
     "nodes.hello.prompts.0: 'hello world' is not a sound name"),
    ("tts multi-line", _changed(lambda d: _nodes(d)["hello"].update(prompts=[{"tts": "a\nb"}])),
     "nodes.hello.prompts.0: TTS text must be one line"),
    ("prompt bad shape", _changed(lambda d: _nodes(d)["hello"].update(prompts=[{"speak": "x"}])),
     "nodes.hello.prompts.0: a prompt is a sound name"),
    ("prompt bad language", _changed(lambda d: _nodes(d)["hello"].update(prompts=[{"sound": {"english": "x"}}])),
     "nodes.hello.prompts.0: sound: 'english' is not a language code"),
    ("collect min above max", _changed(lambda d: _nodes(d)["account"].update(min_digits=8)),
     "nodes.account: min_digits (8) is above max_digits (6)"),
    ("collect bad regex", _changed(lambda d: _nodes(d)["account"].update(pattern="[0-9")),
     "nodes.account.pattern: '[0-9' is not a valid regular expression"),
    ("branch variable missing", _changed(lambda d: _nodes(d)["route"].pop("variable")),
     "nodes.route: variable is required with by: variable"),
    ("branch case two tests", _changed(lambda d: _nodes(d)["route"]["cases"][0].update(equals="1")),
     "nodes.route.cases.0: a case needs exactly one of equals, prefix, pattern"),
    ("max_visits alone", _changed(lambda d: _nodes(d)["hello"].update(max_visits=2)),
     "nodes.hello: max_visits and on_max_visits go together"),
    ("transfer bad destination", _changed(lambda d: _nodes(d).update(
        sales={"type": "transfer", "destination": "call mom"})), "nodes.sales.destination: String should match"),
    # --- dangling references
    ("dangling next", _changed(lambda d: _nodes(d)["hello"].update(next="gone")),
     "nodes.hello.next: unknown node 'gone'"),
    ("dangling start", _changed(lambda d: d.update(start="nowhere")), "start: unknown node 'nowhere'"),
    ("dangling branch case", _changed(lambda d: _nodes(d)["route"]["cases"][0].update(next="x")),
     "nodes.route.cases.0.next: unknown node 'x'"),
    ("dangling schedule exit", _changed(lambda d: _nodes(d)["hours"].update(closed="x")),
     "nodes.hours.closed: unknown node 'x'"),
    ("goto unknown flow", _changed(lambda d: _nodes(d).update(bye={"type": "goto", "flow": "nope"})),
     "nodes.bye.flow: unknown flow 'nope'"),
    ("goto itself", _changed(lambda d: _nodes(d).update(bye={"type": "goto", "flow": "t"})),
     "nodes.bye.flow: a flow cannot go to itself"),
    # --- graph rules
    ("unreachable node", _changed(lambda d: _nodes(d).update(orphan={"type": "hangup"})),
     "nodes.orphan: unreachable from the start node 'hello'"),
    ("unbounded loop", _changed(lambda d: _nodes(d)["menu"]["options"].update({"9": "hello"})),
     "nodes.hello: loop hello -> menu is not bounded"),
    ("loop bounded only by its own exit", _changed(lambda d: (
        _nodes(d)["menu"]["options"].update({"9": "hello"}),
        _nodes(d)["hello"].update(max_visits=3, on_max_visits="menu"))),
     "nodes.hello: loop hello -> menu is not bounded"),
    ("path without end", _changed(lambda d: _nodes(d).update(
        bye={"type": "play", "prompts": ["x"], "next": "bye2"},
        bye2={"type": "play", "prompts": ["y"], "next": "bye"})),
     "nodes.bye: no path from here ends in"),
    # --- menus
    ("digit out of range", _changed(lambda d: _nodes(d)["menu"]["options"].update({"A": "bye"})),
     "nodes.menu.options.A: 'A' is not one DTMF digit"),
    ("two-digit key", _changed(lambda d: _nodes(d)["menu"]["options"].update({"10": "bye"})),
     "nodes.menu.options.10: '10' is not one DTMF digit"),
    ("duplicate digit", BASE_YAML.replace(b"      '2': account\n", b"      '2': account\n      '2': bye\n"),
     "nodes.menu.options.2: duplicate key '2' (line"),
    ("duplicate digit, int and string", BASE_YAML.replace(b"      '2': account\n", b"      '2': account\n      2: bye\n"),
     "nodes.menu.options.2: duplicate key '2'"),
    ("dangling invalid exit", _changed(lambda d: _nodes(d)["menu"].update(on_invalid="x")),
     "nodes.menu.on_invalid: unknown node 'x'"),
    ("dangling timeout exit", _changed(lambda d: _nodes(d)["menu"].update(on_timeout="x")),
     "nodes.menu.on_timeout: unknown node 'x'"),
    ("menu without a fallback exit", _changed(lambda d: (
        _nodes(d)["menu"].pop("on_exhausted"), _nodes(d)["menu"].update(on_invalid="bye"))),
     "nodes.menu: on_exhausted is required unless both on_invalid and on_timeout are set"),
    ("menu with an unused on_exhausted", _changed(lambda d: _nodes(d)["menu"].update(
        on_invalid="bye", on_timeout="bye")), "nodes.menu: on_exhausted is never used"),
    ("timeout exit loops back unbounded", _changed(lambda d: _nodes(d)["menu"].update(on_timeout="hello")),
     "nodes.hello: loop hello -> menu is not bounded"),
    ("invalid exit to a path without end", _changed(lambda d: _nodes(d).update(
        menu={**_nodes(d)["menu"], "on_invalid": "sorry"},
        sorry={"type": "play", "prompts": ["x"], "next": "sorry2"},
        sorry2={"type": "play", "prompts": ["y"], "next": "sorry"})),
     "nodes.sorry: no path from here ends in"),
    # --- languages and variables
    ("prompt missing a language", _changed(lambda d: _nodes(d)["hello"].update(prompts=[{"sound": {"en": "hi"}}])),
     "nodes.hello.prompts.0: no prompt for language(s) fr the flow offers"),
    ("set language not offered", _changed(lambda d: _nodes(d).update(
        hello={"type": "set", "language": "de", "next": "menu"})),
     "nodes.hello.language: 'de' is not one of the flow's languages"),
    ("set variable with a line break", _changed(lambda d: _nodes(d).update(
        hello={"type": "set", "variables": {"note": "a\nb"}, "next": "menu"})),
     "nodes.hello.variables.note: String should match pattern"),
    ("branch on unset variable", _changed(lambda d: _nodes(d)["route"].update(variable="pin")),
     "nodes.route.variable: no collect or set node sets 'pin'"),
    ("queue without queue", _changed(lambda d: _nodes(d)["sales"].pop("queue")),
     "nodes.sales.queue: no queue given here and no set node chooses one"),
    # --- schedules
    ("bad time zone", _changed(lambda d: _nodes(d)["hours"].update(timezone="Mars/Olympus")),
     "nodes.hours.timezone: 'Mars/Olympus' is not a known time zone"),
    ("bad date", _changed(lambda d: _nodes(d)["hours"]["holidays"][0].update(date="2026-02-30")),
     "nodes.hours.holidays.0.date: Input should be a valid date"),
    ("bad weekday", _changed(lambda d: _nodes(d)["hours"]["hours"].update(monday=["08:00-09:00"])),
     "nodes.hours.hours.monday: Input should be 'mon'"),
    ("span backwards", _changed(lambda d: _nodes(d)["hours"]["hours"].update(mon=["18:00-08:00"])),
     "nodes.hours.hours.mon.0: '18:00-08:00' ends before it starts"),
    ("span 25h", _changed(lambda d: _nodes(d)["hours"]["hours"].update(mon=["08:00-25:00"])),
     "nodes.hours.hours.mon.0: '08:00-25:00' has an hour or minute out of range"),
    ("spans overlap", _changed(lambda d: _nodes(d)["hours"]["hours"].update(mon=["08:00-12:00", "11:00-13:00"])),
     "nodes.hours.hours.mon: spans overlap"),
    ("holiday twice", _changed(lambda d: _nodes(d)["hours"]["holidays"].append({"date": "2026-12-25", "name": "X"})),
     "nodes.hours.holidays.1.date: 2026-12-25 is listed twice"),
    # --- the file itself
    ("huge file", BASE_YAML + b"#" * MAX_BYTES, f"(file): {len(BASE_YAML) + MAX_BYTES} bytes is over"),
    ("not utf-8", BASE_YAML.replace(b"hello-world", b"hell\xe9-world"), "(file): not UTF-8 (byte"),
    ("NUL byte", BASE_YAML + b"\x00", "(file): contains a NUL character"),
    ("yaml alias", BASE_YAML.replace(b"      '1': sales", b"      '1': &s sales\n      '3': *s"),
     "line 16, column 12: YAML anchors (&s) are not allowed"),
    ("billion laughs", b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "line 1, column 4: YAML anchors (&a)"),
    ("deep nesting", b"a: " + b"[" * 100 + b"]" * 100 + b"\n", f"line 1, column 35: nested deeper than {MAX_DEPTH} levels"),
    ("syntax error", b"name: [unclosed\n", "line 2, column 1: invalid YAML"),
    ("empty file", b"", "(file): empty document"),
    ("not a mapping", b"- 1\n- 2\n", "(flow): Input should be a valid dictionary"),
    ("python tag", b"!!python/object/apply:os.system ['true']\n", "line 1, column 1: invalid YAML: could not determine a constructor"),
]


@pytest.mark.parametrize(("data", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_flow_gets_a_precise_message(data: bytes, problem: str) -> None:
    result = check_bytes(data, known_flows={"t", "main"})
    assert not result.ok
    assert any(p.startswith(problem) for p in result.problems), result.problems


def test_at_least_thirty_malformed_flows() -> None:
    assert len(CASES) >= 30


def test_base_and_shipped_flows_are_clean() -> None:
    assert check_bytes(BASE_YAML).problems == ()
    for path in (ROOT / "ivr_flows").glob("*.yaml"):
        result = check_bytes(path.read_bytes(), known_flows={"main", "hours"})
        assert result.ok, (path, result.problems)


def test_nodes_reached_only_by_menu_exits_are_reachable() -> None:
    data = copy.deepcopy(BASE)
    _nodes(data)["menu"].update(on_invalid="wrong", on_timeout="silent")
    del _nodes(data)["menu"]["on_exhausted"]
    _nodes(data).update(wrong={"type": "hangup", "prompt": "invalid"}, silent={"type": "queue", "queue": "sales"})
    assert check_data(data).problems == ()
    del _nodes(data)["menu"]["on_timeout"]
    assert check_data(data).problems == ("nodes.menu: on_exhausted is required unless both on_invalid and "
                                         "on_timeout are set",)


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = copy.deepcopy(BASE)
    _nodes(data)["hello"]["next"] = "gone"
    _nodes(data)["sales"]["queue"] = "no spaces allowed"
    _nodes(data)["menu"]["options"]["#"] = "nowhere"
    problems = check_data(data).problems
    assert "nodes.sales.queue: String should match pattern '^[A-Za-z0-9_-]{1,64}$'" in problems
    data = copy.deepcopy(BASE)
    _nodes(data)["hello"]["next"] = "gone"
    _nodes(data)["menu"]["options"]["#"] = "nowhere"
    assert check_data(data).problems == (
        "nodes.hello.next: unknown node 'gone'", "nodes.menu.options.#: unknown node 'nowhere'",
    )
    data = copy.deepcopy(BASE)
    _nodes(data).update(orphan={"type": "hangup"})
    _nodes(data)["hours"]["timezone"] = "Europe/Pariss"
    _nodes(data)["route"]["variable"] = "pin"
    result = check_data(data)
    assert result.flow is None and len(result.problems) == 1  # schema first: the zone
    _nodes(data)["hours"]["timezone"] = "Europe/Paris"
    assert len(check_data(data).problems) == 2


def test_bounded_loop_is_accepted() -> None:
    data = copy.deepcopy(BASE)
    _nodes(data)["menu"]["options"]["9"] = "hello"
    _nodes(data)["hello"].update(max_visits=3, on_max_visits="sales")
    assert check_data(data).problems == ()


SITE = SiteNames(queues=frozenset({"support", "sales"}), skills=frozenset({"en", "fr", "billing"}),
                 languages=frozenset({"en"}))


def _routing(**set_node: Any) -> dict:
    data = copy.deepcopy(BASE)
    _nodes(data)["hello"] = {"type": "set", "next": "menu", **set_node}
    return data


@pytest.mark.parametrize(("data", "problem"), [
    (_changed(lambda d: _nodes(d)["sales"].update(queue="salse")),
     "nodes.sales.queue: queue 'salse' is not configured"),
    (_dump(_routing(queue="billing")), "nodes.hello.queue: queue 'billing' is not configured"),
    (_dump(_routing(skills={"billing": 10, "vip": 1})), "nodes.hello.skills.vip: skill 'vip' is not in acd.skills"),
    (_dump(_routing(language="fr")), "nodes.hello.language: no agent speaks 'fr' (has it as a skill)"),
    (_changed(lambda d: (d.update(languages=["en", "de"]), _nodes(d).update(
        hello={"type": "set", "language": "de", "next": "menu"}))),
     "nodes.hello.language: 'de' is not in acd.skills (a language is a skill agents have)"),
    (_changed(lambda d: _nodes(d).update(bye={"type": "callback", "queue": "gone"})),
     "nodes.bye.queue: queue 'gone' is not configured"),
])
def test_names_the_site_does_not_serve_are_problems(data: bytes, problem: str) -> None:
    assert check_bytes(data).ok  # fine as a flow: only the site's configuration refuses it
    assert check_bytes(data, site=SITE).problems == (problem,)


def test_site_names_come_from_the_configuration() -> None:
    config = Config(acd=AcdConfig(skills=["en", "fr", "billing"]), queues=[QueueConfig(name="sales")], agents=[
        AgentConfig(id="1", name="A", node="n", device="PJSIP/1", queues=["sales"], skills={"en": 80, "fr": 0}),
    ])
    assert SiteNames.of(config) == SiteNames(frozenset({"sales"}), frozenset({"en", "fr", "billing"}),
                                             frozenset({"en"}))
    # no agent configured yet (the demo makes them at start): no language can be judged
    demo = SiteNames.of(Config(acd=AcdConfig(skills=["en"]), queues=[QueueConfig(name="sales")]))
    assert demo.languages is None and demo.queues == {"sales"}
    assert check_data(_routing(language="en"), site=demo).ok


def test_library_checks_the_routed_flows_against_the_site(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_bytes((ROOT / "ivr_flows" / "main.yaml").read_bytes())
    (tmp_path / "t.yaml").write_bytes(_changed(lambda d: _nodes(d)["sales"].update(queue="salse")))
    site = SiteNames(frozenset({"support", "sales"}), frozenset(), None)
    assert FlowLibrary(tmp_path, {"*": "main"}, site).for_did("1").name == "main"  # t runs no call
    with pytest.raises(FlowError) as exc:
        FlowLibrary(tmp_path, {"*": "main", "5000": "t"}, site)
    assert exc.value.problems == [f"{tmp_path / 't.yaml'}: nodes.sales.queue: queue 'salse' is not configured"]
    # reached through a goto of a routed flow, it runs calls too
    (tmp_path / "hop.yaml").write_bytes(_dump({"name": "hop", "start": "g",
                                               "nodes": {"g": {"type": "goto", "flow": "t"}}}))
    with pytest.raises(FlowError, match="queue 'salse' is not configured"):
        FlowLibrary(tmp_path, {"*": "hop"}, site)


def test_library_refuses_a_broken_flow_with_all_problems(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_bytes((ROOT / "ivr_flows" / "main.yaml").read_bytes())
    bad = copy.deepcopy(BASE)
    _nodes(bad).update(orphan={"type": "hangup"})
    _nodes(bad)["menu"]["options"]["9"] = "hello"
    (tmp_path / "t.yaml").write_bytes(_dump(bad))
    with pytest.raises(FlowError) as exc:
        FlowLibrary(tmp_path, {"*": "main"})
    assert [p.split(": ", 2)[1] for p in exc.value.problems] == ["nodes.orphan", "nodes.hello"]


def test_library_refuses_goto_cycles_between_flows(tmp_path: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.yaml").write_bytes(_dump(
            {"name": name, "start": "g", "nodes": {"g": {"type": "goto", "flow": other}}}))
    with pytest.raises(FlowError, match="goto nodes lead back to flow 'a'"):
        FlowLibrary(tmp_path, {"*": "a"})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccserver", "flows", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def test_cli_check_prints_every_problem_and_fails(tmp_path: Path) -> None:
    bad = copy.deepcopy(BASE)
    _nodes(bad)["hello"]["next"] = "gone"
    _nodes(bad)["menu"]["options"]["#"] = "nowhere"
    (tmp_path / "t.yaml").write_bytes(_dump(bad))
    (tmp_path / "u.yaml").write_bytes(b"a: &x 1\n")
    run = _cli("check", tmp_path)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"{tmp_path / 't.yaml'}: nodes.hello.next: unknown node 'gone'",
        f"{tmp_path / 't.yaml'}: nodes.menu.options.#: unknown node 'nowhere'",
        f"{tmp_path / 'u.yaml'}: line 1, column 4: YAML anchors (&x) are not allowed",
    ]
    assert "2 flow file(s) checked, 2 with problems" in run.stderr


def test_cli_check_clean_files_exit_zero() -> None:
    run = _cli("check", ROOT / "ivr_flows" / "main.yaml", ROOT / "ivr_flows" / "hours.yaml")
    assert (run.returncode, run.stdout) == (0, ""), run.stderr


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.builds(lambda d: _dump(d), _json))
def test_any_bytes_give_problems_never_an_exception(data: bytes) -> None:
    result = check_bytes(data)
    assert result.ok or all(isinstance(p, str) and ": " in p for p in result.problems)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(BASE["nodes"])), st.sampled_from(
    ["type", "next", "prompt", "prompts", "options", "timeout", "cases", "hours", "queue", "variable"]), _json)
def test_any_field_value_gives_problems_never_an_exception(node: str, field: str, value) -> None:
    data = copy.deepcopy(BASE)
    _nodes(data)[node][field] = value
    result = check_data(data)
    assert result.ok or all(p.startswith(("nodes.", "start", "(flow)")) for p in result.problems), result.problems
