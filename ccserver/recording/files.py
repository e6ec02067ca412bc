"""Where recordings live: the node's recording root, and only under it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class UnsafePath(ValueError):
    """A recording name that would leave the node's recording root."""


def recording_path(root: Path, file: str) -> Path:
    """``root / file``, refusing absolute names, ``..`` and symlinks leading out of ``root``."""
    name = PurePosixPath(file)
    if not file or name.is_absolute() or ".." in name.parts or "\0" in file:
        raise UnsafePath(f"recording file {file!r} must be a plain name under the recording root")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise UnsafePath(f"recording file {file!r} resolves outside the recording root")
    return path


def relative_name(root: Path, reported: str) -> str | None:
    """The name under ``root`` of a file the PBX reported with its full path (None: elsewhere)."""
    prefix = str(root).rstrip("/") + "/"
    if not reported.startswith(prefix):
        return None
    name = reported[len(prefix):]
    try:
        recording_path(root, name)
    except UnsafePath:
        return None
    return name


def root_problem(root: Path) -> str | None:
    """Why recordings cannot be written under ``root`` now, or None if they can."""
    if not root.is_dir():
        return f"recording root {root} does not exist or is not a folder"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"recording root {root} is not writable"
    return None
