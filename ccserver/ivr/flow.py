"""IVR flows as data: typed nodes joined by a ``next`` graph, loaded from YAML.

A flow is a dict of nodes keyed by id; each node names the node(s) that follow it. New node
kinds are added as new ``type`` values of the :data:`Node` union, so existing flows keep loading.
Every :class:`Flow` that exists is checked: all references point to existing nodes, the start
node exists, menu keys are DTMF digits. Errors name the field path, e.g.
``nodes.main_menu.options.3: unknown node 'x'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

#: node ids and flow names: short, readable, safe in logs and CDR paths ("main_menu:1")
_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
#: an Asterisk / FreeSWITCH sound name: no spaces or quotes, which would break the AGI command line
_PROMPT = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$"

NodeId = Annotated[str, Field(pattern=_ID)]
Prompt = Annotated[str, Field(pattern=_PROMPT)]


def _one_digit(key: str) -> str:
    if len(key) != 1 or key not in "0123456789*#":
        raise ValueError(f"{key!r} is not one DTMF digit (0-9, *, #)")
    return key


Digit = Annotated[str, AfterValidator(_one_digit)]


class FlowError(Exception):
    """A flow is invalid. ``problems`` lists ``"<field path>: <reason>"`` strings."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlayNode(_Strict):
    """Play one or more prompts in order, then go to ``next``.

    With ``interruptible`` a DTMF digit stops the playback; the digit is kept as the answer to
    the next menu (callers who know the menu need not wait for the greeting to end).
    """

    type: Literal["play"]
    prompts: list[Prompt] = Field(min_length=1)
    interruptible: bool = False
    next: NodeId


class MenuNode(_Strict):
    """Ask for one digit and branch on it.

    The caller gets ``1 + max_retries`` attempts. A wrong digit plays ``invalid_prompt``, no
    digit within ``timeout`` seconds plays ``timeout_prompt`` (each only when another attempt
    follows); after the last failed attempt the flow goes to ``on_exhausted``.
    """

    type: Literal["menu"]
    prompt: Prompt
    options: dict[Digit, NodeId] = Field(min_length=1)
    timeout: float = Field(5.0, gt=0, le=60)
    max_retries: int = Field(2, ge=0, le=10)
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    on_exhausted: NodeId


class QueueNode(_Strict):
    """Hand the call to a ccserver queue; ends the IVR."""

    type: Literal["queue"]
    queue: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: higher is served first
    priority: int = Field(0, ge=0, le=100)


class HangupNode(_Strict):
    """End the call (the dialplan hangs up once the IVR ends without a queue)."""

    type: Literal["hangup"]


Node = Annotated[PlayNode | MenuNode | QueueNode | HangupNode, Field(discriminator="type")]
_NODE_TYPES = frozenset({"play", "menu", "queue", "hangup"})


def node_targets(node: PlayNode | MenuNode | QueueNode | HangupNode) -> dict[str, str]:
    """The node ids ``node`` can lead to, keyed by the field path inside the node."""
    if isinstance(node, PlayNode):
        return {"next": node.next}
    if isinstance(node, MenuNode):
        out = {f"options.{digit}": target for digit, target in node.options.items()}
        out["on_exhausted"] = node.on_exhausted
        return out
    return {}


class _GraphError(ValueError):
    """Carries the graph problems (with their field paths) out of pydantic's validation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Flow(_Strict):
    """One IVR flow: ``start`` is the first node; ``nodes`` maps node id to node."""

    name: NodeId
    version: int = Field(1, ge=1)
    start: NodeId
    language: str = Field("en", pattern=r"^[a-z]{2}(_[A-Za-z]{2})?$")
    nodes: dict[NodeId, Node] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self) -> Flow:
        problems = []
        if self.start not in self.nodes:
            problems.append(f"start: unknown node {self.start!r}")
        for node_id, node in self.nodes.items():
            for field, target in node_targets(node).items():
                if target not in self.nodes:
                    problems.append(f"nodes.{node_id}.{field}: unknown node {target!r}")
        if problems:
            raise _GraphError(problems)
        return self


def _problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        exc = e.get("ctx", {}).get("error")
        if isinstance(exc, _GraphError):
            out.extend(exc.problems)
            continue
        loc = [str(p) for p in e["loc"]]
        # pydantic puts the union tag in the path (nodes.<id>.menu.options); users never wrote it
        if len(loc) > 2 and loc[0] == "nodes" and loc[2] in _NODE_TYPES:
            del loc[2]
        if loc and loc[-1] == "[key]":
            loc.pop()
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            msg = f"unknown or missing node type (one of: {', '.join(sorted(_NODE_TYPES))})"
        elif isinstance(exc, ValueError):
            msg = str(exc)
        else:
            msg = e["msg"]
        out.append(f"{'.'.join(loc) or '(flow)'}: {msg}")
    return out


def parse_flow(data: Any, source: str = "") -> Flow:
    """Validate already-parsed flow data (from YAML, JSON or the editor); raise :class:`FlowError`."""
    try:
        return Flow.model_validate(data)
    except ValidationError as err:
        raise FlowError(_problems(err), source) from None


def load_flow(path: Path) -> Flow:
    """Load and check one flow file; :class:`FlowError` messages start with the file path."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise FlowError([f"cannot read: {err}"], str(path)) from None
    return parse_flow(data, str(path))
