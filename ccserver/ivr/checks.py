"""Static checks of IVR flows: the one place the CLI, the API and the server's loader ask.

:func:`check_bytes` / :func:`check_data` report every problem at once, each as
``"<field path>: <reason>"``: schema errors and dangling references (from the model), then the
graph rules — every node reachable from the start, every path ending in a terminal node
(queue, transfer, voicemail, callback, goto, hangup), every loop bounded by a visit counter
(``max_visits`` / ``on_max_visits``), prompts for every language the flow offers, variables
set before they are read, schedules without overlapping spans or repeated holidays, and ``goto``
targets that exist. Given the site's :class:`SiteNames`, also that every queue, skill and
language a flow names is one the running configuration serves (a call sent to an unknown queue
is hung up; an unknown skill or language is dropped from its requirements).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from ccserver.ivr.flow import (
    TERMINAL_TYPES,
    BranchNode,
    CallbackNode,
    CollectNode,
    ContinuingNode,
    Flow,
    FlowError,
    GotoNode,
    QueueNode,
    ScheduleNode,
    SetNode,
    node_prompts,
    node_targets,
    parse_flow,
    span_minutes,
)
from ccserver.ivr.source import parse_flow_bytes

if TYPE_CHECKING:
    from ccserver.config import Config


@dataclass(frozen=True, slots=True)
class SiteNames:
    """What the site's configuration serves, for the checks of the names a flow uses."""

    queues: frozenset[str]
    #: ``acd.skills`` (a language is a skill too)
    skills: frozenset[str]
    #: languages some agent speaks (has as a skill at level 1 or more); ``None`` while no agent
    #: is configured (the demo generates them at start), when nobody could be matched anyway
    languages: frozenset[str] | None

    @classmethod
    def of(cls, config: Config) -> SiteNames:
        """The names ``config`` defines."""
        spoken = {skill for agent in config.agents for skill, level in agent.skills.items() if level >= 1}
        return cls(frozenset(q.name for q in config.queues), frozenset(config.acd.skills),
                   frozenset(spoken) if config.agents else None)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of checking one flow document: the flow when its schema is valid, and every problem."""

    flow: Flow | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the flow can be published."""
        return self.flow is not None and not self.problems


def check_bytes(data: bytes, source: str = "", known_flows: Collection[str] | None = None,
                site: SiteNames | None = None) -> CheckResult:
    """Check a flow file's bytes (YAML or JSON). ``known_flows`` are the names ``goto`` may use,
    ``site`` the queues, skills and languages the configuration serves (``None``: not checked)."""
    try:
        document = parse_flow_bytes(data, source)
    except FlowError as err:
        return CheckResult(None, tuple(err.problems))
    return check_data(document, known_flows, site)


def check_data(document: Any, known_flows: Collection[str] | None = None,
               site: SiteNames | None = None) -> CheckResult:
    """Check an already parsed flow document (from YAML, JSON or the editor)."""
    try:
        flow = parse_flow(document)
    except FlowError as err:
        return CheckResult(None, tuple(err.problems))
    return CheckResult(flow, tuple(check_flow(flow, known_flows, site)))


def check_flow(flow: Flow, known_flows: Collection[str] | None = None, site: SiteNames | None = None) -> list[str]:
    """The graph, language, variable, schedule and (given ``site``) configuration problems of a
    schema-valid ``flow``."""
    problems: list[str] = []
    edges = {node_id: list(node_targets(node).values()) for node_id, node in flow.nodes.items()}
    reachable = _reach(flow.start, edges)
    for node_id in flow.nodes:
        if node_id not in reachable:
            problems.append(f"nodes.{node_id}: unreachable from the start node {flow.start!r}")
    problems.extend(_endings(flow, edges, reachable))
    problems.extend(_loops(flow, reachable))
    problems.extend(_languages(flow))
    problems.extend(_variables(flow))
    for node_id, node in flow.nodes.items():
        if isinstance(node, ScheduleNode):
            problems.extend(_schedule(node_id, node))
        elif isinstance(node, GotoNode):
            if node.flow == flow.name:
                problems.append(f"nodes.{node_id}.flow: a flow cannot go to itself (use a node of this flow)")
            elif known_flows is not None and node.flow not in known_flows:
                problems.append(f"nodes.{node_id}.flow: unknown flow {node.flow!r}")
    if site is not None:
        problems.extend(check_site(flow, site))
    return problems


def check_site(flow: Flow, site: SiteNames) -> list[str]:
    """The queues, skills and languages ``flow`` names that the site's configuration does not serve."""
    out = []
    for node_id, node in flow.nodes.items():
        queue = node.queue if isinstance(node, (SetNode, QueueNode, CallbackNode)) else None
        if queue is not None and queue not in site.queues:
            out.append(f"nodes.{node_id}.queue: queue {queue!r} is not configured")
        if not isinstance(node, SetNode):
            continue
        out.extend(f"nodes.{node_id}.skills.{skill}: skill {skill!r} is not in acd.skills"
                   for skill in node.skills if skill not in site.skills)
        lang = node.language
        if lang is not None and lang not in site.skills:
            out.append(f"nodes.{node_id}.language: {lang!r} is not in acd.skills (a language is a skill agents have)")
        elif lang is not None and site.languages is not None and lang not in site.languages:
            out.append(f"nodes.{node_id}.language: no agent speaks {lang!r} (has it as a skill)")
    return out


def check_goto_cycles(flows: Mapping[str, Flow]) -> list[str]:
    """Problems for flows that reach themselves again through ``goto`` nodes (an endless call)."""
    calls = {
        name: sorted({n.flow for n in f.nodes.values() if isinstance(n, GotoNode) and n.flow in flows})
        for name, f in flows.items()
    }
    out = []
    for name in sorted(flows):
        if name in _reach_from_successors(name, calls):
            out.append(f"{name}: goto nodes lead back to flow {name!r} (flows would call each other forever)")
    return out


def _reach(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _reach_from_successors(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def _endings(flow: Flow, edges: Mapping[str, list[str]], reachable: set[str]) -> list[str]:
    reverse: dict[str, list[str]] = {n: [] for n in flow.nodes}
    for src, targets in edges.items():
        for dst in targets:
            reverse[dst].append(src)
    ending: set[str] = set()
    todo = [n for n, node in flow.nodes.items() if node.type in TERMINAL_TYPES]
    ending.update(todo)
    while todo:
        for prev in reverse[todo.pop()]:
            if prev not in ending:
                ending.add(prev)
                todo.append(prev)
    return [
        f"nodes.{n}: no path from here ends in {', '.join(sorted(TERMINAL_TYPES))}"
        for n in flow.nodes
        if n in reachable and n not in ending
    ]


def _loops(flow: Flow, reachable: set[str]) -> list[str]:
    # Once a node's visit counter is spent its only way out is on_max_visits, so a loop is
    # bounded exactly when it is broken in that "spent" graph.
    spent: dict[str, list[str]] = {}
    for node_id in reachable:
        node = flow.nodes[node_id]
        if isinstance(node, ContinuingNode) and node.on_max_visits is not None:
            spent[node_id] = [node.on_max_visits]
        else:
            spent[node_id] = [t for t in node_targets(node).values() if t in reachable]
    out = []
    for component in _cycles(spent):
        order = [n for n in flow.nodes if n in component]
        out.append(
            f"nodes.{order[0]}: loop {' -> '.join(order)} is not bounded: give one of its nodes "
            "max_visits and an on_max_visits exit outside the loop"
        )
    return out


def _cycles(edges: Mapping[str, list[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative: flows may be big)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    out.append(component)
    return out


def _languages(flow: Flow) -> list[str]:
    offered = flow.offered_languages()
    out = []
    prompts = [(f"nodes.{n}.{field}", p) for n, node in flow.nodes.items() for field, p in node_prompts(node).items()]
    if flow.recording_notice is not None:
        prompts.insert(0, ("recording_notice", flow.recording_notice))
    for path, prompt in prompts:
        covered = prompt.languages()
        if covered is not None:
            missing = [lang for lang in offered if lang not in covered]
            if missing:
                out.append(f"{path}: no prompt for language(s) {', '.join(missing)} the flow offers")
    for n, node in flow.nodes.items():
        if isinstance(node, SetNode) and node.language is not None and node.language not in offered:
            out.append(f"nodes.{n}.language: {node.language!r} is not one of the flow's languages {offered}")
    return out


def _variables(flow: Flow) -> list[str]:
    collected = {node.variable for node in flow.nodes.values() if isinstance(node, CollectNode)}
    assigned = collected | {v for node in flow.nodes.values() if isinstance(node, SetNode) for v in node.variables}
    sets_queue = any(isinstance(node, SetNode) and node.queue for node in flow.nodes.values())
    out = []
    for n, node in flow.nodes.items():
        if isinstance(node, BranchNode) and node.variable is not None and node.variable not in assigned:
            out.append(f"nodes.{n}.variable: no collect or set node sets {node.variable!r}")
        if isinstance(node, CallbackNode) and node.number_variable is not None and node.number_variable not in collected:
            out.append(f"nodes.{n}.number_variable: no collect node collects {node.number_variable!r}")
        if isinstance(node, (QueueNode, CallbackNode)) and node.queue is None and not sets_queue:
            out.append(f"nodes.{n}.queue: no queue given here and no set node chooses one")
    return out


def _schedule(node_id: str, node: ScheduleNode) -> list[str]:
    out = []
    for day, spans in node.hours.items():
        minutes = sorted(span_minutes(s) for s in spans)
        for (_, a_end), (b_start, _) in pairwise(minutes):
            if b_start < a_end:
                out.append(f"nodes.{node_id}.hours.{day}: spans overlap")
                break
    seen = set()
    for i, holiday in enumerate(node.holidays):
        if holiday.date in seen:
            out.append(f"nodes.{node_id}.holidays.{i}.date: {holiday.date} is listed twice")
        seen.add(holiday.date)
    return out
