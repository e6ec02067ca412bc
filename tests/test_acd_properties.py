"""Property tests of the core routed by the skills router, on random configurations.

Hypothesis draws a site (skills and levels per agent, agents in several queues with per-queue
priorities, queue requirements, escalation steps ending in an overflow to another queue,
voicemail or a callback, every selection strategy) and a sequence of events (callers through
the IVR with their own requirements, agents answering, missing (RONA) or busy, hang-ups by
either side, pause / ready / logout / login, time passing). After every event the rules are
checked against a small model of this file's own, not against the router's arrays: who may be
offered which caller, which agent the queue's strategy picks, service order, one CDR per call,
one row per agent state change, and the routing note of callers nobody can ever take.
"""

from __future__ import annotations

import itertools
import logging
import typing
from collections import Counter
from dataclasses import dataclass, field

import pytest
import test_core_center as core_tests
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from ccserver.acd.skills import SkillsRouter
from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.config import (
    UNAVAILABLE_REASON,
    AcdConfig,
    AgentConfig,
    Config,
    EscalationStep,
    QueueConfig,
    Strategy,
)
from ccserver.core.agent import OCCUPANCY_WINDOW
from ccserver.core.call import Call, CallState
from ccserver.core.center import CALLBACK_SUFFIX, OFFER_GRACE_SECONDS, ContactCenter
from ccserver.core.commands import CallbackAgent, RingAgent
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    CallAnswered,
    CallHungUp,
    CallStarted,
    IvrFinished,
)

SKILLS = ("en", "fr", "billing", "tech", "vip")
NODES = ("n1", "n2")
#: the same numbers come back (resume window); "anonymous" cannot be called back
CALLERS = ("+15550001", "+15550002", "+15550003", "anonymous")
LEG_FAILURES = ("no_answer", "busy", "unavailable", "cancelled", "rejected", "error")
PAUSE_REASONS = ("break", "lunch")


# ---- random sites -------------------------------------------------------------------------

@st.composite
def _levels_met_by(draw, member: AgentConfig) -> dict[str, int]:
    """Requirements that ``member`` meets (the configuration refuses any that nobody meets)."""
    chosen = draw(st.lists(st.sampled_from(SKILLS), max_size=2, unique=True))
    return {s: draw(st.integers(0, member.skills.get(s, 0))) for s in chosen}


@st.composite
def sites(draw, strategy: Strategy | None = None, min_agents: int = 1) -> Config:
    """A valid configuration: 1-3 queues, ``min_agents``-6 agents on two nodes, escalation,
    every queue with ``strategy`` (None: any)."""
    names = [f"q{i}" for i in range(draw(st.integers(1, 3)))]
    raw = []
    for i in range(draw(st.integers(min_agents, 6))):
        node = draw(st.sampled_from(("n1", "n1", "n2")))
        other = next(n for n in NODES if n != node)
        queues = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names),
                               unique=True))
        raw.append(dict(
            id=f"a{i}", name=f"a{i}", node=node, device=f"PJSIP/a{i}",
            # an agent without a device on the other node cannot be rung for calls there
            devices={other: f"PJSIP/trunk-{other}/a{i}"} if draw(st.integers(0, 3)) else {},
            queues=queues,
            skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 100),
                                        min_size=1)),
            priorities={q: draw(st.integers(1, 3)) for q in queues if draw(st.booleans())},
            auto_login=draw(st.integers(0, 3)) > 0,
        ))
    for j, name in enumerate(names):  # a queue nobody serves is refused by the configuration
        if not any(name in a["queues"] for a in raw):
            raw[j % len(raw)]["queues"].append(name)
    agents = [AgentConfig(**a) for a in raw]

    def some_member_meets(name: str) -> dict[str, int]:
        return draw(_levels_met_by(draw(st.sampled_from(
            [a for a in agents if name in a.queues]))))

    queues = []
    for name in names:
        times = itertools.accumulate(draw(st.lists(st.integers(5, 40), max_size=4)))
        steps = [EscalationStep(after_seconds=t, **(
            {"any": True} if draw(st.booleans()) else {"skills": some_member_meets(name)}))
                 for t in times]
        if steps and draw(st.booleans()):  # an overflow is always the last step
            overflow = draw(st.sampled_from([n for n in names if n != name]
                                            + ["voicemail", "callback"]))
            steps[-1] = EscalationStep(after_seconds=steps[-1].after_seconds, overflow=overflow)
        queues.append(QueueConfig(
            name=name,
            strategy=strategy or draw(st.sampled_from(typing.get_args(Strategy))),
            wrapup_seconds=draw(st.sampled_from([0.0, 3.0, 10.0])),
            skills=some_member_meets(name) if draw(st.booleans()) else {},
            priority=draw(st.integers(0, 2)),
            escalation=steps,
            resume_window=draw(st.sampled_from([0.0, 30.0])),
            voicemail_box="100",
        ))
    return Config(acd=AcdConfig(skills=list(SKILLS), max_misses=draw(st.integers(1, 2))),
                  queues=queues, agents=agents)


#: what the IVR tells the core of a caller: requirements (unknown skills and levels out of 0-100
#: included), language ("xx" is unknown), priority (None: the queue's default), caller number
ivr_choices = st.tuples(
    st.one_of(st.just({}), st.dictionaries(st.sampled_from(SKILLS + ("klingon",)),
                                           st.integers(-10, 120), max_size=2)),
    st.sampled_from(["", "", "en", "fr", "xx"]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.sampled_from(CALLERS),
)

# Realistic steps are repeated so that sequences often reach ringing, talking and wrap-up.
KINDS = ("arrive", "arrive", "arrive", "arrive", "enter", "ivr", "answer", "answer", "answer",
         "answer", "fail", "hangup", "agent_hangup", "agent_hangup", "pause", "ready", "ready",
         "logout", "login", "tick", "tick")
#: calls come and go, agents free up at different times: several are often free at once
BUSY_KINDS = ("arrive", "arrive", "answer", "answer", "agent_hangup", "hangup", "fail", "tick",
              "pause", "ready", "login")


def events(kinds: tuple[str, ...], min_size: int = 5) -> st.SearchStrategy:
    """Event sequences of these kinds (repeat a kind to make it likelier)."""
    return st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 7), st.integers(0, 7),
                              st.integers(0, 5), ivr_choices), min_size=min_size, max_size=50)


# ---- the model the core is checked against -------------------------------------------------

def _reachable(agent: AgentConfig, node: str) -> bool:
    return node == agent.node or node in agent.devices


@dataclass
class Site:
    """What the test knows of the site: its configuration, what the IVR said of each caller,
    and each agent's history as told by the rows (not read from the core)."""

    config: Config
    #: call id -> (IVR skills, language) as sent
    sent: dict[str, tuple[dict[str, int], str]] = field(default_factory=dict)
    state: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    last_row_at: dict[str, float] = field(default_factory=dict)
    ready_since: dict[str, float] = field(default_factory=dict)
    on_call_since: dict[str, float] = field(default_factory=dict)
    talk_seconds: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    #: ring-no-answers in a row since the last answer or RONA pause
    misses: Counter[str] = field(default_factory=Counter)
    #: queue -> index of the agent last offered one of its callers (round robin)
    last_chosen: dict[str, int] = field(default_factory=dict)
    records: Counter[str] = field(default_factory=Counter)
    #: strategy -> offers it decided (another free agent came first by level and order)
    decided_by: Counter[str] = field(default_factory=Counter)
    seen_calls: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.agents = {a.id: a for a in self.config.agents}
        self.index = {a.id: i for i, a in enumerate(self.config.agents)}
        self.state = {a.id: ("logged_out", None) for a in self.config.agents}

    # -- routing rules, written from the documentation of the core and the kernel --

    def queue(self, call: Call) -> QueueConfig:
        """The configuration of the queue a waiting or rung call is in."""
        queue = self.config.queue(call.queue or "")
        assert queue is not None, f"{call.call_id} is in no known queue"
        return queue

    def requirements(self, call: Call) -> dict[str, int]:
        """The call's requirements at its current escalation step."""
        queue = self.queue(call)
        if call.step:
            return dict(queue.escalation[call.step - 1].skills or {})
        skills, language = self.sent[call.call_id.removesuffix(CALLBACK_SUFFIX)]
        req = dict(queue.skills)
        req.update({s: min(100, max(0, lvl)) for s, lvl in skills.items() if s in SKILLS})
        if language in SKILLS:
            req[language] = max(req.get(language, 0), 1)
        return req

    def could_take(self, agent_id: str, call: Call) -> bool:
        """Whatever it is doing now: member of the call's queue, reachable, skilled enough."""
        agent = self.agents[agent_id]
        return (call.queue in agent.queues and _reachable(agent, call.node)
                and all(agent.skills.get(s, 0) >= m for s, m in self.requirements(call).items()))

    def level(self, agent_id: str, queue: str) -> int:
        return self.agents[agent_id].priorities.get(queue, 1)

    def preference(self, agent_id: str, call: Call) -> tuple[float, ...]:
        """Lower is picked first: queue level, the queue's strategy, then configuration order."""
        queue = self.queue(call)
        i = self.index[agent_id]
        idle = self.ready_since[agent_id]
        key: tuple[float, ...] = {
            "longest_idle": (idle, 0.0),
            "best_skill": (-sum(self.agents[agent_id].skills.get(s, 0)
                                for s in self.requirements(call)), idle),
            "least_occupied": (self.talk_seconds[agent_id] / OCCUPANCY_WINDOW, 0.0),
            "fewest_calls": (self.answered[agent_id], 0.0),
            "round_robin": ((i - self.last_chosen.get(queue.name, -1) - 1)
                            % len(self.agents), 0.0),
        }[queue.strategy]
        return (self.level(agent_id, queue.name), *key, i)

    # -- checks --

    def take(self, cc: ContactCenter, out: list, now: float) -> None:
        """Check one input's decisions in order and follow the agents' rows."""
        offers: list[tuple[str, str]] = []
        for d in out:
            if isinstance(d, AgentStateChange):
                if d.state == "offered":
                    self._check_offer(d.agent_id, cc.calls[d.call_id])
                    offers.append((d.call_id, d.agent_id))
                self._follow(d, now)
            elif isinstance(d, CallRecord):
                assert d.call_id not in cc.calls, f"CDR of the live call {d.call_id}"
                self.records[d.call_id] += 1
                assert self.records[d.call_id] == 1, f"second CDR of {d.call_id}"
            elif isinstance(d, (RingAgent, CallbackAgent)):
                call = cc.calls[d.call_id]
                agent = cc.agents[call.agent_id or ""]
                assert self.state[agent.agent_id] == ("offered", None), f"{d} without an offer"
                assert d.device == agent.device_on(call.node), f"{d} rings the wrong device"
        for call_id, agent_id in offers:
            self._check_service_order(cc, cc.calls[call_id], agent_id)
        assert self.state == {a.agent_id: (a.state, a.reason) for a in cc.agents.values()}, (
            "an agent changed state without a row")
        self.seen_calls |= cc.calls.keys()

    def _follow(self, row: AgentStateChange, now: float) -> None:
        """One row: it starts where the last row of the agent left it and changes something."""
        a = row.agent_id
        assert row.previous == self.state[a][0], f"{row} after {self.state[a]}"
        assert self.state[a] != (row.state, row.reason), f"a row that changes nothing: {row}"
        assert self.last_row_at.get(a, 0.0) <= row.at <= now, row
        if row.previous == "on_call":
            self.talk_seconds[a] += row.at - self.on_call_since.pop(a)
        if row.state == "on_call":
            self.on_call_since[a] = row.at
            self.answered[a] += 1
            self.misses[a] = 0
        if row.state == "ready":
            self.ready_since[a] = row.at
        self.state[a] = (row.state, row.reason)
        self.last_row_at[a] = row.at

    def _check_offer(self, agent_id: str, call: Call) -> None:
        """At the moment of the offer: the agent is free and may take the call, and no free
        agent who may take it comes first by queue level and the queue's strategy."""
        assert self.state[agent_id][0] == "ready", f"{call.call_id} offered to a busy agent"
        assert call.state is CallState.OFFERED and call.agent_id == agent_id
        assert self.could_take(agent_id, call), (
            f"{agent_id} does not meet {self.requirements(call)} of {call.call_id} "
            f"(queue {call.queue}, step {call.step}, node {call.node})")
        free = [a for a, (s, _) in self.state.items() if s == "ready" and self.could_take(a, call)]
        best = min(free, key=lambda a: self.preference(a, call))
        assert agent_id == best, (
            f"{call.call_id} went to {agent_id} {self.preference(agent_id, call)}, "
            f"not {best} {self.preference(best, call)}")
        first = min(free, key=lambda a: (self.level(a, call.queue or ""), self.index[a]))
        if first != best:
            self.decided_by[self.queue(call).strategy] += 1
        self.last_chosen[call.queue or ""] = self.index[agent_id]

    def _check_service_order(self, cc: ContactCenter, offered: Call, agent_id: str) -> None:
        """No caller still waiting that the agent could take, at the same queue level, is ahead
        of the one it was offered (higher priority, or the same and waiting longer)."""
        level = self.level(agent_id, offered.queue or "")
        for c in cc.calls.values():
            if c.state is CallState.QUEUED and self.level(agent_id, c.queue or "") == level and (
                self.could_take(agent_id, c)
            ):
                assert (c.priority, -(c.enqueued_at or 0.0)) <= (
                    offered.priority, -(offered.enqueued_at or 0.0)), (
                    f"{offered.call_id} offered to {agent_id} before {c.call_id}")

    def check_miss(self, agent_id: str, reason: str, out: list) -> None:
        """The agent's first row after a failed offer: ready again, paused by RONA once
        ``max_misses`` ring-no-answers came in a row, or paused as unavailable."""
        acd = self.config.acd
        expected: tuple[str, str | None] = ("paused", UNAVAILABLE_REASON)
        if reason == "cancelled":
            expected = ("ready", None)
        elif reason in ("no_answer", "rejected"):
            self.misses[agent_id] += 1
            expected = ("ready", None)
            if self.misses[agent_id] >= acd.max_misses:
                self.misses[agent_id] = 0
                expected = ("paused", acd.rona_pause_reason)
        row = next((d for d in out if isinstance(d, AgentStateChange) and d.agent_id == agent_id),
                   None)
        assert row is not None, f"{agent_id} after {reason}: no row"
        assert (row.previous, row.state, row.reason) == ("offered", *expected), (
            f"{agent_id} after {reason}: {row}")

    def check_state(self, cc: ContactCenter, now: float, ticked: bool) -> None:
        """Between inputs: nobody free could take a waiting caller, callers nobody can ever
        take say so, and after a tick no waiting caller is behind on its escalation steps."""
        core_tests._check_invariants(cc)  # one agent per call and one call per agent
        ready = [a for a, (s, _) in self.state.items() if s == "ready"]
        for call in cc.calls.values():
            if call.state is not CallState.QUEUED:
                continue
            assert not [a for a in ready if self.could_take(a, call)], (
                f"{call.call_id} waits while a free agent could take it")
            queue = self.queue(call)
            if not any(self.could_take(a, call) for a in self.agents):
                assert call.routing_note, f"{call.call_id}: nobody can ever take it, no note"
                assert call.step == len(queue.escalation) or (
                    "lead back" in call.routing_note), (
                    f"{call.call_id}: nobody can take it yet escalation steps are left")
            if ticked and call.queue_entered_at is not None:
                due = sum(call.queue_entered_at + s.after_seconds <= now
                          for s in queue.escalation)
                assert due <= call.step, f"{call.call_id} is behind on its escalation steps"


class _Errors(logging.Handler):
    """Collects the error lines of the core (an invalid pair from the router is one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# ---- driving the core ----------------------------------------------------------------------

def _pick(calls: list[Call], i: int) -> Call | None:
    return calls[i % len(calls)] if calls else None


def _with_state(cc: ContactCenter, state: CallState) -> list[Call]:
    return sorted((c for c in cc.calls.values() if c.state is state), key=lambda c: c.call_id)


def _finish_ivr(cc: ContactCenter, site: Site, call_id: str, node: str, queue: str | None,
                choice: tuple, now: float) -> list:
    """The IVR hands the call to ``queue`` with the drawn requirements (remembered in ``site``)."""
    skills, language, priority, caller = choice
    site.sent[call_id] = (skills, language)
    return cc.handle(IvrFinished(call_id, node, f"ch-{call_id}", caller, "5000", queue, ("menu",),
                                 {}, priority, now, skills=tuple(skills.items()),
                                 language=language))


def _step(cc: ContactCenter, site: Site, event, new_id: str, now: float) -> None:
    """Apply one drawn event, checking the decisions of each input it makes as they come."""
    kind, i, k, _, choice = event
    names = [q.name for q in site.config.queues]
    agent_ids = list(site.agents)
    agent_id = agent_ids[i % len(agent_ids)]

    def put(out: list) -> None:
        site.take(cc, out, now)

    if kind in ("arrive", "enter"):
        node, caller = NODES[i % 2], choice[3]
        put(cc.handle(CallStarted(new_id, node, f"ch-{new_id}", caller, "5000", now)))
        put(cc.handle(CallAnswered(new_id, now)))
        if kind == "arrive":
            put(_finish_ivr(cc, site, new_id, node, names[k % len(names)], choice, now))
    elif kind == "ivr":  # a caller still in the IVR reaches a queue, or none (k == 7)
        in_ivr = [c for c in _with_state(cc, CallState.IN_IVR) if c.ivr_ended_at is None]
        if (call := _pick(in_ivr, i)) is not None:
            queue = None if k == 7 else names[k % len(names)]
            put(_finish_ivr(cc, site, call.call_id, call.node, queue, choice, now))
    elif kind == "answer":
        if (call := _pick(_with_state(cc, CallState.OFFERED), i)) is not None:
            device = cc.agents[call.agent_id or ""].device_on(call.node) or ""
            put(cc.handle(AgentLegAnswered(call.call_id, device, now)))
    elif kind == "fail":
        if (call := _pick(_with_state(cc, CallState.OFFERED), i)) is not None:
            rung = cc.agents[call.agent_id or ""]
            reason = LEG_FAILURES[k % len(LEG_FAILURES)]
            out = cc.handle(AgentLegFailed(call.call_id, rung.device_on(call.node) or "", reason,
                                           now))
            put(out)
            site.check_miss(rung.agent_id, reason, out)
    elif kind == "hangup":
        if (call := _pick(sorted(cc.calls.values(), key=lambda c: c.call_id), i)) is not None:
            put(cc.handle(CallHungUp(call.call_id, "normal_clearing", "caller", now)))
    elif kind == "agent_hangup":
        if (call := _pick(_with_state(cc, CallState.CONNECTED), i)) is not None:
            put(cc.handle(CallHungUp(call.call_id, "normal_clearing", "agent", now)))
    elif kind == "pause":
        put(cc.pause(agent_id, PAUSE_REASONS[k % 2], now))
    elif kind == "ready":
        put(cc.ready(agent_id, now))
    elif kind == "logout":
        put(cc.logout(agent_id, now))
    elif kind == "login":
        put(cc.login(agent_id, now, None if k % 2 else "break"))
    else:
        # offers with no outcome past the ring timeout and its grace count as no answer
        deadline = site.config.acd.ring_timeout + OFFER_GRACE_SECONDS
        given_up = [c.agent_id for c in _with_state(cc, CallState.OFFERED)
                    if now - (c.ringing_since or now) >= deadline]
        out = cc.tick(now)
        put(out)
        for rung in given_up:
            site.check_miss(rung or "", "no_answer", out)


def _run(config: Config, steps) -> Site:
    """Drive a center through ``steps``, checking every decision; then everyone hangs up."""
    errors = _Errors()
    center_log = logging.getLogger("ccserver.core.center")
    center_log.addHandler(errors)
    logging.disable(logging.WARNING)  # the sequences are full of (logged) nonsense
    try:
        cc = ContactCenter(config, now=0.0, router=SkillsRouter.from_config(config))
        site = Site(config)
        now = 0.0
        site.take(cc, cc.tick(now), now)  # the auto-login rows
        for n, event in enumerate(steps):
            kind, _, k, dt, _ = event
            # a tick jumps further; the whole run stays inside one occupancy window
            now += dt + (6 * k if kind == "tick" else 0)
            _step(cc, site, event, f"c{n}", now)
            site.check_state(cc, now, kind == "tick")
        assert now < OCCUPANCY_WINDOW
        # everyone hangs up, then every wrap-up and IVR report wait runs out
        while cc.calls:
            call_id = min(cc.calls)
            site.take(cc, cc.handle(CallHungUp(call_id, "normal_clearing", "caller", now)), now)
        site.take(cc, cc.tick(now + 10_000), now + 10_000)
        assert set(site.records) == site.seen_calls, "every call ends in exactly one CDR"
        assert not [m for m in errors.messages if "invalid pair" in m], errors.messages
        return site
    finally:
        logging.disable(logging.NOTSET)
        center_log.removeHandler(errors)


#: the same examples on every run (CI stays deterministic), a bounded time
PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(PROPERTY_SETTINGS, max_examples=400)
@given(sites(), events(KINDS))
def test_random_sites_and_events_keep_the_routing_rules(config, steps):
    """Any site, any events: every offer, row and CDR follows the rules (see the module)."""
    _run(config, steps)


@pytest.mark.parametrize("strategy", typing.get_args(Strategy))
@settings(PROPERTY_SETTINGS, max_examples=80)
@given(data=st.data())
def test_each_strategy_picks_the_agent_its_rule_names(strategy, data):
    """Every queue with one strategy and busy traffic, so that several agents with different
    histories are often free for one caller: the strategy, not the agents' order, decides."""
    site = _run(data.draw(sites(strategy, min_agents=3), label="config"),
                data.draw(events(BUSY_KINDS, min_size=30), label="steps"))
    # steer generation towards such offers
    target(float(site.decided_by[strategy]), label=f"offers decided by {strategy}")
