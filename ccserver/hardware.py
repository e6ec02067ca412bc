"""The inventory of PBX nodes (``hardware/*.toml``): where they are and how to reach them.

A node file names the *environment variable* holding its secret, never the secret itself.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ccserver.config import Config, ConfigError, _format_errors
from ccserver.pbx.contexts import INBOUND_CONTEXT

log = logging.getLogger(__name__)

#: the node name of the built-in PBX simulator (demo mode)
SIM_NODE = "sim"


#: longest wait in seconds between two connection attempts: a node back is seen within it
#: (finite, at most 5 minutes: TOML's ``inf`` would never retry)
ReconnectMax = Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)]
#: seconds a link must stay up before the waits start over from the first step
ReconnectResetAfter = Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False)]


class Span(BaseModel):
    """A trunk or telephony span on the node and how many simultaneous calls it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    kind: Literal["sip", "e1", "t1", "pri", "bri", "fxo", "gsm", "other"] = "sip"
    channels: int = Field(ge=1, le=100000)


class NodeConfig(BaseModel):
    """One PBX node."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: Literal["asterisk"]
    host: str
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_user: str
    #: name of the environment variable holding the AMI secret
    ami_secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    #: dialplan contexts whose every new channel is a call for ccserver from its birth. A channel
    #: born elsewhere (the trunk's own context) is one once it enters [ccserver-inbound]
    #: (``Goto``): that context needs no listing, and listing it takes all its calls for ours
    inbound_contexts: list[str] = [INBOUND_CONTEXT]
    #: where this node writes recordings (a path on the PBX host)
    recording_root: str = "/var/spool/asterisk/monitor"
    #: seconds without a reply to a Ping before the connection is declared dead
    ping_interval: float = Field(5.0, gt=0)
    ping_timeout: float = Field(3.0, gt=0)
    reconnect_max: ReconnectMax = 2.0
    reconnect_reset_after: ReconnectResetAfter = 10.0
    spans: list[Span] = []

    def secret(self, environ: dict[str, str] | None = None) -> str:
        return _secret_from_env(self.name, "ami_secret_env", self.ami_secret_env, environ)

    def __repr__(self) -> str:  # never print anything secret-looking
        return f"NodeConfig(name={self.name!r}, kind={self.kind!r}, host={self.host!r})"


#: ``sound_dir``: optional leading "/", segments that cannot be "." or ".." (no traversal)
_SOUND_DIR = re.compile(r"/?[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*/?")
_SOUND_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")


class FreeSwitchNodeConfig(BaseModel):
    """One FreeSWITCH node, reached over the ESL inbound socket (``event_socket.conf.xml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: Literal["freeswitch"]
    host: str
    esl_port: int = Field(8021, ge=1, le=65535)
    #: name of the environment variable holding the ESL password
    esl_password_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    #: dialplan contexts whose new inbound channels are calls for ccserver
    inbound_contexts: list[str] = ["ccserver-inbound"]
    #: where this node writes recordings (a path on the PBX host)
    recording_root: str = "/var/lib/freeswitch/recordings"
    ping_interval: float = Field(5.0, gt=0)
    ping_timeout: float = Field(3.0, gt=0)
    #: seconds to wait for any ESL reply before the connection is declared dead
    command_timeout: float = Field(10.0, gt=0)
    reconnect_max: ReconnectMax = 2.0
    reconnect_reset_after: ReconnectResetAfter = 10.0
    #: where ``playback`` finds the prompts flows name without an extension (``hello-world``):
    #: relative to the channel's ``sound_prefix`` (which follows the caller's language), or
    #: absolute; "" = the ``sound_prefix`` itself
    sound_dir: str = ""
    #: the file extension added to those names ("" = none: FreeSWITCH then looks for a file
    #: named after the channel's codec, ``hello-world.PCMU``)
    sound_extension: str = "wav"
    spans: list[Span] = []

    @field_validator("sound_dir")
    @classmethod
    def _sound_dir(cls, value: str) -> str:
        # it becomes part of every playback argument: plain path segments only
        if value and not _SOUND_DIR.fullmatch(value):
            raise ValueError(f"{value!r} is not a plain directory path (segments of letters, "
                             "digits, '_', '-', '.' not starting with '.', separated by '/')")
        return value.rstrip("/")

    @field_validator("sound_extension")
    @classmethod
    def _sound_extension(cls, value: str) -> str:
        if value and not _SOUND_EXTENSION.fullmatch(value):
            raise ValueError(f"{value!r} is not a file extension (1-10 letters or digits, no dot)")
        return value

    def secret(self, environ: dict[str, str] | None = None) -> str:
        return _secret_from_env(self.name, "esl_password_env", self.esl_password_env, environ)

    def __repr__(self) -> str:  # never print anything secret-looking
        return f"FreeSwitchNodeConfig(name={self.name!r}, host={self.host!r})"


#: a node of any kind, told apart by ``kind``
AnyNode = Annotated[NodeConfig | FreeSwitchNodeConfig, Field(discriminator="kind")]
_ANY_NODE: TypeAdapter[NodeConfig | FreeSwitchNodeConfig] = TypeAdapter(AnyNode)


def _secret_from_env(node: str, key: str, variable: str, environ: dict[str, str] | None) -> str:
    """The secret a node file names by its environment variable (never the value in errors)."""
    env = os.environ if environ is None else environ
    value = env.get(variable, "").strip("\r\n")  # a secret file's trailing newline is not part of it
    if not value:
        raise ConfigError(f"hardware node {node!r}: {key}: environment variable {variable} is not set")
    if "\r" in value or "\n" in value:
        raise ConfigError(f"hardware node {node!r}: {key}: {variable} holds a line break")
    return value


def load_nodes(directory: Path) -> list[NodeConfig | FreeSwitchNodeConfig]:
    """Read every ``*.toml`` in ``directory`` (one node per file). A missing directory is empty."""
    nodes: list[NodeConfig | FreeSwitchNodeConfig] = []
    if not directory.is_dir():
        return nodes
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            nodes.append(_ANY_NODE.validate_python(data))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        except ValidationError as e:
            raise ConfigError(f"{path}: {_format_errors(e)}") from None
    names = [n.name for n in nodes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{directory}: node names must be unique, repeated: {sorted(dup)}")
    return nodes


def simulator_on(config: Config, nodes: list[NodeConfig | FreeSwitchNodeConfig]) -> bool:
    """Whether ``ccserver run`` starts the built-in simulator beside (or instead of) ``nodes``."""
    mode = config.simulator.enabled
    return mode == "on" or (mode == "auto" and not nodes)


def check_site(config: Config, nodes: list[NodeConfig | FreeSwitchNodeConfig],
               environ: dict[str, str] | None = None) -> None:
    """What the configuration and the node inventory must agree on before anything starts.

    Every node's secret is set, every agent's node (and per-node device) is a listed node, and
    some agent serves the queues. Raises :class:`ConfigError` naming every problem found (the
    key and the variable names, never a secret's value). Logs a warning for an Asterisk node
    that lists a context besides ccserver-inbound in ``inbound_contexts``.
    """
    problems: list[str] = []
    for node in nodes:
        try:
            node.secret(environ)
        except ConfigError as e:
            problems.append(str(e))
    simulated = simulator_on(config, nodes)
    known = {n.name for n in nodes}
    if simulated:
        if SIM_NODE in known:
            problems.append(f"hardware node {SIM_NODE!r}: the name is the built-in simulator's "
                            "(rename the node or set simulator.enabled = 'off')")
        known.add(SIM_NODE)
    listed = f"nodes: {sorted(known)}" if known else "no node is listed"
    for i, agent in enumerate(config.agents):
        if agent.node not in known:
            problems.append(f"agents[{i}].node: {agent.node!r} is not a PBX node of "
                            f"{config.hardware_dir}/ ({listed})")
        if stray := sorted(set(agent.devices) - known):
            problems.append(f"agents[{i}].devices: {stray} not PBX node(s) of "
                            f"{config.hardware_dir}/ ({listed})")
    if not config.agents and not simulated:
        # the simulator would bring demo agents; with real nodes nobody would answer
        problems.extend(f"queues[{i}]: queue {q.name!r} has no agents (none are configured)"
                        for i, q in enumerate(config.queues))
    for node in nodes:
        if isinstance(node, NodeConfig):
            for context in (c for c in node.inbound_contexts if c != INBOUND_CONTEXT):
                log.warning("hardware node %r: inbound_contexts lists %r: every channel born there "
                            "is taken for a ccserver call, also one that context sends elsewhere; "
                            "a call sent on with Goto(%s,...) is tracked without it", node.name,
                            context, INBOUND_CONTEXT)
    if problems:
        raise ConfigError("; ".join(problems))
