"""The kept call facts' channel-variable value: round trip, what each switch's command line and
Asterisk's Status buffer allow, and clear errors for values ccserver did not write."""

from __future__ import annotations

import re

import pytest

from ccserver.core.facts import CallFacts
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
