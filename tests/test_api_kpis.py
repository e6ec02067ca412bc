"""The pure parts: live KPIs (ccserver.stats.live), the log-in limiter, password hashes, metrics text."""

from __future__ import annotations

import pytest

from ccserver.api.metrics import Exposition, Histogram
from ccserver.api.passwords import hash_password, verify_password
from ccserver.api.ratelimit import FailureLimiter
from ccserver.cdr.record import CallRecord
from ccserver.config import QueueConfig
from ccserver.core.center import QueueSnapshot, WaitingEntry
from ccserver.stats.live import KpiWindow


def record(call_id: str, queue: str | None, enqueued: float | None, answered: float | None, ended: float,
           disposition: str = "answered", talk: float = 0.0, hold: float = 0.0,
           wrapup: float = 0.0) -> CallRecord:
    return CallRecord(call_id=call_id, node="n", channel="c", did="d", caller="x", arrived_at=0.0, ended_at=ended,
                      disposition=disposition, hangup_cause="normal_clearing", hangup_by="caller",
                      enqueued_at=enqueued, answered_at=answered, queue=queue, talk_seconds=talk,
                      hold_seconds=hold, wrapup_seconds=wrapup)


def snapshot(name: str = "q", waits: tuple[float, ...] = (), ready: int = 0, on_call: int = 0,
             paused: int = 0) -> QueueSnapshot:
    waiting = tuple(
        WaitingEntry(call_id=f"w{i}", caller="x", priority=0, enqueued_at=0.0, wait_seconds=w, ringing_agent=None,
                     position=i + 1, expected_wait=None, step=0, requirements=(), routing_note=None)
        for i, w in enumerate(waits)
    )
    return QueueSnapshot(name, waiting, ready, 0, on_call, 0, paused)


def queue(threshold: int = 20, target: float = 0.8, grace: float = 0.0) -> QueueConfig:
    return QueueConfig(name="q", service_level_seconds=threshold, service_level_target=target,
                       abandon_grace_seconds=grace)


def test_service_level_asa_and_abandon_rate():
    w = KpiWindow(window_seconds=600)
    w.observe(record("a", "q", 100, 105, 150))                     # 5 s wait, within 20
    w.observe(record("b", "q", 100, 130, 160))                     # 30 s wait, late
    w.observe(record("c", "q", 100, None, 110, "abandoned"))       # gave up
    w.observe(record("d", "other", 100, 101, 120))                 # another queue
    w.observe(record("e", None, None, None, 120, "ivr_hangup"))    # never queued: ignored
    w.observe(record("f", "q", 100, None, 140, "voicemail"))       # left otherwise: in no ratio
    k = w.kpis(snapshot(waits=(3.0, 12.5), ready=1, on_call=2, paused=1), queue(), now=200)
    assert (k.answered, k.abandoned, k.short_abandoned) == (2, 1, 0)
    assert k.service_level == pytest.approx(1 / 3)
    assert k.asa_seconds == pytest.approx(17.5)
    assert k.abandon_rate == pytest.approx(1 / 3)
    assert (k.waiting, k.longest_wait_seconds) == (2, 12.5)
    assert (k.agents_ready, k.agents_on_call, k.agents_paused) == (1, 2, 1)
    assert k.breached  # 33 % < the default 80 % target
    assert not w.kpis(snapshot(), queue(target=0.3), now=200).breached  # a queue aiming lower
    # the window rolls: at 800 only facts after 200 count
    later = w.kpis(snapshot(), queue(), now=800)
    assert (later.answered, later.abandoned, later.service_level, later.asa_seconds) == (0, 0, None, None)
    assert not later.breached


def test_an_answer_counts_the_moment_the_agent_picks_up_and_its_handle_time_at_wrap_up_end():
    w = KpiWindow(window_seconds=600)
    w.answered("a", "q", enqueued_at=100, at=108)
    k = w.kpis(snapshot(), queue(), now=109)  # talking: no record yet
    assert (k.answered, k.service_level, k.asa_seconds, k.aht_seconds) == (1, 1.0, 8.0, None)
    assert w.kpis(snapshot(), queue(), now=107).answered == 0  # not before it happened
    # hung up at 150 after 40 s talk and 2 s hold, wrap-up until 155: counted once, AHT from then
    w.observe(record("a", "q", 100, 108, 150, talk=40, hold=2, wrapup=5))
    assert w.kpis(snapshot(), queue(), now=154).aht_seconds is None
    k = w.kpis(snapshot(), queue(), now=155)
    assert (k.answered, k.asa_seconds, k.aht_seconds) == (1, 8.0, 47.0)


def test_a_record_counts_an_answer_not_seen_live_at_its_answer_time_once():
    w = KpiWindow(window_seconds=200)
    w.answered("late", "q", enqueued_at=190, at=250)
    # e.g. answered before a restart: the record brings the answer, in time order
    w.observe(record("early", "q", 100, 104, 260, "transferred", talk=56))
    w.observe(record("old", "q", 10, 40, 175, talk=135))  # answered before the window, ended in it
    k = w.kpis(snapshot(), queue(), now=270)
    assert (k.answered, k.asa_seconds) == (2, pytest.approx(32.0))  # early (4 s) and late (60 s)
    assert k.service_level == 0.5 and k.aht_seconds == pytest.approx((56 + 135) / 2)
    w.observe(record("late", "q", 190, 250, 280, talk=30))
    # the early answer leaves the window first, though it was counted after the late one
    k = w.kpis(snapshot(), queue(), now=305)
    assert (k.answered, k.asa_seconds) == (1, 60.0)


def test_callers_waiting_beyond_the_threshold_count_against_the_service_level():
    w = KpiWindow(window_seconds=600)
    w.answered("a", "q", enqueued_at=100, at=105)
    assert w.kpis(snapshot(waits=(25.0, 3.0)), queue(), now=130).service_level == 0.5
    assert w.kpis(snapshot(waits=(20.0, 3.0)), queue(), now=130).service_level == 1.0
    # nothing answered yet, a caller already late: 0 %, not unknown
    assert KpiWindow(600).kpis(snapshot(waits=(30.0,)), queue(), now=130).service_level == 0.0


def test_short_abandons_within_the_grace_count_in_neither_ratio():
    w = KpiWindow(window_seconds=600)
    w.answered("a", "q", enqueued_at=100, at=105)
    w.observe(record("s", "q", 100, None, 103, "abandoned"))        # gave up after 3 s
    w.observe(record("l", "q", 100, None, 130, "abandoned"))        # after 30 s
    k = w.kpis(snapshot(), queue(grace=5), now=200)
    assert (k.abandoned, k.short_abandoned, k.service_level, k.abandon_rate) == (1, 1, 0.5, 0.5)
    k = w.kpis(snapshot(), queue(), now=200)  # default: every abandon counts
    assert (k.abandoned, k.short_abandoned, k.abandon_rate) == (2, 0, pytest.approx(2 / 3))


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
