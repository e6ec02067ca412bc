"""dialplans/freeswitch: the XML FreeSWITCH would load agrees with the adapter and the simulator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ccserver.hardware import FreeSwitchNodeConfig
from ccserver.pbx.freeswitch import adapter, outbound
from ccserver.sim.freeswitch.pbx import (
    CALLBACK_CONTEXT,
    INBOUND_CONTEXT,
    TRANSFER_CONTEXT,
    TRANSFER_VAR,
)

DIALPLANS = Path(__file__).resolve().parents[1] / "dialplans" / "freeswitch"


def test_inbound_context_hands_every_did_to_the_outbound_socket():
    root = ET.parse(DIALPLANS / "ccserver.xml").getroot()
    contexts = {c.get("name"): c for c in root.iter("context")}
    assert set(contexts) == {INBOUND_CONTEXT, TRANSFER_CONTEXT, CALLBACK_CONTEXT,
                             adapter.VOICEMAIL_CONTEXT, adapter.CALLBACK_CONFIRM_CONTEXT}
    context = contexts[INBOUND_CONTEXT]
    node = FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="h", esl_password_env="X")
    assert node.inbound_contexts == [INBOUND_CONTEXT]
    actions = [(a.get("application"), a.get("data")) for a in context.iter("action")]
    assert ("socket", "$${ccserver_outbound} async full") in actions
    assert ("set", "cc_node=$${ccserver_node}") in actions  # the node name the server reads
    # the after-IVR extension comes first, or the catch-all DID pattern would take it
    names = [e.get("name") for e in context.iter("extension")]
    assert names == ["ccserver-after-ivr-transfer", "ccserver-after-ivr", "ccserver-ivr"]


def test_after_ivr_follows_the_transfer_the_simulator_and_the_adapter_agree_on():
    root = ET.parse(DIALPLANS / "ccserver.xml").getroot()
    conditions = [c.get("field") for e in root.iter("extension") if e.get("name") == "ccserver-after-ivr-transfer"
                  for c in e.iter("condition")]
    assert conditions == ["destination_number", "${" + TRANSFER_VAR + "}"] and TRANSFER_VAR == outbound.TRANSFER_VAR
    assert TRANSFER_CONTEXT == outbound.TRANSFER_CONTEXT
    (out,) = [c for c in root.iter("context") if c.get("name") == TRANSFER_CONTEXT]
    actions = [(a.get("application"), a.get("data")) for a in out.iter("action")]
    assert ("bridge", "sofia/gateway/$${ccserver_gateway}/$1") in actions
    assert 'data="ccserver_gateway=' in (DIALPLANS / "ccserver_vars.xml").read_text()
    assert CALLBACK_CONTEXT == adapter.CALLBACK_CONTEXT
    (back,) = [c for c in root.iter("context") if c.get("name") == CALLBACK_CONTEXT]
    assert ("bridge", "sofia/gateway/$${ccserver_gateway}/$1") in [
        (a.get("application"), a.get("data")) for a in back.iter("action")]


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
