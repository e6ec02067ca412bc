"""Prometheus text exposition (format 0.0.4) of the live state, written by hand: few series."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Histogram:
    """Cumulative-bucket histogram of seconds (e.g. routing decision latency)."""

    def __init__(self, buckets: Iterable[float] = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0)):
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds

    def time(self, work: Callable[[], T]) -> T:
        """Run ``work`` and observe how long it took (also when it raises)."""
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.observe(time.perf_counter() - started)

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts[:-1], strict=True):
            running += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        running += self.counts[-1]
        out += [f'{name}_bucket{{le="+Inf"}} {running}', f"{name}_sum {self.sum:.9f}", f"{name}_count {running}"]
        return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Builds one scrape: ``gauge`` / ``histogram`` families, then :meth:`text`."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def gauge(self, name: str, help_: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self._lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        for labels, value in samples:
            lbl = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{lbl}}} {value:g}" if lbl else f"{name} {value:g}")

    def histogram(self, name: str, help_: str, hist: Histogram) -> None:
        self._lines += [f"# HELP {name} {help_}", f"# TYPE {name} histogram", *hist.lines(name)]

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
