"""ccserver against a real FreeSWITCH, with SIPp phones and a SIPp carrier on loopback.

Opt-in: runs only when ``CCSERVER_REAL_FREESWITCH`` names the ESL (``host:port``) of a FreeSWITCH
running on this machine, ``CCSERVER_ESL_PASSWORD`` holds the password it was started with, and
``sipp`` is installed (see ``freeswitch_rig.py`` for what the suite learns from the switch and
what it writes into its configuration). Each test starts the real ccserver (configuration and
``hardware/fs1.toml`` files, checked as ``ccserver run`` checks them) on a fresh database, places
calls with SIPp and checks the CDR rows and agent state changes in Postgres.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import pytest

from .conftest import require, run_apart

require("freeswitch")

from pgproxy import PgProxy  # noqa: E402 - after the skip: the suite needs nothing when it is off
from rig import free_port  # noqa: E402

from .freeswitch_rig import (  # noqa: E402
    NODE,
    PASSWORD_ENV,
    CcServer,
    Phones,
    Site,
    Switch,
    ThrowawaySwitch,
    load_site,
    login_answer,
    until,
)


@pytest.fixture(scope="session")
def switch() -> Switch:
    """The running FreeSWITCH as it describes itself (nothing installed yet)."""
    return run_apart(Switch.discover())


@pytest.fixture(scope="session")
def site(switch, tmp_path_factory) -> Site:
    return run_apart(load_site(switch, tmp_path_factory.mktemp("sipp")))


class FsTest:
    """One test's phones, ESL proxy (a link ccserver can lose) and ccserver processes."""

    def __init__(self, site: Site, dsn: str, folder: Path) -> None:
        self.site, self.switch, self.dsn, self.folder = site, site.switch, dsn, folder
        self.phones = Phones(site.switch, folder / "sipp", site.agent_ports)
        self.proxy = PgProxy(f"tcp://{site.switch.host}:{site.switch.port}")
        self._servers: list[CcServer] = []

    async def ccserver(self, agents: list[dict], **options) -> CcServer:
        if not self.proxy.port:
            await self.proxy.start()
        cc = CcServer(self.folder / "ccserver", self.dsn, ("127.0.0.1", self.proxy.port),
                      self.site.outbound_port, self.switch.recordings_dir, agents, **options)
        self._servers.append(cc)
        await cc.start()
        return cc

    async def agent_leg(self, ext: str) -> dict | None:
        """The switch's channel of the leg ringing or answered at agent ``ext``'s phone."""
        for row in await self.switch.channels():
            if row.get("direction") == "outbound" and f"/{ext}@" in row.get("name", ""):
                return row
        return None

    async def close(self) -> None:
        for cc in self._servers:
            await cc.stop()
        self.phones.stop()
        await self.proxy.close()
        await self.switch.hang_up_everything()


def agent(ext: str, **options) -> dict:
    return {"id": ext, "name": f"Agent {ext}", "node": NODE, "device": f"user/{ext}",
            "queues": ["support"], **options}


@pytest.fixture
async def fs(site, db_dsn, tmp_path):
    await site.switch.hang_up_everything()
    rig = FsTest(site, db_dsn, tmp_path)
    yield rig
    await rig.close()


async def until_call(cc: CcServer, caller: str, predicate, timeout: float, what: str):
    """Wait until the live call from ``caller`` satisfies ``predicate``; the failure shows it."""
    try:
        await until(lambda: (c := cc.call_from(caller)) is not None and predicate(c), timeout, what)
    except AssertionError as e:
        c = cc.call_from(caller)
        seen = None if c is None else {"state": str(c.state), "queue": c.queue, "agent": c.agent_id}
        raise AssertionError(f"{e}; the call is {seen}") from None
    return cc.call_from(caller)


def _seconds(later, earlier) -> float:
    return (later - earlier).total_seconds()


# --- start-up and the event socket (issue 10 items 1 and 2) ----------------------------------

async def test_freeswitch_starts_with_the_shipped_files_installed_as_the_readme_says(switch, tmp_path):
    env = {**os.environ, PASSWORD_ENV: secrets.token_urlsafe(24)}
    second = ThrowawaySwitch(switch, tmp_path, env)
    try:
        assert await second.started(), f"FreeSWITCH did not start:\n{second.printed()[-3000:]}"
    finally:
        second.stop()


async def test_event_socket_accepts_the_password_from_the_environment_and_refuses_cluecon(switch, tmp_path):
    secret = secrets.token_urlsafe(24)
    second = ThrowawaySwitch(switch, tmp_path, {**os.environ, PASSWORD_ENV: secret})
    try:
        assert await second.started(), f"FreeSWITCH did not start:\n{second.printed()[-3000:]}"
        answers: list[str] = []

        async def listening() -> bool:
            answers[:] = [await login_answer("127.0.0.1", second.esl_port, secret)]
            return answers[0] != "connection refused"

        await until(listening, 10, "the event socket to listen")
        assert answers == ["+OK accepted"]
        assert await login_answer("127.0.0.1", second.esl_port, "ClueCon") == "-ERR invalid"
    finally:
        second.stop()


async def test_event_socket_takes_no_password_at_all_when_the_variable_is_unset(switch, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    second = ThrowawaySwitch(switch, tmp_path, env)
    try:
        if await second.started():
            # mod_event_socket's runtime thread either listens ("Socket up listening on", a
            # DEBUG line of mod_event_socket.c) or gives up and ends (switch_loadable_module.c)
            await until(lambda: any(line in second.printed() for line in (
                "Socket up listening on", "Thread ended for mod_event_socket")), 10,
                "mod_event_socket to listen or give up")
        for password in ("ClueCon", ""):
            answer = await login_answer("127.0.0.1", second.esl_port, password)
            assert answer != "+OK accepted", f"auth {password!r} accepted with {PASSWORD_ENV} unset"
    finally:
        second.stop()


async def test_an_event_socket_acl_refusal_is_logged_as_freeswitchs_access_denied(
        switch, tmp_path, db_dsn, caplog, monkeypatch):
    # issue 10 item 6: FreeSWITCH answers a refused address with text/rude-rejection, no auth/request
    secret = secrets.token_urlsafe(24)
    monkeypatch.setenv(PASSWORD_ENV, secret)
    second = ThrowawaySwitch(switch, tmp_path / "fs", dict(os.environ), acl_allow="192.0.2.1/32")
    cc = CcServer(tmp_path / "ccserver", db_dsn, ("127.0.0.1", second.esl_port), free_port(), tmp_path, [agent("1001")])
    try:
        assert await second.started(), f"FreeSWITCH did not start:\n{second.printed()[-3000:]}"

        async def refusing() -> bool:
            return (await login_answer("127.0.0.1", second.esl_port, secret)).startswith("text/rude-rejection")

        await until(refusing, 10, "the event socket to listen and refuse 127.0.0.1")
        await cc.start(logged_in=False)
        await until(lambda: any("Access Denied" in r.getMessage() for r in caplog.records), 15,
                    "ccserver to log FreeSWITCH's Access Denied")
        assert not [r for r in caplog.records if "no auth/request" in r.getMessage()]
    finally:
        await cc.stop()
        second.stop()


# --- calls -------------------------------------------------------------------------------------

async def test_caller_pressing_1_in_the_menu_is_queued_and_connected_to_the_agent_who_answers(fs):
    cc = await fs.ccserver([agent("1001")])
    await fs.phones.agent("1001", answer_after=1.0)
    caller = fs.phones.call("15550001001", talk=6)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001001")
    assert (row["disposition"], row["queue"], row["agent_id"], row["node"]) == ("answered", "support", "1001", NODE)
    assert row["did"] == "support"
    # the digit reached the menu: option 1, not the no-choice branch after three timeouts
    assert "to_support" in row["ivr_path"] and "no_choice" not in row["ivr_path"], row["ivr_path"]
    assert 0.8 <= _seconds(row["answered_at"], row["offered_at"]) <= 5
    assert float(row["talk_seconds"]) > 1
    assert row["hangup_by"] == "caller"


async def test_menu_prompts_play_from_the_flow_language_folder_so_a_silent_caller_gets_full_timeouts(fs):
    # main.yaml's menu waits 5 s for a digit, three times; a prompt that fails to open makes
    # play_and_get_digits return at once (issue 10 item 5), and the three "timeouts" take ~1 s
    cc = await fs.ccserver([agent("1001")])
    await fs.phones.agent("1001", answer_after=0.5)
    caller = fs.phones.call("15550001009", press_1=False, talk=25)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001009")
    assert "no_choice" in row["ivr_path"], row["ivr_path"]
    assert _seconds(row["ivr_ended_at"], row["arrived_at"]) >= 15
    assert row["disposition"] == "answered"


async def test_caller_waits_on_hold_music_until_an_agent_logs_in(fs):
    cc = await fs.ccserver([agent("1001", auto_login=False)])
    await fs.phones.agent("1001", answer_after=0.5)
    caller = fs.phones.call("15550001002", talk=14)
    await until_call(cc, "15550001002", lambda c: c.state == "queued", 20, "queued")

    async def on_hold_music() -> bool:
        return any(ch.get("application") == "endless_playback"
                   and ch.get("application_data") == "local_stream://moh" for ch in await fs.switch.channels())

    await until(on_hold_music, 10, "the caller's channel playing local_stream://moh")
    cc.login("1001")
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001002")
    assert (row["disposition"], row["agent_id"]) == ("answered", "1001")
    assert row["enqueued_at"] < row["offered_at"] < row["answered_at"]


async def test_agent_not_answering_is_paused_and_the_caller_is_connected_to_the_next_agent(fs):
    cc = await fs.ccserver([agent("1001"), agent("1002", priorities={"support": 2})], ring_timeout=4)
    await fs.phones.agent_never_answering("1001")
    await fs.phones.agent("1002", answer_after=0.5)
    caller = fs.phones.call("15550001003", talk=14)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001003")
    assert (row["disposition"], row["agent_id"], row["ring_no_answer"]) == ("answered", "1002", 1)
    assert ("offered", "paused", "no answer") in await cc.agent_states("1001")
    assert cc.center.agents["1001"].state == "paused"


async def test_caller_hanging_up_on_hold_is_abandoned(fs):
    cc = await fs.ccserver([agent("1001", auto_login=False)])
    caller = fs.phones.call("15550001004", talk=3)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001004")
    assert (row["disposition"], row["queue"], row["agent_id"], row["answered_at"]) == (
        "abandoned", "support", None, None)
    assert row["hangup_by"] == "caller"
    assert row["enqueued_at"] is not None


async def test_caller_hanging_up_in_the_ivr_is_an_ivr_hangup(fs):
    cc = await fs.ccserver([agent("1001")])
    await fs.phones.agent("1001")
    caller = fs.phones.call("15550001005", press_1=False, wait=0.2, talk=0)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001005")
    assert (row["disposition"], row["queue"], row["agent_id"], row["enqueued_at"]) == (
        "ivr_hangup", None, None, None)
    assert row["hangup_by"] == "caller"


async def test_recorded_queue_call_is_written_by_uuid_record_into_the_recording_root(fs):
    cc = await fs.ccserver([agent("1001")], queue={"recording": "all"})
    await fs.phones.agent("1001", answer_after=0.5)
    caller = fs.phones.call("15550001006", talk=6)
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001006")
    assert row["disposition"] == "answered" and row["recording"], dict(row)
    path = Path(row["recording"])
    if not path.is_absolute():
        path = fs.switch.recordings_dir / path
    await until(lambda: path.exists() and path.stat().st_size > 44, 10, f"{path} written by FreeSWITCH")


async def test_agent_answering_while_the_esl_link_is_down_is_bridged_after_the_reconnect(fs):
    # issue 10 item 3: the originate's BACKGROUND_JOB goes only to listeners connected then
    cc = await fs.ccserver([agent("1001")], ring_timeout=15)
    await fs.phones.agent("1001", answer_after=3.0)
    caller = fs.phones.call("15550001007", talk=30)
    await until(lambda: fs.agent_leg("1001"), 20, "the switch ringing agent 1001's phone")
    await fs.proxy.cut()

    async def agent_answered() -> bool:
        leg = await fs.agent_leg("1001")
        return leg is not None and leg.get("callstate") == "ACTIVE"

    await until(agent_answered, 15, "agent 1001's phone to answer")
    await fs.proxy.restore()
    await until_call(cc, "15550001007", lambda c: c.state == "connected", 30,
                     "the caller connected to the agent who answered")
    assert cc.center.agents["1001"].state == "on_call"
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001007")
    assert (row["disposition"], row["agent_id"]) == ("answered", "1001")
    assert not [s for s in await cc.agent_states("1001") if s[1] == "paused"]


async def test_ccserver_restart_while_an_agent_talks_keeps_the_agent_on_the_call(fs):
    # issue 10 item 4: the resync must find the agent of a live call by what the switch keeps
    cc = await fs.ccserver([agent("1001")])
    await fs.phones.agent("1001", answer_after=0.5)
    caller = fs.phones.call("15550001008", talk=25)
    await until_call(cc, "15550001008", lambda c: c.state == "connected", 30, "connected")
    answered_at = cc.call_from("15550001008").answered_at
    await cc.stop()
    await cc.start()
    # the resync may adopt the call first and learn its facts from the switch after
    await until_call(cc, "15550001008", lambda c: (c.agent_id, c.queue) == ("1001", "support"), 15,
                     "the live call adopted with its agent and queue after the restart")
    assert cc.center.agents["1001"].state == "on_call"
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001008")
    assert (row["disposition"], row["queue"], row["agent_id"]) == ("answered", "support", "1001")
    assert abs(row["answered_at"].timestamp() - answered_at) < 1


async def test_ccserver_restart_while_a_caller_waits_keeps_the_callers_queue_facts(fs):
    # issue 10 item 16: DID, queue, enqueue time and IVR path live across a restart
    cc = await fs.ccserver([agent("1001", auto_login=False)])
    await fs.phones.agent("1001", answer_after=0.5)
    caller = fs.phones.call("15550001010", talk=20)
    await until_call(cc, "15550001010", lambda c: c.state == "queued", 20, "queued")
    waiting = cc.call_from("15550001010")
    enqueued_at, ivr_path = waiting.enqueued_at, list(waiting.ivr_path)
    await cc.stop()
    await cc.start()
    await until_call(cc, "15550001010", lambda c: (c.state, c.queue) == ("queued", "support"), 15,
                     "the waiting caller queued again after the restart")
    cc.login("1001")
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001010")
    assert (row["disposition"], row["did"], row["queue"], row["agent_id"]) == ("answered", "support", "support", "1001")
    assert abs(row["enqueued_at"].timestamp() - enqueued_at) < 1
    assert row["ivr_path"] == ivr_path


async def test_ccserver_closing_the_outbound_socket_after_the_ivr_is_not_logged_as_the_caller_gone(fs, caplog):
    # issue 10 item 6: ccserver closes the socket itself when the flow hands the call to a queue
    caplog.set_level(logging.INFO, logger="ccserver.pbx.freeswitch.outbound")
    cc = await fs.ccserver([agent("1001", auto_login=False)])
    caller = fs.phones.call("15550001011", talk=4)
    queued = await until_call(cc, "15550001011", lambda c: c.state == "queued", 20, "queued")
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    assert (await cc.cdr("15550001011"))["disposition"] == "abandoned"
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "caller gone" in m and queued.call_id in m] == []


async def test_call_arriving_while_the_esl_link_is_down_keeps_its_arrival_time(fs):
    # issue 10 item 6: the call's CHANNEL_CREATE is lost with the link; the outbound socket's
    # connect reply carries the channel's creation time
    cc = await fs.ccserver([agent("1001")])
    await fs.phones.agent("1001", answer_after=0.5)
    await fs.proxy.cut()
    caller = fs.phones.call("15550001012", talk=8)
    await until_call(cc, "15550001012", lambda c: c.ivr_ended_at is not None, 20, "the IVR's end")
    await fs.proxy.restore()
    assert await caller.wait(60) == 0, caller.messages()[-3000:]
    row = await cc.cdr("15550001012")
    assert (row["disposition"], row["agent_id"]) == ("answered", "1001")
    # the digit is pressed 1.5 s after the answer: the IVR took at least that long
    assert _seconds(row["ivr_ended_at"], row["arrived_at"]) >= 1.5
