"""Configuration: one TOML file plus ``CCSERVER_*`` environment overrides, validated at start.

Override any key with ``CCSERVER_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``CCSERVER_DATABASE__DSN=postgresql://...`` or ``CCSERVER_ACD__RING_TIMEOUT=20``. Values from
the environment are parsed as TOML values when they parse (numbers, booleans, arrays), else
taken as strings.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "CCSERVER_"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    #: where the FastAGI server listens for Asterisk's AGI(agi://...) calls
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
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


class AcdConfig(_Strict):
    #: seconds an agent's phone rings before ring-no-answer
    ring_timeout: int = Field(15, ge=1, le=300)
    #: the reason code an agent is paused with after ring-no-answer
    rona_pause_reason: str = "no answer"


class QueueConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    wrapup_seconds: float = Field(5.0, ge=0, le=3600)
    record: bool = False
    #: service-level threshold in seconds (e.g. 20 for "80/20")
    service_level_seconds: int = Field(20, ge=1)


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


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    cdr: CdrConfig = CdrConfig()
    acd: AcdConfig = AcdConfig()
    ivr: IvrConfig = IvrConfig()
    simulator: SimulatorConfig = SimulatorConfig()
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
        return self

    def queue(self, name: str) -> QueueConfig | None:
        return next((q for q in self.queues if q.name == name), None)

    @property
    def spool_dir(self) -> Path:
        return self.cdr.spool_dir or self.server.state_dir / "spool"


def _env_value(raw: str):
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
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {'.'.join(path[:-1])} is not a section")
            node = child
        node[path[-1]] = _env_value(raw)
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
