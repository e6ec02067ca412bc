"""dialplans/asterisk: what Asterisk would run agrees with the adapter, the IVR and the simulator.

A small reader of ``extensions.conf`` (contexts, ``exten`` / ``same`` lines, labels, Asterisk's
pattern rules ``_ X Z N [..] . !``) and a walker that follows ``Goto`` / ``GotoIf`` the way
Asterisk does, so a loop or an unmatched DID fails here instead of on a live trunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_sim_asterisk import QUEUE_FLOW, Lab, capture

import ccserver.pbx.contexts as contexts
from ccserver.hardware import NodeConfig
from ccserver.pbx.asterisk import adapter as asterisk_adapter
from ccserver.pbx.asterisk.normalize import CCSERVER_CONTEXTS, AmiNormalizer
from ccserver.sim.asterisk import CallerScript

ROOT = Path(__file__).resolve().parents[1]
DIALPLANS = ROOT / "dialplans" / "asterisk"
#: the DID shapes the README and the simulator use: names, national digits, E.164 from carriers
DIDS = ["support", "5551000", "+33140000000"]


# -- reading extensions.conf ---------------------------------------------------------------

@dataclass
class Extension:
    pattern: str
    #: priority -> (application, raw data)
    steps: dict[int, tuple[str, str]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class Dialplan:
    globals: dict[str, str]
    contexts: dict[str, list[Extension]]

    def find(self, context: str, exten: str) -> Extension | None:
        """The extension Asterisk runs for ``exten``: an exact name first, else the most
        specific matching pattern."""
        candidates = [e for e in self.contexts[context] if matches(e.pattern, exten)]
        exact = [e for e in candidates if not e.pattern.startswith("_")]
        if exact:
            return exact[0]
        return min(candidates, key=lambda e: _specificity(e.pattern), default=None)

    def calls(self) -> list[tuple[str, str]]:
        """Every (application, raw data) of every context."""
        return [step for exts in self.contexts.values() for e in exts for step in e.steps.values()]


_PRIORITY = re.compile(r"^(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?$")


def parse(text: str) -> Dialplan:
    """Read ``extensions.conf`` text; anything this reader does not know fails loudly."""
    plan = Dialplan({}, {})
    context: str | None = None
    last: tuple[Extension, int] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([A-Za-z0-9_-]+)\]", line):
            context, last = m.group(1), None
            if context != "globals":
                plan.contexts[context] = []
            continue
        if context == "globals":
            name, _, value = line.partition("=")
            plan.globals[name.strip()] = value.strip()
            continue
        key, arrow, rest = line.partition("=>")
        key = key.strip()
        assert arrow and context and key in ("exten", "same"), f"line {lineno}: cannot read {raw!r}"
        if key == "exten":
            pattern, priority, call = (p.strip() for p in rest.split(",", 2))
            ext = next((e for e in plan.contexts[context] if e.pattern == pattern), None)
            if ext is None:
                ext = Extension(pattern)
                plan.contexts[context].append(ext)
            previous = max(ext.steps, default=0)
        else:
            assert last is not None, f"line {lineno}: same => before any exten"
            ext, previous = last
            priority, call = (p.strip() for p in rest.split(",", 1))
        m = _PRIORITY.match(priority)
        assert m, f"line {lineno}: priority {priority!r}"
        number = previous + 1 if m.group(1) == "n" else int(m.group(1))
        if m.group(2):
            ext.labels[m.group(2)] = number
        app, paren, data = call.partition("(")
        assert not paren or data.endswith(")"), f"line {lineno}: unbalanced {call!r}"
        ext.steps[number] = (app.strip(), data[:-1] if paren else "")
        last = (ext, number)
    return plan


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 1
    while i < len(pattern):
        c = pattern[i]
        if c in "Xx":
            out.append("[0-9]")
        elif c in "Zz":
            out.append("[1-9]")
        elif c in "Nn":
            out.append("[2-9]")
        elif c == "[":
            end = pattern.index("]", i)
            out.append("[" + re.sub(r"([\\\]^])", r"\\\1", pattern[i + 1:end]) + "]")
            i = end
        elif c == ".":  # one or more of anything; Asterisk ignores what follows
            out.append(".+")
            break
        elif c == "!":  # zero or more of anything
            out.append(".*")
            break
        elif c != "-":  # a dash outside brackets is only for reading (_555-XXXX)
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def matches(pattern: str, exten: str) -> bool:
    """Asterisk's rule: ``_`` starts a pattern; otherwise the name must be equal."""
    if not pattern.startswith("_"):
        return pattern == exten
    return _pattern_regex(pattern).fullmatch(exten) is not None


def _specificity(pattern: str) -> list[int]:
    """How many characters each position accepts (fewer sorts first, as Asterisk prefers)."""
    sizes = []
    for part in re.findall(r"\[[^\]]*\]|.", pattern[1:]):
        if part in ".!":
            sizes.append(10**6 + (part == "!"))
        else:
            sizes.append(sum(1 for c in map(chr, range(32, 127)) if _pattern_regex("_" + part).fullmatch(c)))
    return sizes


def load() -> Dialplan:
    return parse((DIALPLANS / "extensions.conf").read_text())


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
    plan = parse("[a]\nexten => _[a-z].,1,Goto(a,${EXTEN:0},1)\n")
    with pytest.raises(DialplanLoop):
        run(plan, "a", "support", {})
    plan = parse("[a]\nexten => s,1,NoOp()\n same => n(top),Set(X=1)\n"
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


def _set_by(path: Path, *patterns: str) -> set[str]:
    text = path.read_text()
    return {name for p in patterns for name in re.findall(p, text)}


def test_contexts_read_only_variables_that_someone_sets():
    plan = load()
    by_adapter = _set_by(ROOT / "ccserver/pbx/asterisk/adapter.py",
                         r'_setvar\([^,]+,\s*"(\w+)"', r'"(CC_\w+)=')
    by_ivr = _set_by(ROOT / "ccserver/ivr/engine.py", r'set_var\("(\w+)"')
    by_dialplan = {data.partition("=")[0].lstrip("_") for app, data in plan.calls() if app == "Set"}
    asterisk = {"EXTEN", "CALLERID(num)", "DIALSTATUS"}
    known = set(plan.globals) | by_adapter | by_ivr | by_dialplan | asterisk
    read = {name for _, data in plan.calls() for name in re.findall(r"\$\{(\w+(?:\([^)]*\))?)", data)}
    assert read - known == set()
    # and every variable the adapter hands to the dialplan is read there (SPYGROUP is Asterisk's)
    assert {v for v in by_adapter if v.startswith("CC_")} - read == set()
    assert "CC_QUEUE" in by_ivr and "CC_QUEUE" in read


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


# -- manager.conf ----------------------------------------------------------------------------

def _manager_user() -> dict[str, list[str]]:
    section, user = None, {}
    for raw in (DIALPLANS / "manager.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = m.group(1)
        elif section == "ccserver" and "=" in line:
            key, _, value = line.partition("=")
            user.setdefault(key.strip(), []).append(value.strip())
    return user


#: the events the adapter reads itself besides the normalizer's (adapter._callback_event,
#: adapter._spy_event)
ADAPTER_EVENTS = {"OriginateResponse", "ChanSpyStart", "Hangup"}
#: events no capture holds, with the class Asterisk sends them in (main/manager_channels.c)
UNCAPTURED_EVENT_CLASSES = {"Hold": "call", "Unhold": "call"}
#: the classes Asterisk checks an action against (main/manager.c, apps/app_mixmonitor.c): any
#: one of them in the user's ``write`` is enough; empty = every user may send it
ACTION_CLASSES = {
    "Login": set(), "Ping": set(), "Redirect": {"call"}, "Setvar": {"call"}, "PlayDTMF": {"call"},
    "Hangup": {"system", "call"}, "MixMonitor": {"system", "call"},
    "StopMixMonitor": {"system", "call"}, "MixMonitorMute": {"system", "call"},
    "Originate": {"originate"}, "CoreShowChannels": {"system", "reporting"},
    "Status": {"system", "call", "reporting"}, "Filter": {"system"},
}


def test_the_ami_user_reads_exactly_the_event_classes_ccserver_uses():
    user = _manager_user()
    (read,) = user["read"]
    classes = set(read.split(","))
    assert classes == set(asterisk_adapter.EVENTS_MASK.split(","))
    privilege = {}  # event -> its class, as the captured Asterisk 22 sent it
    for name in ("02-inbound-queue-answered.in.raw", "02b-ivr-fastagi-queue-agent-hangup.ami.in.raw",
                 "04a-chanspy-listen.in.raw", "05-mixmonitor-start-stop.in.raw"):
        for m in capture(name):
            if m.event and "Privilege" in m:
                privilege[m.event] = m["Privilege"].split(",")[0]
    privilege |= UNCAPTURED_EVENT_CLASSES
    used = set(AmiNormalizer("n", set())._handlers) | ADAPTER_EVENTS
    assert sorted(used - set(privilege)) == [], "no capture shows these events' class"
    assert {e: privilege[e] for e in used if e in privilege and privilege[e] not in classes} == {}
    excluded = {re.search(r"name\((\w+)\)", k).group(1) for k in user if k.startswith("eventfilter")}
    assert excluded and not excluded & used


def test_the_ami_user_may_send_every_action_ccserver_sends_and_no_more():
    (write,) = _manager_user()["write"]
    classes = set(write.split(","))
    assert not classes & {"system", "command", "config", "all"}
    sent = _set_by(ROOT / "ccserver/pbx/asterisk/adapter.py", r'"Action": "(\w+)"') | _set_by(
        ROOT / "ccserver/pbx/asterisk/ami_client.py", r'"Action": "(\w+)"')
    # Filter is optional: refused without `system`, and manager.conf's eventfilters stand in
    refused = {a for a in sent - {"Filter"} if ACTION_CLASSES[a] and not ACTION_CLASSES[a] & classes}
    assert refused == set()
    needed = set().union(*(ACTION_CLASSES[a] & classes for a in sent if a != "Filter"))
    assert classes == needed  # no class granted that no action needs
