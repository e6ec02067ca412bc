"""The node types a flow may use and their fields, as the editor offers them.

Derived from the flow model's JSON schema, so a field added to a node model appears in the
editor's "add node" and "add field" choices without a change there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ccserver.ivr.flow import AnyNode, ContinuingNode

#: how the editor shows a field: one input (``string``, ``number``), a checkbox (``boolean``),
#: one input per key (``map``), or JSON text (``list``, and ``any`` such as a prompt, which is a
#: sound name or a mapping)
FieldKind = Literal["string", "number", "boolean", "map", "list", "any"]
_KINDS: dict[str, FieldKind] = {
    "string": "string", "integer": "number", "number": "number", "boolean": "boolean",
    "object": "map", "array": "list",
}


@dataclass(frozen=True, slots=True)
class NodeField:
    """One field of a node type. ``default`` is the value when the field is left out (``None``:
    no value, or none at all when ``required``); ``choices`` the only values a ``string`` may
    take (empty: any); ``item_kind`` the kind of a ``map``'s values."""

    name: str
    required: bool
    kind: FieldKind
    default: Any = None
    choices: tuple[str, ...] = ()
    item_kind: FieldKind | None = None


@dataclass(frozen=True, slots=True)
class NodeType:
    """A node type: its ``type`` value, what it does (the model's summary) and its fields, its
    own first and those every continuing node has (``max_visits``...) last."""

    type: str
    description: str
    fields: tuple[NodeField, ...]


@functools.cache
def node_types() -> tuple[NodeType, ...]:
    """Every node type, in the order of the :data:`~ccserver.ivr.flow.AnyNode` union."""
    return tuple(_node_type(model) for model in get_args(AnyNode))


def _node_type(model: type[AnyNode]) -> NodeType:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    shared = set(ContinuingNode.model_fields)
    names = sorted((n for n in schema["properties"] if n != "type"), key=lambda n: n in shared)
    fields = tuple(_field(name, schema["properties"][name], name in required) for name in names)
    summary = (model.__doc__ or "").split("\n\n")[0]
    return NodeType(schema["properties"]["type"]["const"], " ".join(summary.replace("``", "").split()), fields)


def _field(name: str, schema: dict[str, Any], required: bool) -> NodeField:
    kind, choices = _kind(schema)
    item_kind = None
    if kind == "map":
        inner = _without_null(schema)
        values = inner.get("additionalProperties") or next(iter(inner.get("patternProperties", {}).values()), {})
        item_kind = _kind(values)[0]
    return NodeField(name, required, kind, schema.get("default"), choices, item_kind)


def _kind(schema: dict[str, Any]) -> tuple[FieldKind, tuple[str, ...]]:
    inner = _without_null(schema)
    choices = tuple(inner.get("enum", ()))
    return _KINDS.get(inner.get("type", ""), "any"), choices


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of the value, for an optional field's ``anyOf [<value>, null]``."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    return options[0] if len(options) == 1 else {}
