"""Hold (FreeSWITCH's CHANNEL_HOLD / CHANNEL_UNHOLD, Asterisk's Hold / Unhold) reaches the CDR,
and a FreeSWITCH hang-up no party is known to have made is "system", as on Asterisk."""

from __future__ import annotations

import pytest
from test_e2e_asterisk import make_rig  # noqa: F401  (fixture)
from test_freeswitch_golden import events_of, replay

from ccserver.core.events import CallHungUp, HoldChanged
from ccserver.pbx.freeswitch.esl_codec import EslEvent
from ccserver.pbx.freeswitch.normalize import SUBSCRIBED, EslNormalizer
from ccserver.sim.asterisk import CallerScript


def renamed(ev: EslEvent, name: str) -> EslEvent:
    """The same channel data under another event name (``switch_channel_event_set_data``)."""
    return EslEvent(ev.headers | {"Event-Name": name})


def test_hold_on_the_agent_leg_is_a_hold_of_the_call():
    events = events_of("02b-callcenter-call-json.rx.raw")
    caller = next(e for e in events if e.name == "CHANNEL_CREATE").get("Unique-ID")
    agent_answer = next(e for e in events if e.name == "CHANNEL_ANSWER"
                        and e.get("Call-Direction") == "outbound")
    bridge = next(i for i, e in enumerate(events) if e.name == "CHANNEL_BRIDGE")
    norm = EslNormalizer("fs1", {"default"})
    norm.expect_leg(agent_answer.get("Unique-ID"), f"fs1:{caller}", "user/1002", None)
    replay(norm, events[:bridge + 1])
    held = [renamed(agent_answer, "CHANNEL_HOLD"), renamed(agent_answer, "CHANNEL_UNHOLD")]
    assert norm.feed(held[0], 10.0) == [HoldChanged(f"fs1:{caller}", True, 10.0)]
    assert norm.feed(held[1], 12.5) == [HoldChanged(f"fs1:{caller}", False, 12.5)]
    stranger = EslEvent(held[0].headers | {"Unique-ID": "not-one-of-ours"})
    assert norm.feed(stranger, 13.0) == []
    assert {"CHANNEL_HOLD", "CHANNEL_UNHOLD"} <= set(SUBSCRIBED)


def test_a_hang_up_no_party_is_known_to_have_made_is_system():
    # capture 03's caller hung up (recv_bye); without a SIP disposition (a channel that is not
    # SIP, e.g. a hardware line) nobody is known to have hung up: "system", as Asterisk says
    # when no HangupRequest came
    events = events_of("03-callcenter-abandon-plain.rx.raw")
    stripped = [EslEvent({k: v for k, v in e.headers.items()
                          if k != "variable_sip_hangup_disposition"}, e.body) for e in events]
    (hungup,) = [e for e in replay(EslNormalizer("fs1", {"default"}), stripped)
                 if isinstance(e, CallHungUp)]
    assert (hungup.cause, hungup.by) == ("normal_clearing", "system")


@pytest.mark.parametrize("make_rig", ["asterisk", "freeswitch"], indirect=True)
async def test_hold_time_reaches_the_cdr(make_rig):  # noqa: F811
    rig = await make_rig()
    call, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=1.5))
    assert rig.sim.hold(call, True)
    assert rig.sim.hold(call, True)  # the phone says it again: FreeSWITCH fires nothing new
    held = rig.server.center.calls[cid]
    await rig.until(lambda: held.hold_started is not None, what="the hold reaching the core")
    # half a second on hold, by the clock the CDR is written with
    await rig.until(lambda: rig.server.clock() >= held.hold_started + 0.5, what="0.5 s on hold")
    assert rig.sim.hold(call, False)
    assert await call.wait(15) == "answered"
    row = await rig.cdr(cid)
    assert 0.4 <= float(row["hold_seconds"]) <= 1.5
    connected = (row["ended_at"] - row["answered_at"]).total_seconds()
    assert float(row["talk_seconds"]) == pytest.approx(connected - float(row["hold_seconds"]), abs=0.01)

    # held until the caller hangs up: that hold counts too
    call, cid = await rig.connected_call(CallerScript(digits=["1"], talk_time=0.8))
    assert rig.sim.hold(call, True)
    assert await call.wait(15) == "answered"
    assert float((await rig.cdr(cid))["hold_seconds"]) >= 0.4
