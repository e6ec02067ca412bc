"""The kept call facts' channel-variable value: round trip, what each switch's command line and
Asterisk's Status buffer allow, and clear errors for values ccserver did not write."""

from __future__ import annotations

import asyncio
import re

import pytest
from test_ami_client import SECRET, FakeAmi, capture_frames, node, reply, until

from ccserver.core.events import DomainEvent, NodeResynced
from ccserver.core.facts import CallFacts
from ccserver.pbx.asterisk.adapter import AsteriskAdapter
from ccserver.pbx.asterisk.ami_codec import Message
from ccserver.pbx.facts import MAX_LENGTH, FactsError, decode_facts, encode_facts

FULL = CallFacts(did="+1 (555) 0100", arrived_at=1795481744.123456, queue="support", priority=3,
                 skills=(("english", 50), ("billing:vip", 10)), language="en",
                 ivr_ended_at=1795481750.5, enqueued_at=1795481750.5, offered_at=1795481751.0,
                 answered_at=1795481760.25, agent_id="1001",
                 ivr_path=("greeting", "main_menu", "main_menu:1", "it's; a=\\node"),
                 recording="pbx1-1795481744.48-abc.wav")


def test_kept_facts_come_back_as_they_were_written():
    assert decode_facts(encode_facts(FULL)) == FULL
    assert decode_facts(encode_facts(CallFacts(did="", arrived_at=5.0))) == CallFacts("", 5.0)


def test_the_value_passes_both_switches_command_lines_untouched():
    # no space (uuid_setvar splits on it), no ' or \ (switch_separate_string strips them), no
    # CR/LF (AMI header injection)
    assert re.fullmatch(r"[A-Za-z0-9._~%=;,:-]+", encode_facts(FULL))


def test_a_long_ivr_path_is_cut_from_its_end_to_fit_asterisks_status_buffer():
    long = CallFacts(did="5000", arrived_at=1.0, queue="support",
                     ivr_path=tuple(f"menu_step_{i}" for i in range(300)))
    text = encode_facts(long)
    assert len(text) <= MAX_LENGTH < 512
    path = decode_facts(text).ivr_path
    assert 0 < len(path) < 300 and path == long.ivr_path[:len(path)]


@pytest.mark.parametrize("value, reason", [
    ("hello", "is not key=value"),
    ("did=5000", "no arrival time"),
    ("did=5000;arrived=soon", "could not convert"),
    ("arrived=1.0;prio=high", "invalid literal"),
])
def test_a_value_ccserver_did_not_write_is_refused_with_the_reason(value, reason):
    with pytest.raises(FactsError, match=reason):
        decode_facts(value)


async def test_the_asterisk_resync_reads_the_facts_kept_on_the_caller_from_status():
    """The Status reply written here from ``action_status`` / ``generate_status``
    (``main/manager.c``), not by the simulator: a list ack, one ``Status`` per channel with the
    requested variable as ``Variable: NAME=value`` (unset: ``(null)``) and ActionID last, then
    StatusComplete; the listing is the real capture 10b (caller bridged to PJSIP/1001)."""
    kept = CallFacts(did="support", arrived_at=1795481753.2, queue="support",
                     enqueued_at=1795481753.4, answered_at=1795481753.6, agent_id="1001",
                     ivr_path=("greeting",))
    frames = capture_frames("10b-status-call-bridged.in.raw")
    listing = [f for f in frames if b"ActionID: 10b-status-call-bridged-2\r\n" in f]

    async def status(msg: Message, w: asyncio.StreamWriter) -> None:
        aid = msg["ActionID"]
        assert msg["Variables"] == "CC_CALL_FACTS"
        w.write(reply(msg, ("Response", "Success"), ("EventList", "start"),
                      ("Message", "Channel status will follow")))
        for channel, uid, value in (("PJSIP/carrier-00000019", "1795481753.51", encode_facts(kept)),
                                    ("PJSIP/1001-0000001a", "1795481753.52", "(null)")):
            w.write(f"Event: Status\r\nPrivilege: Call\r\nChannel: {channel}\r\n"
                    f"Uniqueid: {uid}\r\nLinkedid: 1795481753.51\r\nSeconds: 4\r\n"
                    f"Variable: CC_CALL_FACTS={value}\r\nActionID: {aid}\r\n\r\n".encode())
        w.write(f"Event: StatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                f"ListItems: 2\r\nItems: 2\r\n\r\n".encode())

    async def core_show_channels(msg: Message, w: asyncio.StreamWriter) -> None:
        for f in listing:
            w.write(f.replace(b"10b-status-call-bridged-2", msg["ActionID"].encode()))

    out: list[DomainEvent] = []
    async with FakeAmi() as ami:
        ami.handlers |= {"Status": status, "CoreShowChannels": core_show_channels}
        adapter = AsteriskAdapter(node(ami.port), out.append, SECRET, clock=lambda: 7.0)
        await adapter.start()
        try:
            await until(lambda: any(isinstance(e, NodeResynced) for e in out))
        finally:
            await adapter.stop()
    (resync,) = [e for e in out if isinstance(e, NodeResynced)]
    (live,) = resync.calls
    assert (live.call_id, live.agent_device, live.facts) == ("lab:1795481753.51", "PJSIP/1001", kept)
    sent = [a["Action"] for a in ami.actions]
    assert sent.index("Status") < sent.index("CoreShowChannels")  # read before the listing
