"""Wiring: PBX adapters -> core -> (commands back to the PBX, rows to the CDR writer).

This is the only module that knows every part; each part stays ignorant of the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from ccserver.acd.skills import SkillsRouter
from ccserver.acd.state import warm as warm_acd_kernel
from ccserver.api.metrics import Histogram
from ccserver.api.server import ApiServer, LiveSource
from ccserver.api.store import Store
from ccserver.cdr.record import AgentStateChange, CallRecord
from ccserver.cdr.writer import CdrWriter
from ccserver.config import AgentConfig, Config
from ccserver.core.center import ContactCenter
from ccserver.core.commands import Command, RingAgent, StartRecording
from ccserver.core.events import (
    AgentLegFailed,
    DomainEvent,
    NodeConnectionChanged,
    RecordingFailed,
    RecordingStarted,
    RecordingStopped,
    SpyEnded,
    SpyModeChanged,
    SpyStarted,
)
from ccserver.db.migrate import MigrationError, migrate, migrations_dir, status
from ccserver.db.pool import DatabaseRefused, open_pool, resolve_dsn, wait_for_pool
from ccserver.hardware import SIM_NODE, FreeSwitchNodeConfig, NodeConfig, check_site, load_nodes, simulator_on
from ccserver.ivr.checks import SiteNames
from ccserver.ivr.flow import Flow, FlowError, queues_of
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.prompts import MissingPrompts
from ccserver.ivr.store import FlowStore
from ccserver.ivr.sync import follow_store
from ccserver.pbx.asterisk.adapter import AsteriskAdapter
from ccserver.pbx.asterisk.fastagi import AgiSession, FastAgiServer, serve_ivr
from ccserver.pbx.base import PbxAdapter, why
from ccserver.pbx.freeswitch.adapter import FreeSwitchAdapter
from ccserver.pbx.freeswitch.outbound import FsOutboundServer, SoundFiles
from ccserver.recording.policy import may_be_recorded, on_demand_possible
from ccserver.recording.retention import retention_loop
from ccserver.recording.service import Recorder
from ccserver.recording.store import RecordingStore
from ccserver.stats.history import rebuild_window
from ccserver.stats.live import KpiWindow
from ccserver.supervision.service import SupervisionDesk

log = logging.getLogger(__name__)

#: events kept while the core is being built at start-up (a few seconds of a busy site)
EARLY_EVENTS_MAX = 50_000

#: how often timers (wrap-up ends) are evaluated
TICK_SECONDS = 0.2


class StartError(Exception):
    """The server cannot start; the message names the cause and never a secret."""


@dataclass
class Stats:
    """Counters printed in the periodic status line."""

    events: int = 0
    records: int = 0
    by_disposition: dict[str, int] = field(default_factory=dict)


class Server:
    """One running ccserver: database, core, FastAGI, PBX adapters and (in demo mode) the simulator."""

    def __init__(self, config: Config, nodes: list[NodeConfig | FreeSwitchNodeConfig], clock=time.time):
        self.config = config
        self.nodes = nodes
        self.clock = clock
        self.stats = Stats()
        self.adapters: dict[str, PbxAdapter] = {}
        self.center: ContactCenter | None = None
        #: events that came before the core existed: the IVR listeners start first (the simulator
        #: needs their port, a real PBX may already be sending calls) and the kernel warms meanwhile
        self._early_events: list[DomainEvent] = []
        self.writer: CdrWriter | None = None
        self.fastagi: FastAgiServer | None = None
        self.esl_outbound: FsOutboundServer | None = None
        self.simulator = None
        self._pool = None
        self._tasks: list[asyncio.Task] = []
        self._command_tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self.demo_desk = None
        self.api: ApiServer | None = None
        #: the IVR flows new calls get (files, then versions published in Postgres); set by start()
        self.flows: FlowLibrary | None = None
        #: prompts a PBX could not open (logged once per prompt and flow node, shown as alerts)
        self.missing_prompts = MissingPrompts()
        #: time the core takes per event (exposed on /metrics)
        self.decision_latency = Histogram()
        #: live queue KPIs; rebuilt from Postgres by start() before the first event
        self.kpis = KpiWindow(config.api.kpi_window_seconds)
        self.recorder: Recorder | None = None
        self.supervision: SupervisionDesk | None = None
        #: recording and spy facts, applied in arrival order by one task (start before stop), and
        #: the CDR rows, which close the recordings whose stop the PBX never reported
        self._media_events: asyncio.Queue[DomainEvent | CallRecord] = asyncio.Queue()

    @property
    def simulated(self) -> bool:
        return simulator_on(self.config, self.nodes)

    async def start(self) -> None:
        """Check the site, then bring everything up; waits for Postgres while it is unreachable.

        Raises :class:`~ccserver.config.ConfigError` before anything starts when the
        configuration and ``hardware/`` disagree, :class:`StartError` when the IVR flows are
        invalid (also before anything starts), Postgres refuses the connection or a migration fails.
        """
        cfg = self.config
        check_site(cfg, self.nodes)
        try:
            library = self.flows = FlowLibrary(cfg.ivr.flows_dir, cfg.ivr.routes, SiteNames.of(cfg))
        except FlowError as e:
            raise StartError("IVR flows are invalid:\n  " + "\n  ".join(e.problems)) from e
        dsn = await resolve_dsn(cfg)
        try:
            self._pool = await wait_for_pool(dsn, cfg.database.pool_min, cfg.database.pool_max)
        except DatabaseRefused as e:
            raise StartError(str(e)) from e
        try:
            applied = await migrate(self._pool, migrations_dir())
        except (MigrationError, asyncpg.PostgresError) as e:
            raise StartError(f"database migrations failed: {e}") from e
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        self.writer = CdrWriter(
            self._pool, cfg.spool_dir, flush_interval=cfg.cdr.flush_interval, batch_size=cfg.cdr.batch_size
        )
        await self.writer.start()
        # before any event: the last window's figures survive a restart
        self.kpis = await rebuild_window(self._pool, cfg.api.kpi_window_seconds, self.clock())

        # versions admins publish in Postgres replace the files' flows for new calls
        self._tasks.append(asyncio.create_task(follow_store(library, FlowStore(self._pool)), name="ccserver-ivr-sync"))

        def run_ivr(session):
            return serve_ivr(session, library, self.on_event, self.clock, self.estimate_wait, self.may_record,
                             self.missing_prompts)

        self.fastagi = FastAgiServer(cfg.server.agi_host, cfg.server.agi_port,
                                     lambda s: self._serve_agi(s, run_ivr))
        agi_port = await self.fastagi.start()
        log.info("FastAGI listening on %s:%d", cfg.server.agi_host, agi_port)
        fs_nodes = [n for n in self.nodes if isinstance(n, FreeSwitchNodeConfig)]
        if fs_nodes:
            self.esl_outbound = FsOutboundServer(
                cfg.server.esl_outbound_host, cfg.server.esl_outbound_port,
                run_ivr,
                default_node=fs_nodes[0].name if len(fs_nodes) == 1 else None,
                sounds={n.name: SoundFiles(n.sound_dir, n.sound_extension) for n in fs_nodes},
            )
            esl_port = await self.esl_outbound.start()
            log.info("ESL outbound socket listening on %s:%d", cfg.server.esl_outbound_host, esl_port)

        secrets_by_node: dict[str, str] = {n.name: n.secret() for n in self.nodes}
        if self.simulated:
            sim_node, sim_secret, sim_agents = await self._start_simulator(agi_port)
            self.nodes = [*self.nodes, sim_node]
            secrets_by_node[sim_node.name] = sim_secret
            if not cfg.agents:
                cfg = self.config = cfg.model_copy(update={"agents": sim_agents})

        # compile (or load the cached) kernel now, off the loop, so no live call pays for it
        await asyncio.to_thread(warm_acd_kernel)
        self.center = ContactCenter(cfg, now=self.clock(), router=SkillsRouter.from_config(cfg))
        # every node is down until its adapter has logged in and resynced: nothing is rung before
        now = self.clock()
        for node in self.nodes:
            self._to_core(NodeConnectionChanged(node.name, False, now))
        early, self._early_events = self._early_events, []
        for event in early:  # e.g. an IVR that ended meanwhile: its caller must still be queued
            self._to_core(event)
        for node in self.nodes:
            make = FreeSwitchAdapter if node.kind == "freeswitch" else AsteriskAdapter
            adapter = make(node, self.on_event, secrets_by_node[node.name], clock=self.clock)
            self.adapters[node.name] = adapter
            await adapter.start()
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="ccserver-tick"))
        self._start_media(cfg)
        if cfg.api.enabled:
            self.api = ApiServer(cfg.api, self._pool, LiveSource(
                config=lambda: self.config, center=lambda: self.center,
                nodes=lambda: {n: a.connected for n, a in self.adapters.items()},
                spool_depth=lambda: self.writer.spool_depth, dispatch=self._dispatch, clock=self.clock,
                decision_latency=self.decision_latency, supervision=self.supervision, recorder=self.recorder,
                run_command=self.run_command, alerts=self.alerts,
                kpis=self.kpis,
            ))
            try:
                log.info("HTTP API and pages on http://%s:%d/", cfg.api.host, await self.api.start())
            except OSError as e:
                # Calls matter more than screens: keep serving them, say loudly what is missing.
                log.error("HTTP API disabled: cannot listen on %s:%d: %s", cfg.api.host, cfg.api.port, e)
                self.api = None

    async def _start_simulator(self, agi_port: int) -> tuple[NodeConfig, str, list[AgentConfig]]:
        from ccserver.demo import DemoDesk, make_caller_script
        from ccserver.sim.asterisk import SimAgent, SimulatedAsterisk, run_traffic

        sc = self.config.simulator
        rng = random.Random(sc.seed)
        secret = secrets.token_urlsafe(24)
        devices = [f"PJSIP/{1001 + i}" for i in range(sc.agents)]
        self.simulator = SimulatedAsterisk(
            node=SIM_NODE,
            agi_host=self.config.server.agi_host if self.config.server.agi_host != "0.0.0.0" else "127.0.0.1",
            agi_port=agi_port,
            agents=[SimAgent(device=d, answer_delay=sc.answer_delay) for d in devices],
            ami_user="ccserver",
            ami_secret=secret,
            ami_port=sc.ami_port,
        )
        ami_port = await self.simulator.start()
        log.info("demo mode: simulated Asterisk node %r on AMI port %d with %d agents", SIM_NODE, ami_port, sc.agents)
        node = NodeConfig(
            name=SIM_NODE, kind="asterisk", host="127.0.0.1", ami_port=ami_port, ami_user="ccserver",
            ami_secret_env="CCSERVER_SIM_SECRET", ping_interval=5, ping_timeout=3,
        )
        queue = self.config.queues[0].name
        agents = [
            AgentConfig(id=d.split("/")[1], name=f"Agent {d.split('/')[1]}", node=SIM_NODE, device=d, queues=[queue])
            for d in devices
        ]
        self.demo_desk = DemoDesk({a.id for a in agents}, self.config.acd.rona_pause_reason)
        make_script = make_caller_script(sc, list(self.simulator.agents.values()))
        self._tasks.append(
            asyncio.create_task(
                run_traffic(self.simulator, sc.calls_per_minute, rng, make_script, self._stopping),
                name="ccserver-demo-traffic",
            )
        )
        return node, secret, agents

    def _start_media(self, cfg: Config) -> None:
        """Recording registry, supervision and (if configured) the retention schedule."""
        roots = {n.name: Path(n.recording_root) for n in self.nodes}
        store = RecordingStore(self._pool)
        self.recorder = Recorder(store, roots, lambda: self.center, self.run_command, self.clock)
        self.supervision = SupervisionDesk(Store(self._pool), lambda: self.center, self.run_command,
                                           self.clock)
        self.supervision.listeners.append(lambda change: self.api and self.api.api.hub.publish(change))
        self._tasks.append(asyncio.create_task(self._media_loop(), name="ccserver-media"))
        if cfg.recording.retention_days is not None:
            self._tasks.append(asyncio.create_task(
                retention_loop(store, roots, cfg.recording.retention_days,
                               cfg.recording.purge_interval_seconds, self.clock),
                name="ccserver-retention"))

    async def _media_loop(self) -> None:
        while True:
            await self._apply_media(await self._media_events.get())

    async def _apply_media(self, event: DomainEvent | CallRecord) -> None:
        try:
            await self.recorder.on_event(event)
            await self.supervision.on_event(event)
        except Exception:
            log.exception("recording / supervision bookkeeping of %s failed", type(event).__name__)

    async def run_command(self, command: Command) -> None:
        """Carry out one command now; raise if the node is unknown or refuses it (API requests)."""
        adapter = self.adapters.get(command.node)
        try:
            if adapter is None:
                raise LookupError(f"no PBX node named {command.node!r}")
            await adapter.execute(command)
        except Exception as e:
            self._refused(command, e)
            raise

    def _refused(self, command: Command, error: Exception) -> None:
        """A refused start of a recording reaches the core (the CDR names no file) and the
        recorder (its alert), whoever asked for it."""
        if isinstance(command, StartRecording):
            self.on_event(RecordingFailed(command.call_id, command.file, why(error), self.clock()))

    def alerts(self) -> tuple[str, ...]:
        """Standing problems staff see on the console: the IVR flows', missing prompts,
        recordings that fail to start, and (where a call may be recorded on demand) nodes that would refuse that."""
        on_demand = on_demand_possible(self.config, self.flows.snapshot().values())
        nodes = tuple(p for a in self.adapters.values() for p in a.recording_problems) if on_demand else ()
        return (*self.flows.site_problems, *self.missing_prompts.alerts(), *nodes,
                *(self.recorder.problems() if self.recorder else ()))

    def estimate_wait(self, queue: str, priority: int | None,
                      skills: tuple[tuple[str, int], ...]) -> tuple[int, float | None] | None:
        """A queue announcement's figures (see ContactCenter.estimate_wait); None before start."""
        if self.center is None:
            return None
        return self.center.estimate_wait(queue, priority, skills, self.clock())

    async def _serve_agi(self, session: AgiSession,
                         run_ivr: Callable[[AgiSession], Awaitable[object]]) -> object:
        """A FastAGI session: its channel is a call of ours (the node learns it if no AMI event
        said so yet), then the IVR runs on it."""
        adapter = self.adapters.get(session.node)
        if isinstance(adapter, AsteriskAdapter):
            adapter.ivr_started(session.env.get("uniqueid"))
        return await run_ivr(session)

    def may_record(self, did: str, flow: Flow) -> bool:
        """Whether a call on ``did`` running ``flow`` can be recorded (its notice plays only then)."""
        return may_be_recorded(self.config, did, queues_of(flow), flow.recording)

    def on_event(self, event: DomainEvent) -> None:
        """The single entry point of PBX facts into the core (the EventSink of every adapter)."""
        self.stats.events += 1
        if isinstance(event, (RecordingStarted, RecordingFailed, RecordingStopped, SpyStarted,
                              SpyEnded, SpyModeChanged)):
            self._media_events.put_nowait(event)
        if self.center is None:
            if len(self._early_events) < EARLY_EVENTS_MAX:
                self._early_events.append(event)
            else:
                log.error("start-up: %s dropped, %d events already wait for the core", type(event).__name__,
                          EARLY_EVENTS_MAX)
            return
        self._to_core(event)

    def _to_core(self, event: DomainEvent) -> None:
        assert self.center is not None
        center = self.center
        self._dispatch(self.decision_latency.time(lambda: center.handle(event)))

    def _dispatch(self, decisions) -> None:
        for d in decisions:
            if isinstance(d, (CallRecord, AgentStateChange)):
                self._count_kpis(d)
                if isinstance(d, CallRecord):
                    if d.recording is not None:  # closes what the PBX left open; most calls have none
                        self._media_events.put_nowait(d)
                    self.stats.records += 1
                    self.stats.by_disposition[d.disposition] = self.stats.by_disposition.get(d.disposition, 0) + 1
                    log.info(
                        "CDR %s caller=%s queue=%s agent=%s %s (%s by %s) talk=%.1fs",
                        d.call_id, d.caller, d.queue, d.agent_id, d.disposition, d.hangup_cause, d.hangup_by,
                        d.talk_seconds,
                    )
                elif self.demo_desk is not None:
                    self.demo_desk.observe(d)
                if self.api is not None:
                    self.api.api.observe(d)
                self.writer.submit(d)
            elif isinstance(d, StartRecording) and self.recorder is not None and (
                    problem := self.recorder.problem(d.node)) is not None:
                # nothing is started on the PBX that could not be stored: the CDR names no file
                self.on_event(RecordingFailed(d.call_id, d.file, problem, self.clock()))
            else:
                if isinstance(d, RingAgent) and d.record_file is not None and self.recorder is not None and (
                        self.recorder.problem(d.node) is not None):
                    d = replace(d, record_file=None)  # refused at the answer, with the reason
                task = asyncio.create_task(self._execute(d))
                self._command_tasks.add(task)
                task.add_done_callback(self._command_tasks.discard)

    def _count_kpis(self, row: CallRecord | AgentStateChange) -> None:
        """Feed the live KPIs: call records, and a queued caller's answer the moment the agent
        picks up (not when the call ends)."""
        if isinstance(row, CallRecord):
            self.kpis.observe(row)
            return
        # the call is still live: its queue and wait are read from the core's view of it
        call = self.center.calls.get(row.call_id or "") if row.state == "on_call" else None
        if call is not None and call.queue is not None and call.enqueued_at is not None:
            # the call's answer time: a call adopted at a resync keeps the one it had
            self.kpis.answered(call.call_id, call.queue, call.enqueued_at,
                               call.answered_at if call.answered_at is not None else row.at)

    async def _execute(self, command) -> None:
        adapter = self.adapters.get(command.node)
        try:
            if adapter is None:
                raise LookupError(f"no PBX node named {command.node!r}")
            await adapter.execute(command)
        except Exception as e:  # a refused command must not take the server down
            log.warning("command %s on node %s failed: %s", type(command).__name__, command.node, why(e))
            self._refused(command, e)
            if isinstance(command, RingAgent) and adapter is None:
                self.on_event(AgentLegFailed(command.call_id, command.device, "error", self.clock()))

    async def _tick_loop(self) -> None:
        last_status = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = self.clock()
            try:
                # timed like events: wrap-ups ending, escalations and offer guards decide here
                self._dispatch(self.decision_latency.time(lambda: self.center.tick(now)))
                if self.demo_desk is not None:
                    for agent_id in self.demo_desk.due(now):
                        self._dispatch(self.decision_latency.time(
                            lambda: self.center.ready(agent_id, now)))
                if now - last_status >= 10:
                    last_status = now
                    self._log_status()
            except Exception:
                # one bad tick must not stop the timers (wrap-up ends, offer guards) for good
                log.exception("tick at %.3f failed; continuing", now)

    def _log_status(self) -> None:
        center = self.center
        waiting = sum(1 for c in center.calls.values() if c.state in ("queued", "offered"))
        states: dict[str, int] = {}
        for a in center.agents.values():
            states[a.state] = states.get(a.state, 0) + 1
        log.info(
            "status: %d live call(s), %d waiting; agents %s; CDRs %s (spool %d); nodes %s",
            len(center.calls), waiting, states, self.stats.by_disposition, self.writer.spool_depth,
            {n: ("up" if a.connected else "down") for n, a in self.adapters.items()},
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self.api is not None:
            await self.api.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for adapter in self.adapters.values():
            await adapter.stop()
        if self.simulator is not None:
            await self.simulator.stop()
        if self.fastagi is not None:
            await self.fastagi.stop()
        if self.esl_outbound is not None:
            await self.esl_outbound.stop()
        if self._command_tasks:
            await asyncio.gather(*self._command_tasks, return_exceptions=True)
        if self.center is not None:
            # rows the core still owes (wrap-ups, calls waiting for their IVR report), no routing
            self._dispatch(self.center.drain(self.clock()))
        # what the media task had not applied yet, the drained rows (their recordings) among it
        while self.recorder is not None and not self._media_events.empty():
            await self._apply_media(self._media_events.get_nowait())
        if self.writer is not None:
            await self.writer.stop()
        if self._pool is not None:
            await self._pool.close()


async def run_server(config: Config, duration: float | None = None) -> int:
    """``ccserver run``: start, serve until Ctrl-C / SIGTERM (or ``duration``), stop cleanly."""
    nodes = load_nodes(config.hardware_dir)
    server = Server(config, nodes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Ctrl-C must work while the start waits for Postgres too
    starting = asyncio.create_task(server.start(), name="ccserver-start")
    stopped = asyncio.create_task(stop.wait(), name="ccserver-stop-signal")
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a configuration error ends the run here
            async with asyncio.timeout(duration):
                await stopped
    except TimeoutError:
        pass
    finally:
        for task in (starting, stopped):
            task.cancel()
        await asyncio.gather(starting, stopped, return_exceptions=True)
        await server.stop()
    return 0


async def run_migrate(config: Config, status_only: bool = False) -> int:
    """``ccserver migrate``: apply pending migrations (or list them) and exit."""
    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        if status_only:
            for line in await status(pool, migrations_dir()):
                print(line)
        else:
            applied = await migrate(pool, migrations_dir())
            print("applied: " + (", ".join(applied) if applied else "nothing, the schema is up to date"))
    finally:
        await pool.close()
    return 0
