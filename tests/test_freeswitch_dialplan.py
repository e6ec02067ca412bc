"""dialplans/freeswitch: the XML FreeSWITCH would load agrees with the adapter and the simulator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ccserver.hardware import FreeSwitchNodeConfig
from ccserver.sim.freeswitch.pbx import INBOUND_CONTEXT

DIALPLANS = Path(__file__).resolve().parents[1] / "dialplans" / "freeswitch"


def test_inbound_context_hands_every_did_to_the_outbound_socket():
    root = ET.parse(DIALPLANS / "ccserver.xml").getroot()
    (context,) = root.iter("context")
    assert context.get("name") == INBOUND_CONTEXT
    node = FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="h", esl_password_env="X")
    assert node.inbound_contexts == [INBOUND_CONTEXT]
    actions = [(a.get("application"), a.get("data")) for a in context.iter("action")]
    assert ("socket", "$${ccserver_outbound} async full") in actions
    assert ("set", "cc_node=$${ccserver_node}") in actions  # the node name the server reads
    # the after-IVR extension comes first, or the catch-all DID pattern would take it
    names = [e.get("name") for e in context.iter("extension")]
    assert names == ["ccserver-after-ivr", "ccserver-ivr"]


def test_event_socket_password_comes_from_the_environment_not_the_default():
    params = {p.get("name"): p.get("value")
              for p in ET.parse(DIALPLANS / "event_socket.conf.xml").getroot().iter("param")}
    assert params["password"] == "$${ccserver_esl_password}"
    assert params["listen-ip"] == "$${ccserver_esl_listen_ip}"
    assert params["apply-inbound-acl"]
    text = (DIALPLANS / "ccserver_vars.xml").read_text()
    assert 'cmd="env-set" data="ccserver_esl_password=CCSERVER_ESL_PASSWORD"' in text
    assert "ClueCon" not in "".join(
        line for line in text.splitlines() if "X-PRE-PROCESS" in line)
