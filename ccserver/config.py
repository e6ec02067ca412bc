"""Configuration: one TOML file plus ``CCSERVER_*`` environment overrides, validated at start.

Override any key with ``CCSERVER_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``CCSERVER_DATABASE__DSN=postgresql://...`` or ``CCSERVER_ACD__RING_TIMEOUT=20``. A string key
(a host, a DSN, a path, a name) takes the variable's text as it is; any other key's value is
parsed as a TOML value (numbers, booleans, arrays, inline tables) when it parses, else kept as text.
"""

from __future__ import annotations

import os
import tomllib
import types
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import platformdirs
from pydantic import (
    BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator,
)

ENV_PREFIX = "CCSERVER_"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    #: where the FastAGI server listens for Asterisk's AGI(agi://...) calls
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
    #: where the ESL outbound-socket server listens for FreeSWITCH's ``socket`` application
    esl_outbound_host: str = "127.0.0.1"
    esl_outbound_port: int = Field(8084, ge=0, le=65535)
    state_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_state_dir("ccserver")))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DatabaseConfig(_Strict):
    #: PostgreSQL DSN; empty means "run an embedded Postgres under state_dir"
    dsn: str = ""
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _pool(self) -> "DatabaseConfig":
        if self.pool_max < self.pool_min:
            raise ValueError("pool_max must be >= pool_min")
        return self


class CdrConfig(_Strict):
    #: seconds between two flushes of pending records to Postgres
    flush_interval: float = Field(1.0, gt=0, le=1.0)
    batch_size: int = Field(500, ge=1)
    #: durable local spool used while Postgres is unreachable; default: <state_dir>/spool
    spool_dir: Path | None = None


#: pause reason ccserver sets after a busy / unreachable / failing agent leg
UNAVAILABLE_REASON = "unavailable"
#: pause reason ccserver sets on agents whose wrap-up was cut short by ccserver stopping
SHUTDOWN_REASON = "shutdown"
#: a pause reason: letters, digits, space, ``.``, ``-``, ``_``
PauseReason = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w .-]+$")]


def _repeated(v: list[str]) -> list[str]:
    return sorted({s for s in v if v.count(s) > 1})


class AcdConfig(_Strict):
    #: seconds an agent's phone rings before ring-no-answer
    ring_timeout: int = Field(15, ge=1, le=300)
    #: the reason code an agent is paused with after ring-no-answer
    rona_pause_reason: str = "no answer"
    #: consecutive ring-no-answers after which the agent is paused with ``rona_pause_reason``
    max_misses: int = Field(1, ge=1, le=100)
    #: the skill names agents and requirements may use (a language is a skill too, e.g. "en")
    skills: list[str] = []
    #: the reasons an agent (or a supervisor for them) may pause with; the reasons ccserver sets
    #: itself (``rona_pause_reason``, "unavailable", "shutdown") are not among them, so reports
    #: tell an agent's choice from the system's
    pause_reasons: list[PauseReason] = Field(
        ["break", "lunch", "meeting", "training", "after call work"], min_length=1, max_length=100)

    @field_validator("skills")
    @classmethod
    def _unique_skills(cls, v: list[str]) -> list[str]:
        if dup := _repeated(v):
            raise ValueError(f"skill names must be unique, repeated: {dup}")
        return v

    @field_validator("pause_reasons")
    @classmethod
    def _agent_pause_reasons(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if dup := _repeated(v):
            raise ValueError(f"must be unique, repeated: {dup}")
        system = {info.data.get("rona_pause_reason"), UNAVAILABLE_REASON, SHUTDOWN_REASON}
        if taken := sorted(system & set(v)):
            raise ValueError(f"{taken} are set by ccserver itself, not an agent's choice")
        return v


#: a skill proficiency or a minimum level: 0-100
SkillLevel = Annotated[int, Field(ge=0, le=100)]
#: routing strategies of a queue (which of the eligible agents gets the call)
Strategy = Literal["longest_idle", "best_skill", "least_occupied", "fewest_calls", "round_robin"]
#: record every answered call, none, or only when the agent asks (``ccserver.recording.policy``)
RecordingPolicy = Literal["all", "none", "on_demand"]
#: at most this many (skill, minimum level) pairs in one requirement set
MAX_REQUIREMENTS = 8
#: escalation overflow targets that are not queues (so no queue may be named so)
OVERFLOW_TARGETS = ("voicemail", "callback")


class EscalationStep(_Strict):
    """After ``after_seconds`` in the queue, widen the call's requirements (exactly one of
    ``skills``, ``any`` or ``overflow``)."""

    after_seconds: float = Field(gt=0)
    #: replace the call's requirements with these (skill -> minimum level)
    skills: dict[str, SkillLevel] | None = Field(None, max_length=MAX_REQUIREMENTS)
    #: any agent of the queue
    any: bool = False
    #: move the caller to this queue (keeping their place by enqueue time), or ``voicemail``
    #: (the queue's ``voicemail_box``) or ``callback`` (the caller is called back, keeping
    #: their place, after a "we will call you back" prompt)
    overflow: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "EscalationStep":
        kinds = (self.skills is not None) + self.any + (self.overflow is not None)
        if kinds != 1:
            raise ValueError("a step needs exactly one of skills, any = true, overflow")
        return self


class QueueConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    wrapup_seconds: float = Field(5.0, ge=0, le=3600)
    record: bool = False
    #: recording policy; unset: ``all`` when ``record`` is true, else ``none``
    recording: RecordingPolicy | None = None
    #: service-level threshold in seconds (e.g. 20 for "80/20")
    service_level_seconds: int = Field(20, ge=1)
    #: share of callers to answer within service_level_seconds (the "80" of "80/20"); below it
    #: the console and wallboard raise a breach alert
    service_level_target: float = Field(0.8, gt=0, le=1)
    #: callers who hang up within this many seconds of entering the queue are short abandons,
    #: left out of the live service level and abandon rate (0 = every abandon counts)
    abandon_grace_seconds: float = Field(0.0, ge=0, le=3600)
    strategy: Strategy = "longest_idle"
    #: requirements of every call of this queue (skill -> minimum level); the IVR's add to them
    skills: dict[str, SkillLevel] = Field({}, max_length=MAX_REQUIREMENTS)
    #: priority of its callers when the IVR sets none (higher is served first)
    priority: int = 0
    #: steps that widen requirements over wait time, in increasing ``after_seconds``
    escalation: list[EscalationStep] = []
    #: a caller who abandoned and calls back within this many seconds gets their old place
    #: (0 = off)
    resume_window: float = Field(0.0, ge=0)
    #: expected handle time (talk + wrap-up) used for wait estimates until calls were measured
    default_handle_seconds: float = Field(180.0, gt=0)
    #: mailbox (in the PBX's ``default`` voicemail context) of an ``overflow = "voicemail"`` step
    voicemail_box: str | None = Field(None, pattern=r"^[0-9A-Za-z_-]{1,32}$")

    @field_validator("escalation")
    @classmethod
    def _ordered_steps(cls, v: list[EscalationStep]) -> list[EscalationStep]:
        times = [s.after_seconds for s in v]
        if times != sorted(set(times)):
            raise ValueError("steps must have strictly increasing after_seconds")
        if any(s.overflow is not None for s in v[:-1]):
            raise ValueError("overflow can only be the last step")
        return v


class AgentConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str
    #: PBX node hosting the agent's phone and its dial string there (Asterisk: PJSIP/1001)
    node: str
    device: str
    #: the same phone reached from other nodes (node -> dial string there, e.g. over an
    #: inter-node trunk), so calls on those nodes can be offered to this agent too
    devices: dict[str, str] = {}
    queues: list[str]
    #: proficiency per skill, 0-100 (a missing skill is 0)
    skills: dict[str, SkillLevel] = {}
    #: per queue, which one the agent serves first: 1 (first, the default) to 9
    priorities: dict[str, Annotated[int, Field(ge=1, le=9)]] = {}
    #: start logged in and ready (demo / simple sites)
    auto_login: bool = True


class IvrConfig(_Strict):
    flows_dir: Path = Path("ivr_flows")
    #: DID -> flow name; "*" is the flow for any other DID
    routes: dict[str, str] = {"*": "main"}


class SimulatorConfig(_Strict):
    """The built-in PBX simulator, used when no PBX node is listed in ``hardware/``."""

    enabled: Literal["auto", "on", "off"] = "auto"
    ami_port: int = Field(0, ge=0, le=65535)
    #: new simulated calls per minute
    calls_per_minute: float = Field(12.0, gt=0, le=6000)
    agents: int = Field(3, ge=1, le=1000)
    #: seconds a simulated agent lets the phone ring before answering
    answer_delay: float = Field(2.0, ge=0)
    #: probability that a simulated agent does not answer at all
    no_answer_ratio: float = Field(0.1, ge=0, le=1)
    #: seconds a simulated caller waits in queue before giving up
    patience: float = Field(40.0, gt=0)
    talk_time: float = Field(8.0, gt=0)
    seed: int | None = None


class RecordingConfig(_Strict):
    """Recording policy overrides and retention."""

    #: DID -> policy, overriding the queue's (the IVR plays the notice when it records)
    did_policies: dict[str, RecordingPolicy] = {}
    #: recordings (files and rows) older than this many days are deleted; unset: kept forever
    retention_days: float | None = Field(None, gt=0)
    #: seconds between two retention runs inside the server
    purge_interval_seconds: float = Field(3600.0, ge=1)


class ReportsConfig(_Strict):
    """Daily / weekly / monthly reports (``ccserver.reports``)."""

    #: IANA time zone whose calendar days, weeks (from Monday) and months the reports count in
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. Europe/Paris)") from None
        return v


class ApiConfig(_Strict):
    """The HTTP API, live WebSocket and pages."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: send the session cookie only over HTTPS (set true behind TLS)
    cookie_secure: bool = False
    session_hours: int = Field(12, ge=1, le=24 * 30)
    #: failed log-ins allowed per client address and per user name within login_window_seconds
    login_failures: int = Field(5, ge=1, le=1000)
    login_window_seconds: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: changes buffered per WebSocket client before it is dropped as too slow
    ws_queue_size: int = Field(256, ge=8, le=100_000)
    #: seconds between KPI ticks on the WebSocket
    tick_seconds: float = Field(1.0, gt=0, le=60)
    #: KPIs (service level, ASA, abandon rate) cover calls ended within this many seconds
    kpi_window_seconds: float = Field(3600.0, gt=0)


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    cdr: CdrConfig = CdrConfig()
    acd: AcdConfig = AcdConfig()
    ivr: IvrConfig = IvrConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    api: ApiConfig = ApiConfig()
    recording: RecordingConfig = RecordingConfig()
    reports: ReportsConfig = ReportsConfig()
    hardware_dir: Path = Path("hardware")
    queues: list[QueueConfig] = [QueueConfig(name="support")]
    agents: list[AgentConfig] = []

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, v: list[QueueConfig]) -> list[QueueConfig]:
        names = [q.name for q in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"queue names must be unique, repeated: {sorted(dup)}")
        if reserved := sorted(set(names) & set(OVERFLOW_TARGETS)):
            raise ValueError(f"queue names {reserved} are reserved (escalation overflow targets)")
        return v

    @model_validator(mode="after")
    def _agents_reference_queues(self) -> "Config":
        known = {q.name for q in self.queues}
        ids = [a.id for a in self.agents]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"agents: ids must be unique, repeated: {sorted(dup)}")
        for i, a in enumerate(self.agents):
            unknown = [q for q in a.queues if q not in known]
            if unknown:
                raise ValueError(f"agents[{i}].queues: unknown queue(s) {unknown}")
            stray = [q for q in a.priorities if q not in a.queues]
            if stray:
                raise ValueError(f"agents[{i}].priorities: not one of the agent's queues {stray}")
        # With no agents listed the simulator brings its own (demo); start-up checks the rest.
        if self.agents:
            served = {q for a in self.agents for q in a.queues}
            for i, q in enumerate(self.queues):
                if q.name not in served:
                    raise ValueError(f"queues[{i}]: queue {q.name!r} has no agents "
                                     "(list it in some agent's queues)")
        self._check_routing()
        return self

    def _check_routing(self) -> None:
        """Skills exist; every requirement set of a queue can be met by one of its agents."""
        skills = set(self.acd.skills)
        for i, a in enumerate(self.agents):
            if bad := sorted(set(a.skills) - skills):
                raise ValueError(f"agents[{i}].skills: unknown skill(s) {bad} (see acd.skills)")
        for i, q in enumerate(self.queues):
            sets = [(f"queues[{i}].skills", q.skills)]
            for j, step in enumerate(q.escalation):
                if step.skills is not None:
                    sets.append((f"queues[{i}].escalation[{j}].skills", step.skills))
                if step.overflow == "voicemail" and q.voicemail_box is None:
                    raise ValueError(f"queues[{i}].voicemail_box: needed by "
                                     f"queues[{i}].escalation[{j}].overflow = 'voicemail'")
                if step.overflow is not None and step.overflow not in OVERFLOW_TARGETS and (
                    step.overflow == q.name or self.queue(step.overflow) is None
                ):
                    raise ValueError(f"queues[{i}].escalation[{j}].overflow: unknown queue or "
                                     f"the queue itself: {step.overflow!r}")
            members = [a for a in self.agents if q.name in a.queues]
            for key, req in sets:
                if bad := sorted(set(req) - skills):
                    raise ValueError(f"{key}: unknown skill(s) {bad} (see acd.skills)")
                # with no agents configured (demo) there is nobody to match yet
                if req and members and not any(
                    all(a.skills.get(s, 0) >= lvl for s, lvl in req.items()) for a in members
                ):
                    raise ValueError(f"{key}: no agent of queue {q.name!r} meets {dict(req)}")

    def queue(self, name: str) -> QueueConfig | None:
        return next((q for q in self.queues if q.name == name), None)

    @property
    def spool_dir(self) -> Path:
        return self.cdr.spool_dir or self.server.state_dir / "spool"


def _unwrap(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation admits, ``Annotated`` metadata and ``None`` left out."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(t for arg in get_args(annotation) if arg is not type(None) for t in _unwrap(arg))
    return (annotation,)


def _key_type(path: list[str]) -> tuple[Any, ...]:
    """The types the configuration key at ``path`` admits (empty: no such key)."""
    options: tuple[Any, ...] = (Config,)
    for part in path:
        if len(options) != 1:
            return ()
        (current,) = options
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return ()
            options = _unwrap(field.annotation)
        elif get_origin(current) is dict:
            options = _unwrap(get_args(current)[1])
        else:
            return ()
    return options


def _is_text(option: Any) -> bool:
    return option in (str, Path) or (
        get_origin(option) is Literal and all(isinstance(v, str) for v in get_args(option)))


def _env_value(raw: str, path: list[str]):
    """A string key keeps the text (``agi_host=true`` is a host name, not a boolean)."""
    if any(_is_text(t) for t in _key_type(path)):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict, environ: dict[str, str]) -> dict:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key.startswith(ENV_PREFIX + "TEST_"):
            continue
        if key == ENV_PREFIX + "CONFIG":
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        if len(path) == 1 and path[0] not in Config.model_fields:
            # not a configuration key: e.g. CCSERVER_AMI_SECRET_PBX1, a secret a hardware/ node
            # file names (its value is never read or shown here)
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {'.'.join(path[:-1])} is not a section")
            node = child
        node[path[-1]] = _env_value(raw, path)
    return data


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    ``path`` defaults to ``$CCSERVER_CONFIG``, else ``./ccserver.toml`` if it exists, else none.
    Raises :class:`ConfigError` naming the key and the reason.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(environ[ENV_PREFIX + "CONFIG"])
    if path is None and Path("ccserver.toml").is_file():
        path = Path("ccserver.toml")
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    data = _apply_env(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(where + _format_errors(e)) from None
