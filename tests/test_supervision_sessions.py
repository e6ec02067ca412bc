"""Spy sessions' mode bookkeeping (pure): which reported mode switches are news for the audit log."""

from __future__ import annotations

import pytest

from ccserver.core.agent import Agent
from ccserver.core.call import Call, CallState
from ccserver.supervision.sessions import SpyRefused, Supervision, Supervisor

BOSS = Supervisor(7, "sup7", "supervisor", frozenset({"1001"}), {"n1": "PJSIP/9000"})


def running(mode="listen"):
    agent = Agent("1001", "n1", "PJSIP/1001", frozenset({"support"}), lambda: "x", state="on_call",
                  call_id="n1:1")
    call = Call("n1:1", "n1", "PJSIP/carrier-1", "+15551230000", "support", 0.0,
                state=CallState.CONNECTED)
    sessions = Supervision(new_id=lambda: "0123456789abcdef")
    session, _ = sessions.start(BOSS, "1001", mode, {"1001": agent}, {"n1:1": call}, 10.0)
    return sessions, session.id


def test_a_key_the_supervisor_pressed_is_news_once():
    sessions, sid = running()
    before, session = sessions.reported(sid, "whisper")
    assert (before, session.mode) == ("listen", "whisper")
    assert sessions.sessions[sid].mode == "whisper"
    assert sessions.reported(sid, "whisper") is None  # the same key again changes nothing
    assert sessions.reported("feedfacefeedface", "barge") is None


def test_the_key_of_a_switch_ccserver_asked_for_is_no_news_whenever_it_comes():
    sessions, sid = running()
    sessions.change(sid, BOSS, "barge")
    assert sessions.reported(sid, "barge") is None  # reported before the command returned
    assert sessions.sessions[sid].mode == "listen"
    assert sessions.changed(sid, "barge").mode == "barge"
    assert sessions.reported(sid, "barge") is None  # or after
    # a key pressed while ccserver switches is still news
    sessions.change(sid, BOSS, "listen")
    assert sessions.reported(sid, "whisper")[0] == "barge"
    sessions.switch_failed(sid)
    assert sessions.reported(sid, "listen")[0] == "whisper"  # nothing is switching any more


def test_one_switch_at_a_time():
    sessions, sid = running()
    sessions.change(sid, BOSS, "whisper")
    with pytest.raises(SpyRefused) as e:
        sessions.change(sid, BOSS, "barge")
    assert (e.value.status, e.value.field) == (409, "mode") and "already switching" in e.value.reason
    sessions.ended(sid)
    assert sessions.reported(sid, "whisper") is None
