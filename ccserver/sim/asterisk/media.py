"""What the simulated PBXs write and run on media: WAV recordings and spy sessions.

Recordings are real files (8 kHz 16-bit mono PCM silence, as long as the recording ran), so the
size and checksum ccserver registers are those of a real file.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

SAMPLE_RATE = 8000


def write_wav(path: str, seconds: float) -> int:
    """Write ``seconds`` of silence as a PCM WAV at ``path``; return its size in bytes."""
    data = b"\0\0" * max(1, int(seconds * SAMPLE_RATE))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    Path(path).write_bytes(header + data)
    return len(header) + len(data)


@dataclass
class SimRecording:
    """One running recording of a channel, with the spans it was muted."""

    path: str
    started: float = field(default_factory=time.monotonic)
    muted_since: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)

    def mute(self, on: bool) -> None:
        now = time.monotonic() - self.started
        if on and self.muted_since is None:
            self.muted_since = now
        elif not on and self.muted_since is not None:
            self.muted.append((self.muted_since, now))
            self.muted_since = None

    def close(self) -> int:
        """Write the file; the size written (0 if the folder is not writable, as MixMonitor
        and uuid_record then only log an error)."""
        try:
            return write_wav(self.path, time.monotonic() - self.started)
        except OSError:
            return 0


@dataclass
class SimSpy:
    """A supervisor monitoring one agent channel; ``digits`` are the mode switches received."""

    session: str
    target: str
    mode: str
    supervisor_device: str
    digits: list[str] = field(default_factory=list)
    #: the supervisor's phone dialed from ``;1`` and the bridge it answered into, once it did
    phone: Any = None
    bridge: Any = None
