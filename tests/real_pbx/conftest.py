"""Opt-in: the real-PBX suite runs only against a PBX a developer started by hand.

``CCSERVER_REAL_ASTERISK`` / ``CCSERVER_REAL_FREESWITCH`` say where that PBX is and how the suite
loads ccserver's shipped dialplans into it (README "Testing against a real PBX"); SIPp plays the
carrier and the agents' phones. Each PBX's test module calls ``require`` first: without its variable
(or without SIPp) the whole module is skipped in one line saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

T = TypeVar("T")

VARIABLES = {"asterisk": "CCSERVER_REAL_ASTERISK", "freeswitch": "CCSERVER_REAL_FREESWITCH"}
#: what else a PBX kind's suite needs from the environment, and why
ALSO_NEEDED = {"freeswitch": {"CCSERVER_ESL_PASSWORD": "the ESL password that FreeSWITCH was started with"}}


def missing(kind: str) -> str | None:
    """Why the suite of PBX ``kind`` cannot run here, or None when it can."""
    name = VARIABLES[kind]
    if not os.environ.get(name):
        return f"{name} is not set (README: Testing against a real PBX)"
    for other, what in ALSO_NEEDED.get(kind, {}).items():
        if not os.environ.get(other):
            return f"{name} is set but {other} is not ({what})"
    if shutil.which("sipp") is None:
        return f"{name} is set but SIPp (`sipp`, Debian package sip-tester) is not on PATH"
    return None


def require(kind: str) -> None:
    """Skip the calling test module (one line) unless the PBX of ``kind`` can be tested."""
    reason = missing(kind)
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)



def run_apart(coro: Coroutine[object, object, T]) -> T:
    """Run a coroutine to its end from a session fixture, on a loop of its own (outside the tests')."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()
