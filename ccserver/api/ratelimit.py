"""Failed log-in limiting: a sliding window of failures per key (client address, user name)."""

from __future__ import annotations

from collections import deque


class FailureLimiter:
    """At most ``limit`` failures per key in ``window`` seconds; pure (time passed in)."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when allowed now."""
        q = self._failures.get(key)
        if not q:
            return 0.0
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) < self.limit:
            return 0.0
        return q[0] + self.window - now

    def fail(self, key: str, now: float) -> None:
        """Record one failure for ``key`` (also: reserve it before an attempt is decided)."""
        if key not in self._failures and len(self._failures) >= self.max_keys:
            # Bound memory under a spray of addresses: forget the oldest key.
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque()).append(now)

    def release(self, key: str, at: float) -> None:
        """Take back one failure recorded at ``at`` (a reserved one that did not happen)."""
        q = self._failures.get(key)
        if q is not None and at in q:
            q.remove(at)

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful log-in)."""
        self._failures.pop(key, None)
