"""Field-level differences between two flow documents, for the audit log and the publish dialog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One changed field: ``path`` like ``nodes.main_menu.options.3``; ``old`` / ``new`` are
    ``None`` when the field was added / removed (``added`` / ``removed`` say which)."""

    path: str
    old: Any
    new: Any
    added: bool = False
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (audit log, API)."""
        out: dict[str, Any] = {"path": self.path}
        if not self.added:
            out["old"] = self.old
        if not self.removed:
            out["new"] = self.new
        return out


def diff_documents(old: Any, new: Any) -> list[Change]:
    """Every leaf that differs between ``old`` and ``new``, in document order.

    Mappings are compared key by key; lists whole (a reordered prompt list is one change).
    """
    out: list[Change] = []
    _walk(old, new, "", out)
    return out


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), sub, out)
        return
    if old is _MISSING:
        out.append(Change(path, None, new, added=True))
    elif new is _MISSING:
        out.append(Change(path, old, None, removed=True))
    elif old != new or type(old) is not type(new):
        out.append(Change(path or "(flow)", old, new))
