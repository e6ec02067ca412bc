"""One ccserver over a real Asterisk and a real FreeSWITCH together (opt-in: both
CCSERVER_REAL_ASTERISK and CCSERVER_REAL_FREESWITCH, README "Testing against a real PBX").

The two rigs of this folder, side by side: the Asterisk's shipped files and endpoints
(``asterisk_rig``), the switch's shipped files, prompts and registered directory users
(``freeswitch_rig``), and one ccserver run as a site runs it with both nodes in its ``hardware/``
folder: ``pbx1.toml`` copied from the example and ``fs1.toml``. An agent reachable from both has
a PJSIP phone on the Asterisk (home) and ``devices = { fs1 = "user/<n>" }``: two SIPp phones, one
registered with each PBX. The checks wait on what ccserver says (API, ``/metrics``, CDR rows).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .conftest import require, run_apart

require("asterisk")
require("freeswitch")

from pgproxy import PgProxy  # noqa: E402 - after the skip: the suite needs nothing when it is off
from rig import free_port  # noqa: E402

from . import asterisk_rig as ast  # noqa: E402
from . import freeswitch_rig as fs  # noqa: E402

pytestmark = pytest.mark.timeout(180)

AST_CALLER = "+15550001"
FS_CALLER = "15550002001"
FS_CALLER_2 = "15550002002"


@pytest.fixture(scope="session")
def asterisk() -> ast.Site:
    """The Asterisk of CCSERVER_REAL_ASTERISK with the shipped files loaded, for the session."""
    return run_apart(ast.load_site(ast.RealAsterisk.from_env(os.environ["CCSERVER_REAL_ASTERISK"]), free_port()))


@pytest.fixture(scope="session")
def freeswitch(tmp_path_factory) -> fs.Site:
    """The FreeSWITCH of CCSERVER_REAL_FREESWITCH with the shipped files loaded, for the session."""
    async def load() -> fs.Site:
        return await fs.load_site(await fs.Switch.discover(), tmp_path_factory.mktemp("sipp"))
    return run_apart(load())


def agent(phone: str, *, auto_login: bool = True, freeswitch: bool = True) -> ast.Agent:
    """Agent ``a<phone>``: PJSIP/<phone> on the Asterisk and, with ``freeswitch``, user/<phone> on it too."""
    return ast.Agent(f"a{phone}", phone, auto_login, {fs.NODE: f"user/{phone}"} if freeswitch else {})


class Both:
    """One test's ccserver over both PBXs, the phones on each, and the callers."""

    def __init__(self, asterisk: ast.Site, freeswitch: fs.Site, dsn: str, tmp: Path) -> None:
        self.asterisk, self.freeswitch, self.dsn, self.tmp = asterisk, freeswitch, dsn, tmp
        self.ast_phones = ast.Phones(asterisk, tmp)
        self.fs_phones = fs.Phones(freeswitch.switch, tmp / "fs-sipp", freeswitch.agent_ports)
        self.cc: ast.CcServer | None = None
        #: in front of the Asterisk's AMI when the test cuts that link
        self.proxy: PgProxy | None = None
        self._ast_calls: list[ast.Sipp] = []

    async def start(self, agents: list[ast.Agent], *, ami_through_proxy: bool = False) -> ast.CcServer:
        """Run ccserver over both nodes and wait until both are up and the auto_login agents ready."""
        ami_port = None
        if ami_through_proxy:
            # PgProxy forwards any TCP address given as a URL (it only reads host and port)
            self.proxy = PgProxy(f"tcp://{self.asterisk.pbx.ami_host}:{self.asterisk.pbx.ami_port}")
            await self.proxy.start()
            ami_port = self.proxy.port
        switch = self.freeswitch.switch
        self.cc = cc = await ast.CcServer(
            self.tmp, self.dsn, self.asterisk, agents, ami_port=ami_port,
            other_nodes={fs.NODE: fs.node_toml((switch.host, switch.port), switch.recordings_dir)},
            server={"esl_outbound_host": "127.0.0.1", "esl_outbound_port": self.freeswitch.outbound_port},
            secrets_env={fs.PASSWORD_ENV: switch.password}).start()
        await self.until_nodes({ast.NODE: True, fs.NODE: True})
        for a in agents:
            if a.auto_login:
                await cc.until_agent(a.id, "ready")
        return cc

    async def nodes(self) -> dict[str, bool]:
        """Which PBX links ccserver has up (``ccserver_node_up`` on ``/metrics``)."""
        assert self.cc is not None and self.cc.http is not None
        async with self.cc.http.get("/metrics") as r:
            text = await r.text()
        return {n: v == "1" for n, v in re.findall(r'(?m)^ccserver_node_up\{node="([^"]+)"\} (\S+)$', text)}

    async def until_nodes(self, want: dict[str, bool]) -> None:
        assert self.cc is not None

        async def there() -> bool:
            return await self.nodes() == want
        await self.cc.until(there, f"the nodes {want}")

    async def ast_call(self, hold_seconds: float) -> ast.Sipp:
        """An Asterisk caller who presses 1 (support) 2 s after the answer."""
        sipp = await ast.carrier_call(self.asterisk, self.tmp, caller=AST_CALLER, digit="1", digit_after=2.0,
                                      hold_seconds=hold_seconds)
        self._ast_calls.append(sipp)
        return sipp

    async def until_queued(self, count: int) -> list[dict]:
        """The live calls, once ``count`` of them wait in support."""
        assert self.cc is not None
        cc = self.cc

        async def queued():
            calls = await cc.get("/api/v1/calls")
            return calls if sum(c["state"] == "queued" and c["queue"] == "support" for c in calls) == count else None
        return await cc.until(queued, f"{count} caller(s) queued in support", timeout=40)

    async def cdr(self, caller: str) -> dict:
        """The one CDR row of ``caller`` (the carrier's From user), once written."""
        assert self.cc is not None
        (row,) = await self.cc.until_rows("SELECT * FROM calls WHERE caller LIKE '%' || $1", caller,
                                          what=f"the CDR of {caller}", timeout=60)
        return dict(row)

    async def login(self, agent_id: str) -> None:
        assert self.cc is not None
        status, body = await self.cc.send("POST", f"/api/v1/agents/{agent_id}/login")
        assert status == 200, body

    async def close(self) -> None:
        for s in self._ast_calls:
            await s.stop()
        await self.ast_phones.close()
        self.fs_phones.stop()
        if self.cc is not None:
            await self.cc.stop()
        if self.proxy is not None:
            await self.proxy.close()
        await ast.clear_channels(self.asterisk.pbx)
        await self.freeswitch.switch.hang_up_everything()


@pytest.fixture
async def both(asterisk: ast.Site, freeswitch: fs.Site, db_dsn: str, tmp_path: Path) -> AsyncIterator[Both]:
    await freeswitch.switch.hang_up_everything()
    rig = Both(asterisk, freeswitch, db_dsn, tmp_path)
    try:
        yield rig
    finally:
        await rig.close()


async def test_callers_on_both_pbxs_are_served_in_arrival_order_by_an_agent_reachable_from_both(both: Both) -> None:
    await both.ast_phones.phone("1001", ring_seconds=0.5)
    await both.fs_phones.agent("1001", answer_after=0.5)
    cc = await both.start([agent("1001", auto_login=False)])
    # the FreeSWITCH caller comes first, though the agent's home node is the Asterisk
    fs_caller = both.fs_phones.call(FS_CALLER, talk=20)
    await both.until_queued(1)
    ast_caller = await both.ast_call(hold_seconds=45.0)
    await both.until_queued(2)
    await both.login("a1001")
    assert await fs_caller.wait(60) == 0, fs_caller.messages()[-3000:]
    assert await ast_caller.wait(60) == 0, ast_caller.errors()
    first, second = await both.cdr(FS_CALLER), await both.cdr(AST_CALLER)
    assert (first["node"], first["did"]) == (fs.NODE, "support")
    assert (second["node"], second["did"]) == (ast.NODE, ast.DID)
    for row in (first, second):
        assert (row["disposition"], row["queue"], row["agent_id"], row["hangup_by"]) == (
            "answered", "support", "a1001", "caller"), row
        assert float(row["talk_seconds"]) > 3.0, row
    assert first["enqueued_at"] < second["enqueued_at"]
    # served one after the other, in arrival order: the second rang only once the first was over
    assert first["answered_at"] < first["ended_at"] <= second["offered_at"] < second["answered_at"]
    states = [s for s, _ in await cc.states("a1001")]
    assert states.count("offered") == 2 and "paused" not in states, states


async def test_an_agent_with_only_an_asterisk_phone_is_never_rung_for_a_freeswitch_caller(both: Both) -> None:
    asterisk_only = await both.ast_phones.phone("1002", ring_seconds=0.5)
    await both.fs_phones.agent("1001", answer_after=0.5)
    cc = await both.start([agent("1002", freeswitch=False), agent("1001", auto_login=False)])
    fs_caller = both.fs_phones.call(FS_CALLER, talk=20)

    async def noted():
        (queue,) = [q for q in await cc.get("/api/v1/queues") if q["name"] == "support"]
        return next((w["routing_note"] for w in queue["waiting"] if w["routing_note"]), None)

    # the caller waits, and the console says why, while a1002 stays ready on the Asterisk
    note = await cc.until(noted, "a routing note on the FreeSWITCH caller")
    assert f"no ready agent can be rung from node '{fs.NODE}'" in note and "a1002" in note, note
    await both.login("a1001")
    assert await fs_caller.wait(60) == 0, fs_caller.messages()[-3000:]
    row = await both.cdr(FS_CALLER)
    assert (row["disposition"], row["agent_id"], row["node"]) == ("answered", "a1001", fs.NODE)
    assert "offered" not in [s for s, _ in await cc.states("a1002")]
    assert (await cc.agent("a1002"))["state"] == "ready"
    # a second opinion: a1002's SIPp phone (one call, then it exits) never got an INVITE
    assert asterisk_only.proc is not None and asterisk_only.proc.returncode is None


async def test_freeswitch_callers_are_served_while_the_asterisk_ami_link_is_cut(both: Both) -> None:
    for phone in ("1001", "1002"):
        await both.ast_phones.phone(phone, ring_seconds=0.5)
        await both.fs_phones.agent(phone, answer_after=0.5)
    cc = await both.start([agent("1001"), agent("1002")], ami_through_proxy=True)
    assert both.proxy is not None
    talking = both.fs_phones.call(FS_CALLER, talk=25)

    async def connected():
        return [c for c in await cc.get("/api/v1/calls") if c["state"] == "connected"]

    (live,) = await cc.until(connected, "the first FreeSWITCH caller connected")
    # the Asterisk node goes away in the middle of the FreeSWITCH call
    await both.proxy.cut()
    await both.until_nodes({ast.NODE: False, fs.NODE: True})
    arriving = both.fs_phones.call(FS_CALLER_2, talk=10)
    assert await arriving.wait(60) == 0, arriving.messages()[-3000:]
    assert await talking.wait(60) == 0, talking.messages()[-3000:]
    first, second = await both.cdr(FS_CALLER), await both.cdr(FS_CALLER_2)
    for row in (first, second):
        assert (row["disposition"], row["queue"], row["node"]) == ("answered", "support", fs.NODE), row
    assert first["agent_id"] == live["agent_id"]
    assert {first["agent_id"], second["agent_id"]} == {"a1001", "a1002"}
    assert float(first["talk_seconds"]) > 15.0 and float(second["talk_seconds"]) > 3.0
    assert (await both.nodes())[ast.NODE] is False, "the AMI link came back before the FreeSWITCH calls ended"
    # the Asterisk node back, its callers are served again
    await both.proxy.restore()
    await both.until_nodes({ast.NODE: True, fs.NODE: True})
    for a in ("a1001", "a1002"):
        await cc.until_agent(a, "ready")
    ast_caller = await both.ast_call(hold_seconds=12.0)
    assert await ast_caller.wait(60) == 0, ast_caller.errors()
    row = await both.cdr(AST_CALLER)
    assert (row["disposition"], row["node"]) == ("answered", ast.NODE)
    assert row["agent_id"] in ("a1001", "a1002")
