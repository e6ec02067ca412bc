"""dialplans/asterisk: what Asterisk would run agrees with the adapter, the IVR and the simulator.

A small reader of ``extensions.conf`` (contexts, ``exten`` / ``same`` lines, labels, Asterisk's
pattern rules ``_ X Z N [..] . !``) and a walker that follows ``Goto`` / ``GotoIf`` the way
Asterisk does, so a loop or an unmatched DID fails here instead of on a live trunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_sim_asterisk import QUEUE_FLOW, Lab, capture

import ccserver.pbx.contexts as contexts
import ccserver.pbx.facts as facts
from ccserver.hardware import NodeConfig
from ccserver.pbx.asterisk import adapter as asterisk_adapter
from ccserver.pbx.asterisk.normalize import CCSERVER_CONTEXTS, AmiNormalizer
from ccserver.sim.asterisk import CallerScript, SimAgent
from ccserver.sim.asterisk.conf import (
    SHIPPED_MANAGER_CONF,
    Dialplan,
    dialplan,
    load_dialplan,
    manager_user,
    matches,
    parse,
)
from ccserver.supervision.sessions import Supervisor

ROOT = Path(__file__).resolve().parents[1]
DIALPLANS = ROOT / "dialplans" / "asterisk"
#: the DID shapes the README and the simulator use: names, national digits, E.164 from carriers
DIDS = ["support", "5551000", "+33140000000"]

pytest_plugins = ["media_rig"]  # the media_rig fixture (tests/media_rig.py)


def load() -> Dialplan:
    return load_dialplan(DIALPLANS / "extensions.conf")


def read(text: str) -> Dialplan:
    return dialplan(parse(text))


# -- running it ----------------------------------------------------------------------------

class DialplanLoop(AssertionError):
    pass


@dataclass(frozen=True)
class Step:
    context: str
    exten: str
    priority: int
    app: str
    #: the data after variable substitution, as Asterisk reports it in Newexten's AppData
    data: str


_VAR = re.compile(r"\$\{([^${}]+)\}")
_EXPR = re.compile(r"\$\[([^$\[\]]*)\]")


def substitute(text: str, variables: dict[str, str]) -> str:
    """``${NAME}``, ``${NAME:offset[:length]}``, ``${FUNC(arg)}`` and ``$[a = b]`` / ``!=``."""
    def var(m: re.Match[str]) -> str:
        name, *cut = m.group(1).split(":")
        value = variables.get(name, "")
        if cut:
            start = int(cut[0])
            value = value[start:start + int(cut[1])] if len(cut) > 1 else value[start:]
        return value

    def expr(m: re.Match[str]) -> str:
        left, op, right = re.fullmatch(r'\s*"?(.*?)"?\s*(!=|=)\s*"?(.*?)"?\s*', m.group(1)).groups()
        return str(int((left == right) == (op == "=")))

    while (done := _EXPR.sub(expr, _VAR.sub(var, text))) != text:
        text = done
    return text


def run(plan: Dialplan, context: str, exten: str, variables: dict[str, str], *,
        stop_at: tuple[str, ...] = ("MusicOnHold", "Dial", "ChanSpy", "VoiceMail"),
        after: dict[str, dict[str, str]] | None = None) -> list[Step]:
    """Execute from ``context,exten,1`` until Hangup, an application in ``stop_at`` (it blocks
    the channel) or the end of the extension. ``after[app]`` are the variables an application
    leaves on the channel (what ccserver's IVR sets over AGI). Raises :class:`DialplanLoop`
    when a Goto comes back to a step already run."""
    variables = {**plan.globals, **variables}
    steps: list[Step] = []
    seen: set[tuple[str, str, int]] = set()
    priority = 1
    while True:
        ext = plan.find(context, exten)
        assert ext is not None, f"{exten!r} matches no extension of [{context}]"
        if priority not in ext.steps:
            return steps
        if (context, exten, priority) in seen:
            raise DialplanLoop(f"[{context}] {exten},{priority} runs again: {steps}")
        seen.add((context, exten, priority))
        variables["EXTEN"] = exten
        app, raw = ext.steps[priority]
        data = substitute(raw, variables)
        steps.append(Step(context, exten, priority, app, data))
        variables.update((after or {}).get(app, {}))
        if app == "Hangup" or app in stop_at:
            return steps
        target = None
        if app == "Set":
            name, _, value = data.partition("=")
            variables[name.lstrip("_")] = value
        elif app == "Goto":
            target = data
        elif app == "GotoIf":
            condition, _, branches = data.partition("?")
            yes, _, no = branches.partition(":")
            target = (yes if condition.strip() not in ("", "0") else no) or None
        if target is None:
            priority += 1
            continue
        *where, prio = target.split(",")  # [[context,]exten,]priority
        if len(where) == 2:
            context, exten = where
        elif where:
            exten = where[0]
        found = plan.find(context, exten)
        assert found is not None, f"Goto {target!r}: no such extension"
        priority = int(prio) if prio.isdigit() else found.labels[prio]


def executes(step: Step) -> tuple[str, str] | None:
    """What an ``ExecIf(expr?app(args))`` step runs (app, args), or None when its condition is
    false (apps/app_exec.c: the expression is cut at the first ``?``, the true branch at ``:``)."""
    assert step.app == "ExecIf", step
    condition, _, branches = step.data.partition("?")
    if condition.strip() in ("", "0"):
        return None
    app, _, args = branches.partition(":")[0].partition("(")
    return app, args.rpartition(")")[0]


# -- the reader itself follows Asterisk's rules --------------------------------------------

@pytest.mark.parametrize("pattern, yes, no", [
    ("_X.", ["55", "5551000"], ["5", "+33", "support"]),
    ("_NXX", ["200", "999"], ["100", "20", "2000"]),
    ("_Z!", ["1", "19"], ["0", ""]),
    ("_[a-c]X", ["a1", "c9"], ["d1", "A1"]),
    ("_[+0-9A-Za-z].", ["+33140000000", "Support", "ab"], ["h", "*1", "#9"]),
    ("s", ["s"], ["s1", "S"]),
])
def test_the_reader_matches_extensions_as_asterisk_does(pattern, yes, no):
    assert [e for e in yes if not matches(pattern, e)] == []
    assert [e for e in no if matches(pattern, e)] == []


def test_the_walker_sees_a_goto_loop():
    plan = read("[a]\nexten => _[a-z].,1,Goto(a,${EXTEN:0},1)\n")
    with pytest.raises(DialplanLoop):
        run(plan, "a", "support", {})
    plan = read("[a]\nexten => s,1,NoOp()\n same => n(top),Set(X=1)\n"
                 ' same => n,GotoIf($["${X}" = "1"]?top)\n')
    with pytest.raises(DialplanLoop):
        run(plan, "a", "s", {})


# -- the dialplan ccserver ships -----------------------------------------------------------

def test_every_context_ccserver_names_exists():
    plan = load()
    named = {v for k, v in vars(contexts).items() if k.endswith("_CONTEXT")}
    named |= set(CCSERVER_CONTEXTS) | set(NodeConfig.model_fields["inbound_contexts"].default)
    assert named - set(plan.contexts) == set()
    assert set(plan.contexts) - named == set()  # nothing ccserver would never send a call to


@pytest.mark.parametrize("did", DIDS)
def test_every_did_shape_runs_the_ivr_then_waits(did: str):
    plan = load()
    queued = run(plan, contexts.INBOUND_CONTEXT, did, {"CALLERID(num)": "+15551230000"},
                 after={"AGI": {"CC_QUEUE": "support"}})
    agi = next(s for s in queued if s.app == "AGI")
    assert agi.data == f"{plan.globals['CC_AGI']}/ivr,node={plan.globals['CC_NODE']},did={did}"
    assert (queued[-1].context, queued[-1].app) == (contexts.WAIT_CONTEXT, "MusicOnHold")
    # no queue chosen: the call ends in the dialplan once the IVR is done
    alone = run(plan, contexts.INBOUND_CONTEXT, did, {})
    assert [s.app for s in alone][-2:] == ["GotoIf", "Hangup"]


@pytest.mark.parametrize("special", ["h", "i", "t", "s", "e"])
def test_special_extensions_are_not_taken_for_dids(special: str):
    # h runs at every hang-up when it exists: a DID pattern taking it would rerun the IVR
    assert load().find(contexts.INBOUND_CONTEXT, special) is None


def test_another_did_of_ours_is_reached_from_an_ivr_transfer():
    # fastagi.transfer: "did:sales" becomes EXEC Goto ccserver-inbound,sales,1
    plan = load()
    steps = run(plan, contexts.INBOUND_CONTEXT, "sales", {})
    assert any(s.app == "AGI" and s.data.endswith("did=sales") for s in steps)


@pytest.mark.parametrize("context, exten", [
    (contexts.WAIT_CONTEXT, "s"),
    (contexts.CONNECT_CONTEXT, "s"),            # RingAgent: Redirect
    (contexts.VOICEMAIL_CONTEXT, "s"),          # SendToVoicemail: Redirect
    (contexts.CALLBACK_CONFIRM_CONTEXT, "s"),   # ConfirmCallback: Redirect
    (contexts.TRANSFER_CONTEXT, "+33140000000"),  # TransferCall / IVR transfer: the number
    (contexts.TRANSFER_CONTEXT, "0140000000"),
    (contexts.CALLBACK_CONTEXT, "+15551230000"),  # CallbackAgent: Originate Exten = number
    (contexts.SPY_CONTEXT, "0123456789abcdef"),   # StartSpy: Local/<session>@ccserver-spy
])
def test_the_places_ccserver_sends_channels_exist(context: str, exten: str):
    steps = run(load(), context, exten, {})
    assert steps and steps[0].priority == 1


#: the contexts the scenario below runs through, and what Asterisk itself sets there
SCENARIO_CONTEXTS = (contexts.INBOUND_CONTEXT, contexts.WAIT_CONTEXT, contexts.CONNECT_CONTEXT,
                     contexts.SPY_CONTEXT)
ASTERISK_VARIABLES = {"EXTEN", "CALLERID(num)", "DIALSTATUS"}


@pytest.mark.parametrize("media_rig", ["asterisk"], indirect=True)
async def test_the_contexts_read_only_variables_ccserver_or_the_dialplan_sets(media_rig):
    # observed, not read from the source: a recorded call and a spy session run through the
    # adapter, the IVR and the simulated node; what ccserver set is what it sent (Setvar, the
    # Variable of an Originate) and what the IVR left on the caller (SET VARIABLE)
    rig = await media_rig(policy="all")
    call, cid, agent = await rig.connected_call(talk_time=60.0)
    desk = rig.server.supervision
    boss = Supervisor(7, "sup7", "supervisor", frozenset({agent}), {rig.node: rig.supervisor_device})
    session = await desk.start(boss, agent, "listen")
    await rig.until(lambda: desk.sessions.sessions[session.id].active, what="spy active")
    await desk.stop(boss, session.id)
    sent = rig.sim.ami_actions
    by_ccserver = {m["Variable"] for m in sent if m["Action"] == "Setvar"}
    by_ccserver |= {v.partition("=")[0] for m in sent if m["Action"] == "Originate"
                    for v in m.values_of("Variable")}
    by_ivr = {"CC_QUEUE"} & set(rig.sim.channels[call.channel].variables)
    plan = load()
    calls = [step for ctx in SCENARIO_CONTEXTS for e in plan.contexts[ctx] for step in e.steps.values()]
    by_dialplan = {data.partition("=")[0].lstrip("_") for app, data in calls if app == "Set"}
    read = {name for _, data in calls for name in re.findall(r"\$\{(\w+(?:\([^)]*\))?)", data)}
    assert by_ivr == {"CC_QUEUE"} and {"CC_AGENT_DEVICE", "CC_RECORD_FILE"} <= by_ccserver
    assert read - (set(plan.globals) | by_ccserver | by_ivr | by_dialplan | ASTERISK_VARIABLES) == set()
    # and every variable ccserver hands over is read there (SPYGROUP is Asterisk's own; the call
    # facts are ccserver's own, read back by its Status at a resync)
    assert by_ccserver - {"SPYGROUP", facts.ASTERISK_VARIABLE} - read == set()


def test_ccserver_owns_the_queues():
    apps = {app for app, _ in load().calls()}
    assert not apps & {"Queue", "AddQueueMember", "RemoveQueueMember", "PauseQueueMember"}


async def test_the_simulator_runs_the_same_inbound_steps():
    did = "+33140000000"
    async with Lab([], QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript(did=did))
        msgs = await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        port = lab.sim.agi_port
    ran = [(m["Context"], m["Extension"], int(m["Priority"]), m["Application"], m["AppData"])
           for m in msgs if m.event == "Newexten" and m["Channel"] == call.channel]
    plan = load()
    expected = run(plan, contexts.INBOUND_CONTEXT, did,
                   {"CALLERID(num)": call.script.caller, "CC_AGI": f"agi://127.0.0.1:{port}",
                    "CC_NODE": lab.sim.node}, after={"AGI": {"CC_QUEUE": "support"}})
    assert ran == [(s.context, s.exten, s.priority, s.app, s.data) for s in expected]


RECORD = "/var/spool/asterisk/monitor/pbx1-1.2-ab.wav"
RING = {"CC_AGENT_DEVICE": "PJSIP/1001", "CC_RING_TIMEOUT": "8"}


def _connect(variables: dict[str, str], status: str) -> list[Step]:
    return run(load(), contexts.CONNECT_CONTEXT, "s", variables,
               stop_at=("MusicOnHold", "ChanSpy", "VoiceMail"), after={"Dial": {"DIALSTATUS": status}})


def test_a_recorded_ring_starts_mixmonitor_before_dial_and_stops_it_when_nobody_answers():
    steps = _connect({**RING, "CC_RECORD_FILE": RECORD}, "NOANSWER")
    apps = [s.app for s in steps]
    execs = [(s.app, executes(s) if s.app == "ExecIf" else None) for s in steps
             if s.app in ("ExecIf", "Dial")]
    # option b: audio only while bridged, so the file starts when the agent answers
    assert execs == [("ExecIf", None), ("ExecIf", ("MixMonitor", f"{RECORD},b")), ("Dial", None),
                     ("ExecIf", ("StopMixMonitor", ""))]
    # the variable is taken before Dial: a next ring's Setvar is never cleared by this one
    cleared = [s for s in steps if s.app == "Set" and s.data == "CC_RECORD_FILE="]
    assert cleared and steps.index(cleared[0]) < apps.index("Dial")
    assert (steps[-1].context, steps[-1].app) == (contexts.WAIT_CONTEXT, "MusicOnHold")
    # the next ring first stops this one's MixMonitor, in case its Redirect came before the stop
    again = _connect({**RING, "CC_RECORDING": RECORD}, "NOANSWER")
    assert executes(next(s for s in again if s.app == "ExecIf")) == ("StopMixMonitor", "")


def test_an_answered_ring_keeps_its_recording_and_an_unrecorded_ring_starts_none():
    answered = _connect({**RING, "CC_RECORD_FILE": RECORD}, "ANSWER")
    assert [executes(s) for s in answered if s.app == "ExecIf"] == [None, ("MixMonitor", f"{RECORD},b")]
    assert answered[-1].app == "Hangup"
    plain = _connect(RING, "NOANSWER")
    assert [executes(s) for s in plain if s.app == "ExecIf"] == [None, None, None]


async def test_the_simulator_runs_the_same_connect_steps_and_recording():
    agent = SimAgent("PJSIP/1001", answers=False)
    async with Lab([agent], QUEUE_FLOW) as lab:
        call = lab.sim.place_call(CallerScript())
        await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
        await lab.ami.send(Action="Setvar", Channel=call.channel, Variable="CC_RECORD_FILE", Value=RECORD)
        await lab.ring(call.channel, "PJSIP/1001", timeout=1)
        msgs = await lab.ami.until(lambda m: m.event == "MusicOnHoldStart")
    ran = [(m["Context"], m["Extension"], int(m["Priority"]), m["Application"], m["AppData"])
           for m in msgs if m.event == "Newexten" and m["Channel"] == call.channel]
    expected = _connect({**RING, "CC_RING_TIMEOUT": "1", "CC_RECORD_FILE": RECORD, "CC_QUEUE": "support"},
                        "NOANSWER")
    assert ran == [(s.context, s.exten, s.priority, s.app, s.data) for s in expected]
    recording = [m.event for m in msgs if m.event and m.event.startswith("MixMonitor")]
    assert recording == ["MixMonitorStart", "MixMonitorStop"]


# -- manager.conf ----------------------------------------------------------------------------

#: the events the adapter reads itself besides the normalizer's (adapter._callback_event,
#: adapter._spy_event)
ADAPTER_EVENTS = {"OriginateResponse", "ChanSpyStart", "Hangup"}
#: events no capture holds, with the class Asterisk sends them in (main/manager_channels.c)
UNCAPTURED_EVENT_CLASSES = {"Hold": "call", "Unhold": "call"}


def test_the_ami_user_reads_exactly_the_event_classes_ccserver_uses():
    # the write side (the actions) is tests/test_asterisk_ami_rights.py
    user = manager_user(SHIPPED_MANAGER_CONF, "ccserver")
    assert user.read == set(asterisk_adapter.EVENTS_MASK.split(","))
    privilege = {}  # event -> its class, as the captured Asterisk 22 sent it
    for name in ("02-inbound-queue-answered.in.raw", "02b-ivr-fastagi-queue-agent-hangup.ami.in.raw",
                 "04a-chanspy-listen.in.raw", "05-mixmonitor-start-stop.in.raw"):
        for m in capture(name):
            if m.event and "Privilege" in m:
                privilege[m.event] = m["Privilege"].split(",")[0]
    privilege |= UNCAPTURED_EVENT_CLASSES
    used = set(AmiNormalizer("n", set())._handlers) | ADAPTER_EVENTS
    assert sorted(used - set(privilege)) == [], "no capture shows these events' class"
    assert {e: privilege[e] for e in used if e in privilege and privilege[e] not in user.read} == {}
    excluded = {re.search(r"name\((\w+)\)", criteria).group(1) for criteria, _ in user.eventfilters}
    assert excluded and not excluded & used
