"""Supervisors listen / whisper / barge through the simulated Asterisk and FreeSWITCH."""

from __future__ import annotations

import asyncio
import json

import pytest

from ccserver.core.commands import StartSpy
from ccserver.pbx.base import CommandFailed
from ccserver.supervision.sessions import SpyRefused, Supervisor

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)

#: the key that switches a spy session to each mode: ChanSpy's option d, eavesdrop's keys
MODE_KEYS = {"asterisk": {"listen": "4", "whisper": "5", "barge": "6"},
             "freeswitch": {"listen": "0", "whisper": "2", "barge": "3"}}


def boss(rig, agents=frozenset({"1001", "1002"}), user_id=7, role="supervisor") -> Supervisor:
    return Supervisor(user_id, f"sup{user_id}", role, agents, {rig.node: rig.supervisor_device})


def spy_actions(rig) -> list:
    """What ccserver sent the PBX for supervision, in order."""
    if rig.kind == "asterisk":
        return [m for m in rig.sim.received if m.get("Action") in ("Originate", "PlayDTMF", "Hangup")
                or m.get("Variable") == "SPYGROUP"]
    # the eavesdrop_group marks are uuid_setvars too; the others (kept call facts) are not ours
    return [c for c in rig.sim.received if "eavesdrop" in c or "three_way" in c or "uuid_recv_dtmf" in c
            or c.startswith("api uuid_kill")]


async def test_listen_then_whisper_then_barge_and_session_ends_with_the_call(media_rig):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    call, cid, agent = await rig.connected_call(talk_time=2.0)
    session = await desk.start(boss(rig), agent, "listen")
    await rig.until(lambda: desk.sessions.sessions[session.id].active, what="spy active")
    await desk.change(boss(rig), session.id, "whisper")
    await desk.change(boss(rig), session.id, "barge")
    assert desk.sessions.sessions[session.id].mode == "barge"
    sent = spy_actions(rig)
    agent_ch = rig.server.adapters[rig.node].normalizer.agent_channel(cid) if rig.kind == "asterisk" else None
    if rig.kind == "asterisk":
        group = f"cc{session.id}"
        assert (sent[0]["Channel"], sent[0]["Value"]) == (agent_ch, group)
        orig = sent[1]
        assert orig["Channel"] == f"Local/{session.id}@ccserver-spy/n"
        assert (orig["Application"], orig["Data"], orig["Async"]) == ("Dial", f"{rig.supervisor_device},30", "true")
        assert orig.values_of("Variable") == [f"CC_SPY_TARGET={agent_ch}", f"CC_SPY_OPTIONS=qdEg({group})"]
        local2 = next(iter(rig.sim.spies))[:-1] + "2"
        assert [(m["Action"], m.get("Channel"), m.get("Digit"), m.get("Receive")) for m in sent[2:]] == [
            ("PlayDTMF", local2, "5", "true"), ("PlayDTMF", local2, "6", "true")]
        spy = next(iter(rig.sim.spies.values()))
        assert (spy.target, spy.mode) == (agent_ch, "barge")
    else:
        leg = rig.server.adapters[rig.node].normalizer.agent_leg(cid)
        spy_uuid, spy = next(iter(rig.sim.spies.items()))
        group = f"cc{session.id}"
        assert sent == [
            f"api uuid_setvar {leg} eavesdrop_group {group}",
            (f"bgapi originate {{origination_uuid={spy_uuid},origination_caller_id_number=ccserver,"
            f"origination_caller_id_name=Supervisor,originate_timeout=30,eavesdrop_enable_dtmf=true,"
            f"eavesdrop_require_group={group}}}{rig.supervisor_device} &eavesdrop({leg})"),
            f"api uuid_recv_dtmf {spy_uuid} 2", f"api uuid_recv_dtmf {spy_uuid} 3"]
        assert (spy.target, spy.mode) == (leg, "barge")
        assert rig.sim.channels[leg].variables["eavesdrop_group"] == f"cc{session.id}"
    assert await call.wait(15) == "answered"
    await rig.until(lambda: session.id not in desk.sessions.sessions, what="spy ended with the call")
    assert not rig.sim.spies
    rows = await rig.until_rows("SELECT * FROM audit_log WHERE action = 'spy.ended'")
    assert rows and rows[0]["target"] == agent and rows[0]["username"] == "sup7"


async def test_a_session_started_in_barge_switches_mode(media_rig):
    """FreeSWITCH barges as eavesdrop then key 3 (capture 04's keys): three_way reads no keys."""
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    _call, cid, agent = await rig.connected_call(talk_time=30.0)
    session = await desk.start(boss(rig), agent, "barge")
    key, spy = next(iter(rig.sim.spies.items()))
    assert spy.mode == "barge"
    await desk.change(boss(rig), session.id, "whisper")
    assert spy.mode == "whisper" and desk.sessions.sessions[session.id].mode == "whisper"
    sent = spy_actions(rig)
    if rig.kind == "asterisk":
        assert sent[1].values_of("Variable")[1] == f"CC_SPY_OPTIONS=qdEBg(cc{session.id})"
        assert [(m["Action"], m["Digit"]) for m in sent[2:]] == [("PlayDTMF", "5")]
    else:
        leg = rig.server.adapters[rig.node].normalizer.agent_leg(cid)
        group = f"cc{session.id}"
        assert sent == [
            f"api uuid_setvar {leg} eavesdrop_group {group}",
            (f"bgapi originate {{origination_uuid={key},origination_caller_id_number=ccserver,"
             f"origination_caller_id_name=Supervisor,originate_timeout=30,eavesdrop_enable_dtmf=true,"
             f"eavesdrop_require_group={group}}}{rig.supervisor_device} &eavesdrop({leg})"),
            f"api uuid_recv_dtmf {key} 3", f"api uuid_recv_dtmf {key} 2"]
    await desk.stop(boss(rig), session.id)
    await rig.until(lambda: session.id not in desk.sessions.sessions, what="spy stopped")
    assert not rig.sim.spies
    assert cid in rig.server.center.calls  # stopping the spy leaves the call alone


async def mode_rows(rig, last_to: str) -> list[tuple]:
    """The spy.mode audit rows, once the one switching to ``last_to`` is written."""
    await rig.until_rows("SELECT 1 FROM audit_log WHERE action = 'spy.mode' AND detail->>'to' = $1", last_to)
    rows = await rig.rows("SELECT username, target, outcome, detail FROM audit_log "
                          "WHERE action = 'spy.mode' ORDER BY id")
    return [(r["username"], r["target"], r["outcome"], json.loads(r["detail"])) for r in rows]


async def test_keys_the_supervisor_presses_switch_the_session_and_are_audited_once(media_rig):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    told = []
    desk.listeners.append(lambda change: told.append((change.what, change.session.mode)))
    _call, _cid, agent = await rig.connected_call(talk_time=30.0)
    session = await desk.start(boss(rig), agent, "listen")
    await rig.until(lambda: desk.sessions.sessions[session.id].active, what="spy active")
    key, keys = next(iter(rig.sim.spies)), MODE_KEYS[rig.kind]
    rig.sim.press_spy_key(key, keys["whisper"])
    await rig.until(lambda: desk.sessions.sessions[session.id].mode == "whisper", what="keypad whisper")
    assert ("changed", "whisper") in told  # the console's live view
    await desk.change(boss(rig), session.id, "barge")  # ccserver's own: its API request audits it
    rig.sim.press_spy_key(key, keys["listen"])
    rows = await mode_rows(rig, "listen")
    expected = [("listen", "whisper"), ("barge", "listen")]
    assert rows == [("sup7", agent, "ok", {"session": session.id, "agent_id": agent, "from": a, "to": b,
                                            "via": "keypad"}) for a, b in expected]
    assert desk.sessions.sessions[session.id].mode == "listen" and rig.sim.spies[key].mode == "listen"


@pytest.mark.parametrize("media_rig", ["freeswitch"], indirect=True)
async def test_freeswitch_talk_to_the_caller_only_key_is_undone(media_rig, caplog):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    _call, _cid, agent = await rig.connected_call(talk_time=30.0)
    session = await desk.start(boss(rig), agent, "whisper")
    leg, spy = next(iter(rig.sim.spies.items()))
    rig.sim.press_spy_key(leg, "1")
    await rig.until(lambda: spy.digits == ["2", "1", "2"], what="whisper restored")
    assert spy.mode == "whisper" and desk.sessions.sessions[session.id].mode == "whisper"
    assert rig.sim.received[-1] == f"api uuid_recv_dtmf {leg} 2"
    assert "talk to the caller only" in caplog.text
    rig.sim.press_spy_key(leg, "3")
    assert [(r[3]["from"], r[3]["to"]) for r in await mode_rows(rig, "barge")] == [("whisper", "barge")]


async def agent_on_a_freeswitch_call(media_rig):
    """A rig with a long call connected: (rig, the supervision desk, the agent, the agent's leg)."""
    rig = await media_rig(policy="none")
    _call, cid, agent = await rig.connected_call(talk_time=30.0)
    return rig, rig.server.supervision, agent, rig.server.adapters[rig.node].normalizer.agent_leg(cid)


@pytest.mark.parametrize("media_rig", ["freeswitch"], indirect=True)
async def test_freeswitch_failed_start_clears_the_agent_legs_group(media_rig):
    rig, desk, agent, leg = await agent_on_a_freeswitch_call(media_rig)
    unreachable = Supervisor(7, "sup7", "supervisor", frozenset({agent}), {rig.node: "user/7777"})
    with pytest.raises(SpyRefused) as e:
        await desk.start(unreachable, agent, "listen")
    assert e.value.status == 502 and "USER_NOT_REGISTERED" in e.value.reason
    assert "eavesdrop_group" not in rig.sim.channels[leg].variables
    assert spy_actions(rig)[-1] == f"api uuid_setvar {leg} eavesdrop_group"
    assert not desk.sessions.sessions and not rig.sim.spies


@pytest.mark.parametrize("media_rig", ["freeswitch"], indirect=True)
async def test_freeswitch_agent_leg_gone_while_the_supervisor_answers(media_rig):
    """eavesdrop finds no agent leg and the supervisor's leg ends before the job's +OK arrives."""
    rig, desk, agent, leg = await agent_on_a_freeswitch_call(media_rig)
    start = asyncio.create_task(desk.start(boss(rig), agent, "listen"))
    await rig.until(lambda: any(c.device == rig.supervisor_device for c in rig.sim.channels.values()),
                    what="supervisor ringing")
    rig.sim.hangup(rig.sim.channels[leg], "NORMAL_CLEARING", "recv_bye")
    with pytest.raises(SpyRefused) as e:
        await start
    assert e.value.status == 502 and "could not be reached" in e.value.reason
    assert not desk.sessions.sessions and not rig.sim.spies


async def test_refusals_leave_nothing_on_the_pbx(media_rig):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    with pytest.raises(SpyRefused) as e:  # not on a call
        await desk.start(boss(rig), "1001", "listen")
    assert (e.value.status, e.value.field) == (409, "agent_id") and "not on a call" in e.value.reason
    with pytest.raises(SpyRefused) as e:  # forged id
        await desk.start(boss(rig), "1001'; DROP", "listen")
    assert e.value.status == 404
    _call, _cid, agent = await rig.connected_call(talk_time=30.0)
    other = "1002" if agent == "1001" else "1001"
    before = len(rig.sim.received)
    with pytest.raises(SpyRefused) as e:  # outside the supervisor's teams
        await desk.start(boss(rig, agents=frozenset({other})), agent, "listen")
    assert e.value.status == 403
    with pytest.raises(SpyRefused) as e:  # agents never
        await desk.start(boss(rig, role="agent"), agent, "listen")
    assert e.value.status == 403
    assert len(rig.sim.received) == before  # refused before anything reached the PBX
    assert not rig.sim.spies
    session = await desk.start(boss(rig), agent, "listen")
    with pytest.raises(SpyRefused) as e:  # twice at once
        await desk.start(boss(rig), agent, "whisper")
    assert e.value.status == 409 and "already monitoring" in e.value.reason
    with pytest.raises(SpyRefused) as e:  # another supervisor on the same agent
        await desk.start(boss(rig, user_id=8), agent, "whisper")
    assert e.value.status == 409 and "already monitored" in e.value.reason
    assert len(rig.sim.spies) == 1
    await desk.stop(boss(rig), session.id)
    await rig.until(lambda: not desk.sessions.sessions, what="stopped")


async def test_spy_on_a_call_that_just_ended(media_rig):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    call, cid, agent = await rig.connected_call(talk_time=0.3)
    assert await call.wait(15) == "answered"
    await rig.until(lambda: cid not in rig.server.center.calls, what="call over")
    with pytest.raises(SpyRefused) as e:
        await desk.start(boss(rig), agent, "listen")
    assert e.value.status == 409
    assert not rig.sim.spies and not desk.sessions.sessions


async def test_adapter_refuses_a_call_that_ended_meanwhile_and_sends_nothing(media_rig):
    """The race left after the core's check: the call is gone when the adapter gets StartSpy."""
    rig = await media_rig(policy="none")
    before = len(rig.sim.received)
    with pytest.raises(CommandFailed, match="no agent connected"):
        await rig.server.run_command(StartSpy(rig.node, f"{rig.node}:1795000000.9", "gone-channel",
                                              "0123456789abcdef", rig.supervisor_device, "listen"))
    with pytest.raises(CommandFailed, match="not one ccserver made"):
        await rig.server.run_command(StartSpy(rig.node, f"{rig.node}:x", "c", "../../etc",
                                              rig.supervisor_device, "listen"))
    assert len(rig.sim.received) == before and not rig.sim.spies


async def test_a_spy_session_whose_call_ended_while_the_link_was_down_ends_at_the_resync(media_rig):
    rig = await media_rig(policy="none")
    desk = rig.server.supervision
    call, cid, agent = await rig.connected_call(talk_time=3.0)
    session = await desk.start(boss(rig), agent, "listen")
    await rig.until(lambda: desk.sessions.sessions[session.id].active, what="spy active")
    rig.freeze_pbx_link(True)  # the call, and the spy legs with it, end while nothing comes through
    assert await call.wait(15) == "answered"
    await rig.until(lambda: not rig.sim.spies, what="spy legs gone on the PBX")
    await rig.until(lambda: not rig.server.adapters[rig.node].connected, timeout=10, what="ping deadline")
    assert session.id in desk.sessions.sessions  # nothing told ccserver yet
    rig.freeze_pbx_link(False)
    await rig.until(lambda: rig.server.adapters[rig.node].connected, timeout=15, what="reconnect")
    await rig.until(lambda: session.id not in desk.sessions.sessions, what="spy ended by the resync")
    rows = await rig.until_rows("SELECT * FROM audit_log WHERE action = 'spy.ended'")
    assert rows and rows[0]["target"] == agent
