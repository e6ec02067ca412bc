"""The interface the IVR engine drives; each PBX adapter implements it on a live channel."""

from __future__ import annotations

from typing import Protocol


class CallerHungUp(Exception):
    """The caller's channel went away while the IVR was using it."""


class MediaSession(Protocol):
    """One live channel under IVR control (FastAGI on Asterisk, ESL outbound on FreeSWITCH).

    Every method raises :class:`CallerHungUp` once the caller is gone. A session may also have
    ``missing_prompts`` (a list of the prompts the PBX could not open, which the engine reports
    and empties) and ``created_at`` (when the PBX created the channel, epoch seconds): FreeSWITCH's
    can tell both, FastAGI only the former (of ``STREAM FILE``).
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

    async def collect(
        self, prompt: str, max_digits: int, timeout: float,
        terminator: str = "#", inter_digit_timeout: float | None = None,
    ) -> str:
        """Play ``prompt`` and collect up to ``max_digits`` DTMF digits; ``""`` on timeout.

        ``timeout`` waits for the first digit, ``inter_digit_timeout`` (default: ``timeout``)
        for each next one; ``terminator`` ends the input early and is not returned.
        """

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_language(self, language: str) -> None:
        """Switch the channel's language (which sound files the PBX picks); sets ``language``."""

    async def speak(self, text: str, language: str, interruptible: bool = True) -> str:
        """Say ``text`` with the PBX's TTS engine; return the digit that interrupted it, or ``""``."""

    async def record(self, name: str, max_seconds: int) -> str:
        """Record the caller (after a beep) into sound file ``name``; return the file the PBX wrote."""

    async def transfer(self, destination: str) -> None:
        """Send the call to an external number or, as ``did:<DID>``, to another DID of ours."""

    async def say_number(self, number: int) -> None:
        """Say ``number`` in the channel's language (the PBX's own number prompts)."""
