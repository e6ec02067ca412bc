"""The inventory of PBX nodes (``hardware/*.toml``): where they are and how to reach them.

A node file names the *environment variable* holding its secret, never the secret itself.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ccserver.config import ConfigError, _format_errors


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
    #: dialplan contexts whose new channels are inbound calls for ccserver
    inbound_contexts: list[str] = ["ccserver-inbound"]
    #: where this node writes recordings (a path on the PBX host)
    recording_root: str = "/var/spool/asterisk/monitor"
    #: seconds without a reply to a Ping before the connection is declared dead
    ping_interval: float = Field(5.0, gt=0)
    ping_timeout: float = Field(3.0, gt=0)
    spans: list[Span] = []

    def secret(self, environ: dict[str, str] | None = None) -> str:
        return _secret_from_env(self.name, "ami_secret_env", self.ami_secret_env, environ)

    def __repr__(self) -> str:  # never print anything secret-looking
        return f"NodeConfig(name={self.name!r}, kind={self.kind!r}, host={self.host!r})"


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
    spans: list[Span] = []

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
