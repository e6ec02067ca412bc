"""dialplans/asterisk/manager.conf read by Asterisk's rules: may the shipped AMI user send what
ccserver sends, and does ccserver cope with what it may not?

The manager.conf is loaded by ``ccserver.sim.asterisk.conf`` (Asterisk's config syntax) and its
user's ``write`` classes are resolved against the action privileges Asterisk 22 registers
(``ami_privileges``, read from the Asterisk source), which the test checks against a real
Asterisk 22.10.1's own ``ListCommands`` (capture 08). What ccserver sends is observed, not read
from its source: the adapter runs real scenarios against the simulated node.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from captures import ASTERISK_CAPTURES, FIXTURES
from rig import SYSTEM_GRANTED
from test_supervision_api import login, people

from ccserver.pbx.asterisk.ami_codec import AmiParser, Message
from ccserver.pbx.base import CommandFailed
from ccserver.sim.asterisk import CallerScript, SimulatedAsterisk
from ccserver.sim.asterisk.ami_privileges import ACTION_CLASSES, may_send, write_classes
from ccserver.sim.asterisk.conf import (
    SHIPPED_MANAGER_CONF,
    ConfError,
    dialplan,
    load,
    manager_user,
    manager_users,
    parse,
)
from ccserver.supervision.sessions import Supervisor

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)

CCSERVER_CAPTURES = FIXTURES / "asterisk-ccserver"
asterisk_only = pytest.mark.parametrize("media_rig", ["asterisk"], indirect=True)


# -- the reader --------------------------------------------------------------------------------

def test_the_reader_reads_asterisk_config_syntax(tmp_path):
    (tmp_path / "users.conf").write_text("[bob](base)\nsecret = s\\;s ; a \\; stays in the value\n")
    (tmp_path / "manager.conf").write_text(
        "[general]\nenabled = yes ; comment\n"
        ";-- a block comment\n[ignored]\nwrite = all\n--;\n"
        "[base](!)\nread = call\nwrite = call,originate\n"
        "#include \"users.conf\"\n"
        "[alice](base)\nwrite=system\n"
        "eventfilter(action(exclude),name(CEL)) =\n")
    users = manager_users(load(tmp_path / "manager.conf"))
    assert sorted(users) == ["alice", "bob"]  # no template, no [general], nothing commented out
    assert users["bob"].secret == "s;s" and users["bob"].write == {"call", "originate"}
    assert users["alice"].write == {"system"} and users["alice"].read == {"call"}  # last one wins
    assert users["alice"].eventfilters == (("(action(exclude),name(CEL))", ""),)
    plan = dialplan(parse("[a]\nexten => _X.,1,NoOp(x)\n same => n(top),Dial(PJSIP/1,5)\n"
                          "include => b\n[b]\nexten => s,1,Hangup()\n"))
    ext = plan.find("a", "55")
    assert ext.steps == {1: ("NoOp", "x"), 2: ("Dial", "PJSIP/1,5")} and ext.labels == {"top": 2}
    assert plan.find("a", "s").steps == {1: ("Hangup", "")}  # found through the include


@pytest.mark.parametrize("text, why", [
    ("write = call\n", "outside any [section]"),
    ("[a]\nwrite call\n", "not 'key = value'"),
    ("[a]\n#exec /bin/true\n", "#exec is never run"),
    ("[a]\n#include missing.conf\n", "no such file"),
    ("[a](nosuch)\n", "unknown template"),
])
def test_the_reader_refuses_what_it_cannot_read_naming_the_line(text, why, tmp_path):
    with pytest.raises(ConfError, match=re.escape(why)) as e:
        parse(text, "x.conf", tmp_path)
    assert "x.conf:" in str(e.value)


@pytest.mark.parametrize("text, why", [
    ("[a]\nsame => n,NoOp()\n", "same => before any exten"),
    ("[a]\nexten => s,one,NoOp()\n", "cannot read priority"),
    ("[a]\nexten => s,1,NoOp(\n", "unbalanced"),
    ("[a]\nexten => s,1,NoOp()\nexten => s,1,Hangup()\n", "given twice"),
    ("[a]\nswitch => Realtime\n", "not a dialplan line"),
])
def test_the_dialplan_reader_refuses_lines_it_does_not_understand(text, why):
    with pytest.raises(ConfError, match=re.escape(why)):
        dialplan(parse(text))


@pytest.mark.parametrize("value, classes", [
    ("call,reporting,originate", {"call", "reporting", "originate"}),
    ("call, reporting", {"call"}),          # " reporting" is no class name: Asterisk does not trim
    ("sys,call", {"system", "call"}),       # ast_instring takes a word before a comma as a prefix
    ("none", set()),
])
def test_write_classes_are_read_as_manager_c_reads_them(value, classes):
    assert write_classes(value) == classes
    assert len(write_classes("all")) == len(write_classes("call,,x")) == 19  # an empty word: every class


def test_the_privilege_table_agrees_with_a_real_asterisk_22s_listcommands():
    # capture 08: ListCommands of a user with write = all on Asterisk 22.10.1 lists every action
    # its loaded modules registered, each with "(Priv: ...)". Read with plain splitting.
    raw = (ASTERISK_CAPTURES / "08-command-and-errors.in.raw").read_bytes().decode("latin-1")
    block = next(b for b in raw.split("\r\n\r\n") if "ActionID: 08-command-and-errors-11" in b)
    listed = {}
    for line in block.split("\r\n")[2:]:
        name, _, rest = line.partition(": ")
        privs = rest.rsplit("(Priv: ", 1)[1].rstrip(")")
        listed[name] = set() if privs == "<none>" else set(privs.split(",")) - {"all"}
    assert len(listed) > 100 and listed["MixMonitor"] == {"system"}
    assert {name: set(ACTION_CLASSES.get(name, {"missing"})) for name in listed} == listed
    # and ccserver's reading of that reply (AmiConnection._list_commands) gets the same names
    (reply,) = [m for m in AmiParser().feed((block + "\r\n\r\n").encode("latin-1"))
                if isinstance(m, Message)]
    assert set(reply) - {"Response", "ActionID"} == set(listed)


# -- the simulator enforces the user it is given -----------------------------------------------

def _blocks(data: bytes) -> list[bytes]:
    return [b + b"\r\n\r\n" for b in data.split(b"\r\n\r\n") if b]


async def test_the_simulator_refuses_what_the_shipped_user_may_not_send_with_asterisks_bytes():
    # c05a: the shipped user's Filter and MixMonitor get exactly these bytes from Asterisk 22
    real = _blocks((CCSERVER_CAPTURES / "c05a-recording-permission-denied.ami.in.raw").read_bytes())
    denied = next(b for b in real if b"Permission denied" in b)
    action_id = re.search(rb"ActionID: (\S+)", denied).group(1)
    sim = SimulatedAsterisk(agi_host="127.0.0.1", agi_port=1, agents=[], ami_secret="pw")
    port = await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # banner
        replies = []
        for action in (b"Login\r\nUsername: ccserver\r\nSecret: pw\r\nEvents: off", b"Filter\r\nOperation: Add\r\n"
                       b"MatchCriteria: action(exclude),name(CEL)\r\nFilter: ",
                       b"MixMonitor\r\nChannel: PJSIP/x-1\r\nFile: /tmp/x.wav",
                       b"StopMixMonitor\r\nChannel: PJSIP/x-1", b"ListCommands"):
            writer.write(b"Action: " + action + b"\r\nActionID: " + action_id + b"\r\n\r\n")
            replies.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()
    finally:
        await sim.stop()
    assert replies[1] == replies[2] == denied
    assert replies[3].startswith(b"Response: Error") and b"No such channel" in replies[3]  # allowed
    listed = {line.split(b":")[0].decode() for line in replies[4].split(b"\r\n")[2:] if line}
    user = manager_user(SHIPPED_MANAGER_CONF, "ccserver")
    assert listed == {a for a in ACTION_CLASSES if user.may_send(a)}
    assert "MixMonitor" not in listed and {"StopMixMonitor", "MixMonitorMute", "Setvar"} <= listed


# -- what ccserver sends, run against the node ---------------------------------------------------

def _boss(rig) -> Supervisor:
    return Supervisor(7, "sup7", "supervisor", frozenset({"1001", "1002"}),
                      {rig.node: rig.supervisor_device})


@asterisk_only
async def test_the_shipped_ami_user_may_send_every_action_ccserver_sends(media_rig):
    rig = await media_rig(policy="all")
    server, sim = rig.server, rig.sim
    # ring-no-answer first: 1002 paused, 1001 does not answer; then 1002 is back and answers
    server._dispatch(server.center.pause("1002", "lunch", server.clock()))
    sim.agents["PJSIP/1001"].answers = False
    call = sim.place_call(CallerScript(did="support", digits=["1"], talk_time=60.0))
    cid, calls = f"{rig.node}:{call.uniqueid}", server.center.calls
    await rig.until(lambda: cid in calls and calls[cid].ring_no_answer == 1, what="no answer")
    server._dispatch(server.center.ready("1002", server.clock()))
    await rig.until(lambda: calls[cid].state == "connected", what="connected")
    agent = calls[cid].agent_id
    # recorded from the dialplan's MixMonitor; one recording although rung twice
    (row,) = await rig.until_rows("SELECT * FROM recordings WHERE call_id = $1", cid)
    await server.recorder.set_paused(cid, True)
    await server.recorder.set_paused(cid, False)
    desk = server.supervision
    session = await desk.start(_boss(rig), agent, "listen")
    await rig.until(lambda: desk.sessions.sessions[session.id].active, what="spy active")
    for mode in ("whisper", "barge"):
        await desk.change(_boss(rig), session.id, mode)
    await desk.stop(_boss(rig), session.id)
    await rig.until(lambda: not sim.spies, what="spy ended")
    await rig.drop_pbx_link()  # the resync after the reconnect
    await rig.until(lambda: [m.get("Action") for m in sim.ami_actions].count("CoreShowChannels") == 2
                    and server.adapters[rig.node].connected, what="resync")
    await people(rig)
    sup, h = await login(rig, "sup_a")
    async with sup, sup.post(f"/api/v1/calls/{cid}/transfer", headers=h,
                             json={"destination": "+4930123456"}) as r:
        assert r.status == 200, await r.text()
    await rig.until(lambda: call.transferred_to == "+4930123456", what="transfer dialed")

    sent = {m["Action"] for m in sim.ami_actions}
    assert {"Setvar", "Redirect", "MixMonitorMute", "Originate", "PlayDTMF", "Hangup",
            "CoreShowChannels"} <= sent  # the scenarios ran
    user = manager_user(SHIPPED_MANAGER_CONF, "ccserver")
    assert sorted(a for a in sent if not user.may_send(a)) == []
    # and every class it grants is used by one of them: least privilege
    assert {c for c in user.write if any(c in ACTION_CLASSES[a] for a in sent)} == user.write
    assert (rig.root / row["file"]).is_file()


@asterisk_only
async def test_no_filter_is_sent_to_a_user_without_system_and_that_is_said_once_per_link(media_rig, caplog):
    caplog.set_level(logging.WARNING, "ccserver.pbx.asterisk.ami_client")
    rig = await media_rig(policy="none")
    await rig.drop_pbx_link()
    sim = rig.sim
    await rig.until(lambda: [m.get("Action") for m in sim.ami_actions].count("CoreShowChannels") == 2
                    and rig.server.adapters[rig.node].connected, what="second login")
    assert "Filter" not in {m["Action"] for m in sim.ami_actions}
    lines = [r.getMessage() for r in caplog.records if "Filter" in r.getMessage()]
    assert len(lines) == 1 and "VarSet" in lines[0] and "system" in lines[0]
    assert rig.server.alerts() == ()  # no call is recorded on demand here: nothing to say


@asterisk_only
async def test_a_user_with_system_gets_the_filters_and_no_alert(media_rig):
    rig = await media_rig(policy="none", ami_write=SYSTEM_GRANTED)
    filters = [m["MatchCriteria"] for m in rig.sim.ami_actions if m["Action"] == "Filter"]
    assert filters and all(f.startswith("action(exclude),name(") for f in filters)
    assert rig.server.alerts() == ()


@asterisk_only
async def test_an_on_demand_start_needs_system_which_the_console_says_at_login(media_rig):
    rig = await media_rig(policy="on_demand")
    server = rig.server
    # right after login, before any call: the console says what will not work
    (alert,) = server.alerts()
    assert "MixMonitor" in alert and "system" in alert and rig.node in alert
    call, cid, _agent = await rig.connected_call(talk_time=60.0)
    await people(rig)
    agent, h = await login(rig, "agent1")
    async with agent:
        async with agent.post(f"/api/v1/calls/{cid}/recording/start", headers=h) as r:
            assert r.status == 502 and "system" in (await r.json())["error"]
        async with agent.get(f"/api/v1/calls/{cid}/recording") as r:
            live = await r.json()
    assert (live["state"], live["recording_id"]) == ("failed", None) and "system" in live["reason"]
    assert "MixMonitor" not in {m["Action"] for m in rig.sim.ami_actions}  # known, not tried
    assert any("do not start" in a for a in server.alerts())
    with pytest.raises(CommandFailed):  # a second attempt is allowed, and refused the same way
        await server.recorder.start_on_demand(cid)
    assert server.center.calls[cid].recording is None
    assert not await rig.rows("SELECT * FROM recordings")


@asterisk_only
async def test_with_system_granted_an_on_demand_start_runs_and_no_alert_is_raised(media_rig):
    rig = await media_rig(policy="on_demand", ami_write=SYSTEM_GRANTED)
    assert rig.server.alerts() == ()
    _call, cid, _agent = await rig.connected_call(talk_time=60.0)
    file = await rig.server.recorder.start_on_demand(cid)
    (row,) = await rig.until_rows("SELECT * FROM recordings WHERE call_id = $1", cid)
    assert row["file"] == file == rig.server.center.calls[cid].recording
    (sent,) = [m for m in rig.sim.ami_actions if m["Action"] == "MixMonitor"]
    assert sent["File"] == f"{rig.root}/{file}"


def test_the_shipped_user_has_no_system_and_static_filters_stand_in_for_filter():
    user = manager_user(SHIPPED_MANAGER_CONF, "ccserver")
    assert not user.write & {"system", "command", "config"}
    assert not user.may_send("MixMonitor") and user.may_send("StopMixMonitor")
    assert not may_send(user.write, "Filter") and user.eventfilters
