"""The full-featured flow over real FastAGI (TCP): the commands Asterisk receives for each node type."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from captures import ASTERISK_CAPTURES as CAPTURES

from ccserver.core.events import IvrFinished
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.prompts import MissingPrompts
from ccserver.ivr.runner import serve_ivr
from ccserver.pbx.asterisk.fastagi import FastAgiServer

ROOT = Path(__file__).resolve().parents[1]
RAW = (CAPTURES / "07-fastagi.agi.in.raw").read_bytes()
#: the captured Asterisk 22 environment with our dialplan's arguments, for the DID routed to "hours"
ENV = RAW[: RAW.index(b"\n\n") + 2].replace(
    b"agi_arg_1: lang=en\nagi_arg_2: flow=agi-only\n", b"agi_arg_1: node=pbx1\nagi_arg_2: did=5551234\n"
)
TUESDAY_11 = datetime(2026, 11, 24, 11, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
SATURDAY = datetime(2026, 11, 28, 11, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def responder(digits: str):
    """Answers like Asterisk 22 (reply shapes from res_agi.c); the caller presses ``digits`` in
    order: one per GET DATA digit or WAIT FOR DIGIT, never during STREAM FILE."""
    keys = list(digits)

    def respond(cmd: str) -> bytes:
        if cmd.startswith("GET DATA"):
            want = int(cmd.split()[-1])
            got = ""
            while keys and len(got) < want:
                k = keys.pop(0)
                if k == "#":
                    break
                got += k
            return f"200 result={got}\n".encode() if got else b"200 result= (timeout)\n"
        if cmd.startswith("WAIT FOR DIGIT"):
            return f"200 result={ord(keys.pop(0)) if keys else 0}\n".encode()
        if cmd.startswith("STREAM FILE"):
            return b"200 result=0 endpos=8000\n"
        if cmd.startswith("RECORD FILE"):
            return b"200 result=0 (timeout) endpos=16000\n"
        if cmd.startswith(("SET VARIABLE", "EXEC")):
            return b"200 result=1\n" if cmd.startswith("SET") else b"200 result=0\n"
        if cmd == "ANSWER":
            return b"200 result=0\n"
        return b"510 Invalid or unknown command\n"

    return respond


async def agi_call(library: FlowLibrary, respond, now: float, estimate=None,
                   missing: MissingPrompts | None = None) -> tuple[list[str], list[IvrFinished]]:
    """One call over real FastAGI: Asterisk sends the captured environment and answers each
    command with ``respond(command)`` (bytes: one reply, or more lines, e.g. a HANGUP notice
    before the reply) until ccserver closes; the commands and the IvrFinished events."""
    events: list[IvrFinished] = []
    server = FastAgiServer("127.0.0.1", 0, lambda s: serve_ivr(
        s, library, events.append, lambda: now, estimate, missing=missing), command_timeout=2.0)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(ENV)
        commands = []
        while line := await asyncio.wait_for(reader.readline(), 5):
            commands.append(line.decode().rstrip("\n"))
            writer.write(respond(commands[-1]))
            await writer.drain()
        writer.close()
    finally:
        await server.stop()
    return commands, events


async def _call(now: float, digits: str) -> tuple[list[str], IvrFinished]:
    library = FlowLibrary(ROOT / "ivr_flows", {"5551234": "hours", "*": "main"})
    commands, [event] = await agi_call(library, responder(digits), now)
    return commands, event


async def test_french_account_then_queue_over_agi() -> None:
    commands, ev = await _call(TUESDAY_11, "2123456781")
    assert commands == [
        "ANSWER",
        "STREAM FILE this-call-may-be-recorded \"\"",  # the notice: not interruptible
        "GET DATA press-1-english-2-french 5000 1",
        "SET VARIABLE CHANNEL(language) fr",
        "STREAM FILE entrez-numero-compte \"0123456789*#\"",  # inter-digit timeout differs: digit by digit
        "WAIT FOR DIGIT 6000",
        *["WAIT FOR DIGIT 3000"] * 7,
        'SET VARIABLE account "12345678"',
        "GET DATA tapez-1-agent-2-rappel-3-ventes 5000 1",
        'SET VARIABLE CC_ANNOUNCE "position,wait"',
        'SET VARIABLE CC_QUEUE "support"',
    ]
    assert ev.queue == "support" and ev.language == "fr" and ev.skills == (("french", 50),)
    assert ev.variables["account"] == "12345678" and ev.variables["ivr_digits"] == "2123456781"


@pytest.mark.parametrize(
    ("now", "digits", "last", "variable"),
    [
        (SATURDAY, "", 'RECORD FILE voicemail/support/pbx1_1795481499_35 wav "#" 120000 BEEP',
         ("CC_VOICEMAIL_FILE", "voicemail/support/pbx1_1795481499_35.wav")),
        (TUESDAY_11, "11234567#3", "EXEC Goto ccserver-inbound,sales,1", ("CC_TRANSFER", "did:sales")),
        (TUESDAY_11, "11234567#2", 'SET VARIABLE CC_CALLBACK "+15551230000"', ("CC_CALLBACK_QUEUE", "support")),
    ],
)
async def test_terminal_nodes_over_agi(now: float, digits: str, last: str, variable: tuple[str, str]) -> None:
    commands, ev = await _call(now, digits)
    assert commands[-1] == last.replace("+15551230000", ev.caller)
    assert ev.variables[variable[0]] == variable[1] and ev.queue is None


async def test_tts_prompt_is_spoken_with_exec() -> None:
    library = FlowLibrary(ROOT / "ivr_flows", {"*": "hours"})
    library.set_overrides({"emergency"})
    commands, events = await agi_call(library, responder(""), TUESDAY_11)
    assert commands[2:] == ['EXEC Flite "We are closed due to an emergency."', 'STREAM FILE goodbye ""']
    assert events[0].path[:2] == ("check_hours", "check_hours:override:emergency")


async def _call_with(respond, missing: MissingPrompts) -> tuple[list[str], list[IvrFinished]]:
    """The ``hours`` flow on Tuesday at 11, Asterisk answering with ``respond``."""
    return await agi_call(FlowLibrary(ROOT / "ivr_flows", {"*": "hours"}), respond, TUESDAY_11,
                          missing=missing)


def unopened(prompt: str, channel_status: bytes):
    """Asterisk 22 without the sound file ``prompt`` (res_agi.c handle_streamfile: the stream
    does not open, ``200 result=-1 endpos=0``); ``channel_status`` answers CHANNEL STATUS."""
    usual = responder("")

    def respond(cmd: str) -> bytes:
        if cmd.startswith(f"STREAM FILE {prompt} "):
            return b"200 result=-1 endpos=0\n"
        if cmd == "CHANNEL STATUS":
            return channel_status
        return usual(cmd)

    return respond


async def test_a_prompt_asterisk_cannot_open_is_reported_and_the_flow_goes_on() -> None:
    missing = MissingPrompts()
    commands, (ev,) = await _call_with(
        unopened("this-call-may-be-recorded", b"200 result=6\n"), missing)  # 6: AST_STATE_UP
    assert commands[1:4] == ['STREAM FILE this-call-may-be-recorded ""', "CHANNEL STATUS",
                             "GET DATA press-1-english-2-french 5000 1"]
    assert not ev.caller_hung_up
    (alert,) = missing.alerts()
    assert "'this-call-may-be-recorded' (flow node recording_notice)" in alert and "pbx1" in alert


async def test_a_caller_gone_at_the_start_of_a_prompt_still_ends_the_flow() -> None:
    # the hang-up's own shape (capture 07b): result=-1, the HANGUP notice, 511 to what follows
    dead = b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
    missing = MissingPrompts()
    commands, (ev,) = await _call_with(unopened("this-call-may-be-recorded", dead), missing)
    assert commands[1:] == ['STREAM FILE this-call-may-be-recorded ""', "CHANNEL STATUS"]
    assert ev.caller_hung_up and missing.alerts() == ()
