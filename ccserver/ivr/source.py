"""Reading flow documents from untrusted bytes: size, encoding and YAML shape limits.

Flow files come from admins, from git and from the editor, so the reader refuses what plain
``yaml.safe_load`` lets through: anchors and aliases (the "billion laughs" bomb expands a few
hundred bytes into gigabytes), duplicate keys (YAML keeps the last one silently, so a menu with
two ``"1":`` entries would lose one), deep nesting, oversized files and non-UTF-8 bytes. Every
refusal is a :class:`~ccserver.ivr.flow.FlowError` naming the field path or the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ccserver.ivr.flow import FlowError

#: far above any hand-written flow (main.yaml is 1.3 KB), far below what hurts the server
MAX_BYTES = 256 * 1024
MAX_DEPTH = 32


class _Refused(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"{_where(event.start_mark)}: YAML aliases (*{event.anchor}) are not allowed")
        if getattr(event, "anchor", None):
            raise _Refused(f"{_where(event.start_mark)}: YAML anchors (&{event.anchor}) are not allowed")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"{_where(event.start_mark)}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Dates stay text (pydantic parses them where a date is expected): documents must survive JSON
# for Postgres and the API unchanged.
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _duplicates(node: yaml.Node, path: str, out: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            sub = f"{path}.{name}" if path else name
            if name in seen:
                out.append(f"{sub}: duplicate key {name!r} ({_where(key.start_mark)})")
            seen.add(name)
            _duplicates(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, f"{path}.{i}" if path else str(i), out)


def parse_flow_bytes(data: bytes, source: str = "") -> Any:
    """The document in ``data`` (YAML or JSON), checked for size, encoding and YAML shape.

    Raises :class:`FlowError` listing every duplicate key, or the first structural refusal.
    """
    if len(data) > MAX_BYTES:
        raise FlowError([f"(file): {len(data)} bytes is over the {MAX_BYTES}-byte limit for a flow"], source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FlowError([f"(file): not UTF-8 (byte {err.start}: {data[err.start:err.start + 1]!r})"], source) from None
    if "\x00" in text:
        raise FlowError(["(file): contains a NUL character"], source)
    try:
        loader = _StrictLoader(text)
    except yaml.YAMLError as err:  # the reader refuses control characters at once
        raise FlowError([f"(file): invalid YAML: {_one_line(err)}"], source) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Refused("(file): empty document")
        dups: list[str] = []
        _duplicates(node, "", dups)
        if dups:
            raise FlowError(dups, source)
        return loader.construct_document(node)
    except _Refused as err:
        raise FlowError([err.problem], source) from None
    except yaml.MarkedYAMLError as err:
        raise FlowError([f"{_where(err.problem_mark)}: invalid YAML: {err.problem}"], source) from None
    except yaml.YAMLError as err:
        raise FlowError([f"(file): invalid YAML: {_one_line(err)}"], source) from None
    finally:
        loader.dispose()


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def read_flow_file(path: Path) -> Any:
    """Read and parse ``path`` with :func:`parse_flow_bytes`; never reads more than the limit."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise FlowError([f"(file): cannot read: {err.strerror or err}"], str(path)) from None
    return parse_flow_bytes(data, str(path))
