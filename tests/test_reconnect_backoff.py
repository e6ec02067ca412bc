"""Reconnect timing of both PBX links (AMI and ESL) against PBXs on real sockets: a link cut right
after every login backs off instead of hammering the node with logins and resyncs, a node that
comes back after an outage is seen within the cap, and only a link that stayed up starts over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig
from ccserver.pbx.asterisk.ami_client import AmiConnection
from ccserver.pbx.backoff import Backoff
from ccserver.pbx.freeswitch.esl_client import EslConnection

SECRET = "reconnect-test-secret-91"


# -- the policy on its own, with a clock of our own -------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_up_to_the_cap_and_never_beyond_it() -> None:
    longest = Backoff(initial=0.2, cap=2.0, stable_after=10.0, jitter=lambda _lo, hi: hi)
    assert [longest.next_wait() for _ in range(7)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 2, 2, 2])
    shortest = Backoff(initial=0.2, cap=2.0, stable_after=10.0, jitter=lambda lo, _hi: lo)
    assert [shortest.next_wait() for _ in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    below_the_first_step = Backoff(cap=0.1, stable_after=10.0, jitter=lambda _lo, hi: hi)
    assert [below_the_first_step.next_wait() for _ in range(2)] == pytest.approx([0.1, 0.1])


def test_only_a_link_that_stayed_up_starts_the_waits_over() -> None:
    clock = Clock()
    b = Backoff(initial=0.2, cap=2.0, stable_after=10.0, clock=clock, jitter=lambda _lo, hi: hi)
    for _ in range(3):
        b.next_wait()
    b.link_up()
    clock.now += 9.5  # up, but not long enough
    assert b.next_wait() == pytest.approx(1.6)
    b.link_up()
    clock.now += 10.0
    assert b.next_wait() == pytest.approx(0.2)


# -- PBXs on real sockets -----------------------------------------------------------------------

class Pbx:
    """Answers logins on a real socket, AMI or ESL. ``mode``: ``"down"`` accepts and hangs up at
    once (the node is not there yet), ``"flap"`` hangs up right after each login, ``"up"`` keeps
    the link. Replies are written by hand, not by ccserver's codecs."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.mode = "up"
        self.attempts: list[float] = []
        self.logins: list[float] = []
        self.writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Pbx:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        self.server.close()
        await self.server.wait_closed()

    def drop(self) -> None:
        for w in self.writers:
            w.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts.append(time.monotonic())
        if self.mode == "down":
            writer.close()
            return
        self.writers.add(writer)
        try:
            await (self._ami if self.protocol == "ami" else self._esl)(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def _logged_in(self, writer: asyncio.StreamWriter) -> None:
        self.logins.append(time.monotonic())
        if self.mode == "flap":
            writer.close()

    async def _ami(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        while True:
            block = (await reader.readuntil(b"\r\n\r\n")).decode()
            headers = dict(line.split(": ", 1) for line in block.strip().split("\r\n"))
            action, aid = headers["Action"], headers.get("ActionID", "")
            extra = "Ping: Pong\r\n" if action == "Ping" else ""
            writer.write(f"Response: Success\r\nActionID: {aid}\r\n{extra}\r\n".encode())
            await writer.drain()
            if action == "Login":
                self._logged_in(writer)

    async def _esl(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        while True:
            command = (await reader.readuntil(b"\n\n")).decode().split("\n")[0]
            if command.startswith("api "):
                writer.write(b"Content-Type: api/response\nContent-Length: 3\n\nUP\n")
            else:
                writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            await writer.drain()
            if command.startswith("event "):  # subscribed: ccserver counts the link as up
                self._logged_in(writer)


async def nothing() -> None:
    pass


def link(pbx: Pbx, backoff: Backoff) -> AmiConnection | EslConnection:
    if pbx.protocol == "ami":
        return AmiConnection("127.0.0.1", pbx.port, "ccserver", SECRET, "call,dtmf",
                             on_event=lambda _m: None, on_up=nothing, on_down=lambda: None,
                             ping_interval=5.0, ping_timeout=3.0, backoff=backoff)
    return EslConnection("127.0.0.1", pbx.port, SECRET, ("CHANNEL_CREATE",),
                         on_event=lambda _e: None, on_up=nothing, on_down=lambda: None,
                         backoff=backoff)


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.01)


async def running(conn: AmiConnection | EslConnection,
                  body: Callable[[], Awaitable[None]]) -> None:
    await conn.start()
    try:
        await body()
    finally:
        await conn.stop()


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


PROTOCOLS = pytest.mark.parametrize("protocol", ["ami", "esl"])


@PROTOCOLS
async def test_a_link_cut_right_after_each_login_backs_off_instead_of_logging_in_again_at_once(
        protocol: str) -> None:
    cap = 0.4
    async with Pbx(protocol) as pbx:
        pbx.mode = "flap"
        conn = link(pbx, Backoff(initial=0.05, cap=cap, stable_after=10.0))
        await running(conn, lambda: until(lambda: len(pbx.logins) >= 7, 10.0, "7 logins"))
    between = gaps(pbx.logins)
    # 0.05 doubling: from the fourth wait on the step is the cap, jittered into [cap/2, cap]
    assert min(between[3:]) >= cap / 2, between
    assert max(between) <= cap + 0.4, between


@PROTOCOLS
async def test_a_node_back_after_an_outage_is_seen_within_the_default_cap(protocol: str) -> None:
    node = (NodeConfig(name="pbx1", kind="asterisk", host="h", ami_user="u", ami_secret_env="S")
            if protocol == "ami" else
            FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="h", esl_password_env="S"))
    cap = node.reconnect_max
    async with Pbx(protocol) as pbx:
        pbx.mode = "down"
        conn = link(pbx, Backoff(cap=cap, stable_after=node.reconnect_reset_after))

        async def outage_then_back() -> None:
            await until(lambda: len(pbx.attempts) > 1
                        and pbx.attempts[-1] - pbx.attempts[0] > 2 * cap, 20.0, "a long outage")
            pbx.mode = "up"
            back = time.monotonic()
            await until(lambda: bool(pbx.logins), 3 * cap, "the login after the outage")
            seen.append(pbx.logins[0] - back)

        seen: list[float] = []
        await running(conn, outage_then_back)
    # a little for connecting and logging in on a busy machine
    assert max(gaps(pbx.attempts)) <= cap + 0.5, gaps(pbx.attempts)
    assert seen[0] <= cap + 0.5


@PROTOCOLS
async def test_a_link_that_stayed_up_reconnects_at_once_after_a_cut(protocol: str) -> None:
    clock = Clock()
    async with Pbx(protocol) as pbx:
        pbx.mode = "flap"
        conn = link(pbx, Backoff(initial=0.05, cap=5.0, stable_after=10.0, clock=clock))

        async def flaps_then_stays_up_then_cut() -> None:
            await until(lambda: len(pbx.logins) >= 5, 10.0, "5 logins")  # the step is now 1.6 s
            pbx.mode = "up"
            await until(lambda: len(pbx.logins) >= 6 and conn.connected, 10.0, "a stable link")  # link_up ran
            clock.now += 10.0  # it stayed up as long as it takes
            cut = time.monotonic()
            pbx.drop()
            await until(lambda: len(pbx.logins) >= 7, 10.0, "the login after the cut")
            again.append(pbx.logins[-1] - cut)

        again: list[float] = []
        await running(conn, flaps_then_stays_up_then_cut)
    assert again[0] < 0.5  # 0.05 s step, not 1.6 s
