"""The simulator's AMI protocol compared with the real Asterisk 22 captures (header names, order,
texts), through real TCP sockets."""

from __future__ import annotations

import asyncio

import pytest
from test_sim_asterisk import QUEUE_FLOW, AmiClient, Lab, ScriptedAgi, capture, keys

from ccserver.sim.asterisk import CallerScript, SimAgent, SimulatedAsterisk


@pytest.fixture
async def sim():
    agi = ScriptedAgi(QUEUE_FLOW)
    # the user of the asterisk-ami captures: write = all (their README)
    s = SimulatedAsterisk(agi_host="127.0.0.1", agi_port=await agi.start(), agents=[],
                          time_scale=50.0, ami_write="all")
    await s.start()
    yield s
    await s.stop()
    await agi.stop()


async def client(sim: SimulatedAsterisk) -> AmiClient:
    c = AmiClient()
    await c.connect(sim.ami_port)
    return c


def by_id(msgs, action_id):
    return next(m for m in msgs if m.get("ActionID") == action_id)


async def test_banner_login_fullybooted_successfulauth(sim):
    c = await client(sim)
    assert c.banner == b"Asterisk Call Manager/11.0.0\r\n"
    ok = await c.login()
    got = [ok, await c.read(), await c.read()]
    cap = capture("01-login-idle-status.in.raw")[:3]
    assert [keys(m) for m in got] == [keys(m) for m in cap]
    assert (ok["Response"], ok["Message"]) == ("Success", "Authentication accepted")
    assert [m["Privilege"] for m in got[1:]] == ["system,all", "security,all"]
    await c.send(Action="Logoff", ActionID="bye")
    bye = await c.read()
    assert (bye["Response"], bye["Message"]) == ("Goodbye", "Thanks for all the fish.")
    with pytest.raises(EOFError):
        await c.read()


async def test_login_failure_closes_and_actions_need_login(sim):
    c = await client(sim)
    await c.send(Action="Ping", ActionID="early")
    assert (await c.read())["Message"] == "Permission denied"
    reply = await c.login(secret="wrong")
    assert keys(reply) == ["Response", "ActionID", "Message"]
    assert (reply["Response"], reply["Message"]) == ("Error", "Authentication failed")
    with pytest.raises(EOFError):
        await c.read()


async def test_ping_unknown_action_and_missing_actionid_as_08(sim):
    c = await client(sim)
    await c.login()
    await c.until(lambda m: m.event == "SuccessfulAuth")
    await c.send(Action="Ping", ActionID="p1")
    await c.send(Action="Ping")
    await c.send(Action="FooBar", ActionID="f")
    await c.send(Action="NoSuchAction")
    got = [await c.read() for _ in range(6)]
    cap = capture("08-command-and-errors.in.raw")
    ping = by_id(cap, "08-command-and-errors-9")
    i = cap.index(ping)
    assert [keys(m) for m in got[:2]] == [keys(ping), keys(cap[i + 1])]
    assert "ActionID" not in got[1]
    foo = by_id(cap, "08-command-and-errors-5")
    j = cap.index(foo)
    assert [keys(m) for m in got[2:]] == [keys(m) for m in (foo, cap[j + 1], cap[i + 2], cap[i + 3])]
    assert got[2]["Message"] == foo["Message"]
    assert got[4]["Message"] == cap[i + 2]["Message"] and got[5]["RequestType"] == "Action: NoSuchAction"


async def test_malformed_frame_keeps_connection(sim):
    c = await client(sim)
    await c.login()
    await c.raw(b"this is not ami\r\n\r\n")
    m = await c.until(lambda m: m.get("Response") == "Error")
    assert m[-1]["Message"] == "Missing action in request"
    await c.send(Action="Ping", ActionID="alive")
    assert (await c.until(lambda m: m.get("ActionID") == "alive"))[-1]["Ping"] == "Pong"


async def test_events_off_and_class_masks_as_09a_09c(sim):
    off = await client(sim)
    assert (await off.login(events="off"))["Message"] == "Authentication accepted"
    agent_only = await client(sim)
    await agent_only.login(events="agent")
    call_only = await client(sim)
    await call_only.login(events="call")
    sim.place_call(CallerScript())
    newchannel = await call_only.read()
    assert newchannel.event == "Newchannel" and newchannel["Privilege"] == "call,all"
    await off.send(Action="Ping", ActionID="x")
    assert (await off.read())["ActionID"] == "x"  # nothing else came first: no FullyBooted
    await agent_only.send(Action="Ping", ActionID="y")
    assert (await agent_only.read())["ActionID"] == "y"
    await off.send(Action="Events", ActionID="e1", EventMask="on")
    await off.send(Action="Events", ActionID="e2", EventMask="off")
    cap = capture("09a-events-off-and-eventmask.in.raw")
    on_reply, off_reply = await off.read(), await off.read()
    while off_reply.get("ActionID") != "e2":
        off_reply = await off.read()
    assert keys(on_reply) == keys(by_id(cap, "09a-events-off-and-eventmask-4"))
    assert (on_reply["Events"], off_reply["Events"]) == ("On", "Off")


async def test_filter_forms_as_09b(sim):
    c = await client(sim)
    await c.login()
    await c.until(lambda m: m.event == "SuccessfulAuth")
    await c.send(Action="Filter", ActionID="f1", Operation="Add", Filter="Event: Newstate")
    await c.send(Action="Filter", ActionID="f2", Operation="Add",
                 MatchCriteria="action(exclude),name(Newstate),header(ChannelState),method(exact)",
                 Filter="5")
    await c.send(Action="Filter", ActionID="f3", Operation="Add", MatchCriteria="nonsense(x)",
                 Filter="y")
    cap = capture("09b-filter-action.in.raw")
    replies = [await c.read() for _ in range(3)]
    assert [keys(m) for m in replies] == [keys(by_id(cap, f"09b-filter-action-{n}")) for n in (2, 5, 8)]
    assert replies[2]["Message"] == by_id(cap, "09b-filter-action-8")["Message"]
    sim.place_call(CallerScript())
    m = await c.read()
    assert m.event == "Newstate" and m["ChannelState"] == "6"
    await c.send(Action="Ping", ActionID="p")
    assert (await c.read())["ActionID"] == "p"


async def test_coreshowchannels_shape_as_10a_10b():
    async with Lab([SimAgent("PJSIP/1001", answer_delay=0.5)], QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript(talk_time=100))
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ami.send(Action="CoreShowChannels", ActionID="empty-ish")
        await lab.ring(call.channel, "PJSIP/1001")
        await lab.ami.until(lambda m: m.event == "BridgeEnter" and m["Channel"] == call.channel)
        await lab.ami.send(Action="CoreShowChannels", ActionID="cs")
        msgs = await lab.ami.until(lambda m: m.event == "CoreShowChannelsComplete"
                                   and m["ActionID"] == "cs")
    mine = [m for m in msgs if m.get("ActionID") == "cs"]
    cap = [m for m in capture("10b-status-call-bridged.in.raw")
           if m.get("ActionID") == "10b-status-call-bridged-2"]
    assert [keys(m) for m in mine] == [keys(m) for m in cap]
    assert mine[1]["BridgeId"] == mine[2]["BridgeId"] != ""
    assert mine[-1]["ListItems"] == "2"


async def test_concurrent_clients_each_get_events(sim):
    clients = [await client(sim) for _ in range(5)]
    for c in clients:
        await c.login(events="call")
    sim.place_call(CallerScript())
    firsts = await asyncio.gather(*(c.read() for c in clients))
    assert {m.event for m in firsts} == {"Newchannel"}
