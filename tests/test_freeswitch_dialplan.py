"""dialplans/freeswitch, loaded the way FreeSWITCH loads them, from a conf tree set up as the README
says: FreeSWITCH starts, its event socket opens only with the password from the environment,
and the dialplan hands calls to ccserver and follows what the adapter leaves on the channel."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from ccserver.pbx.contexts import (
    CALLBACK_CONFIRM_CONTEXT,
    CALLBACK_CONTEXT,
    INBOUND_CONTEXT,
    TRANSFER_CONTEXT,
    VOICEMAIL_CONTEXT,
)
from ccserver.pbx.freeswitch import outbound
from ccserver.sim.freeswitch.conf import (
    EventSocketSettings,
    FreeSwitchConf,
    FreeSwitchConfError,
    event_socket,
    expand,
    hunt,
    load,
)

REPO = Path(__file__).resolve().parents[1]
DIALPLANS = REPO / "dialplans" / "freeswitch"
SECRET = "x7-long-random-ESL-secret"

#: the top of a stock FreeSWITCH conf tree (conf/vanilla/freeswitch.xml, the sections we use)
FREESWITCH_XML = """<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="include" data="vars.xml"/>
  <section name="configuration" description="Various Configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
  <section name="dialplan" description="Regex/XML Dialplan">
    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>
  </section>
</document>
"""


def readme_line(pattern: str) -> str:
    """The one line README "Connecting FreeSWITCH" step 1 tells the admin to write that matches."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Connecting FreeSWITCH"):]
    section = section[:section.index("\n## ", 1)]
    (line,) = re.findall(rf"`({pattern})`", section)
    return line


def conf_tree(root: Path, dialplans: Path = DIALPLANS) -> Path:
    """A FreeSWITCH conf dir with the shipped files copied where README step 1 puts them."""
    conf = root / "conf"
    (conf / "autoload_configs").mkdir(parents=True)
    (conf / "dialplan").mkdir()
    (conf / "freeswitch.xml").write_text(FREESWITCH_XML)
    (conf / "vars.xml").write_text(
        "<include>\n"
        '  <X-PRE-PROCESS cmd="set" data="domain=example.org"/>\n'
        f"  {readme_line(r'<X-PRE-PROCESS [^`]*ccserver_vars[.]xml[^`]*/>')}\n"
        "</include>\n")
    (conf / "autoload_configs" / "acl.conf.xml").write_text(
        '<configuration name="acl.conf" description="Network Lists">\n  <network-lists>\n'
        f"    {readme_line(r'<list [^`]*</list>')}\n  </network-lists>\n</configuration>\n")
    shutil.copy(dialplans / "ccserver_vars.xml", conf)
    shutil.copy(dialplans / "event_socket.conf.xml", conf / "autoload_configs")
    shutil.copy(dialplans / "ccserver.xml", conf / "dialplan")
    return conf


@pytest.fixture
def conf(tmp_path: Path) -> FreeSwitchConf:
    return load(conf_tree(tmp_path), {"CCSERVER_ESL_PASSWORD": SECRET, "PATH": "/usr/bin:/bin"})


def would_listen(settings: EventSocketSettings) -> bool:
    """Whether mod_event_socket gets a listening socket on this address (it resolves the name,
    then binds; the port is left to the kernel here so the test needs no free 8021)."""
    try:
        (family, kind, proto, _, addr), *_ = socket.getaddrinfo(
            settings.listen_ip, 0, type=socket.SOCK_STREAM)
        with socket.socket(family, kind, proto) as s:
            s.bind(addr)
            s.listen()
    except OSError:
        return False
    return True


def test_freeswitch_starts_with_the_shipped_files_included_as_the_readme_says(
        conf: FreeSwitchConf) -> None:
    contexts = {c.get("name") for c in conf.section("dialplan").iter("context")}
    assert {INBOUND_CONTEXT, TRANSFER_CONTEXT, CALLBACK_CONTEXT, VOICEMAIL_CONTEXT,
            CALLBACK_CONFIRM_CONTEXT} <= contexts
    assert conf.variables["ccserver_node"] == "fs1"  # the node name README step 2 lists
    assert not conf.notes  # every include found a file


def test_event_socket_takes_its_password_from_the_freeswitch_environment(
        conf: FreeSwitchConf) -> None:
    settings = event_socket(conf)
    assert settings == EventSocketSettings("127.0.0.1", 8021, SECRET, ("ccserver",))
    assert would_listen(settings)
    # an ACL name no list defines refuses every client (switch_core.c,
    # switch_check_network_list_ip_port_token): the README's list is the one it applies
    lists = {x.get("name") for x in conf.configuration("acl.conf").iterfind("network-lists/list")}
    assert set(settings.acls) <= lists


@pytest.mark.parametrize("env", [{}, {"CCSERVER_ESL_PASSWORD": ""}], ids=["unset", "empty"])
def test_event_socket_stays_shut_without_a_password_instead_of_taking_the_default(
        tmp_path: Path, env: dict[str, str]) -> None:
    settings = event_socket(load(conf_tree(tmp_path), env))
    assert settings.password == "ClueCon"  # what mod_event_socket would accept, were it open
    assert not would_listen(settings)
    assert settings.listen_ip == "ccserver-esl-password-unset.invalid"  # the name in its log


@pytest.mark.parametrize("did", ["5551000", "+33140000000", "support"])
def test_inbound_context_hands_every_did_to_the_outbound_socket(
        conf: FreeSwitchConf, did: str) -> None:
    assert hunt(conf.context(INBOUND_CONTEXT), {"destination_number": did}) == [
        ("set", "cc_node=fs1"),
        ("set", f"cc_did={did}"),
        ("unset", outbound.TRANSFER_VAR),
        ("socket", "127.0.0.1:8084 async full"),  # ccserver_outbound, async full as ESL needs
        ("transfer", f"ccserver-after-ivr XML {INBOUND_CONTEXT}"),
    ]


def test_after_the_ivr_a_queued_caller_hears_hold_music_and_one_without_a_queue_is_hung_up(
        conf: FreeSwitchConf) -> None:
    after = {"destination_number": "ccserver-after-ivr"}
    inbound = conf.context(INBOUND_CONTEXT)
    assert hunt(inbound, after, {"CC_QUEUE": "sales"}) == [
        ("set", "hangup_after_bridge=true"), ("endless_playback", "local_stream://moh")]
    assert hunt(inbound, after, {}) == [("hangup", "NORMAL_CLEARING")]


@pytest.mark.parametrize(("target", "then"), [
    (f"+15550100 XML {TRANSFER_CONTEXT}",
     [("set", "hangup_after_bridge=true"), ("bridge", "sofia/gateway/carrier/+15550100")]),
    (f"5551000 XML {INBOUND_CONTEXT}", [("set", "cc_node=fs1"), ("set", "cc_did=5551000")]),
])
def test_after_the_ivr_the_dialplan_follows_the_transfer_target_the_outbound_session_left(
        conf: FreeSwitchConf, target: str, then: list[tuple[str, str]]) -> None:
    # OutboundSession.transfer leaves "<exten> XML <context>" in TRANSFER_VAR, then closes
    variables = {outbound.TRANSFER_VAR: target}
    after = {"destination_number": "ccserver-after-ivr"}
    ((app, data),) = hunt(conf.context(INBOUND_CONTEXT), after, variables)
    assert (app, expand(data, variables)) == ("transfer", target)
    exten, _, context = target.partition(" XML ")
    assert hunt(conf.context(context), {"destination_number": exten})[:len(then)] == then


def test_a_callback_dials_the_callers_number_through_the_gateway(conf: FreeSwitchConf) -> None:
    assert hunt(conf.context(CALLBACK_CONTEXT), {"destination_number": "+15550123"}) == [
        ("set", "hangup_after_bridge=true"), ("bridge", "sofia/gateway/carrier/+15550123")]


def test_overflow_contexts_take_the_mailbox_and_the_confirmation(conf: FreeSwitchConf) -> None:
    assert hunt(conf.context(VOICEMAIL_CONTEXT), {"destination_number": "sales"}) == [
        ("answer", ""), ("voicemail", "default ${domain_name} sales"), ("hangup", "")]
    confirm = hunt(conf.context(CALLBACK_CONFIRM_CONTEXT), {"destination_number": "s"})
    assert [app for app, _ in confirm] == ["playback", "hangup"]


# -- the loader follows FreeSWITCH's pre-processor (switch_xml.c), not XML ---------------------

def write_tree(root: Path, vars_xml: str, **files: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "freeswitch.xml").write_text(
        '<document type="freeswitch/xml">\n<X-PRE-PROCESS cmd="include" data="vars.xml"/>\n'
        '<section name="configuration"/>\n</document>\n')
    (root / "vars.xml").write_text(vars_xml)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_a_preprocessor_line_runs_inside_an_ordinary_comment_but_not_in_a_hash_comment(
        tmp_path: Path) -> None:
    conf = load(write_tree(tmp_path, "<include>\n<!--\n"
                           '  <X-PRE-PROCESS cmd="set" data="a=ran in a comment"/>\n-->\n'
                           "<!--#comment\n"
                           '  <X-PRE-PROCESS cmd="set" data="b=ran in a hash comment"/>\n-->\n'
                           '<X-PRE-PROCESS cmd="set" data="c = $${a}!"/>\n</include>\n'), {})
    assert conf.variables == {"a": "ran in a comment", "c": "ran in a comment!"}


def test_a_file_including_itself_from_its_comment_stops_freeswitch(tmp_path: Path) -> None:
    with pytest.raises(FreeSwitchConfError, match="Maximum recursion limit reached"):
        load(write_tree(tmp_path, '<!--\n  <X-PRE-PROCESS cmd="include" data="vars.xml"/>\n-->\n'),
             {})


def test_env_set_reads_the_environment_only_for_a_dollar_name(tmp_path: Path) -> None:
    conf = load(write_tree(tmp_path, "<include>\n"
                           '<X-PRE-PROCESS cmd="env-set" data="with=$PW"/>\n'
                           '<X-PRE-PROCESS cmd="env-set" data="without=PW"/>\n'
                           '<X-PRE-PROCESS cmd="env-set" data="unset=$NOT_SET"/>\n'
                           "</include>\n"), {"PW": "secret"})
    assert conf.variables == {"with": "secret"}
