"""The interface the IVR engine drives; each PBX adapter implements it on a live channel."""

from __future__ import annotations

from typing import Protocol


class CallerHungUp(Exception):
    """The caller's channel went away while the IVR was using it."""


class MediaSession(Protocol):
    """One live channel under IVR control (FastAGI on Asterisk, ESL outbound on FreeSWITCH).

    Every method raises :class:`CallerHungUp` once the caller is gone.
    """

    call_id: str
    node: str
    channel: str
    caller: str
    did: str
    language: str

    async def answer(self) -> None: ...

    async def play(self, prompt: str, interruptible: bool = True) -> str:
        """Play a sound; return the digit that interrupted it, or ``""``."""

    async def collect(self, prompt: str, max_digits: int, timeout: float) -> str:
        """Play ``prompt`` and collect up to ``max_digits`` DTMF digits; ``""`` on timeout."""

    async def set_variable(self, name: str, value: str) -> None: ...
