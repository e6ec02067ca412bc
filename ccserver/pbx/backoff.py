"""When a PBX link tries again: the reconnect timing the AMI and ESL links share."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """The waits between the connection attempts of one link.

    ``cap`` and ``stable_after`` come from the node's ``reconnect_max`` and
    ``reconnect_reset_after`` (``hardware/<node>.toml``). Every attempt that fails, and every
    link that dies young, doubles the step, from ``initial`` up to ``cap``; the wait is the step
    jittered into [0.5, 1] of itself (nodes must not reconnect in step), so it never exceeds
    ``cap`` and a node that comes back is seen within ``cap`` seconds. Only a link that stayed up
    ``stable_after`` seconds starts the steps over.

    Against a real Asterisk 22 and FreeSWITCH 1.11 (issue 10, item 14), starting over at every
    login made a link cut right after each login reconnect, and resynchronize, every 0.2-0.5 s
    (19 AMI logins in 8 s, 40 ESL logins in 9 s), and the uncapped doubling reached 12.8 s, so
    ccserver came back 10.8 s after FreeSWITCH accepted connections again.
    """

    def __init__(self, *, cap: float, stable_after: float, initial: float = 0.2,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[float, float], float] = random.uniform):
        self.initial, self.cap, self.stable_after = min(initial, cap), cap, stable_after
        self._clock, self._jitter = clock, jitter
        self._step = self.initial
        self._up_since: float | None = None

    def link_up(self) -> None:
        """The link is logged in: from now on it counts towards ``stable_after``."""
        self._up_since = self._clock()

    def next_wait(self) -> float:
        """Seconds to wait before the next attempt, now that the last one failed or its link
        went down."""
        if self._up_since is not None and self._clock() - self._up_since >= self.stable_after:
            self._step = self.initial
        self._up_since = None
        wait = self._step * self._jitter(0.5, 1.0)
        self._step = min(self._step * 2, self.cap)
        return wait
