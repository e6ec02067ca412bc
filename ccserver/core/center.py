"""The contact center: calls, agents and queues of one site, driven by domain events.

Pure: :meth:`ContactCenter.handle` takes a :class:`DomainEvent`, :meth:`ContactCenter.tick`
takes the time, and both return the decisions to carry out: PBX commands (for the adapter of the
command's ``node``) and rows (for the CDR writer). Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import functools
import heapq
import logging
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ccserver.acd.eligibility import Eligibility
from ccserver.acd.estimates import HandleTime, QueueWaits
from ccserver.acd.router import (
    AgentView,
    LongestIdleRouter,
    Router,
    TrackingRouter,
    WaitingCall,
    service_order,
)
from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.config import OVERFLOW_TARGETS, SHUTDOWN_REASON, UNAVAILABLE_REASON, Config, QueueConfig
from ccserver.recording.policy import recording_policy
from ccserver.core.agent import Agent, IdFactory
from ccserver.core.call import Call, CallState
from ccserver.core.commands import (
    CallbackAgent,
    Command,
    ConfirmCallback,
    HangupCall,
    KeepCallFacts,
    RingAgent,
    SendToVoicemail,
    StartRecording,
    TransferCall,
    TRANSFER_DESTINATION,
)
from ccserver.core.events import (
    AgentLegAnswered,
    AgentLegFailed,
    AgentLegRinging,
    CallAnswered,
    CallHungUp,
    CallStarted,
    CallerLeaving,
    DigitsReceived,
    DomainEvent,
    HoldChanged,
    IvrFinished,
    LegFailure,
    NodeConnectionChanged,
    NodeResynced,
    RecordingFailed,
    RecordingStarted,
    RecordingStopped,
    SpyEnded,
    SpyModeChanged,
    SpyStarted,
)

log = logging.getLogger(__name__)

#: What the core decides: commands for a PBX adapter, rows for the CDR writer.
Decision = Command | CallRecord | AgentStateChange

#: Seconds past the ring timeout after which an offer with no outcome counts as no answer,
#: so a lost AgentLegFailed never leaves caller and agent stuck.
OFFER_GRACE_SECONDS = 10.0
#: How many ended call ids are remembered to recognise duplicate and late events.
ENDED_MEMORY = 10_000
#: a caller who hangs up during the IVR: how long to wait for the IVR's own report (the path
#: taken) before writing the CDR without it; the AMI hang-up and the FastAGI end race
IVR_RESULT_GRACE_SECONDS = 3.0
#: a callback entry's call id: the requesting call's id plus this
CALLBACK_SUFFIX = "/callback"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _uuid4() -> str:
    return str(uuid.uuid4())


def _is_number(caller: str) -> bool:
    """A caller id that is a phone number (not empty, "anonymous", "withheld", ...)."""
    return TRANSFER_DESTINATION.fullmatch(caller) is not None


def _priority(chosen: int | None, queue: QueueConfig | None) -> int:
    """The IVR's priority when it chose one (0 included), else the queue's default."""
    if chosen is not None:
        return chosen
    return queue.priority if queue else 0


def _initial_requirements(queue: QueueConfig, skills: tuple[tuple[str, int], ...],
                          language: str) -> tuple[tuple[str, int], ...]:
    """Before any escalation step: the queue's requirements, the IVR's on top, the language."""
    req = dict(queue.skills)
    req.update(skills)
    if language:
        req[language] = max(req.get(language, 0), 1)
    return tuple(sorted(req.items()))


@dataclass(frozen=True, slots=True)
class WaitingEntry:
    """One caller waiting in a queue (``ringing_agent`` is set while an agent is rung)."""

    call_id: str
    caller: str
    priority: int
    enqueued_at: float
    wait_seconds: float
    ringing_agent: str | None
    #: 1 = next in line
    position: int
    #: seconds until an agent who can take this caller is expected (None: none serves now)
    expected_wait: float | None
    #: escalation steps applied so far and the requirements they give
    step: int
    requirements: tuple[tuple[str, int], ...]
    #: a routing problem to show (e.g. an unknown skill the IVR asked for)
    routing_note: str | None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """A queue right now: callers in service order and its agents by state."""

    name: str
    waiting: tuple[WaitingEntry, ...]
    ready: int
    offered: int
    on_call: int
    wrap_up: int
    paused: int


class ContactCenter:
    """Live state of the site's calls and agents; turns events into decisions.

    Rows produced while constructing (auto-login agents) are returned by the first call to
    :meth:`handle`, :meth:`tick` or an agent method, so none is lost.
    """

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        router: Router | None = None,
        new_id: IdFactory = _uuid4,
    ) -> None:
        self._config = config
        self._queues = {q.name: q for q in config.queues}
        self._router: Router = router or LongestIdleRouter()
        #: a tracking router is told what changed (below) instead of given views of everyone
        self._tracking = isinstance(self._router, TrackingRouter)
        self._dirty_calls: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._new_id = new_id
        self._agents: dict[str, Agent] = {}
        self._by_device: dict[tuple[str, str], Agent] = {}
        self._calls: dict[str, Call] = {}
        #: agent id -> the ended call whose CDR waits for the end of that agent's wrap-up
        self._wrapping: dict[str, Call] = {}
        # What tick has to look at, by due time, so it visits only those (not every agent and
        # call of a large site): (wrap-up end, agent id) and (next escalation step, call id).
        # An entry whose agent or call moved on meanwhile is dropped when it falls due.
        self._wrapups_due: list[tuple[float, str]] = []
        self._escalations_due: list[tuple[float, str]] = []
        #: calls that ended during the IVR, waiting for its report: call id -> (call, deadline)
        self._awaiting_ivr: dict[str, tuple[Call, float]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._nodes: dict[str, bool] = {}
        #: node -> when its link went down, until the resync that follows: the calls that ended
        #: unseen meanwhile get it as their (estimated) end
        self._down_since: dict[str, float] = {}
        self._out: list[Decision] = []
        self._route_needed = False
        #: (caller, queue) -> (old enqueue time, resume deadline) of abandoned callers
        self._abandoned: dict[tuple[str, str], tuple[float, float]] = {}
        #: callback entries waiting in a queue with no channel: call id -> number to call
        self._callbacks: dict[str, str] = {}
        self._handle_time = {q.name: HandleTime(q.default_handle_seconds) for q in config.queues}
        self._skills = frozenset(config.acd.skills)
        self._eligibility = Eligibility(config)
        for ac in config.agents:
            agent = Agent(ac.id, ac.node, ac.device, frozenset(ac.queues), new_id, dict(ac.devices))
            self._agents[ac.id] = agent
            for node in agent.nodes:
                self._by_device[(node, agent.device_on(node))] = agent
            if ac.auto_login:
                self._agent_changed(agent, agent.login(now))
        #: each queue's agents, in the order of the eligibility masks
        self._members = {q.name: [self._agents[a] for a in self._eligibility.members(q.name)]
                         for q in config.queues}

    # ---- read-only views -------------------------------------------------------------------

    @property
    def calls(self) -> Mapping[str, Call]:
        """Live calls by id (ended calls leave at once, even while their agent wraps up)."""
        return MappingProxyType(self._calls)

    @property
    def agents(self) -> Mapping[str, Agent]:
        """Agents by id."""
        return MappingProxyType(self._agents)

    def device_in_use(self, agent_id: str) -> tuple[str, str] | None:
        """(node, dial string) of the agent's phone being rung or talking for a live call, the
        one of the call's node (a mixed fleet rings the same person through each node's own
        dial string); None when the agent has no live call. KeyError for an unknown agent."""
        agent = self._agents[agent_id]
        call = self._calls.get(agent.call_id or "")
        if call is None or agent.state not in ("offered", "on_call"):
            return None
        device = agent.device_on(call.node)
        return None if device is None else (call.node, device)

    @property
    def nodes(self) -> Mapping[str, bool]:
        """PBX node -> connected, for nodes that reported a connection change or a resync."""
        return MappingProxyType(self._nodes)

    def queue_snapshot(self, name: str, now: float) -> QueueSnapshot:
        """The queue's waiting callers (service order) and agent counts; KeyError if unknown."""
        if self._queues.get(name) is None:
            raise KeyError(name)
        return self._snapshot(name, [c for c in self._calls.values() if c.queue == name], now)

    def queue_snapshots(self, now: float) -> dict[str, QueueSnapshot]:
        """Every queue's :meth:`queue_snapshot`, in configuration order (one pass over calls)."""
        by_queue: dict[str, list[Call]] = {name: [] for name in self._queues}
        for c in self._calls.values():
            if c.queue in by_queue:
                by_queue[c.queue].append(c)
        return {name: self._snapshot(name, calls, now) for name, calls in by_queue.items()}

    def _snapshot(self, name: str, calls: list[Call], now: float) -> QueueSnapshot:
        """The snapshot of queue ``name`` given the live calls whose queue it is."""
        calls = sorted(
            ((self._waiting(c), c) for c in calls
             if c.state in (CallState.QUEUED, CallState.OFFERED)),
            key=lambda wc: service_order(wc[0]),
        )
        states = [a.state for a in self._members[name]]
        waits = self._waits(name, states)
        waiting = tuple(
            WaitingEntry(
                call_id=c.call_id,
                caller=c.caller,
                priority=c.priority,
                enqueued_at=c.enqueued_at or 0.0,
                wait_seconds=max(0.0, now - (c.enqueued_at or now)),
                ringing_agent=c.agent_id if c.state is CallState.OFFERED else None,
                position=i,
                # a caller being rung is on the way to an agent already
                expected_wait=0.0 if c.state is CallState.OFFERED
                else waits.wait(w.requirements, c.node, i),
                step=c.step,
                requirements=w.requirements,
                routing_note=self._waiting_note(c, w.requirements, waits, name),
            )
            for i, (w, c) in enumerate(calls, start=1)
        )
        return QueueSnapshot(
            name=name,
            waiting=waiting,
            ready=states.count("ready"),
            offered=states.count("offered"),
            on_call=states.count("on_call"),
            wrap_up=states.count("wrap_up"),
            paused=states.count("paused"),
        )

    def _waiting_note(self, call: Call, requirements: tuple[tuple[str, int], ...],
                      waits: QueueWaits, queue: str) -> str | None:
        """The call's routing note, plus why it waits while agents who could take it are
        ready: none of them can be rung from its node (a mixed fleet's agent with a phone on
        another node only). Said while true, so it goes once such an agent is free."""
        if (call.state is not CallState.QUEUED or waits.ready(requirements, None) == 0
                or waits.ready(requirements, call.node) > 0):
            return call.routing_note
        able = self._eligibility.able(queue, requirements, None)
        ready = [a.agent_id for a, ok in zip(self._members[queue], able)
                 if ok and a.state == "ready"]
        note = (f"no ready agent can be rung from node {call.node!r}; ready on other nodes "
                f"only: {', '.join(ready)}")
        return f"{call.routing_note}; {note}" if call.routing_note else note

    def estimate_wait(self, queue: str, priority: int | None, skills: tuple[tuple[str, int], ...],
                      now: float) -> tuple[int, float | None]:
        """For the IVR's announcement: the place a caller entering ``queue`` now would take
        (1 = next; callers waiting with the same or a higher priority stay ahead, those being
        rung already are on their way out; None: the queue's default priority) and its
        expected wait in seconds, counting only agents that meet the queue's and ``skills``'
        (skill, minimum level) requirements — None when none of them serves the queue.
        KeyError for an unknown queue."""
        config = self._queues.get(queue)
        if config is None:
            raise KeyError(queue)
        if priority is None:
            priority = config.priority
        position = 1 + sum(c.queue == queue and c.state is CallState.QUEUED
                           and c.priority >= priority for c in self._calls.values())
        waits = self._waits(queue, [a.state for a in self._members[queue]])
        return position, waits.wait(_initial_requirements(config, skills, ""), None, position)

    def _waits(self, queue: str, states: list[str]) -> QueueWaits:
        """Wait estimates in ``queue`` now; ``states`` are its members' (eligibility order)."""
        return QueueWaits(functools.partial(self._eligibility.able, queue), states,
                          self._handle_time[queue].seconds)

    # ---- inputs ----------------------------------------------------------------------------

    def handle(self, event: DomainEvent) -> list[Decision]:
        """Apply one domain event; never raises on odd input (it is logged and ignored)."""
        match event:
            case CallStarted():
                self._call_started(event)
            case CallAnswered():
                if call := self._live(event.call_id, "CallAnswered"):
                    call.answer(event.at)
            case IvrFinished():
                self._ivr_finished(event)
            case AgentLegAnswered():
                if (call := self._live(event.call_id, "AgentLegAnswered")) and (
                    agent := self._rung_agent(call, event.device, "AgentLegAnswered")
                ):
                    self._answered(call, agent, event.at)
            case AgentLegFailed():
                if (call := self._live(event.call_id, "AgentLegFailed")) and (
                    agent := self._rung_agent(call, event.device, "AgentLegFailed")
                ):
                    self._leg_failed(call, agent, event.reason, event.at)
            case HoldChanged():
                if call := self._live(event.call_id, "HoldChanged"):
                    call.hold(event.on, event.at)
            case RecordingStarted():
                # May follow the hang-up while the agent wraps up: still this call's file. The
                # CDR keeps the name the core gave (relative to the root), not the PBX's path.
                if call := self._recorded_call(event.call_id):
                    call.recording_failure = None
                    if call.recording_planned is None:  # on demand: not in the answer's facts
                        self._keep(call)
            case RecordingFailed():
                if (call := self._recorded_call(event.call_id)) and call.recording == event.file:
                    log.warning("call %s: recording %s did not start: %s", call.call_id, event.file,
                                event.reason)
                    call.recording, call.recording_failure = None, event.reason
                    self._keep(call)  # a ccserver adopting the call must not name the file again
            case CallerLeaving():
                if (call := self._calls.get(event.call_id)) is not None:
                    call.leaving = True  # no longer routable (see _routable)
            case CallHungUp():
                if call := self._live(event.call_id, "CallHungUp"):
                    self._end(call, event.cause, event.by, event.at)
            case NodeResynced():
                self._resync(event)
            case NodeConnectionChanged():
                self._nodes[event.node] = event.up
                if not event.up:
                    self._down_since.setdefault(event.node, event.at)
                self._route_needed |= event.up  # its waiting callers become routable again
            case (DigitsReceived() | AgentLegRinging() | RecordingStopped() | SpyStarted() | SpyEnded()
                  | SpyModeChanged()):
                pass  # the IVR engine / adapter use these; the call's state does not change
        if isinstance(event, (NodeResynced, NodeConnectionChanged)):
            self._dirty_calls.update(c.call_id for c in self._calls.values() if c.node == event.node)
        elif not isinstance(event, (DigitsReceived, AgentLegRinging, RecordingStopped, SpyStarted,
                                    SpyEnded, SpyModeChanged)):
            self._dirty_calls.add(event.call_id)
        return self._flush(event.at)

    def tick(self, now: float) -> list[Decision]:
        """Advance time: end due wrap-ups, apply due escalation steps, give up on offers whose
        outcome never came."""
        while self._wrapups_due and self._wrapups_due[0][0] <= now:
            agent = self._agents[heapq.heappop(self._wrapups_due)[1]]
            self._agent_changed(agent, agent.tick(now))
        for call_id, (call, due) in list(self._awaiting_ivr.items()):
            if now >= due:
                del self._awaiting_ivr[call_id]
                self._out.append(call.record())
        for key, (_, until) in list(self._abandoned.items()):
            if now > until:
                del self._abandoned[key]
        deadline = self._config.acd.ring_timeout + OFFER_GRACE_SECONDS
        for call in [c for c in self._calls.values()
                     if c.ringing_since is not None and now - c.ringing_since >= deadline]:
            agent = self._agents.get(call.agent_id or "")
            log.warning("call %s: no outcome for the offer to %s; no answer", call.call_id,
                        call.agent_id)
            if agent is not None:
                self._leg_failed(call, agent, "no_answer", now)
        # after the offers given up above: those callers are back in the queue, steps due too
        while self._escalations_due and self._escalations_due[0][0] <= now:
            call = self._calls.get(heapq.heappop(self._escalations_due)[1])
            if call is not None and call.state is CallState.QUEUED:
                self._escalate(call, now)
        return self._flush(now)

    def login(self, agent_id: str, now: float, paused_reason: str | None = None) -> list[Decision]:
        """Log an agent in, ready (or paused with ``paused_reason``). KeyError if unknown."""
        agent = self._agents[agent_id]
        self._agent_changed(agent, agent.login(now, paused_reason))
        return self._flush(now)

    def logout(self, agent_id: str, now: float) -> list[Decision]:
        """Log an agent out (refused, and logged, while ringing or on a call)."""
        agent = self._agents[agent_id]
        self._agent_changed(agent, agent.logout(now))
        return self._flush(now)

    def drain(self, now: float) -> list[Decision]:
        """At shutdown: the rows the core still owes, without routing anyone.

        CDRs waiting for an IVR report are written without it; wrap-ups end now (the agent is
        paused with reason "shutdown") so their CDRs are written with the wrap-up so far.
        """
        for call, _due in self._awaiting_ivr.values():
            self._out.append(call.record())
        self._awaiting_ivr.clear()
        for agent in self._agents.values():
            if agent.state == "wrap_up":
                self._agent_changed(agent, agent.pause(SHUTDOWN_REASON, now))
        out, self._out = self._out, []
        return out

    def pause(self, agent_id: str, reason: str, now: float) -> list[Decision]:
        """Pause an agent with a reason code (ends a wrap-up early)."""
        agent = self._agents[agent_id]
        self._agent_changed(agent, agent.pause(reason, now))
        return self._flush(now)

    def ready(self, agent_id: str, now: float) -> list[Decision]:
        """Make a paused or wrapping-up agent ready."""
        agent = self._agents[agent_id]
        self._agent_changed(agent, agent.ready(now))
        return self._flush(now)

    # ---- event handlers --------------------------------------------------------------------

    def _call_started(self, e: CallStarted) -> None:
        if e.call_id in self._calls or e.call_id in self._ended:
            log.info("call %s: duplicate CallStarted ignored", e.call_id)
            return
        self._calls[e.call_id] = Call(e.call_id, e.node, e.channel, e.caller, e.did, e.at)

    def _ivr_finished(self, e: IvrFinished) -> None:
        if e.callback is not None:  # also when the caller's hang-up came first, as it often does
            self._queue_callback(e)
        pending = self._awaiting_ivr.pop(e.call_id, None)
        if pending is not None:
            call = pending[0]
            call.caller_left_ivr(e.path, e.variables)
            self._out.append(call.record())
            return
        if e.caller_hung_up:
            live = self._calls.get(e.call_id)
            if live is not None:
                live.caller_left_ivr(e.path, e.variables)  # the PBX's hang-up ends it
            else:
                log.info("call %s: IVR report for an unknown or ended call ignored", e.call_id)
            return
        call = self._calls.get(e.call_id)
        if call is None:
            if e.call_id in self._ended:
                log.info("call %s: late IvrFinished ignored (call already ended)", e.call_id)
                return
            # CallStarted was missed: IvrFinished carries enough to adopt the call.
            log.info("call %s: adopted at IvrFinished (CallStarted missed)", e.call_id)
            call = Call(e.call_id, e.node, e.channel, e.caller, e.did,
                        e.at if e.arrived_at is None else e.arrived_at)
            self._calls[e.call_id] = call
        path, variables = e.path, e.variables
        if e.recording is not None:
            call.flow_recording = e.recording
        if call.ivr_ended_at is not None and call.variables.get("CC_TRANSFER", "").startswith("did:"):
            # the flow transferred the caller to another DID of ours: that DID's flow runs next,
            # on the same call; the CDR keeps both paths
            path, variables = call.ivr_path + e.path, {**call.variables, **e.variables}
            call.ivr_ended_at = None
        if e.queue is not None and self._queues.get(e.queue) is None:
            # Never strand a caller in a queue nobody serves: hang up; the CDR keeps the
            # queue name with no enqueue time (disposition ivr_completed).
            if call.finish_ivr(None, path, variables, _priority(e.priority, None), e.at):
                log.error("call %s: IVR chose unknown queue %r; hanging up", e.call_id, e.queue)
                call.queue = e.queue
                self._out.append(HangupCall(call.node, call.call_id, call.channel))
            return
        queue = self._queues.get(e.queue) if e.queue else None
        priority = _priority(e.priority, queue)
        if call.finish_ivr(e.queue, path, variables, priority, e.at) and queue is not None:
            self._set_requirements(call, e.skills, e.language)
            # withheld and anonymous callers share their "number": none of them is anyone's place
            resumed = (self._abandoned.pop((call.caller, queue.name), None)
                       if _is_number(call.caller) else None)
            if resumed is not None and e.at <= resumed[1]:
                log.info("call %s: caller %s called back; resumes the place of %.0f",
                         call.call_id, call.caller, resumed[0])
                call.enqueued_at = resumed[0]
            self._check_servable(call, e.at)
            self._schedule_escalation(call)
            self._route_needed = True
            self._keep(call)

    def _keep(self, call: Call) -> None:
        """Store what is known of the call on its channel, for a ccserver that adopts it at a
        resync (a restart, a standby taking over). A callback entry has no channel."""
        if call.channel and call.call_id not in self._callbacks and call.state is not CallState.ENDED:
            self._out.append(KeepCallFacts(call.node, call.call_id, call.channel, call.facts()))

    def _queue_callback(self, e: IvrFinished) -> None:
        """A callback entry: the caller's place in the queue (enqueued now, as if still
        waiting), with no channel; when an agent is free the ACD rings them and the PBX then
        dials the caller's number (:class:`CallbackAgent`)."""
        assert e.callback is not None
        queue = self._queues.get(e.callback.queue)
        entry_id = f"{e.call_id}{CALLBACK_SUFFIX}"
        if queue is None or entry_id in self._calls or entry_id in self._ended:
            log.error("call %s: callback to queue %r refused (unknown queue or repeated)",
                      e.call_id, e.callback.queue)
            return
        if not TRANSFER_DESTINATION.fullmatch(e.callback.number):
            log.error("call %s: callback refused: number %r is not a phone number", e.call_id,
                      e.callback.number[:40])
            return
        entry = Call(entry_id, e.node, "", e.callback.number, e.did, e.at)
        entry.finish_ivr(queue.name, e.path, {**e.variables, "CC_CALLBACK_OF": e.call_id},
                         _priority(e.priority, queue), e.at)
        self._set_requirements(entry, e.skills, e.language)
        self._calls[entry_id] = entry
        self._callbacks[entry_id] = e.callback.number
        self._dirty_calls.add(entry_id)  # a tracking router learns of it
        self._check_servable(entry, e.at)
        self._schedule_escalation(entry)
        self._route_needed = True

    def _answered(self, call: Call, agent: Agent, at: float) -> None:
        if not call.leg_answered(at):
            return
        self._agent_changed(agent, agent.answer(call.call_id, at))
        if call.recording_planned is not None:  # named when the agent was rung
            call.recording = call.recording_planned
            self._out.append(StartRecording(call.node, call.call_id, call.channel, call.recording))
        self._keep(call)

    def _leg_failed(self, call: Call, agent: Agent, reason: LegFailure, at: float) -> None:
        if not call.leg_failed(reason == "no_answer", at):
            return
        self._dirty_calls.add(call.call_id)
        pause_reason: str | None
        if reason in ("no_answer", "rejected"):
            agent.missed_in_row += 1
            pause_reason = None
            if agent.missed_in_row >= self._config.acd.max_misses:
                agent.missed_in_row = 0
                pause_reason = self._config.acd.rona_pause_reason
        elif reason == "cancelled":
            pause_reason = None  # not the agent's doing
        else:
            pause_reason = UNAVAILABLE_REASON
        self._agent_changed(agent, agent.miss(call.call_id, pause_reason, at))
        self._schedule_escalation(call)  # a step that fell due while the agent was rung
        self._route_needed = True  # the caller, keeping its place, goes to the next agent

    def _end(self, call: Call, cause: str, by: str, at: float) -> None:
        before = call.state
        if not call.hang_up(cause, by, at):
            return
        self._dirty_calls.add(call.call_id)
        del self._calls[call.call_id]
        self._callbacks.pop(call.call_id, None)
        self._ended[call.call_id] = None
        if len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)
        queue = self._queues.get(call.queue or "")
        if before in (CallState.QUEUED, CallState.OFFERED) and queue and queue.resume_window and (
            _is_number(call.caller) and call.enqueued_at is not None
        ):
            self._abandoned[(call.caller, queue.name)] = (call.enqueued_at,
                                                           at + queue.resume_window)
        agent = self._agents.get(call.agent_id or "")
        if agent is not None and agent.call_id == call.call_id:
            if before is CallState.CONNECTED and agent.state == "on_call":
                queue = self._queues.get(call.queue or "")
                wrapup = queue.wrapup_seconds if queue else 0.0  # adopted calls: queue unknown
                self._wrapping[agent.agent_id] = call
                self._agent_changed(agent, agent.end_call(call.call_id, wrapup, at))
                self._agent_changed(agent, agent.tick(at))  # a zero wrap-up ends at once
                return
            if before is CallState.OFFERED:
                self._agent_changed(agent, agent.miss(call.call_id, None, at))
        if before in (CallState.ARRIVING, CallState.IN_IVR) and not call.ivr_reported:
            self._awaiting_ivr[call.call_id] = (call, at + IVR_RESULT_GRACE_SECONDS)
            return
        self._out.append(call.record())

    def _resync(self, e: NodeResynced) -> None:
        self._nodes[e.node] = True
        self._route_needed = True  # its waiting callers are routable again
        listed = {lc.call_id for lc in e.calls}
        # A call missing from the listing ended while the link was down, when exactly the PBX
        # no longer says (CoreShowChannels / show channels list live channels only): the
        # link-down time is the bound we know, and a better guess than the resync's own time
        # (the talk time and the agent's time on the call stop there); the CDR says estimated.
        gone_at = min(self._down_since.pop(e.node, e.at), e.at)
        for call in [c for c in self._calls.values() if c.node == e.node]:
            # a callback entry has no caller channel to list
            if call.call_id not in listed and call.call_id not in self._callbacks:
                log.warning("call %s: gone from node %s at resync; lost", call.call_id, e.node)
                call.end_estimated = True
                self._end(call, "lost", "unknown", max(gone_at, call.last_fact_at()))
        for lc in e.calls:
            agent = self._by_device.get((e.node, lc.agent_device)) if lc.agent_device else None
            call = self._calls.get(lc.call_id)
            if call is not None:
                if call.state is CallState.OFFERED and agent and agent.agent_id == call.agent_id:
                    self._answered(call, agent, e.at)  # the answer was missed while away
                continue
            if lc.call_id in self._ended:
                log.info("call %s: listed at resync but already ended; ignored", lc.call_id)
                continue
            # Unknown live call: adopt it so its hang-up still produces a CDR. What a ccserver
            # kept on the channel (facts) says its queue, times and agent; without them an
            # unbridged one is tracked as in the IVR.
            call = Call(lc.call_id, e.node, lc.channel, lc.caller, lc.did, e.at - lc.duration,
                        state=CallState.IN_IVR)
            facts = lc.facts
            if facts is not None:
                waits = (not lc.agent_device and facts.answered_at is None
                         and self._queues.get(facts.queue or "") is not None)
                call.resume(facts, queued=waits)
            self._calls[lc.call_id] = call
            log.info("call %s: adopted at resync of %s (bridged to %s, %s)", lc.call_id, e.node,
                     lc.agent_device, "with its kept facts" if facts else "nothing kept")
            if lc.agent_device:
                if agent is None and facts is not None and facts.agent_id is not None:
                    # a leg the listing names by its channel, not its dial string: the agent
                    # who answered, as kept, if still reachable from this node
                    kept = self._agents.get(facts.agent_id)
                    agent = kept if kept is not None and kept.device_on(e.node) else None
                change = agent.adopt(lc.call_id, e.at) if agent else None
                owner = agent.agent_id if agent and agent.call_id == lc.call_id else None
                answered = facts.answered_at if facts and facts.answered_at is not None else e.at
                call.adopt_connected(owner, answered)
                if agent is not None:
                    self._agent_changed(agent, change)
            elif call.state is CallState.QUEUED:
                rung = (self._by_device.get((e.node, lc.ringing_device))
                        if lc.ringing_device else None)
                # the offer a ccserver made before: its outcome (answer or failure) is on the
                # way, and ringing someone else now would cut that leg off (or, answered, take
                # the caller from that agent)
                change = rung.adopt_offer(call.call_id, e.at) if rung is not None else None
                if change is not None:
                    call.offer(rung.agent_id, e.at)
                    self._agent_changed(rung, change)
                else:
                    self._check_servable(call, e.at)
                    self._schedule_escalation(call)

    # ---- helpers ---------------------------------------------------------------------------

    def _live(self, call_id: str, what: str) -> Call | None:
        """The live call, or None with a log line saying why the event is ignored."""
        call = self._calls.get(call_id)
        if call is None:
            if call_id in self._ended:
                log.info("call %s: late %s ignored (call already ended)", call_id, what)
            else:
                log.warning("call %s: %s for an unknown call ignored", call_id, what)
        return call

    def _rung_agent(self, call: Call, device: str, what: str) -> Agent | None:
        """The agent being rung for ``call`` if ``device`` is theirs, else None (logged)."""
        agent = self._agents.get(call.agent_id or "")
        if call.state is CallState.OFFERED and agent is not None and agent.device_on(call.node) == device:
            return agent
        log.warning("call %s: %s from %s ignored in state %s (rung: %s)", call.call_id, what,
                    device, call.state.value, call.agent_id)
        return None

    def _agent_changed(self, agent: Agent, change: AgentStateChange | None) -> None:
        """Emit an agent's transition and what follows from it."""
        if change is None:
            return
        self._dirty_agents.add(agent.agent_id)
        self._out.append(change)
        if change.previous == "wrap_up":
            call = self._wrapping.pop(agent.agent_id, None)
            if call is not None and call.ended_at is not None:
                record = call.record(wrapup_seconds=max(0.0, change.at - call.ended_at))
                self._out.append(record)
                if record.queue in self._handle_time:
                    self._handle_time[record.queue].add(record.talk_seconds
                                                        + record.wrapup_seconds)
        if change.state == "ready":
            self._route_needed = True
        if change.state == "on_call":
            agent.missed_in_row = 0
        if change.state == "wrap_up" and agent.wrapup_until is not None:
            heapq.heappush(self._wrapups_due, (agent.wrapup_until, agent.agent_id))

    def _waiting(self, call: Call) -> WaitingCall:
        return WaitingCall(call.call_id, call.queue or "", call.node, call.priority,
                           call.enqueued_at or 0.0, self._requirements(call))

    def _set_requirements(
        self, call: Call, skills: tuple[tuple[str, int], ...], language: str
    ) -> None:
        """Keep the IVR's known skills (levels clamped to 0-100); report the rest."""
        notes = []
        kept = []
        for name, level in skills:
            if name not in self._skills:
                notes.append(f"unknown skill {name!r} ignored")
            elif not 0 <= level <= 100:
                notes.append(f"level {level} of {name!r} out of 0-100, clamped")
                kept.append((name, min(100, max(0, level))))
            else:
                kept.append((name, level))
        if language and language not in self._skills:
            notes.append(f"unknown language {language!r} ignored")
            language = ""
        call.skills, call.language = tuple(kept), language
        if notes:
            call.routing_note = "; ".join(notes)
            log.error("call %s: %s", call.call_id, call.routing_note)

    def _requirements(self, call: Call) -> tuple[tuple[str, int], ...]:
        """The call's requirements at its current escalation step (empty: any agent)."""
        queue = self._queues.get(call.queue or "")
        if queue is None:
            return ()
        if call.step == 0:
            return _initial_requirements(queue, call.skills, call.language)
        step = queue.escalation[call.step - 1]
        return tuple(sorted((step.skills or {}).items()))

    def _escalate(self, call: Call, now: float) -> None:
        """Apply the escalation steps due; the caller keeps its place (enqueue time)."""
        queue = self._queues.get(call.queue or "")
        if queue is None or call.queue_entered_at is None:
            return
        due = sum(1 for s in queue.escalation if call.queue_entered_at + s.after_seconds <= now)
        if due > call.step:
            self._apply_step(call, queue, due, now)
            self._check_servable(call, now)
        self._schedule_escalation(call)

    def _schedule_escalation(self, call: Call) -> None:
        """Have tick visit a waiting call when its next escalation step falls due (the same
        sum as in :meth:`_escalate`, so a visit always finds the step due)."""
        queue = self._queues.get(call.queue or "")
        if (call.state is CallState.QUEUED and queue is not None
                and call.queue_entered_at is not None and call.step < len(queue.escalation)):
            due = call.queue_entered_at + queue.escalation[call.step].after_seconds
            heapq.heappush(self._escalations_due, (due, call.call_id))

    def _apply_step(self, call: Call, queue: QueueConfig, number: int, now: float) -> None:
        """Apply escalation step ``number`` (1 = the first) of ``queue`` to a waiting call."""
        step = queue.escalation[number - 1]
        if step.overflow in OVERFLOW_TARGETS and call.call_id in self._callbacks:
            # nobody is on the line of a callback entry to divert: it keeps its place, any agent
            call.step = number
        elif step.overflow == "voicemail" and queue.voicemail_box is not None:
            if call.divert("voicemail"):
                log.info("call %s: overflows from %s to voicemail", call.call_id, queue.name)
                self._dirty_calls.add(call.call_id)
                self._out.append(SendToVoicemail(call.node, call.call_id, call.channel,
                                                 queue.voicemail_box))
            return
        elif step.overflow == "callback":
            self._overflow_to_callback(call, queue, now)
            return
        elif step.overflow is not None:
            self._overflow(call, queue, step.overflow, now)
            return
        else:
            call.step = number
        self._dirty_calls.add(call.call_id)
        self._route_needed = True

    def _check_servable(self, call: Call, now: float) -> None:
        """A waiting caller no agent of the queue could ever take (skills, node), whatever the
        agents do now, would wait for nobody: say so (the console and wallboard show the note)
        and apply the next escalation step at once, an overflow too, instead of waiting for it."""
        tried: set[tuple[str, int]] = set()  # two queues overflowing to each other
        while call.state is CallState.QUEUED and (
            queue := self._queues.get(call.queue or "")
        ) is not None:
            requirements = self._requirements(call)
            if self._eligibility.able(queue.name, requirements, call.node).any():
                return
            problem = self._unservable(queue.name, requirements, call.node)
            if (queue.name, call.step) in tried:
                self._note(call, f"{problem}; the overflows lead back to this queue")
                return
            tried.add((queue.name, call.step))
            if call.step == len(queue.escalation):
                self._note(call, f"{problem}; no escalation step left")
                return
            self._note(call, f"{problem}; escalation step {call.step + 1} applied at once")
            self._apply_step(call, queue, call.step + 1, now)

    def _unservable(self, queue: str, requirements: tuple[tuple[str, int], ...],
                    node: str) -> str:
        """Why no agent of ``queue`` can take a call with ``requirements`` on ``node``."""
        if not self._eligibility.members(queue):
            return f"queue {queue!r} has no agents"
        needs = ", ".join(f"{name} >= {level}" for name, level in requirements)
        if not self._eligibility.able(queue, requirements, None).any():
            return f"no agent of queue {queue!r} has {needs}"
        if requirements:
            return f"no agent of queue {queue!r} with {needs} can be rung from node {node!r}"
        return f"no agent of queue {queue!r} can be rung from node {node!r}"

    def _note(self, call: Call, note: str) -> None:
        """Add a routing problem to the ones the console and wallboard show for this call."""
        call.routing_note = f"{call.routing_note}; {note}" if call.routing_note else note
        log.warning("call %s: %s", call.call_id, note)

    def _overflow(self, call: Call, queue: QueueConfig, target: str, now: float) -> None:
        log.info("call %s: overflows from %s to %s", call.call_id, queue.name, target)
        call.queue = target
        call.step = 0
        call.queue_entered_at = now
        self._dirty_calls.add(call.call_id)
        self._route_needed = True
        self._keep(call)

    def _overflow_to_callback(self, call: Call, queue: QueueConfig, now: float) -> None:
        """Replace the waiting caller by a callback entry keeping their place (enqueue time);
        the PBX tells the caller and hangs up. With no number to call, the caller waits on."""
        entry_id = f"{call.call_id}{CALLBACK_SUFFIX}"
        if not _is_number(call.caller) or entry_id in self._calls:
            log.warning("call %s: no callback overflow (caller number %r unusable or repeated); "
                        "waits on", call.call_id, call.caller)
            call.step = len(queue.escalation)
            return
        call.divert("callback")
        log.info("call %s: overflows from %s to a callback to %s", call.call_id, queue.name,
                 call.caller)
        entry = Call(entry_id, call.node, "", call.caller, call.did, now)
        entry.finish_ivr(queue.name, call.ivr_path, {**call.variables,
                                                      "CC_CALLBACK_OF": call.call_id},
                         call.priority, now)
        entry.enqueued_at = call.enqueued_at
        # its escalation steps are done: the callback is the last one
        entry.step, entry.skills, entry.language = len(queue.escalation), call.skills, call.language
        self._calls[entry_id] = entry
        self._callbacks[entry_id] = call.caller
        self._dirty_calls.update((call.call_id, entry_id))
        self._out.append(ConfirmCallback(call.node, call.call_id, call.channel))
        self._check_servable(entry, now)
        self._route_needed = True

    def _routable(self, call: Call) -> bool:
        # a caller who is leaving is never rung again, whatever the PBX reports meanwhile
        return (call.state is CallState.QUEUED and not call.leaving
                and self._nodes.get(call.node, True))

    def _sync_router(self, router: TrackingRouter, now: float) -> None:
        """Tell a tracking router what changed since the last pass (O(1) per change).

        An agent's occupancy is taken when it changes (e.g. becomes ready), not at each pass.
        """
        for call_id in self._dirty_calls:
            call = self._calls.get(call_id)
            if call is not None and self._routable(call):
                router.call_update(self._waiting(call))
            else:
                router.call_remove(call_id)
        for agent_id in self._dirty_agents:
            a = self._agents[agent_id]
            router.agent_update(AgentView(a.agent_id, a.nodes, a.queues, a.state, a.idle_since,
                                          a.occupancy(now), a.calls_handled))
        self._dirty_calls.clear()
        self._dirty_agents.clear()

    def _route(self, now: float) -> None:
        """Offer queued callers to ready agents (callers on a disconnected node wait)."""
        if isinstance(self._router, TrackingRouter):
            self._sync_router(self._router, now)
            self._offer(self._router.route(now), now)
            return
        waiting = [
            self._waiting(c)
            for c in self._calls.values()
            if self._routable(c)
        ]
        agents = [
            AgentView(a.agent_id, a.nodes, a.queues, a.state, a.idle_since, a.occupancy(now),
                      a.calls_handled)
            for a in self._agents.values()
            if a.state == "ready"
        ]
        if waiting and agents:
            self._offer(self._router.assign(waiting, agents, now), now)

    def _offer(self, pairs: list[tuple[str, str]], now: float) -> None:
        for call_id, agent_id in pairs:
            call, agent = self._calls.get(call_id), self._agents.get(agent_id)
            if call is None or agent is None or call.state is not CallState.QUEUED or (
                agent.state != "ready"
            ):
                log.error("router returned an invalid pair (%s, %s); skipped", call_id, agent_id)
                # a tracking router took both as offered: have it read them afresh
                self._dirty_calls.add(call_id)
                if agent is not None:
                    self._dirty_agents.add(agent_id)
                continue
            call.offer(agent_id, now)
            self._agent_changed(agent, agent.offer(call_id, now))
            device = agent.device_on(call.node)
            number = self._callbacks.get(call_id)
            if number is not None:
                self._out.append(CallbackAgent(call.node, call_id, device, number, self._config.acd.ring_timeout))
            else:
                self._out.append(RingAgent(call.node, call_id, call.channel, device,
                                           self._config.acd.ring_timeout, self._planned_recording(call)))

    def _planned_recording(self, call: Call) -> str | None:
        """The file ``call`` is recorded into once answered, if its policy records every call.
        (A callback is never planned: its conversation runs on the agent's channel, which the
        core does not know.)"""
        if call.recording_planned is None and recording_policy(
            self._config, self._queues.get(call.queue or ""), call.did, call.flow_recording
        ) == "all":
            call.recording_planned = self._recording_file(call)
        return call.recording_planned

    def _recorded_call(self, call_id: str) -> Call | None:
        """A live call, or one that ended while its agent wraps up (its CDR is not written yet)."""
        return self._calls.get(call_id) or next(
            (c for c in self._wrapping.values() if c.call_id == call_id), None)

    def transfer(self, call_id: str, destination: str, now: float) -> list[Decision]:
        """Transfer a waiting, rung or connected caller to the external number ``destination``.

        The call leaves ccserver at once: out of its queue (a rung agent is freed, a connected
        one starts wrap-up as at a hang-up) and its CDR says ``transferred`` (the number is in
        its variables as ``CC_TRANSFER_TO``). The PBX's later hang-up of the channel is a late
        event. ValueError naming the field and the reason, with nothing changed, if the call is
        not in a queue or with an agent or the destination is not a number.
        """
        call = self._calls.get(call_id)
        if call is None or call.state not in (CallState.QUEUED, CallState.OFFERED,
                                              CallState.CONNECTED):
            raise ValueError(f"call_id: {call_id!r} is not waiting in a queue or connected to an "
                             "agent")
        if call_id in self._callbacks:
            raise ValueError(f"call_id: {call_id!r} is a callback entry; it has no caller to "
                             "transfer")
        command = TransferCall(call.node, call.call_id, call.channel, destination)
        call.transferred_to = destination
        call.variables["CC_TRANSFER_TO"] = destination
        self._out.append(command)
        self._end(call, "normal_clearing", "system", now)
        # a transferred caller was served elsewhere: calling again does not resume their place
        self._abandoned.pop((call.caller, call.queue or ""), None)
        return self._flush(now)

    def record_on_demand(self, call_id: str) -> StartRecording:
        """Start recording a connected call whose policy is ``on_demand`` (the agent asked).

        ValueError (with the reason) if the call is not connected, already recorded, or its
        policy is not on demand.
        """
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED:
            raise ValueError(f"call {call_id!r} is not connected to an agent")
        if call.recording:
            raise ValueError(f"call {call_id!r} is already recorded")
        policy = recording_policy(self._config, self._queues.get(call.queue or ""), call.did,
                                  call.flow_recording)
        if policy != "on_demand":
            raise ValueError(f"the recording policy of call {call_id!r} is {policy!r}, not on_demand")
        call.recording = self._recording_file(call)
        return StartRecording(call.node, call.call_id, call.channel, call.recording)

    def _recording_file(self, call: Call) -> str:
        # Only ids: the call id (node + PBX key) made path-safe, plus a fresh random part.
        return f"{_UNSAFE.sub('-', call.call_id)}-{_UNSAFE.sub('', self._new_id())[:12]}.wav"

    def _flush(self, now: float) -> list[Decision]:
        if self._route_needed:
            self._route_needed = False
            self._route(now)
        if not self._tracking:
            self._dirty_calls.clear()
            self._dirty_agents.clear()
        out, self._out = self._out, []
        return out
