"""A local durable spool for records that could not be written to Postgres yet.

Rows are appended as JSON lines to segment files ``spool-<n>.jsonl`` in one directory, oldest
first. Every append is fsync'd before it returns, and so is the directory when a file is created,
replaced or removed, so a row ``append`` returned for survives a power cut.

The same class, with another ``prefix`` and ``sync=False``, is the CDR writer's journal: each row
is written there (not fsync'd: it has to outlive the ccserver process, not the machine) when it
is submitted, and the journal's segments are :meth:`Spool.seal`-ed and :meth:`Spool.drop`-ped as
flushes commit or spool their rows.

Each :class:`Spool` object appends to segments it created itself, never to an older one: a line
torn by a crash therefore can only be the last line of a segment, which :meth:`Spool.read_all`
skips with a warning. Anything unreadable elsewhere is corruption and raises :class:`SpoolError`.

The methods do blocking disk I/O; async callers run them in a thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ccserver.cdr.record import Row, row_from_json

log = logging.getLogger(__name__)

_PREFIX, _SUFFIX = "spool-", ".jsonl"


class SpoolError(Exception):
    """A spool file is corrupt beyond a torn last line."""


class Spool:
    """Append-only JSON-lines spool of :data:`Row` objects under ``directory``, fsync'd unless
    ``sync`` is False; its files are ``<prefix><n>.jsonl``."""

    def __init__(self, directory: Path, segment_bytes: int = 8 << 20, *, prefix: str = _PREFIX,
                 sync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._prefix, self._sync = prefix, sync
        self._fd: int | None = None  # the segment this object appends to
        self._fd_path: Path | None = None
        self._fd_size = 0
        self._warned: set[Path] = set()  # torn segments already reported
        for tmp in self.directory.glob(f"{prefix}*{_SUFFIX}.tmp"):
            tmp.unlink()  # an interrupted clear(); the segment it was replacing is intact
        #: rows per segment
        self._rows = {p: len(self._read(p)) for p in self._segments()}

    @property
    def depth(self) -> int:
        """Rows in the spool."""
        return sum(self._rows.values())

    def append(self, rows: Sequence[Row]) -> None:
        """Append ``rows`` durably (written and fsync'd when this returns)."""
        if not rows:
            return
        data = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in rows).encode()
        if self._fd is None or self._fd_size >= self._segment_bytes:
            self._open_segment()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        if self._sync:
            os.fsync(self._fd)
        self._fd_size += len(data)
        assert self._fd_path is not None
        self._rows[self._fd_path] = self._rows.get(self._fd_path, 0) + len(rows)

    def read_all(self) -> list[Row]:
        """All rows, oldest first."""
        return [row for p in self._segments() for row in self._read(p)]

    def clear(self, upto: int) -> None:
        """Remove the ``upto`` oldest rows (those a replay has just written)."""
        self._close_segment()  # a rewritten segment must not keep receiving appends via an old fd
        left = upto
        for path in self._segments():
            if left <= 0:
                break
            rows = self._read(path)
            if len(rows) <= left:
                path.unlink()
                self._rows.pop(path, None)
                left -= len(rows)
            else:
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(r.to_json(), separators=(",", ":")) + "\n"
                                 for r in rows[left:])
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                self._rows[path] = len(rows) - left
                left = 0
        self._fsync_dir()

    def seal(self) -> list[Path]:
        """Close the open segment and return every segment there is now (appends go to a new one)."""
        self._close_segment()
        return self._segments()

    def drop(self, segments: list[Path]) -> None:
        """Remove ``segments`` (from :meth:`seal`): their rows are safe elsewhere."""
        for path in segments:
            path.unlink(missing_ok=True)
            self._rows.pop(path, None)
        if segments and self._sync:
            self._fsync_dir()

    def close(self) -> None:
        """Close the open segment (appending again later opens a new one)."""
        self._close_segment()

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self._prefix}*{_SUFFIX}"))

    def _open_segment(self) -> None:
        self._close_segment()
        existing = self._segments()
        n = int(existing[-1].name[len(self._prefix):-len(_SUFFIX)]) + 1 if existing else 1
        path = self.directory / f"{self._prefix}{n:012d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._fd_path, self._fd_size = path, 0
        if self._sync:
            self._fsync_dir()  # the new file's name must survive a power cut too

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._fd_path = None

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self, path: Path) -> list[Row]:
        lines = path.read_bytes().split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the file ends with a newline, as every complete append does
        rows: list[Row] = []
        for i, line in enumerate(lines):
            try:
                rows.append(row_from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                if i == len(lines) - 1:
                    if path not in self._warned:
                        self._warned.add(path)
                        log.warning("%s: skipping torn last line %d (%s); it was never acknowledged",
                                    path, i + 1, e)
                    continue
                raise SpoolError(f"{path}: line {i + 1} is unreadable: {e}") from e
        return rows
