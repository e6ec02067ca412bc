"""The pure parts: live KPIs (ccserver.stats.live), the log-in limiter, password hashes, metrics text."""

from __future__ import annotations

import pytest

from ccserver.api.metrics import Exposition, Histogram
from ccserver.api.passwords import hash_password, verify_password
from ccserver.api.ratelimit import FailureLimiter
from ccserver.cdr.record import CallRecord
from ccserver.core.center import QueueSnapshot, WaitingEntry
from ccserver.stats.live import KpiWindow


def record(call_id: str, queue: str | None, enqueued: float | None, answered: float | None, ended: float,
           disposition: str = "answered") -> CallRecord:
    return CallRecord(call_id=call_id, node="n", channel="c", did="d", caller="x", arrived_at=0.0, ended_at=ended,
                      disposition=disposition, hangup_cause="normal_clearing", hangup_by="caller",
                      enqueued_at=enqueued, answered_at=answered, queue=queue)


def snapshot(name: str = "q", waits: tuple[float, ...] = (), ready: int = 0, on_call: int = 0,
             paused: int = 0) -> QueueSnapshot:
    waiting = tuple(
        WaitingEntry(call_id=f"w{i}", caller="x", priority=0, enqueued_at=0.0, wait_seconds=w, ringing_agent=None,
                     position=i + 1, expected_wait=None, step=0, requirements=(), routing_note=None)
        for i, w in enumerate(waits)
    )
    return QueueSnapshot(name, waiting, ready, 0, on_call, 0, paused)


def test_service_level_asa_and_abandon_rate():
    w = KpiWindow(window_seconds=600)
    w.observe(record("a", "q", 100, 105, 150))                     # 5 s wait, within 20
    w.observe(record("b", "q", 100, 130, 160))                     # 30 s wait, late
    w.observe(record("c", "q", 100, None, 110, "abandoned"))       # gave up
    w.observe(record("d", "other", 100, 101, 120))                 # another queue
    w.observe(record("e", None, None, None, 120, "ivr_hangup"))    # never queued: ignored
    k = w.kpis(snapshot(waits=(3.0, 12.5), ready=1, on_call=2, paused=1), 20, now=200)
    assert (k.answered, k.abandoned) == (2, 1)
    assert k.service_level == pytest.approx(1 / 3)
    assert k.asa_seconds == pytest.approx(17.5)
    assert k.abandon_rate == pytest.approx(1 / 3)
    assert (k.waiting, k.longest_wait_seconds) == (2, 12.5)
    assert (k.agents_ready, k.agents_on_call, k.agents_paused) == (1, 2, 1)
    assert k.breached  # 33 % < the default 80 % target
    assert not w.kpis(snapshot(), 20, now=200, service_level_target=0.3).breached  # a queue aiming lower
    # the window rolls: at 800 only calls ended after 200 count
    later = w.kpis(snapshot(), 20, now=800)
    assert (later.answered, later.abandoned, later.service_level, later.asa_seconds) == (0, 0, None, None)
    assert not later.breached


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window_seconds"):
        KpiWindow(0)


def test_failure_limiter_slides():
    lim = FailureLimiter(limit=2, window=10)
    lim.fail("k", 0)
    assert lim.retry_after("k", 1) == 0
    lim.fail("k", 1)
    assert lim.retry_after("k", 2) == pytest.approx(8)
    assert lim.retry_after("k", 10.5) == 0  # the first failure left the window
    lim.clear("k")
    assert lim.retry_after("k", 10.5) == 0


def test_failure_limiter_release_takes_back_one_reserved_failure():
    lim = FailureLimiter(limit=2, window=10)
    lim.fail("k", 1)
    lim.fail("k", 2)  # reserved for an attempt still being checked
    assert lim.retry_after("k", 3) > 0
    lim.release("k", 2)  # it could not be decided (e.g. the database was away)
    assert lim.retry_after("k", 3) == 0
    lim.release("k", 5)  # nothing recorded then: nothing changes
    lim.fail("k", 4)
    assert lim.retry_after("k", 5) > 0


def test_failure_limiter_bounds_its_memory():
    lim = FailureLimiter(limit=1, window=10, max_keys=3)
    for i in range(10):
        lim.fail(f"ip{i}", 0)
    assert lim.retry_after("ip9", 1) > 0 and lim.retry_after("ip0", 1) == 0


def test_password_hash_round_trip_and_malformed_hashes():
    h = hash_password("s3cret passphrase")
    assert h.startswith("scrypt$16384$8$1$") and "s3cret" not in h
    assert verify_password("s3cret passphrase", h)
    assert not verify_password("s3cret passphrasf", h)
    assert hash_password("s3cret passphrase") != h  # salted
    for bad in ("", "scrypt$x", "bcrypt$1$2$3$AA==$AA==", "scrypt$16384$8$1$!!$AA=="):
        assert not verify_password("x", bad)


def test_prometheus_text():
    h = Histogram((0.001, 0.01))
    for v in (0.0005, 0.005, 0.5):
        h.observe(v)
    e = Exposition()
    e.gauge("x_up", "Up", [({"node": 'a"b'}, 1.0)])
    e.histogram("x_seconds", "Latency", h)
    text = e.text()
    assert 'x_up{node="a\\"b"} 1' in text
    assert 'x_seconds_bucket{le="0.001"} 1\nx_seconds_bucket{le="0.01"} 2\nx_seconds_bucket{le="+Inf"} 3' in text
    assert "x_seconds_count 3" in text and text.endswith("\n")
