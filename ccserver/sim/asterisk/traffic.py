"""Poisson call arrivals for demo mode and benchmarks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from .agents import CallerScript
from .pbx import SimulatedAsterisk


async def run_traffic(sim: SimulatedAsterisk, calls_per_minute: float, rng: random.Random,
                      make_script: Callable[[random.Random], CallerScript],
                      stop_event: asyncio.Event) -> int:
    """Place calls with exponential inter-arrival times (simulated time) until ``stop_event``.

    Returns the number of calls placed. The calls themselves keep running after it returns.
    """
    placed = 0
    rate = calls_per_minute / 60.0
    while not stop_event.is_set() and rate > 0:
        gap = sim.seconds(rng.expovariate(rate))
        try:
            async with asyncio.timeout(gap):
                await stop_event.wait()
            break
        except TimeoutError:
            pass
        sim.place_call(make_script(rng))
        placed += 1
    return placed
